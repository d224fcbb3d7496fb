"""The agent's spool on a real SQLite file: seqs, batches, bounds and dropped ranges."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pytest

from slawatch.agent.spool import FUTURE_MARGIN_S, Spool
from slawatch.collectors.reading import Reading

T0 = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)


def readings(count: int, start: dt.datetime = T0, check: str = "web") -> list[Reading]:
    return [Reading(agent="probe", check=check, ts=start + dt.timedelta(seconds=30 * i), status="up",
                    interval_s=30.0, latency_ms=12.5, metrics={"http.status": 200}) for i in range(count)]


def test_seqs_increase_and_survive_restarts_and_acknowledgements(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", "probe")
    first = [r.seq for r in spool.append(readings(3))]
    base = first[0]
    assert first == [base, base + 1, base + 2]
    batch = spool.next_batch(10)
    assert batch is not None
    spool.acknowledge(batch)
    assert spool.depth() == 0
    spool.close()
    again = Spool(tmp_path / "s.db", "probe")
    assert [r.seq for r in again.append(readings(2))] == [base + 3, base + 4]  # never reused, even empty


def test_a_new_spool_starts_ahead_of_any_older_one(tmp_path: Path) -> None:
    old = Spool(tmp_path / "old.db", "probe")
    last_of_old = old.append(readings(5))[-1].seq
    old.close()
    (tmp_path / "old.db").unlink()  # the spool file was lost; the watchdog still has those seqs
    new = Spool(tmp_path / "old.db", "probe")
    assert new.append(readings(1))[0].seq > last_of_old


def test_a_batch_is_resent_with_the_same_id_and_body_until_acknowledged(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", "probe")
    base = spool.append(readings(5))[0].seq
    first = spool.next_batch(3)
    spool.append(readings(2))
    spool.close()
    spool = Spool(tmp_path / "s.db", "probe")
    again = spool.next_batch(3)
    assert first is not None and again == first
    body = json.loads(first.body)
    assert [r["seq"] for r in body["readings"]] == [base, base + 1, base + 2]
    spool.acknowledge(first)
    following = spool.next_batch(10)
    assert following is not None and following.id != first.id
    assert [r["seq"] for r in json.loads(following.body)["readings"]] == [base + i for i in range(3, 7)]


def test_abandoned_batch_readings_are_sent_again_under_a_new_id(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", "probe")
    spool.append(readings(2))
    first = spool.next_batch(10)
    assert first is not None
    spool.abandon(first)
    second = spool.next_batch(10)
    assert second is not None and second.id != first.id and second.body == first.body


def test_age_bound_drops_the_oldest_and_records_the_range(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", "probe", max_age_s=3600)
    base = spool.append(readings(10, start=T0))[0].seq                    # 10 older than an hour
    spool.append(readings(5, start=T0 + dt.timedelta(hours=2)))           # 5 recent
    assert spool.enforce_bounds(now=T0 + dt.timedelta(hours=2, minutes=5)) == 10
    assert spool.depth() == 5
    batch = spool.next_batch(100)
    assert batch is not None
    body = json.loads(batch.body)
    assert body["dropped"] == [[base, base + 9]]
    assert [r["seq"] for r in body["readings"]] == [base + i for i in range(10, 15)]
    spool.acknowledge(batch)
    assert spool.next_batch(100) is None  # the dropped range went out once, with its batch


def test_age_bound_goes_by_the_stamps_not_the_seqs(tmp_path: Path) -> None:
    """A clock set back stamps later readings earlier: those are the old ones, not the first seqs."""
    spool = Spool(tmp_path / "s.db", "probe", max_age_s=3600)
    now = T0 + dt.timedelta(hours=5)
    recent = spool.append(readings(100, start=now - dt.timedelta(minutes=50)))
    set_back = spool.append(readings(10, start=now - dt.timedelta(hours=3)))
    later = spool.append(readings(5, start=now - dt.timedelta(minutes=1)))
    assert spool.enforce_bounds(now=now) == 10
    batch = spool.next_batch(1000)
    assert batch is not None
    body = json.loads(batch.body)
    assert body["dropped"] == [[set_back[0].seq, set_back[-1].seq]]
    assert [r["seq"] for r in body["readings"]] == [r.seq for r in recent + later]


def test_size_bound_counts_the_readings_held_not_the_pages_left_free(tmp_path: Path) -> None:
    """A big backlog shipped leaves its pages free in the file: a few new readings are not dropped
    for them, and the pages go back to the disk once something is dropped."""
    spool = Spool(tmp_path / "s.db", "probe", max_bytes=10 * 2**20)
    spool.append([Reading(agent="probe", check="web", ts=T0, status="up", interval_s=30.0, error="x" * 2000)
                  for _ in range(8000)])
    while (batch := spool.next_batch(1000)) is not None:
        spool.acknowledge(batch)
    assert spool.size_bytes() > 10 * 2**20
    spool.append(readings(50))
    assert spool.enforce_bounds(now=T0) == 0 and spool.depth() == 50
    spool.append([Reading(agent="probe", check="web", ts=T0, status="up", interval_s=30.0, error="x" * 2000)
                  for _ in range(8000)])
    assert spool.enforce_bounds(now=T0) > 0
    assert spool.size_bytes() <= 10 * 2**20  # what was dropped went back to the disk


def test_a_spool_made_before_pages_went_back_is_converted(tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute("CREATE TABLE reading (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, body TEXT NOT NULL)")
        db.execute("INSERT INTO reading (ts, body) VALUES ('2026-10-01T00:00:00Z', '{}')")
    spool = Spool(tmp_path / "s.db", "probe")
    assert spool._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    assert spool.depth() == 1


def test_size_bound_drops_oldest_but_never_the_batch_in_flight(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", "probe", max_bytes=10 * 2**20)
    base = spool.append(readings(100))[0].seq
    in_flight = spool.next_batch(50)
    assert in_flight is not None
    big = [Reading(agent="probe", check="web", ts=T0, status="up", interval_s=30.0,
                   error="x" * 2000) for _ in range(6000)]
    spool.append(big)
    assert spool.size_bytes() > 10 * 2**20
    dropped = spool.enforce_bounds(now=T0)
    assert dropped > 0
    assert spool.size_bytes() <= 10 * 2**20
    assert spool.next_batch(50) == in_flight
    spool.acknowledge(in_flight)
    following = spool.next_batch(10)
    assert following is not None
    ranges = json.loads(following.body)["dropped"]
    assert ranges and ranges[0][0] == base + 50  # right after the batch that was in flight
    assert sum(last - first + 1 for first, last in ranges) == dropped


def test_a_full_disk_drops_the_oldest_records_the_range_and_keeps_the_new_reading(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", "probe")
    base = spool.append(readings(200))[0].seq
    # SQLite reports a page limit exactly as a full disk: "database or disk is full".
    pages = spool._db.execute("PRAGMA page_count").fetchone()[0]
    spool._db.execute(f"PRAGMA max_page_count = {pages}")
    stored = []
    for reading in readings(400, start=T0 + dt.timedelta(days=1)):
        stored += spool.append([reading])
    assert len(stored) == 400  # every new reading was taken
    batch = spool.next_batch(10_000)
    assert batch is not None
    body = json.loads(batch.body)
    dropped = body["dropped"]
    assert dropped and dropped[0][0] == base  # the oldest went first
    kept = {r["seq"] for r in body["readings"]}
    lost = {seq for first, last in dropped for seq in range(first, last + 1)}
    assert kept | lost == set(range(base, base + 600)) and not kept & lost  # every seq is either kept or reported


def test_a_really_full_disk_still_takes_every_new_reading(tmp_path: Path) -> None:
    """A 6 MB tmpfs in a private mount namespace (root, as `make test` runs) filled by the spool, over
    and over: each time the dropped pages go back to the disk and the reserve is made again, so the
    next full disk can be written through too."""
    import subprocess
    import sys

    mount = tmp_path / "mnt"
    mount.mkdir()
    script = Path(__file__).with_name("spool_full_disk.py")
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=6m tmpfs {mount} && {sys.executable} {script} {mount} 12000"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["appended"] == 12000         # every reading taken
    assert outcome["lost"] > 0                  # the disk really filled up
    assert outcome["oldest_lost"] == outcome["first"]  # the oldest went first
    assert outcome["complete"] and outcome["disjoint"]  # each seq is stored or reported dropped
    assert outcome["batch"]                     # and it still ships
    assert result.stderr.count("event=spool-reserve-released") >= 3


# --- readings stamped in the future by a clock since set back -----------------------------------------

NOW = T0 + dt.timedelta(days=1)


def test_readings_stamped_ahead_of_the_clock_become_a_dropped_range_and_the_rest_ship(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path / "s.db", "probe")
    before = spool.append(readings(3, start=NOW - dt.timedelta(minutes=5)))
    ahead = spool.append(readings(4, start=NOW + dt.timedelta(minutes=10)))   # the clock 10 minutes ahead
    after = spool.append(readings(2, start=NOW))                              # then set right
    with caplog.at_level(logging.ERROR, logger="slawatch.agent.spool"):
        batch = spool.next_batch(100, now=NOW)
    assert batch is not None
    body = json.loads(batch.body)
    assert body["dropped"] == [[ahead[0].seq, ahead[-1].seq]]
    assert [r["seq"] for r in body["readings"]] == [r.seq for r in before + after]
    assert batch.count == 5 and spool.depth() == 5
    reason = spool._db.execute("SELECT reason FROM dropped").fetchone()[0]
    assert reason == "stamped up to 690 s in the future: the clock was set back"  # the last: 10 min + 3 × 30 s
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.getMessage() == (
        f"event=spool-dropped first_seq={ahead[0].seq} last_seq={ahead[-1].seq} count=4 ahead_s=690 "
        f"reason={reason!r}")
    spool.acknowledge(batch)
    assert spool.depth() == 0 and spool.next_batch(100, now=NOW) is None  # the range went out once


def test_readings_stamped_ahead_between_kept_ones_become_one_range_per_run(tmp_path: Path) -> None:
    """A slow check started before the clock was set back commits among readings stamped after it: a
    range covers only seqs that were dropped, never a reading kept between them."""
    spool = Spool(tmp_path / "s.db", "probe")
    times = [0, 600, 610, -5, 620, 0, 0, 630]  # seconds from NOW, in seq order
    seqs = [spool.append([Reading(agent="probe", check="web", ts=NOW + dt.timedelta(seconds=s), status="up",
                                  interval_s=30.0)])[0].seq for s in times]
    batch = spool.next_batch(100, now=NOW)
    assert batch is not None
    body = json.loads(batch.body)
    assert body["dropped"] == [[seqs[1], seqs[2]], [seqs[4], seqs[4]], [seqs[7], seqs[7]]]
    assert [r["seq"] for r in body["readings"]] == [seqs[0], seqs[3], seqs[5], seqs[6]]
    lost = {seq for first, last in body["dropped"] for seq in range(first, last + 1)}
    assert not lost & {r["seq"] for r in body["readings"]}


def test_readings_within_the_margin_are_kept(tmp_path: Path) -> None:
    """A clock a little fast (less than FUTURE_MARGIN_S) is not set back: the watchdog takes those."""
    spool = Spool(tmp_path / "s.db", "probe")
    kept = [spool.append([Reading(agent="probe", check="web", ts=NOW + dt.timedelta(seconds=s), status="up",
                                  interval_s=30.0)])[0].seq for s in (-30, 0, 30, FUTURE_MARGIN_S)]
    dropped = spool.append([Reading(agent="probe", check="web", ts=NOW + dt.timedelta(seconds=FUTURE_MARGIN_S + 2),
                                    status="up", interval_s=30.0)])[0].seq
    batch = spool.next_batch(100, now=NOW)
    assert batch is not None
    body = json.loads(batch.body)
    assert [r["seq"] for r in body["readings"]] == kept
    assert body["dropped"] == [[dropped, dropped]]


def test_nothing_is_dropped_when_no_reading_is_ahead(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path / "s.db", "probe")
    stored = spool.append(readings(10, start=NOW - dt.timedelta(minutes=10)))
    with caplog.at_level(logging.WARNING, logger="slawatch.agent.spool"):
        batch = spool.next_batch(100, now=NOW)
    assert batch is not None and caplog.records == []
    body = json.loads(batch.body)
    assert body["dropped"] == [] and [r["seq"] for r in body["readings"]] == [r.seq for r in stored]
    assert spool._db.execute("SELECT count(*) FROM dropped").fetchone()[0] == 0


def test_readings_of_the_batch_awaiting_acknowledgement_are_never_dropped(tmp_path: Path) -> None:
    """Formed while the clock was ahead, the pending batch may have been stored (a clock a few minutes
    fast is within the watchdog's skew): it is resent as it was, until the watchdog refuses it."""
    spool = Spool(tmp_path / "s.db", "probe")
    first = spool.append(readings(3, start=NOW + dt.timedelta(minutes=10)))
    pending = spool.next_batch(100, now=NOW + dt.timedelta(minutes=11))  # the clock ahead
    assert pending is not None and pending.count == 3
    later = spool.append(readings(2, start=NOW + dt.timedelta(minutes=12)))
    assert spool.next_batch(100, now=NOW) == pending  # the clock right again: the same batch
    assert spool.depth() == 5
    # the watchdog refused it (422): it was not stored, and is forgotten; the next batch drops them all
    assert spool.abandon_if_stamped_ahead(pending, now=NOW) == 3
    following = spool.next_batch(100, now=NOW)
    assert following is not None and following.id != pending.id
    assert json.loads(following.body) == {"agent": "probe", "readings": [],
                                          "dropped": [[first[0].seq, later[-1].seq]]}
    assert spool.depth() == 0


def test_a_refused_batch_without_readings_ahead_is_kept(tmp_path: Path) -> None:
    """Another cause of a 422 is not cured by a new batch: the batch waits, as it did."""
    spool = Spool(tmp_path / "s.db", "probe")
    spool.append(readings(3, start=NOW - dt.timedelta(minutes=1)))
    pending = spool.next_batch(100, now=NOW)
    assert pending is not None
    assert spool.abandon_if_stamped_ahead(pending, now=NOW) == 0
    assert spool.next_batch(100, now=NOW) == pending
