"""Time as data: spans `(start, end)` and status segments `(start, end, status)`, in integer ms.

A *timeline* is a list of segments, sorted, contiguous over its window and with no two equal
neighbours. A *span list* is sorted, disjoint and merged. Pure functions, exact integer arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

Span = tuple[int, int]
Segment = tuple[int, int, str]
Timeline = list[Segment]


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Sorted, disjoint, merged: touching or overlapping spans become one; empty ones vanish."""
    result: list[Span] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if result and start <= result[-1][1]:
            if end > result[-1][1]:
                result[-1] = (result[-1][0], end)
        else:
            result.append((start, end))
    return result


def intersect(a: Sequence[Span], b: Sequence[Span]) -> list[Span]:
    """The time in both span lists."""
    result: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            result.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return result


def subtract(a: Sequence[Span], b: Sequence[Span]) -> list[Span]:
    """The time in `a` and not in `b`."""
    result: list[Span] = []
    j = 0
    for start, end in a:
        cursor = start
        while j < len(b) and b[j][1] <= cursor:
            j += 1
        k = j
        while k < len(b) and b[k][0] < end:
            if b[k][0] > cursor:
                result.append((cursor, b[k][0]))
            cursor = max(cursor, b[k][1])
            k += 1
        if cursor < end:
            result.append((cursor, end))
    return result


def total(spans: Iterable[Span]) -> int:
    return sum(end - start for start, end in spans)


def append(timeline: Timeline, start: int, end: int, status: str) -> None:
    """Add a segment at the end, merged into its neighbour when the status is the same."""
    if end <= start:
        return
    if timeline and timeline[-1][1] == start and timeline[-1][2] == status:
        timeline[-1] = (timeline[-1][0], end, status)
    else:
        timeline.append((start, end, status))


def combine(timelines: Sequence[Timeline], start: int, end: int, decide: Callable[[dict[str, int]], str],
            empty: str) -> Timeline:
    """One timeline from several over the same window: `decide` maps how many timelines are in
    each status at an instant to one status (`empty` when there are no timelines).

    A sweep over the segment starts: each instant changes only the timelines that start a segment
    there, so the cost is the number of segments, not segments × timelines."""
    if not timelines:
        return [(start, end, empty)] if end > start else []
    changes = sorted((s, n, status) for n, timeline in enumerate(timelines) for s, _, status in timeline
                     if start <= s < end)
    current: list[str | None] = [None] * len(timelines)
    counts: dict[str, int] = {}
    result: Timeline = []
    i, total_changes = 0, len(changes)
    while i < total_changes:
        at = changes[i][0]
        while i < total_changes and changes[i][0] == at:
            _, n, status = changes[i]
            old = current[n]
            if old is not None:
                counts[old] -= 1
            counts[status] = counts.get(status, 0) + 1
            current[n] = status
            i += 1
        following = changes[i][0] if i < total_changes else end
        append(result, at, following, decide(counts))
    return result


def spans_of(timeline: Iterable[Segment], status: str) -> list[Span]:
    return [(start, end) for start, end, s in timeline if s == status]


def overlaps(spans: Sequence[Span], start: int, end: int) -> bool:
    """Whether any span shares time with `[start, end)`."""
    return any(s < end and e > start for s, e in spans)


def relabel(timeline: Timeline, change: Callable[[Segment], str]) -> Timeline:
    """The timeline with each segment's status replaced by `change(segment)`, neighbours merged."""
    result: Timeline = []
    for segment in timeline:
        append(result, segment[0], segment[1], change(segment))
    return result
