"""The watchdog's store on real SQLite files: intervals by rule 1 whatever the batches and arrival
order, deduplication and resends, the evidence chain, rollups, purge, a second writer, migrations."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slawatch.agent.protocol import canonical_json
from slawatch.watchdog import sketch
from slawatch.watchdog.evidence import verify_intervals
from slawatch.watchdog.intervals import DOWN, UNKNOWN, UP, Run, clip, hold_ms
from slawatch.watchdog.store import (
    BUCKET_MS,
    DAY_MS,
    GENESIS,
    MIGRATIONS,
    SELF_CHECK,
    Conflict,
    Incoming,
    Reader,
    Row,
    Store,
    Stored,
    chain_hash,
    migrate,
)

from .test_intervals import check_runs, rule1

S = 1000
MINUTE = 60 * S
T0 = 1_789_999_200_000  # 2026-09-21 14:00 UTC, on a 15-minute boundary
AGENT, CHECK = "ams-probe", "shop-web"
PUBLIC_KEY = bytes(range(32))
FAR = 2**50

T = TypeVar("T")
HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def row(seq: int, at: int, status: str = UP, interval_s: float = 30.0, check: str = CHECK,
        latency_ms: float | None = None, metrics: dict[str, float | int] | None = None) -> Row:
    """A reading `at` ms after T0."""
    return Row(seq, check, T0 + at, status, interval_s, latency_ms, metrics or {},
               "timeout" if status == DOWN else None)


def regular(first_seq: int, count: int, start: int = 0, status: str = UP, every: int = 30 * S) -> list[Row]:
    return [row(first_seq + i, start + i * every, status) for i in range(count)]


def as_json(r: Row) -> dict[str, Any]:
    return {"seq": r.seq, "check": r.check, "ts": r.ts, "status": r.status, "interval_s": r.interval_s,
            "latency_ms": r.latency_ms, "metrics": r.metrics, "error": r.error}


def incoming(rows: Sequence[Row], batch: str | None = None, agent: str = AGENT, kind: str = "readings",
             received_at: int = T0, dropped: Sequence[tuple[int, int]] = ()) -> Incoming:
    """A batch as ingest hands it over; its id defaults to one derived from the body, so equal
    bodies are resends of one batch."""
    body = canonical_json({"agent": agent, "readings": [as_json(r) for r in rows],
                           "dropped": [list(d) for d in dropped]})
    return Incoming(agent=agent, batch=batch or "b-" + hashlib.sha256(body).hexdigest()[:16], kind=kind,
                    path="/api/v1/ingest", sent="2026-09-21T14:00:00Z", body=body,
                    signature=None if kind == "import" else hashlib.sha512(body).digest(),
                    public_key=None if kind == "import" else PUBLIC_KEY, rows=rows, dropped=dropped,
                    received_at=received_at)


def stored(store: Store, *batches: Incoming) -> list[Stored]:
    """Store one group; every batch of it must succeed."""
    results = store.store(batches)
    assert all(isinstance(r, Stored) for r in results), results
    return [r for r in results if isinstance(r, Stored)]


def readings_of(rows: Sequence[Row]) -> list[tuple[int, str, int]]:
    """Rows as rule 1's readings, in (ts, seq) order: the order the store gives equal instants."""
    return [(r.ts, r.status, hold_ms(r.interval_s)) for r in sorted(rows, key=lambda r: (r.ts, r.seq))]


def intervals(path: Path, agent: str = AGENT, check: str = CHECK) -> list[Run]:
    with Reader(path) as reader:
        return reader.intervals(agent, check)


def spans(path: Path, start: int = T0 - 10 * MINUTE, end: int = T0 + 24 * 60 * MINUTE,
          check: str = CHECK) -> list[tuple[int, int, str]]:
    return clip(intervals(path, check=check), start, end)


def split(items: Sequence[T], cuts: set[int]) -> list[list[T]]:
    """`items` cut before each index in `cuts`."""
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(items)), len(items)]
    return [list(items[lo:hi]) for lo, hi in zip(bounds, bounds[1:])]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "slawatch.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    s = Store(db)
    yield s
    s.close()


def test_always_up_readings_stay_one_row_across_many_batches(store: Store, db: Path) -> None:
    for first in range(1, 301, 30):
        stored(store, incoming(regular(first, 30, start=(first - 1) * 30 * S)))
    assert [(r.start, r.end, r.status) for r in intervals(db)] == [(T0, T0 + 299 * 30 * S + 45 * S, UP)]
    with Reader(db) as reader:
        assert reader.count("intervals") == 1


def test_a_gap_longer_than_the_hold_is_one_exact_unknown_run(store: Store, db: Path) -> None:
    stored(store, incoming(regular(1, 3)))
    stored(store, incoming([row(4, 60 * S + 45 * S + 1)]))  # 1 ms after the third reading's hold
    stored(store, incoming([row(5, 10 * MINUTE), row(6, 10 * MINUTE + 45 * S)]))  # exactly the hold: no gap
    assert [(r.start, r.end, r.status) for r in intervals(db)] == [
        (T0, T0 + 105 * S, UP),
        (T0 + 105 * S, T0 + 105 * S + 1, UNKNOWN),
        (T0 + 105 * S + 1, T0 + 150 * S + 1, UP),
        (T0 + 150 * S + 1, T0 + 10 * MINUTE, UNKNOWN),
        (T0 + 10 * MINUTE, T0 + 10 * MINUTE + 90 * S, UP),
    ]


def test_status_changes_and_interval_changes_through_the_store(store: Store, db: Path) -> None:
    stored(store, incoming([row(1, 0, interval_s=10), row(2, 20 * S, interval_s=60), row(3, 100 * S, DOWN),
                            row(4, 130 * S, DOWN, interval_s=60), row(5, 220 * S, UNKNOWN), row(6, 400 * S)]))
    assert [(r.start, r.end, r.status) for r in intervals(db)] == [
        (T0, T0 + 15 * S, UP),               # 1.5 × its own 10 s, though the next one runs every 60 s
        (T0 + 15 * S, T0 + 20 * S, UNKNOWN),
        (T0 + 20 * S, T0 + 100 * S, UP),
        (T0 + 100 * S, T0 + 220 * S, DOWN),  # 130 s + 90 s reaches the unknown reading exactly
        (T0 + 220 * S, T0 + 400 * S, UNKNOWN),  # the unknown reading and the gap after it: one run
        (T0 + 400 * S, T0 + 445 * S, UP),
    ]


