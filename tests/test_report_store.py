"""What reports read from the store: latency over eligible spans from daily, 15-minute and raw rows
(exactly the histogram of the raw readings), compaction and stale days, runs and frozen figures."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slawatch.watchdog import sketch
from slawatch.watchdog.intervals import DOWN, UP
from slawatch.watchdog.store import BUCKET_MS, DAY_MS, Reader, Row, Store, plan_latency

from .test_store import incoming

S = 1000
MINUTE = 60 * S
DAY0 = 1_790_553_600_000          # 2026-09-28 00:00 UTC
DAYS = 37                         # to 2026-11-04: all of October
OCTOBER = 1_790_812_800_000       # 2026-10-01 00:00 UTC
CHECKS = ("web", "api")
HYPOTHESIS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def month_rows(first_seq: int, start: int, minutes: int, seed: int) -> list[Row]:
    """Readings every 2 minutes of both checks, with random latencies and a few down ones."""
    rng = random.Random(seed)
    rows, seq = [], first_seq
    for m in range(0, minutes, 2):
        for check in CHECKS:
            down = rng.random() < 0.05
            rows.append(Row(seq, check, start + m * MINUTE + rng.randrange(0, 60) * S, DOWN if down else UP, 120.0,
                            None if down else round(rng.lognormvariate(4, 0.6), 3), {"http.status": 200}, None))
            seq += 1
    return rows


def raw_histogram(rows: list[Row], spans: list[tuple[int, int]]) -> dict[int, int]:
    """Rule 8's readings, straight from the raw rows: up, with a latency, time inside a span."""
    histogram: dict[int, int] = {}
    for r in rows:
        if r.status == UP and r.latency_ms is not None and any(lo <= r.ts < hi for lo, hi in spans):
            sketch.add(histogram, r.latency_ms)
    return histogram


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Row]]]:
    """37 days of readings, compacted to 2 November (so October has its monthly rows); then a
    late reading of "web" makes 10 October stale (its day and month rows are gone until compacted)."""
    path = tmp_path_factory.mktemp("latency") / "watchdog.db"
    store = Store(path)
    rows = month_rows(1, DAY0, DAYS * 1440, seed=7)
    for i in range(0, len(rows), 5000):
        store.store([incoming(rows[i:i + 5000], kind="import")])
    assert store.compact(OCTOBER + 32 * DAY_MS) == 35  # 28 Sep to 1 Nov
    assert store.conn.execute("SELECT COUNT(*) FROM monthly_rollups WHERE month = ?", (OCTOBER,)).fetchone()[0] == 2
    late = Row(10**9, "web", OCTOBER + 9 * DAY_MS + 5 * MINUTE + 123, UP, 120.0, 9999.0, {}, None)
    store.store([incoming([late], kind="import")])
    store.close()
    yield path, rows + [late]


def test_a_late_reading_makes_its_compacted_day_stale_until_compacted_again(tmp_path: Path) -> None:
    store = Store(tmp_path / "w.db")
    rows = month_rows(1, DAY0, 2 * 1440, seed=1)
    store.store([incoming(rows, kind="import")])
    assert store.compact(DAY0 + 2 * DAY_MS) == 2
    late = Row(10**9, "web", DAY0 + 10 * MINUTE, UP, 120.0, 5000.0, {}, None)
    store.store([incoming([late], kind="import")])
    assert store.conn.execute("SELECT COUNT(*) FROM stale_days").fetchone()[0] == 1
    assert store.conn.execute("SELECT COUNT(*) FROM daily_rollups WHERE day = ?", (DAY0,)).fetchone()[0] == 1
    assert store.compact(DAY0 + 2 * DAY_MS) == 1  # the stale series-day, nothing new
    assert store.conn.execute("SELECT COUNT(*) FROM stale_days").fetchone()[0] == 0
    store.close()
    with Reader(tmp_path / "w.db") as reader:
        whole = [(DAY0, DAY0 + DAY_MS)]
        assert reader.latency_in(["web"], whole).histogram == raw_histogram(
            [r for r in rows + [late] if r.check == "web"], whole)


spans_strategy = st.lists(st.tuples(st.integers(0, DAYS * 1440 - 1),
                                    st.one_of(st.integers(1, 3 * 1440), st.integers(14 * 1440, DAYS * 1440))),
                          min_size=1, max_size=4)


