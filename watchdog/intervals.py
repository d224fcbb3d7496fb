"""State intervals: a check's readings by one agent folded into runs of up/down/unknown.

DESIGN.md "SLA semantics" rule 1: a reading at `ts` holds its status over
`[ts, min(next_ts, ts + 1.5 × interval_s))`; time no reading covers is `unknown`. Times are integer
milliseconds since the epoch (UTC), so every boundary is exact.

The last run of a series is its *tail*: its end is provisional (the last reading's coverage) until
the next reading cuts or extends it. An always-up check therefore stays one run however long it
runs. Pure functions only; the store decides what to read and write.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

UP, DOWN, UNKNOWN = "up", "down", "unknown"
HOLD_FACTOR = 1.5


@dataclass
class Run:
    """`status` held over `[start, end)`; `last_ts` is the newest reading folded in so far."""

    start: int
    end: int
    status: str
    last_ts: int


def hold_ms(interval_s: float) -> int:
    """How long a reading's status holds without a successor: 1.5 × its interval, in ms."""
    return round(interval_s * 1000 * HOLD_FACTOR)


@dataclass
class Fold:
    """What folding readings into a tail changed: runs to write, and a run start to forget."""

    tail: Run | None
    written: list[Run]          # runs to insert or replace (keyed by start), the tail among them
    removed: list[int]          # starts of runs that became empty


def fold(tail: Run | None, readings: Iterable[tuple[int, str, int]]) -> Fold:
    """Fold `(ts, status, hold_ms)` readings, in (ts, seq) order and none before `tail.last_ts`,
    into the series whose current tail is `tail`."""
    changed: dict[int, Run] = {}
    removed: list[int] = []
    before: Run | None = None  # the run just before the tail, once this fold has seen it
    for ts, status, hold in readings:
        if tail is None:
            tail = Run(ts, ts + hold, status, ts)
            changed[tail.start] = tail
            continue
        if ts < tail.last_ts:
            raise ValueError(f"reading at {ts} is older than the tail's last reading at {tail.last_ts}")
        if ts < tail.end:
            tail.end = ts  # the previous reading's coverage ends where this one begins
        elif ts > tail.end:
            if tail.status == UNKNOWN:
                tail.end = ts
            else:  # nothing covered [tail.end, ts): unknown
                changed[tail.start] = tail
                before, tail = tail, Run(tail.end, ts, UNKNOWN, tail.last_ts)
        changed[tail.start] = tail
        if status == tail.status:
            tail.end, tail.last_ts = ts + hold, ts
            continue
        if tail.end == tail.start:  # a reading at the very same instant replaced it
            del changed[tail.start]
            removed.append(tail.start)
            if before is not None and before.status == status:  # runs stay maximal: the one before goes on
                tail, before = before, None
                tail.end, tail.last_ts = ts + hold, ts
            else:
                tail = Run(ts, ts + hold, status, ts)
        else:
            before, tail = tail, Run(ts, ts + hold, status, ts)
        changed[tail.start] = tail
    removed = [start for start in removed if start not in changed]
    return Fold(tail, list(changed.values()), removed)


def runs_of(readings: Iterable[tuple[int, str, float]]) -> list[Run]:
    """One agent's readings of one check, `(ts, status, interval_s)` in (ts, arrival) order, as the
    runs the store keeps for them (rule 1)."""
    folded = fold(None, ((ts, status, hold_ms(interval_s)) for ts, status, interval_s in readings))
    return sorted(folded.written, key=lambda run: run.start)


def clip(runs: Iterable[Run], start: int, end: int) -> list[tuple[int, int, str]]:
    """The runs' `(start, end, status)` inside `[start, end)`, with uncovered time as unknown."""
    result: list[tuple[int, int, str]] = []
    cursor = start
    for run in sorted(runs, key=lambda r: r.start):
        lo, hi = max(run.start, cursor), min(run.end, end)
        if hi <= lo:
            continue
        if lo > cursor:
            _append(result, cursor, lo, UNKNOWN)
        _append(result, lo, hi, run.status)
        cursor = hi
    if cursor < end:
        _append(result, cursor, end, UNKNOWN)
    return result


def _append(result: list[tuple[int, int, str]], start: int, end: int, status: str) -> None:
    if result and result[-1][1] == start and result[-1][2] == status:
        result[-1] = (result[-1][0], end, status)
    else:
        result.append((start, end, status))
