"""Latency histograms with a bounded relative error (log buckets, as in DDSketch).

A value `v > 0` falls in bucket `i = ceil(log(v) / log(GAMMA))`, which spans
`(GAMMA^(i-1), GAMMA^i]`; answering `2 × GAMMA^i / (GAMMA + 1)` for it is off by at most
`ALPHA` relative to any value in the bucket. Zero gets a bucket of its own. Histograms merge by
adding counts, so a month is the sum of its 15-minute rollups.

Stored packed: varints of (index delta, count) pairs, ~2 bytes a bucket in use.
"""

from __future__ import annotations

import math
from itertools import accumulate
from collections.abc import Iterable, Iterator, Mapping
from fractions import Fraction

ALPHA = 0.009                      # ≤ 0.9 % relative error: inside DESIGN.md's 1 %, with margin
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
ZERO = -(2**20)                     # the bucket of 0 ms, below every real one (1e-9 ms is -1,150)

Histogram = dict[int, int]


def bucket(value: float) -> int:
    """The bucket key of a latency (milliseconds, ≥ 0)."""
    if value <= 0:
        return ZERO
    return math.ceil(math.log(value) / _LOG_GAMMA)


def representative(key: int) -> float:
    """The value a bucket answers with."""
    if key == ZERO:
        return 0.0
    return 2 * GAMMA ** key / (GAMMA + 1)


def add(histogram: Histogram, value: float) -> None:
    key = bucket(value)
    histogram[key] = histogram.get(key, 0) + 1


def merge(histograms: Iterable[Mapping[int, int]]) -> Histogram:
    total: Histogram = {}
    for histogram in histograms:
        for key, count in histogram.items():
            total[key] = total.get(key, 0) + count
    return total


def percentile(histogram: Mapping[int, int], p: float) -> float | None:
    """The nearest-rank `p`-th percentile (0 < p ≤ 100), or None for an empty histogram."""
    count = sum(histogram.values())
    if count == 0:
        return None
    # exact arithmetic: in floats 7 / 100 × 100 is 7.000000000000001, one rank too far
    rank = max(1, math.ceil(Fraction(repr(p)) * count / 100))
    seen = 0
    for key in sorted(histogram):
        seen += histogram[key]
        if seen >= rank:
            return representative(key)
    raise AssertionError("rank beyond the histogram's count")


def pack(histogram: Mapping[int, int]) -> bytes:
    """Varints of (zigzag index delta, count) pairs, in index order."""
    out = bytearray()
    previous = 0
    for key in sorted(histogram):
        delta, previous = key - previous, key
        _varint(out, delta * 2 if delta >= 0 else -delta * 2 - 1)
        _varint(out, histogram[key])
    return bytes(out)


_UNZIG = [z // 2 if z % 2 == 0 else -(z + 1) // 2 for z in range(0x80)]


def unpack(data: bytes) -> Histogram:
    # The first key is absolute (several bytes); after it, deltas and counts of a 15-minute bucket
    # nearly always fit one byte each: those are decoded without a Python loop.
    start = _first_pair_end(data)
    rest = data[start:]
    if start and (not rest or max(rest) < 0x80):
        first_key, first_count = _varints(data[:start])
        first_key = first_key // 2 if first_key % 2 == 0 else -(first_key + 1) // 2
        keys = accumulate(map(_UNZIG.__getitem__, rest[0::2]), initial=first_key)
        return dict(zip(keys, (first_count, *rest[1::2])))
    histogram: Histogram = {}
    numbers = _varints(data)
    key = 0
    for zigzag, count in zip(numbers, numbers):
        key += zigzag // 2 if zigzag % 2 == 0 else -(zigzag + 1) // 2
        histogram[key] = count
    return histogram


def _first_pair_end(data: bytes) -> int:
    """Where the first (key, count) pair's varints end; 0 if there is no whole pair."""
    ends = 0
    for i, byte in enumerate(data):
        if not byte & 0x80:
            ends += 1
            if ends == 2:
                return i + 1
    return 0


def _varint(out: bytearray, number: int) -> None:
    while number >= 0x80:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)


def _varints(data: bytes) -> Iterator[int]:
    number = shift = 0
    for byte in data:
        number |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
        else:
            yield number
            number = shift = 0
    if shift:
        raise ValueError("truncated histogram")