@HYPOTHESIS
@given(picked=spans_strategy, offset_s=st.integers(0, 59), checks=st.sampled_from([["web"], ["api"], ["web", "api"]]))
def test_latency_over_any_spans_equals_the_raw_readings(filled: tuple[Path, list[Row]], picked: list[tuple[int, int]],
                                                       offset_s: int, checks: list[str]) -> None:
    path, rows = filled
    spans = sorted({(DAY0 + m * MINUTE + offset_s * S, min(DAY0 + (m + n) * MINUTE, DAY0 + DAYS * DAY_MS))
                    for m, n in picked})
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        if hi <= lo:
            continue
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    with Reader(path) as reader:
        found = reader.latency_in(checks, merged)
    assert found.histogram == raw_histogram([r for r in rows if r.check in checks], merged)
    assert found.unseen_ms == 0


def test_plan_reads_mostly_covered_months_and_days_as_merged_rows_less_the_rest() -> None:
    day = OCTOBER + 4 * DAY_MS
    cut = day + 22 * 3600 * S + 7 * MINUTE                 # 22 h 7 min of the day
    plan = plan_latency([(day, cut)], compacted_before=OCTOBER + 40 * DAY_MS, stale=())
    assert plan.add == [("daily_rollups", day, day + DAY_MS)]
    # less the hours 22 and 23, plus back the 7 minutes of hour 22 that are inside
    assert plan.subtract == [("hourly_rollups", day + 22 * 3600 * S, day + DAY_MS)]
    assert plan.raw == [(day + 22 * 3600 * S, cut)] and plan.raw_subtract == []
    assert plan_latency([(day, cut)], OCTOBER + 40 * DAY_MS, stale={day}).add == [("rollups", day, day + 22 * 3600 * S)]
    assert plan_latency([(day, cut)], day, stale=()).add == [("rollups", day, day + 22 * 3600 * S)]
    # October less a 2-hour maintenance on the 10th and the first 7 minutes
    month_end = OCTOBER + 31 * DAY_MS
    maintenance = (OCTOBER + 9 * DAY_MS + 2 * 3600 * S, OCTOBER + 9 * DAY_MS + 4 * 3600 * S)
    plan = plan_latency([(OCTOBER + 7 * MINUTE, maintenance[0]), (maintenance[1], month_end)],
                        compacted_before=month_end, stale=())
    assert plan.add == [("monthly_rollups", OCTOBER, month_end)]
    assert plan.subtract == [("hourly_rollups", *maintenance)]
    assert plan.raw_subtract == [(OCTOBER, OCTOBER + 7 * MINUTE)] and plan.raw == []
    stale = plan_latency([(OCTOBER, month_end)], compacted_before=month_end, stale={OCTOBER + 3 * DAY_MS})
    assert stale.add == [("daily_rollups", OCTOBER, OCTOBER + 3 * DAY_MS),
                         ("daily_rollups", OCTOBER + 4 * DAY_MS, month_end),
                         ("rollups", OCTOBER + 3 * DAY_MS, OCTOBER + 4 * DAY_MS)]


def test_purged_edges_are_counted_as_unseen(tmp_path: Path) -> None:
    store = Store(tmp_path / "w.db")
    store.store([incoming(month_rows(1, DAY0, 1440, seed=3), kind="import")])
    store.purge(readings_before=DAY0 + 12 * 3600 * S, history_before=0)
    store.close()
    with Reader(tmp_path / "w.db") as reader:
        found = reader.latency_in(["web"], [(DAY0 + 7 * MINUTE, DAY0 + 13 * 3600 * S + 7 * MINUTE)])
    assert found.unseen_ms == 8 * MINUTE       # the piece of the first bucket, whose readings are purged
    assert sum(found.histogram.values()) > 0


def test_runs_for_gives_each_agents_runs_of_the_checks(tmp_path: Path) -> None:
    store = Store(tmp_path / "w.db")
    store.store([incoming([Row(1, "web", DAY0, UP, 60.0, 10.0, {}, None),
                           Row(2, "web", DAY0 + MINUTE, DOWN, 60.0, None, {}, "x"),
                           Row(3, "api", DAY0, UP, 60.0, 10.0, {}, None)], kind="import")])
    store.store([incoming([Row(1, "web", DAY0, UP, 60.0, 10.0, {}, None)], agent="fra-probe", kind="import")])
    store.close()
    with Reader(tmp_path / "w.db") as reader:
        runs = reader.runs_for(["web"], DAY0, DAY0 + DAY_MS)
        assert set(runs) == {("ams-probe", "web"), ("fra-probe", "web")}
        assert [(r.start, r.end, r.status) for r in runs[("ams-probe", "web")]] == [
            (DAY0, DAY0 + MINUTE, UP), (DAY0 + MINUTE, DAY0 + MINUTE + 90 * S, DOWN)]
        assert reader.runs_for(["web"], DAY0 + DAY_MS, DAY0 + 2 * DAY_MS) == {}


