"""Rule 1 (coverage of a reading) as runs: hand-computed sequences, and fold against a plain reference."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slawatch.watchdog.intervals import DOWN, UNKNOWN, UP, Run, clip, fold, hold_ms

S = 1000  # one second in ms
T0 = 1_790_000_000_000  # 2026-09-21 14:13:20 UTC

Reading = tuple[int, str, int]  # (ts, status, hold_ms)
Span = tuple[int, int, str]


def every(start: int, count: int, interval_s: float, status: str = UP) -> list[Reading]:
    """`count` regular readings from `start`, `interval_s` apart."""
    return [(start + round(i * interval_s * S), status, hold_ms(interval_s)) for i in range(count)]


def runs_of(readings: Sequence[Reading]) -> list[Span]:
    """The runs one fold over all the readings writes, in order."""
    return [(r.start, r.end, r.status) for r in sorted(fold(None, readings).written, key=lambda r: r.start)]


def status_at(readings: Sequence[Reading], t: int) -> str:
    """Rule 1 at one instant: the last reading at or before `t` holds unless its 1.5 × interval ran out.
    Readings at the same instant: the later one in the list wins (the earlier covers nothing)."""
    before = [r for r in readings if r[0] <= t]
    if not before:
        return UNKNOWN
    latest = max(r[0] for r in before)
    ts, status, hold = [r for r in before if r[0] == latest][-1]
    return status if t < ts + hold else UNKNOWN


def rule1(readings: Sequence[Reading], start: int, end: int) -> list[Span]:
    """Rule 1 written plainly: status on every piece between two boundaries, equal neighbours merged."""
    ordered = sorted(readings, key=lambda r: r[0])  # stable: equal instants keep their arrival order
    cuts = {start, end} | {t for ts, _, hold in ordered for t in (ts, ts + hold) if start < t < end}
    points = sorted(cuts)
    spans: list[Span] = []
    for lo, hi in zip(points, points[1:]):
        status = status_at(ordered, lo)
        if spans and spans[-1][2] == status:
            spans[-1] = (spans[-1][0], hi, status)
        else:
            spans.append((lo, hi, status))
    return spans


def test_hold_is_one_and_a_half_intervals_in_ms() -> None:
    assert hold_ms(30) == 45_000
    assert hold_ms(0.5) == 750
    assert hold_ms(60.0) == 90_000


def test_regular_always_up_readings_are_one_run() -> None:
    readings = every(T0, 1000, 30)
    assert runs_of(readings) == [(T0, T0 + 999 * 30 * S + 45 * S, UP)]


def test_a_gap_longer_than_one_and_a_half_intervals_is_unknown_from_the_hold_to_the_next_reading() -> None:
    readings = every(T0, 3, 30) + [(T0 + 150 * S, UP, 45 * S)]
    assert runs_of(readings) == [
        (T0, T0 + 60 * S + 45 * S, UP),
        (T0 + 105 * S, T0 + 150 * S, UNKNOWN),
        (T0 + 150 * S, T0 + 195 * S, UP),
    ]


def test_a_gap_of_exactly_one_and_a_half_intervals_leaves_nothing_unknown() -> None:
    assert runs_of([(T0, UP, 45 * S), (T0 + 45 * S, UP, 45 * S)]) == [(T0, T0 + 90 * S, UP)]
    # one millisecond more is one millisecond unknown
    assert runs_of([(T0, UP, 45 * S), (T0 + 45 * S + 1, UP, 45 * S)]) == [
        (T0, T0 + 45 * S, UP), (T0 + 45 * S, T0 + 45 * S + 1, UNKNOWN), (T0 + 45 * S + 1, T0 + 90 * S + 1, UP)]


def test_a_status_change_takes_effect_at_the_new_readings_ts() -> None:
    readings = [(T0, UP, 45 * S), (T0 + 30 * S, UP, 45 * S), (T0 + 60 * S, DOWN, 45 * S),
                (T0 + 90 * S, DOWN, 45 * S), (T0 + 120 * S, UP, 45 * S)]
    assert runs_of(readings) == [
        (T0, T0 + 60 * S, UP), (T0 + 60 * S, T0 + 120 * S, DOWN), (T0 + 120 * S, T0 + 165 * S, UP)]


def test_each_readings_own_interval_decides_how_long_it_holds() -> None:
    readings = [
        (T0, UP, hold_ms(10)),             # holds 15 s; the next comes after 20 s: 5 s unknown
        (T0 + 20 * S, UP, hold_ms(60)),    # holds 90 s; the next after 80 s: covered
        (T0 + 100 * S, UP, hold_ms(10)),   # holds 15 s; the next after exactly 15 s: covered
        (T0 + 115 * S, DOWN, hold_ms(10)),
    ]
    assert runs_of(readings) == [
        (T0, T0 + 15 * S, UP),
        (T0 + 15 * S, T0 + 20 * S, UNKNOWN),
        (T0 + 20 * S, T0 + 115 * S, UP),
        (T0 + 115 * S, T0 + 130 * S, DOWN),
    ]


def test_an_unknown_reading_merges_with_the_gaps_beside_it() -> None:
    readings = [(T0, UP, 45 * S), (T0 + 100 * S, UNKNOWN, 45 * S), (T0 + 300 * S, UP, 45 * S)]
    assert runs_of(readings) == [
        (T0, T0 + 45 * S, UP), (T0 + 45 * S, T0 + 300 * S, UNKNOWN), (T0 + 300 * S, T0 + 345 * S, UP)]


def test_of_two_readings_at_the_same_instant_the_later_one_wins() -> None:
    assert runs_of([(T0, UP, 45 * S), (T0 + 30 * S, DOWN, 45 * S), (T0 + 30 * S, UP, 45 * S)]) == [
        (T0, T0 + 75 * S, UP)]  # one run: runs stay maximal
    assert runs_of([(T0, UP, 45 * S), (T0 + 30 * S, UP, 45 * S), (T0 + 30 * S, DOWN, 45 * S)]) == [
        (T0, T0 + 30 * S, UP), (T0 + 30 * S, T0 + 75 * S, DOWN)]
    assert runs_of([(T0, DOWN, 45 * S), (T0, UP, 45 * S)]) == [(T0, T0 + 45 * S, UP)]


def test_an_unknown_reading_replacing_one_after_a_gap_merges_with_that_gap() -> None:
    readings = [(T0, UP, 45 * S), (T0 + 100 * S, UP, 45 * S), (T0 + 100 * S, UNKNOWN, 45 * S)]
    assert runs_of(readings) == [(T0, T0 + 45 * S, UP), (T0 + 45 * S, T0 + 145 * S, UNKNOWN)]


def test_a_reading_older_than_the_tail_is_refused() -> None:
    tail = fold(None, every(T0, 3, 30)).tail
    with pytest.raises(ValueError, match="older than the tail"):
        fold(tail, [(T0 + 59 * S, UP, 45 * S)])


def test_clip_cuts_runs_to_the_window_and_fills_gaps_with_unknown() -> None:
    runs = [Run(T0 + 10, T0 + 20, UP, T0 + 10), Run(T0 + 30, T0 + 40, UP, T0 + 30),
            Run(T0 + 40, T0 + 50, UP, T0 + 40)]
    assert clip(runs, T0, T0 + 60) == [
        (T0, T0 + 10, UNKNOWN), (T0 + 10, T0 + 20, UP), (T0 + 20, T0 + 30, UNKNOWN),
        (T0 + 30, T0 + 50, UP), (T0 + 50, T0 + 60, UNKNOWN)]
    assert clip(runs, T0 + 15, T0 + 35) == [
        (T0 + 15, T0 + 20, UP), (T0 + 20, T0 + 30, UNKNOWN), (T0 + 30, T0 + 35, UP)]
    assert clip([], T0, T0 + 5) == [(T0, T0 + 5, UNKNOWN)]


def test_the_reference_itself_on_a_hand_computed_case() -> None:
    readings = [(T0, UP, 45 * S), (T0 + 30 * S, DOWN, 15 * S), (T0 + 60 * S, UP, 45 * S)]
    assert rule1(readings, T0 - 5 * S, T0 + 120 * S) == [
        (T0 - 5 * S, T0, UNKNOWN), (T0, T0 + 30 * S, UP), (T0 + 30 * S, T0 + 45 * S, DOWN),
        (T0 + 45 * S, T0 + 60 * S, UNKNOWN), (T0 + 60 * S, T0 + 105 * S, UP), (T0 + 105 * S, T0 + 120 * S, UNKNOWN)]


# --- fold against the reference ---------------------------------------------------------------

statuses = st.sampled_from([UP, DOWN, UNKNOWN])
holds = st.sampled_from([hold_ms(10), hold_ms(30), hold_ms(60)])
# steps that land on a hold's end exactly, plus anything up to two holds; 0 is two readings at one instant
steps = st.one_of(st.sampled_from([0, 15 * S, 45 * S, 90 * S]), st.integers(1, 180 * S))


@st.composite
def sequences(draw: st.DrawFn, min_step: int = 0) -> list[Reading]:
    """Readings in (ts, arrival) order."""
    count = draw(st.integers(1, 30))
    ts, result = T0, []
    for _ in range(count):
        ts += draw(steps.filter(lambda s: s >= min_step))
        result.append((ts, draw(statuses), draw(holds)))
    return result


def apply(table: dict[int, Run], result_written: list[Run], removed: list[int]) -> None:
    """What the store does with a Fold: delete the emptied starts, then insert or replace by start."""
    for start in removed:
        table.pop(start, None)
    for run in result_written:
        table[run.start] = Run(run.start, run.end, run.status, run.last_ts)


def check_runs(runs: list[Run]) -> None:
    """Runs are non-empty, contiguous from the first to the last, and maximal (neighbours differ)."""
    for run in runs:
        assert run.start < run.end
    for left, right in zip(runs, runs[1:]):
        assert left.end == right.start
        assert left.status != right.status


@settings(max_examples=300)
@given(readings=sequences(), cuts=st.sets(st.integers(1, 29)))
def test_fold_in_any_pieces_gives_rule_1(readings: list[Reading], cuts: set[int]) -> None:
    table: dict[int, Run] = {}
    tail = None
    # pieces start at a new instant: a reading at the tail's own instant makes the store refold from
    # the reading before (the fold alone cannot see the run before its tail to merge with)
    pieces = sorted(c for c in cuts if c < len(readings) and readings[c][0] > readings[c - 1][0])
    bounds = [0, *pieces, len(readings)]
    for lo, hi in zip(bounds, bounds[1:]):
        result = fold(tail, readings[lo:hi])
        apply(table, result.written, result.removed)
        tail = result.tail
    runs = sorted(table.values(), key=lambda r: r.start)
    check_runs(runs)
    assert tail is not None and (tail.start, tail.end, tail.status) == (runs[-1].start, runs[-1].end, runs[-1].status)
    assert tail.last_ts == readings[-1][0]
    start, end = T0 - 10 * S, readings[-1][0] + 200 * S
    assert clip(runs, start, end) == rule1(readings, start, end)