def test_two_readings_at_one_instant_the_higher_seq_wins_whatever_arrives_first(tmp_path: Path) -> None:
    results = []
    for name, order in (("in-order", [[1, 2], [3]]), ("reversed", [[1, 3], [2]])):
        path = tmp_path / f"{name}.db"
        s = Store(path)
        rows = {1: row(1, 0), 2: row(2, 30 * S, DOWN), 3: row(3, 30 * S)}
        for seqs in order:
            stored(s, incoming([rows[seq] for seq in seqs]))
        s.close()
        results.append([(r.start, r.end, r.status) for r in intervals(path)])
    assert results[0] == results[1] == [(T0, T0 + 75 * S, UP)]


def test_a_late_reading_splits_a_run_exactly(store: Store, db: Path) -> None:
    stored(store, incoming(regular(1, 10)))
    stored(store, incoming([row(11, 95 * S, DOWN)]))  # between the readings at 90 s and 120 s
    assert [(r.start, r.end, r.status) for r in intervals(db)] == [
        (T0, T0 + 95 * S, UP), (T0 + 95 * S, T0 + 120 * S, DOWN), (T0 + 120 * S, T0 + 315 * S, UP)]


# --- rule 1 whatever the batches and the arrival order ------------------------------------------

statuses = st.sampled_from([UP, DOWN, UNKNOWN])
interval_choices = st.sampled_from([10.0, 30.0, 60.0])
# steps that end exactly on a hold (15, 45, 90 s), and anything up to two holds of the longest interval
steps = st.one_of(st.sampled_from([15 * S, 30 * S, 45 * S, 90 * S]), st.integers(1, 180 * S))


@st.composite
def histories(draw: st.DrawFn) -> list[Row]:
    """Readings of one series with distinct instants, seqs in time order."""
    at, rows = 0, []
    for seq in range(1, draw(st.integers(1, 24)) + 1):
        at += draw(steps)
        rows.append(row(seq, at, draw(statuses), draw(interval_choices)))
    return rows


@st.composite
def arrivals(draw: st.DrawFn, history: list[Row]) -> list[list[list[Row]]]:
    """How a history reaches the store: in any order, cut into batches, the batches into store() calls."""
    order = draw(st.permutations(history))
    batches = split(order, draw(st.sets(st.integers(1, len(history)))))
    return split(batches, draw(st.sets(st.integers(1, len(batches)))))


@HYPOTHESIS
@given(data=st.data())
def test_intervals_follow_rule_1_whatever_the_batches_and_arrival_order(tmp_path: Path, data: st.DataObject) -> None:
    history = data.draw(histories())
    groups = data.draw(arrivals(history))
    path = tmp_path / f"{uuid.uuid4().hex}.db"
    store, seen = Store(path), []
    try:
        for group in groups:
            stored(store, *(incoming(batch) for batch in group))
            seen += [r for batch in group for r in batch]
            runs = intervals(path)
            check_runs(runs)
            start, end = T0 - MINUTE, T0 + max(r.ts - T0 for r in seen) + 2 * MINUTE
            assert clip(runs, start, end) == rule1(readings_of(seen), start, end)
    finally:
        store.close()
    with Reader(path) as reader:  # `evidence verify` folds them alike
        assert verify_intervals(reader, -2**62) == (1, None)


# --- deduplication, resends, failures, the evidence chain ---------------------------------------

def test_a_seq_seen_in_an_earlier_batch_is_stored_once_and_counted_as_duplicate(store: Store, db: Path) -> None:
    first = stored(store, incoming(regular(1, 3)))[0]
    resent_with_another_status = row(3, 60 * S, DOWN)
    second = stored(store, incoming([resent_with_another_status, row(4, 90 * S)]))[0]
    assert (first.ack["stored"], first.ack["duplicates"]) == (3, 0)
    assert (second.ack["stored"], second.ack["duplicates"], second.resend) == (1, 1, False)
    with Reader(db) as reader:
        assert [(r[1], r[4]) for r in reader.readings(AGENT)] == [(1, UP), (2, UP), (3, UP), (4, UP)]
        assert reader.count("evidence") == 2
    assert [(r.start, r.end, r.status) for r in intervals(db)] == [(T0, T0 + 135 * S, UP)]


def test_a_resent_batch_gets_the_same_ack_and_stores_nothing(store: Store, db: Path) -> None:
    batch = incoming(regular(1, 3), batch="batch-7", dropped=[(90, 95)])
    first = stored(store, batch)[0]
    with Reader(db) as reader:
        before = (reader.count("evidence"), reader.count("readings"), reader.head(), reader.dropped(AGENT))
    again = stored(store, incoming(regular(1, 3), batch="batch-7", dropped=[(90, 95)]))[0]
    assert again.resend and not first.resend
    assert again.ack == first.ack
    assert first.ack["dropped_ranges"] == 1
    with Reader(db) as reader:
        assert (reader.count("evidence"), reader.count("readings"), reader.head(), reader.dropped(AGENT)) == before
        assert reader.dropped(AGENT) == [(90, 95)]


def test_a_batch_id_resent_with_another_body_is_a_conflict_and_stores_nothing(store: Store, db: Path) -> None:
    stored(store, incoming(regular(1, 3), batch="batch-7"))
    with Reader(db) as reader:
        before = (reader.count("evidence"), list(reader.readings()), reader.head())
    [result] = store.store([incoming(regular(4, 3, start=90 * S), batch="batch-7")])
    assert isinstance(result, Conflict)
    assert "batch-7" in str(result)
    with Reader(db) as reader:
        assert (reader.count("evidence"), list(reader.readings()), reader.head()) == before
    assert [(r.start, r.end, r.status) for r in intervals(db)] == [(T0, T0 + 105 * S, UP)]