def test_the_first_freeze_stands(tmp_path: Path) -> None:
    store = Store(tmp_path / "w.db")
    assert store.freeze("c", "2026-10", "1", 5, "ab" * 32, '{"a": 1}') is True
    assert store.freeze("c", "2026-10", "1", 9, "cd" * 32, '{"a": 2}') is False
    store.close()
    with Reader(tmp_path / "w.db") as reader:
        frozen = reader.frozen("c", "2026-10")
        assert frozen is not None and frozen.figures == {"a": 1} and frozen.evidence_id == 5
        assert reader.frozen("c", "2026-11") is None


def test_a_history_purge_keeps_merged_rows_that_reach_past_its_cutoff(tmp_path: Path) -> None:
    """History retention deletes what ends by its cutoff: a month, day, hour or bucket that reaches
    past it still answers for the kept time after it (plan_latency reads them as merged)."""
    path = tmp_path / "w.db"
    store = Store(path)
    rows = month_rows(1, DAY0, 37 * 1440, seed=3)  # 28 Sep .. 4 Nov, every 2 minutes
    store.store([incoming(rows, kind="import")])
    store.compact(OCTOBER + 32 * DAY_MS)  # October gets its monthly row
    spans = [(OCTOBER + DAY_MS, OCTOBER + 31 * DAY_MS), (OCTOBER + 5 * 60_000, OCTOBER + 3 * 3600_000)]
    want = raw_histogram([r for r in rows if r.check == "web"], spans)
    store.purge(readings_before=OCTOBER + 1, history_before=OCTOBER + 1)  # 1 ms into October
    store.close()
    with Reader(path) as reader:
        assert reader.latency_in(["web"], spans).histogram == want
        kept = reader.conn.execute("SELECT MIN(month) FROM monthly_rollups").fetchone()[0]
        gone = reader.conn.execute("SELECT COUNT(*) FROM daily_rollups WHERE day < ?", (OCTOBER,)).fetchone()[0]
    assert (kept, gone) == (OCTOBER, 0)


def test_a_history_purge_inside_a_month_keeps_all_of_its_rollups(tmp_path: Path) -> None:
    """Rollups go a whole UTC month at a time. With the cutoff on 10 October at 03:00, a window from
    05:00 that day (its day row less hours 0 to 5) or from the 6th (the month row less days 1 to 5)
    still has what is outside it to take away; and a late reading on the 3rd, with a purge before
    the next compaction, is merged again by it."""
    path = tmp_path / "w.db"
    store = Store(path)
    rows = month_rows(1, DAY0, 37 * 1440, seed=5)
    store.store([incoming(rows, kind="import")])
    store.compact(OCTOBER + 32 * DAY_MS)
    cutoff = OCTOBER + 9 * DAY_MS + 3 * 3600 * S
    store.purge(readings_before=OCTOBER, history_before=cutoff)
    late = Row(10**9, "web", OCTOBER + 2 * DAY_MS + 7 * MINUTE, UP, 120.0, 9999.0, {}, None)
    store.store([incoming([late], kind="import")])
    store.purge(readings_before=OCTOBER, history_before=cutoff)
    assert store.compact(OCTOBER + 32 * DAY_MS) == 1  # the late reading's series-day
    store.close()
    with Reader(path) as reader:
        for spans in ([(cutoff + 2 * 3600 * S, OCTOBER + 10 * DAY_MS)], [(OCTOBER + 5 * DAY_MS, OCTOBER + 31 * DAY_MS)]):
            found = reader.latency_in(["web"], spans)
            assert found.histogram == raw_histogram([r for r in rows + [late] if r.check == "web"], spans)
            assert found.unseen_ms == 0


def test_plan_takes_no_merged_row_whose_outside_part_is_purged_raw_readings() -> None:
    """October less its first 7 minutes, with raw readings purged up to November: the month's row
    would need them to take those 7 minutes away, so its first hour is read as 15-minute rows and
    the raw readings of 00:07-00:15 (purged: time not in the percentile, and said so)."""
    month_end = OCTOBER + 31 * DAY_MS
    plan = plan_latency([(OCTOBER + 7 * MINUTE, month_end)], compacted_before=month_end, stale=(), raw_from=month_end)
    assert ("monthly_rollups", OCTOBER, month_end) not in plan.add and plan.subtract == plan.raw_subtract == []
    assert plan.raw == [(OCTOBER + 7 * MINUTE, OCTOBER + 15 * MINUTE)]
    assert ("rollups", OCTOBER + 15 * MINUTE, OCTOBER + 3600 * S) in plan.add
    kept = plan_latency([(OCTOBER + 7 * MINUTE, month_end)], compacted_before=month_end, stale=(), raw_from=OCTOBER)
    assert kept.add == [("monthly_rollups", OCTOBER, month_end)] and kept.raw_subtract == [(OCTOBER, OCTOBER + 7 * MINUTE)]