def test_a_failing_batch_leaves_no_trace_and_the_rest_of_its_group_commits(store: Store, db: Path) -> None:
    twice = [row(10, 0, check="mail"), row(10, 30 * S, check="mail")]  # one seq twice in a batch
    results = store.store([incoming(regular(1, 3)), incoming(twice, agent="other-probe"),
                           incoming(regular(4, 3, start=90 * S))])
    assert isinstance(results[0], Stored) and isinstance(results[2], Stored)
    assert isinstance(results[1], ValueError)
    with Reader(db) as reader:
        assert [a.name for a in reader.agents()] == [AGENT]  # not even the failing batch's agent
        assert reader.count("series") == 1
        assert [r[1] for r in reader.readings()] == [1, 2, 3, 4, 5, 6]
        chain = list(reader.evidence())
    assert [e.id for e in chain] == [1, 2]
    assert chain[1].hash == chain_hash(chain[0].hash, chain[1].body_sha256, chain[1].signature)
    assert results[2].ack["evidence"] == 2 and results[2].ack["chain"] == chain[1].hash.hex()
    assert [(r.start, r.end, r.status) for r in intervals(db)] == [(T0, T0 + 195 * S, UP)]


@HYPOTHESIS
@given(data=st.data())
def test_whatever_is_resent_every_reading_is_stored_once(tmp_path: Path, data: st.DataObject) -> None:
    history = data.draw(histories())
    batches = [b for group in data.draw(arrivals(history)) for b in group]
    # resends of whole batches (same id and body), and the same readings again in other batches
    echoes = data.draw(st.lists(st.tuples(st.integers(0, len(batches) - 1), st.booleans()), max_size=6))
    sent = [incoming(batch) for batch in batches]
    for index, whole in echoes:
        extra = [] if history[0] in batches[index] else [history[0]]
        again = batches[index] if whole else batches[index][::-1] + extra
        sent.insert(data.draw(st.integers(index + 1, len(sent))), incoming(again))
    path = tmp_path / f"{uuid.uuid4().hex}.db"
    store = Store(path)
    try:
        results = [stored(store, batch)[0] for batch in sent]
    finally:
        store.close()
    assert sum(r.ack["stored"] for r in results if not r.resend) == len(history)
    for batch, result in zip(sent, results):
        assert result.ack["stored"] + result.ack["duplicates"] == len(batch.rows)
    with Reader(path) as reader:
        assert sorted(r[1] for r in reader.readings()) == [r.seq for r in history]
        assert reader.count("evidence") == len({b.batch for b in sent})
    start, end = T0 - MINUTE, T0 + max(r.ts - T0 for r in history) + 2 * MINUTE
    assert clip(intervals(path), start, end) == rule1(readings_of(history), start, end)


def test_every_evidence_row_chains_the_one_before(store: Store, db: Path) -> None:
    batches = [incoming(regular(1, 2)), incoming(regular(3, 2, start=60 * S), agent="other-probe"),
               incoming([row(5, 120 * S)], kind="import"), incoming(regular(6, 2, start=150 * S))]
    acks = [s.ack for s in stored(store, *batches[:2])] + [s.ack for s in stored(store, *batches[2:])]
    with Reader(db) as reader:
        chain = list(reader.evidence())
        assert reader.head() == (4, chain[-1].hash)
    previous = GENESIS
    for batch, ack, evidence in zip(batches, acks, chain):
        assert evidence.body == batch.body
        assert evidence.body_sha256 == hashlib.sha256(batch.body).digest()
        assert evidence.signature == batch.signature
        assert evidence.hash == chain_hash(previous, hashlib.sha256(batch.body).digest(), batch.signature)
        assert ack["chain"] == evidence.hash.hex()
        previous = evidence.hash
    assert [e.kind for e in chain] == ["readings", "readings", "import", "readings"]
    assert chain[2].signature is None


# --- rollups ------------------------------------------------------------------------------------

def nearest_rank(values: list[float], p: Fraction) -> float:
    ordered = sorted(values)
    rank = max(1, -(-p * len(ordered) // 100))  # ceil, in exact arithmetic
    return ordered[int(rank) - 1]


@st.composite
def measured(draw: st.DrawFn) -> list[Row]:
    """Readings spread over a few 15-minute buckets, with latencies and metrics, in time order."""
    offsets = sorted(draw(st.sets(st.integers(0, 4 * BUCKET_MS), min_size=1, max_size=60)))
    latencies = st.one_of(st.just(0.0), st.floats(0.001, 120_000), st.none())
    return [row(seq, at, draw(st.sampled_from([UP, UP, DOWN])), latency_ms=draw(latencies),
                metrics={"http.status": draw(st.sampled_from([200, 204, 503])),
                         "bytes": draw(st.integers(-10, 10**12)), "load": draw(st.integers(0, 400)) / 4})
            for seq, at in enumerate(offsets, start=1)]


def store_in_any_order(tmp_path: Path, data: st.DataObject, history: list[Any]) -> Path:
    """A fresh database holding `history`, stored in groups and an arrival order drawn from `data`."""
    path = tmp_path / f"{uuid.uuid4().hex}.db"
    store = Store(path)
    try:
        for group in data.draw(arrivals(history)):
            stored(store, *(incoming(batch) for batch in group))
    finally:
        store.close()
    return path


@HYPOTHESIS
@given(data=st.data())
def test_latency_percentiles_from_rollups_are_within_0_9_percent_of_exact(tmp_path: Path,
                                                                          data: st.DataObject) -> None:
    history = data.draw(measured())
    path = store_in_any_order(tmp_path, data, history)
    first = data.draw(st.integers(0, 4), label="first bucket")
    last = data.draw(st.integers(first + 1, 5), label="end bucket")
    start, end = T0 + first * BUCKET_MS, T0 + last * BUCKET_MS
    ups = [r.latency_ms for r in history if r.status == UP and r.latency_ms is not None and start <= r.ts < end]
    with Reader(path) as reader:
        count, histogram = reader.latency(AGENT, CHECK, start, end)
    assert count == len(ups) == sum(histogram.values())
    for p in [Fraction(1), Fraction(7), Fraction(50), Fraction(95), Fraction("99.9"), Fraction(100),
              Fraction(data.draw(st.integers(1, 1000), label="per mille"), 10)]:
        answer = sketch.percentile(histogram, float(p))
        if not ups:
            assert answer is None
            continue
        exact = nearest_rank(ups, p)
        assert answer is not None
        assert abs(answer - exact) <= sketch.ALPHA * exact * (1 + 1e-9), (p, exact, answer)


@HYPOTHESIS
@given(data=st.data())
def test_metric_stats_are_exact_over_any_bucket_window(tmp_path: Path, data: st.DataObject) -> None:
    history = data.draw(measured())
    path = store_in_any_order(tmp_path, data, history)
    first = data.draw(st.integers(0, 4), label="first bucket")
    start, end = T0 + first * BUCKET_MS, T0 + data.draw(st.integers(first + 1, 5), label="end bucket") * BUCKET_MS
    inside = [r for r in history if start <= r.ts < end]
    expected = {name: [len(inside), min(v), max(v), sum(v)]
                for name in ("http.status", "bytes", "load") if (v := [r.metrics[name] for r in inside])}
    with Reader(path) as reader:
        assert reader.metric_stats(AGENT, CHECK, start, end) == expected


@HYPOTHESIS
@given(data=st.data())
def test_raw_readings_of_any_span_are_found_exactly_chunk_by_chunk(tmp_path: Path, data: st.DataObject) -> None:
    """Raw readings are found through their 15-minute chunk (readings_by_time): a span of any
    length, cutting chunks anywhere, before 1970 too (integer division truncates towards zero),
    gives exactly the readings it holds, and a late reading refolds from the right one before it."""
    base = data.draw(st.sampled_from([T0, 0]), label="base")
    offsets = data.draw(st.lists(st.integers(-5 * BUCKET_MS, 5 * BUCKET_MS).map(lambda n: n - n % 1000),
                                 min_size=1, max_size=40, unique=True), label="offsets")
    history = [Row(seq, CHECK if seq % 3 else "other", base + at, DOWN if seq % 7 == 0 else UP, 30.0, float(seq), {},
                   None) for seq, at in enumerate(offsets, start=1)]
    path = tmp_path / f"{uuid.uuid4().hex}.db"
    store = Store(path)
    try:
        for r in history:  # one reading a group, in the drawn order: many arrive late
            stored(store, incoming([r]))
    finally:
        store.close()
    # spans that start or end at readings, just after them, on chunk boundaries or anywhere
    edges = sorted({r.ts + d for r in history for d in (0, 1)} | {base + k * BUCKET_MS for k in range(-6, 7)})
    lo = data.draw(st.sampled_from(edges) | st.integers(base - 6 * BUCKET_MS, base + 6 * BUCKET_MS), label="lo")
    hi = data.draw(st.sampled_from([edge for edge in edges if edge >= lo] or [lo]) | st.integers(lo, lo + 12 * BUCKET_MS),
                   label="hi")
    with Reader(path) as reader:
        found, unseen = reader.latency_values([CHECK], [(lo, hi)])
        assert unseen == 0
        assert sorted(found) == sorted(r.latency_ms for r in history
                                       if r.check == CHECK and r.status == UP and lo <= r.ts < hi)
        ours = sorted((r for r in history if r.check == CHECK), key=lambda r: (r.ts, r.seq))
        if ours:
            start, end = ours[0].ts - MINUTE, ours[-1].ts + 2 * MINUTE
            assert clip(reader.intervals(AGENT, CHECK), start, end) == rule1(readings_of(ours), start, end)


def test_latency_of_a_span_is_read_from_one_state_while_the_writer_commits(store: Store, db: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A span covering most of a compacted day is its daily row less the raw readings of the rest.
    A reading committed between those two reads (ingest goes on while a page is drawn) must not be
    taken off a daily row that never counted it: the reader reads one state."""
    from slawatch.watchdog import store as store_module

    day = T0 - 14 * 3600 * S  # T0 is 14:00 UTC
    late_evening = 9 * 3600 * S + 30 * MINUTE  # 23:30 of that day, from T0
    stored(store, incoming([row(i + 1, late_evening + i * 30 * S, latency_ms=10.0 + i % 5) for i in range(60)]))
    assert store.compact(day + DAY_MS) == 1
    span = [(day, T0 + late_evening + 22 * MINUTE)]  # all but the day's last 8 minutes
    plan = store_module.plan_latency(span, day + DAY_MS, ())
    assert plan.add == [("daily_rollups", day, day + DAY_MS)] and plan.raw_subtract == [(span[0][1], day + DAY_MS)]
    with Reader(db) as reader:
        want = reader.latency_in([CHECK], span).histogram
    assert sum(want.values()) == 44
    original, written = store_module.chunks, []

    def chunks_after_a_commit(conn: sqlite3.Connection, start: int, end: int) -> tuple[int, int] | None:
        if not written:  # the daily row is read; now the writer commits a late reading of the rest
            written.append(True)  # (the writer's refold calls this too)
            stored(store, incoming([row(99, late_evening + 25 * MINUTE + 15 * S, latency_ms=500.0)]))
        return original(conn, start, end)

    monkeypatch.setattr(store_module, "chunks", chunks_after_a_commit)
    with Reader(db) as reader:
        assert reader.latency_in([CHECK], span).histogram == want
    assert written


def test_percentiles_use_the_exact_nearest_rank(store: Store, db: Path) -> None:
    # 1, 2, ..., 100 ms: the p-th percentile is p ms; p / 100 × 100 in floats lands above 7, 14, 28, ...
    stored(store, incoming([row(i, i * 1000, latency_ms=float(i)) for i in range(1, 101)]))
    with Reader(db) as reader:
        _, histogram = reader.latency(AGENT, CHECK, T0, T0 + BUCKET_MS)
    for p in range(1, 101):
        answer = sketch.percentile(histogram, p)
        assert answer is not None and abs(answer - p) <= sketch.ALPHA * p * (1 + 1e-9), p


def test_rollup_buckets_start_on_15_minute_boundaries(store: Store, db: Path) -> None:
    stored(store, incoming([row(1, BUCKET_MS - 1, latency_ms=10.0, metrics={"x": 1}),
                            row(2, BUCKET_MS, latency_ms=20.0, metrics={"x": 2})]))
    with Reader(db) as reader:
        assert reader.latency(AGENT, CHECK, T0, T0 + BUCKET_MS)[0] == 1
        assert reader.latency(AGENT, CHECK, T0 + BUCKET_MS, T0 + 2 * BUCKET_MS)[0] == 1
        # a window starting inside a bucket leaves that bucket out, though a reading lies in the window
        assert reader.latency(AGENT, CHECK, T0 + BUCKET_MS - 1, T0 + BUCKET_MS) == (0, {})
        assert reader.latency(AGENT, CHECK, T0 + 1, T0 + 2 * BUCKET_MS)[0] == 1
        assert reader.metric_stats(AGENT, CHECK, T0, T0 + BUCKET_MS) == {"x": [1, 1, 1, 1]}
        assert reader.metric_stats(AGENT, CHECK, T0 + BUCKET_MS, T0 + 2 * BUCKET_MS) == {"x": [1, 2, 2, 2]}


def test_down_readings_and_readings_without_latency_are_not_in_the_latency_rollup(store: Store, db: Path) -> None:
    stored(store, incoming([row(1, 0, latency_ms=100.0), row(2, 30 * S, DOWN, latency_ms=9000.0),
                            row(3, 60 * S), row(4, 90 * S, UNKNOWN, latency_ms=5.0)]))
    with Reader(db) as reader:
        count, histogram = reader.latency(AGENT, CHECK, T0, T0 + BUCKET_MS)
    assert count == 1
    answer = sketch.percentile(histogram, 100)
    assert answer is not None and abs(answer - 100.0) <= 0.9


# --- purge --------------------------------------------------------------------------------------

def purged_store(store: Store, db: Path) -> tuple[list[Row], list[Run]]:
    """40 readings every 30 s (down from 300 s to 390 s), raw readings before 600 s purged."""
    history = [row(i + 1, i * 30 * S, DOWN if 300 * S <= i * 30 * S < 400 * S else UP, latency_ms=50.0)
               for i in range(40)]
    stored(store, incoming(history))
    before = intervals(db)
    assert store.purge(readings_before=T0 + 600 * S, history_before=0) == 20
    return history, before


def test_purge_deletes_raw_readings_before_the_cutoff_and_keeps_intervals(store: Store, db: Path) -> None:
    history, before = purged_store(store, db)
    with Reader(db) as reader:
        assert [r[1] for r in reader.readings()] == [r.seq for r in history if r.ts >= T0 + 600 * S]
        assert reader.latency(AGENT, CHECK, T0, T0 + BUCKET_MS)[0] == 26  # rollups are history
    assert intervals(db) == before
    assert [(r.start, r.end, r.status) for r in before] == [
        (T0, T0 + 300 * S, UP), (T0 + 300 * S, T0 + 420 * S, DOWN), (T0 + 420 * S, T0 + 1215 * S, UP)]


def test_a_late_reading_older_than_the_purge_leaves_intervals_alone(store: Store, db: Path) -> None:
    history, before = purged_store(store, db)
    [result] = stored(store, incoming([row(100, 15 * S + 1, DOWN)]))
    assert result.ack["stored"] == 1
    assert intervals(db) == before
    assert store.late_beyond_retention == 1
    stored(store, incoming([row(101, 1230 * S)]))  # and the series goes on after it
    assert spans(db) == rule1(readings_of(history + [row(101, 1230 * S)]), T0 - 10 * MINUTE,
                              T0 + 24 * 60 * MINUTE)


def test_a_batch_mixing_a_reading_older_than_the_purge_with_new_ones_still_folds_the_new_ones(
        store: Store, db: Path) -> None:
    history, _ = purged_store(store, db)
    fresh = [row(101, 1200 * S, DOWN), row(102, 1230 * S, DOWN)]
    stored(store, incoming([row(100, 15 * S + 1, DOWN), *fresh]))
    assert spans(db) == rule1(readings_of(history + fresh), T0 - 10 * MINUTE, T0 + 24 * 60 * MINUTE)
    assert store.late_beyond_retention == 1


def test_a_late_reading_after_the_purge_watermark_is_refolded(store: Store, db: Path) -> None:
    history, _ = purged_store(store, db)
    late = row(100, 700 * S, DOWN)  # raw readings around it are all still there
    stored(store, incoming([late]))
    assert spans(db) == rule1(readings_of(history + [late]), T0 - 10 * MINUTE, T0 + 24 * 60 * MINUTE)
    assert store.late_beyond_retention == 0


def test_a_purge_cut_short_by_its_limit_still_protects_intervals_from_late_readings(store: Store, db: Path) -> None:
    history = regular(1, 40)
    stored(store, incoming(history))
    before_runs = intervals(db)
    deleted = store.purge(readings_before=T0 + 600 * S, history_before=0, limit=5)
    assert 5 <= deleted < 20
    stored(store, incoming([row(100, 15 * S + 1, DOWN)]))
    # whether or not the late reading could be applied, the time after the next reading is as before
    after, end = T0 + 30 * S, T0 + 24 * 60 * MINUTE
    assert clip(intervals(db), after, end) == clip(before_runs, after, end) == [
        (after, T0 + 1215 * S, UP), (T0 + 1215 * S, end, UNKNOWN)]


def test_a_purge_with_an_earlier_cutoff_does_not_move_the_watermark_back(store: Store, db: Path) -> None:
    stored(store, incoming(regular(1, 40)))
    store.purge(readings_before=T0 + 600 * S, history_before=0)
    store.purge(readings_before=T0 + 300 * S, history_before=0)  # retention lengthened since
    stored(store, incoming([row(100, 400 * S + 1, DOWN)]))  # its neighbours are gone all the same
    assert [(r.start, r.end, r.status) for r in intervals(db)] == [(T0, T0 + 1215 * S, UP)]
    assert store.late_beyond_retention == 1


def test_purge_of_history_drops_intervals_and_rollups_that_ended_before_it(store: Store, db: Path) -> None:
    stored(store, incoming(regular(1, 10) + [row(11, 2 * BUCKET_MS, DOWN, latency_ms=1.0, metrics={"x": 1}),
                                             row(12, 2 * BUCKET_MS + 30 * S, latency_ms=1.0)]))
    stored(store, incoming([row(13, 1, latency_ms=2.0, metrics={"x": 2})]))  # late, into the first bucket
    store.purge(readings_before=T0 + BUCKET_MS, history_before=T0 + BUCKET_MS)
    with Reader(db) as reader:
        assert [(r.start, r.status) for r in reader.intervals(AGENT, CHECK)] == [  # [0, 315 s) ended before
            (T0 + 315 * S, UNKNOWN), (T0 + 2 * BUCKET_MS, DOWN), (T0 + 2 * BUCKET_MS + 30 * S, UP)]
        # rollups go a whole UTC month at a time: September's stay while the cutoff is in it
        assert reader.latency(AGENT, CHECK, 0, FAR)[0] == 2
        assert reader.metric_stats(AGENT, CHECK, 0, FAR) == {"x": [2, 1, 2, 3]}
        assert [r[1] for r in reader.readings()] == [11, 12]
    store.purge(readings_before=T0 + BUCKET_MS, history_before=T0 + 10 * DAY_MS)  # 1 October, 14:00
    with Reader(db) as reader:
        assert reader.latency(AGENT, CHECK, 0, FAR)[0] == 0 and reader.metric_stats(AGENT, CHECK, 0, FAR) == {}


def test_several_late_readings_in_one_older_bucket_all_count(store: Store, db: Path) -> None:
    stored(store, incoming([row(1, 2 * BUCKET_MS, latency_ms=5.0, metrics={"x": 5})]))
    stored(store, incoming([row(2, 0, latency_ms=1.0, metrics={"x": 1}), row(3, 30 * S, latency_ms=2.0,
                                                                            metrics={"x": 2})]))
    with Reader(db) as reader:
        assert reader.latency(AGENT, CHECK, T0, T0 + BUCKET_MS)[0] == 2
        assert reader.metric_stats(AGENT, CHECK, T0, T0 + BUCKET_MS) == {"x": [2, 1, 2, 3]}
        assert reader.metric_stats(AGENT, CHECK, T0, FAR) == {"x": [3, 1, 5, 8]}


def test_a_restarted_store_adds_to_the_rollup_buckets_already_stored(db: Path) -> None:
    first = Store(db)
    stored(first, incoming([row(1, 0, latency_ms=10.0, metrics={"x": 1}),
                            row(2, 2 * BUCKET_MS, latency_ms=20.0, metrics={"x": 2})]))
    first.close()
    again = Store(db)
    stored(again, incoming([row(3, 60 * S, latency_ms=30.0, metrics={"x": 3})]))  # the older bucket first
    stored(again, incoming([row(4, 2 * BUCKET_MS + 60 * S, latency_ms=40.0, metrics={"x": 4})]))
    again.close()
    with Reader(db) as reader:
        assert reader.latency(AGENT, CHECK, T0, T0 + BUCKET_MS)[0] == 2
        assert reader.latency(AGENT, CHECK, T0 + 2 * BUCKET_MS, T0 + 3 * BUCKET_MS)[0] == 2
        assert reader.metric_stats(AGENT, CHECK, T0 + 2 * BUCKET_MS, T0 + 3 * BUCKET_MS) == {"x": [2, 2, 4, 6]}


# --- a second writer on the same file -----------------------------------------------------------

def test_a_batch_after_another_connection_wrote_still_gives_rule_1_and_exact_rollups(store: Store, db: Path) -> None:
    first = [row(i + 1, i * 30 * S, latency_ms=10.0 * (i + 1)) for i in range(5)]
    stored(store, incoming(first))
    importer = Store(db)  # as `slawatch-watchdog import` would, while the daemon runs
    imported = [row(6, 150 * S, DOWN), row(7, 180 * S, latency_ms=70.0), row(8, 95 * S, DOWN)]
    stored(importer, incoming(imported, kind="import"))
    importer.close()
    last = [row(9, 210 * S, latency_ms=90.0), row(10, 240 * S, latency_ms=100.0)]
    stored(store, incoming(last))
    assert spans(db) == rule1(readings_of(first + imported + last), T0 - 10 * MINUTE, T0 + 24 * 60 * MINUTE)
    with Reader(db) as reader:
        count, histogram = reader.latency(AGENT, CHECK, T0, T0 + BUCKET_MS)
    assert count == 8 and sum(histogram.values()) == 8


def test_a_write_landing_right_after_our_commit_is_noticed(store: Store, db: Path) -> None:
    stored(store, incoming(regular(1, 3)))
    importer = Store(db)
    pending = [incoming([row(5, 120 * S, DOWN)], kind="import")]
    after_commit = False

    def the_other_writer_commits_right_after_ours(statement: str) -> None:
        nonlocal after_commit
        if after_commit and pending:  # before our next statement, whatever it is
            stored(importer, pending.pop())
        after_commit = statement == "COMMIT"

    store.conn.set_trace_callback(the_other_writer_commits_right_after_ours)
    stored(store, incoming([row(4, 90 * S)]))
    stored(store, incoming([row(6, 150 * S)]))
    store.conn.set_trace_callback(None)
    importer.close()
    assert not pending, "the other writer never ran: the test did not exercise the window"
    assert [(r.start, r.end, r.status) for r in intervals(db)] == [
        (T0, T0 + 120 * S, UP), (T0 + 120 * S, T0 + 150 * S, DOWN), (T0 + 150 * S, T0 + 195 * S, UP)]


# --- migrations ---------------------------------------------------------------------------------

def test_migrate_records_what_it_applied_and_applies_it_once(db: Path) -> None:
    names = [name for name, _ in MIGRATIONS]
    assert names[:5] == ["0001-initial", "0002-frozen-reports", "0003-daily-rollups", "0004-alerting",
                         "0005-hourly-rollups"] and names == sorted(names)
    assert migrate(db) == names
    assert migrate(db) == []
    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM migrations ORDER BY name")] == names
    conn.close()


def test_a_database_of_the_first_schema_is_upgraded_with_its_data(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from slawatch.watchdog import store as store_module

    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:1])
    monkeypatch.setattr(Store, "_cuts_since", lambda *_: [])  # no cuts then: dropped.cut_at came with 0007
    old = Store(db)
    old.store([incoming([row(i + 1, i * 30 * S, latency_ms=20.0) for i in range(10)])])
    old.close()
    monkeypatch.undo()
    assert migrate(db) == [name for name, _ in store_module.MIGRATIONS[1:]]
    upgraded = Store(db)
    assert upgraded.compact(T0 + 86_400_000) == 1 and upgraded.freeze("c", "2026-09", "1", 1, "00", "{}")
    upgraded.close()
    with Reader(db) as reader:
        assert reader.count("readings") == 10 and reader.frozen("c", "2026-09") is not None


def test_history_written_before_0008_is_kept_and_found_under_the_time_first_keys(
        db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """0008 re-keys rollups by (bucket, series) and indexes raw readings by (chunk, series, ts):
    every row written before comes across unchanged, readers find the same figures, and the
    writer goes on updating the same rows."""
    from slawatch.watchdog import store as store_module

    monkeypatch.setattr(store_module, "MIGRATIONS", [m for m in store_module.MIGRATIONS if m[0] < "0008"])
    old = Store(db)
    old.store([incoming([row(2 * i + 1, i * 30 * S, check="a", latency_ms=10.0 + i, metrics={"bytes": i}),
                         row(2 * i + 2, i * 30 * S, check="b", latency_ms=5.0, metrics={"bytes": 1})])
               for i in range(100)])
    old.close()
    everything = "SELECT * FROM rollups ORDER BY series_id, bucket"
    with Reader(db) as reader:
        before = reader.conn.execute(everything).fetchall()
        count_before, _ = reader.latency(AGENT, "b", T0, T0 + 3600 * S)
        stats_before = reader.metric_stats(AGENT, "a", T0, T0 + 3600 * S)
        raw_before = sorted(reader.latency_values(["a", "b"], [(T0 + 7 * S, T0 + 2000 * S)])[0])
        errors_before = reader.last_errors(["a"])
    assert len(raw_before) == 2 * 66 and errors_before == []
    assert len(before) == 8 and count_before == 100  # 50 minutes of two checks: four buckets each
    monkeypatch.undo()
    assert migrate(db) == ["0008-time-first-keys"]
    with Reader(db) as reader:
        assert reader.conn.execute(everything).fetchall() == before
        assert reader.metric_stats(AGENT, "a", T0, T0 + 3600 * S) == stats_before
        key = [r[2] for r in reader.conn.execute(
            "SELECT * FROM pragma_index_info((SELECT name FROM pragma_index_list('rollups') WHERE origin = 'pk'))")]
        assert key == ["bucket", "series_id"]
        assert "rollups_by_series" in {r[1] for r in reader.conn.execute("SELECT * FROM pragma_index_list('rollups')")}
        assert {r[1] for r in reader.conn.execute("SELECT * FROM pragma_index_list('readings')")} >= {
            "readings_by_time", "readings_down"}
        assert sorted(reader.latency_values(["a", "b"], [(T0 + 7 * S, T0 + 2000 * S)])[0]) == raw_before
    upgraded = Store(db)  # a reading of b's last bucket updates that row
    upgraded.store([incoming([row(201, 100 * 30 * S, check="b", latency_ms=7.0, metrics={"bytes": 2})])])
    upgraded.close()
    with Reader(db) as reader:
        assert reader.count("rollups") == 8
        assert reader.latency(AGENT, "b", T0, T0 + 3600 * S)[0] == 101
        assert reader.metric_stats(AGENT, "b", T0 + 45 * 60 * S, T0 + 3600 * S)["bytes"] == [11, 1, 2, 12]


def test_a_database_from_a_newer_slawatch_is_refused_by_name(db: Path) -> None:
    migrate(db)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO migrations VALUES ('0042-incidents-v2', 0)")
    conn.close()
    with pytest.raises(RuntimeError, match=r"newer slawatch.*0042-incidents-v2.*upgrade slawatch"):
        migrate(db)
    with pytest.raises(RuntimeError, match="0042-incidents-v2"):
        Store(db)


# --- agents -------------------------------------------------------------------------------------

def agent_state(db: Path, name: str = AGENT) -> Any:
    with Reader(db) as reader:
        return {a.name: a for a in reader.agents()}[name]


def test_agents_record_last_seen_last_seq_and_their_own_metrics(store: Store, db: Path) -> None:
    own = [row(1, 0, check=SELF_CHECK, metrics={"rss_mb": 30}), row(2, 0),
           row(3, 60 * S, check=SELF_CHECK, metrics={"rss_mb": 31})]
    stored(store, incoming(own, received_at=T0 + 61 * S))
    state = agent_state(db)
    assert (state.first_seen, state.last_seen, state.last_seq, state.last_reading_ts) == (
        T0 + 61 * S, T0 + 61 * S, 3, T0 + 60 * S)
    assert state.self_metrics == {"rss_mb": 31}
    # an older self reading arriving late does not replace the newer one
    stored(store, incoming([row(4, 30 * S, check=SELF_CHECK, metrics={"rss_mb": 99})], received_at=T0 + 90 * S))
    state = agent_state(db)
    assert (state.last_seen, state.last_seq, state.self_metrics) == (T0 + 90 * S, 4, {"rss_mb": 31})


def test_an_import_does_not_make_an_agent_look_alive(store: Store, db: Path) -> None:
    stored(store, incoming([row(1, 0)], received_at=T0 + 10 * S))
    stored(store, incoming([row(2, 30 * S), row(3, 60 * S, check=SELF_CHECK, metrics={"rss_mb": 1})],
                           kind="import", received_at=T0 + 3600 * S))
    stored(store, incoming([row(1, 0)], agent="historic-probe", kind="import", received_at=T0 + 3600 * S))
    state = agent_state(db)
    assert (state.last_seen, state.last_seq, state.self_metrics) == (T0 + 10 * S, 1, None)
    historic = agent_state(db, "historic-probe")
    assert (historic.last_seen, historic.last_seq) == (None, None)
    with Reader(db) as reader:
        assert reader.count("readings") == 4  # the imported readings are stored all the same


# --- dropped ranges: their time is unknown ------------------------------------------------------

def _two_checks(path: Path, batches: Sequence[Incoming]) -> dict[str, list[tuple[int, int, str]]]:
    store = Store(path)
    for batch in batches:
        stored(store, batch)
    store.close()
    return {check: [(s - T0, e - T0, status) for s, e, status in clip(intervals(path, check=check), T0, T0 + 2 * MINUTE)]
            for check in ("a", "b")}


A1, B2, A4, B5 = (row(1, 0, check="a"), row(2, 10 * S, check="b"), row(4, 30 * S, check="a"),
                  row(5, 40 * S, check="b"))


def test_a_dropped_range_makes_each_check_unknown_from_the_reading_before_it_until_its_next(tmp_path: Path) -> None:
    """Seq 3 was dropped: taken after seq 2 (b at 10 s), of a check nobody knows. From 10 s no earlier
    reading holds: a (up since 0 s, holding 45 s) is unknown until its next reading at 30 s; b's own
    reading at 10 s holds as usual."""
    told = _two_checks(tmp_path / "told.db", [incoming([A1, B2]), incoming([A4, B5], dropped=[(3, 3)])])
    assert told == {"a": [(0, 10 * S, UP), (10 * S, 30 * S, UNKNOWN), (30 * S, 75 * S, UP), (75 * S, 120 * S, UNKNOWN)],
                    "b": [(0, 10 * S, UNKNOWN), (10 * S, 85 * S, UP), (85 * S, 120 * S, UNKNOWN)]}
    untold = _two_checks(tmp_path / "untold.db", [incoming([A1, B2]), incoming([A4, B5])])
    assert untold["a"] == [(0, 75 * S, UP), (75 * S, 120 * S, UNKNOWN)] and untold["b"] == told["b"]
    with Reader(tmp_path / "told.db") as reader:
        assert reader.dropped(AGENT) == [(3, 3)]


def test_a_dropped_range_cuts_the_same_however_its_readings_arrive(tmp_path: Path) -> None:
    """In one batch with the readings around it, or before a late reading that makes the store fold
    the check again from its raw readings (the cut is kept with the range and replayed)."""
    want = _two_checks(tmp_path / "one.db", [incoming([A1, B2, A4, B5], dropped=[(3, 3)])])
    assert want == _two_checks(tmp_path / "told.db", [incoming([A1, B2]), incoming([A4, B5], dropped=[(3, 3)])])
    late = row(6, 20 * S, check="a")  # a reading of a at 20 s, recorded after the drop, arriving late
    again = _two_checks(tmp_path / "late.db", [incoming([A1, B2]), incoming([A4, B5], dropped=[(3, 3)]),
                                               incoming([late])])
    assert again["a"] == [(0, 10 * S, UP), (10 * S, 20 * S, UNKNOWN), (20 * S, 75 * S, UP),
                          (75 * S, 120 * S, UNKNOWN)]
    assert again == _two_checks(tmp_path / "all.db", [incoming([A1, B2, late, A4, B5], dropped=[(3, 3)])])


def test_a_dropped_range_cuts_a_first_reading_that_comes_after_it(tmp_path: Path) -> None:
    """A slow check's first reading (a at 0 s) numbered after the dropped range and sent in the next
    batch: it holds until the cut at 10 s, as it does when it comes with the range, not its 45 s."""
    b2, a4 = row(2, 10 * S, check="b"), row(4, 0, check="a")
    later = _two_checks(tmp_path / "later.db", [incoming([b2], dropped=[(3, 3)]), incoming([a4])])
    assert later["a"] == [(0, 10 * S, UP), (10 * S, 120 * S, UNKNOWN)]
    assert later == _two_checks(tmp_path / "with.db", [incoming([b2, a4], dropped=[(3, 3)])])
    a5 = row(5, 20 * S, check="a")  # and a late reading of it, refolding a from the raw readings, agrees
    assert _two_checks(tmp_path / "refold.db", [incoming([b2], dropped=[(3, 3)]), incoming([a5]), incoming([a4])]) == \
        _two_checks(tmp_path / "whole.db", [incoming([b2, a4, a5], dropped=[(3, 3)])])


@st.composite
def shipped_with_drops(draw: st.DrawFn) -> tuple[list[Row], list[tuple[int, int]], list[list[Incoming]]]:
    """An agent's readings of two checks, some seqs dropped, shipped in seq order: batches of
    consecutive readings, each dropped range reported with the first reading after it (or in the
    last batch), the batches cut into store() calls. A reading's time can be up to 40 s before the
    one numbered before it (a slow check's reading is numbered when it ends)."""
    at, rows = 0, []
    for seq in range(1, draw(st.integers(2, 24)) + 1):
        at += draw(steps)
        rows.append(row(seq, at - draw(st.integers(0, 40 * S)), draw(statuses), draw(interval_choices),
                        check=draw(st.sampled_from(["a", "b"]))))
    gone = draw(st.sets(st.integers(1, len(rows) - 1), max_size=len(rows) // 2))
    ranges: list[tuple[int, int]] = []
    for seq in sorted(gone):
        if ranges and ranges[-1][1] == seq - 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    kept = [r for r in rows if r.seq not in gone]
    batches = split(kept, draw(st.sets(st.integers(1, len(kept)))))
    told: list[list[tuple[int, int]]] = [[] for _ in batches]
    for first, last in ranges:
        told[next((i for i, b in enumerate(batches) if b[-1].seq > last), len(batches) - 1)].append((first, last))
    shipped = [incoming(b, dropped=d) for b, d in zip(batches, told)]
    return kept, ranges, split(shipped, draw(st.sets(st.integers(1, len(shipped)))))


@HYPOTHESIS
@given(data=st.data())
def test_dropped_ranges_cut_the_same_whatever_the_batches(tmp_path: Path, data: st.DataObject) -> None:
    kept, ranges, groups = data.draw(shipped_with_drops())
    name = uuid.uuid4().hex
    store = Store(tmp_path / f"{name}-shipped.db")
    try:
        for group in groups:
            stored(store, *group)
    finally:
        store.close()
    whole = Store(tmp_path / f"{name}-whole.db")
    try:
        stored(whole, incoming(kept, dropped=ranges))
    finally:
        whole.close()
    for check in ("a", "b"):  # as reports see them (a refold may leave an unknown run before the first reading)
        assert spans(tmp_path / f"{name}-shipped.db", check=check) == spans(tmp_path / f"{name}-whole.db", check=check)
    with Reader(tmp_path / f"{name}-shipped.db") as reader:  # and `evidence verify` folds them alike
        assert verify_intervals(reader, -2**62) == (len({r.check for r in kept}), None)


def test_a_dropped_range_reported_again_or_with_nothing_before_it_cuts_nothing_more(tmp_path: Path) -> None:
    once = _two_checks(tmp_path / "once.db", [incoming([A1, B2]), incoming([A4, B5], dropped=[(3, 3)])])
    twice = _two_checks(tmp_path / "twice.db", [incoming([A1, B2]), incoming([A4, B5], dropped=[(3, 3)]),
                                                incoming([], dropped=[(3, 3)])])
    assert twice == once
    first = _two_checks(tmp_path / "first.db", [incoming([A4, B5], dropped=[(1, 3)])])  # nothing known before it
    assert first == _two_checks(tmp_path / "plain.db", [incoming([A4, B5])])


def test_a_dropped_range_leaves_a_check_that_starts_after_it_alone(tmp_path: Path) -> None:
    """A check whose first reading comes after the cut had no coverage to cut: no run of it starts
    before its first reading."""
    c6 = row(6, 50 * S, check="c")
    store = Store(tmp_path / "w.db")
    stored(store, incoming([A1, B2]))
    stored(store, incoming([A4, B5, c6], dropped=[(3, 3)]))
    store.close()
    assert [(r.start - T0, r.end - T0, r.status) for r in intervals(tmp_path / "w.db", check="c")] == [
        (50 * S, 95 * S, UP)]
