"""Latency histograms with a bounded relative error (log buckets, as in DDSketch).

A value `v > 0` falls in bucket `i = ceil(log(v) / log(GAMMA))`, which spans
`(GAMMA^(i-1), GAMMA^i]`; answering `2 × GAMMA^i / (GAMMA + 1)` for it is off by at most
`ALPHA` relative to any value in the bucket. Zero gets a bucket of its own. Histograms merge by
adding counts, so a month is the sum of its 15-minute rollups.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping

ALPHA = 0.009                      # ≤ 0.9 % relative error: inside DESIGN.md's 1 %, with margin
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
ZERO = "z"

Histogram = dict[str, int]


def bucket(value: float) -> str:
    """The bucket key of a latency (milliseconds, ≥ 0)."""
    if value <= 0:
        return ZERO
    return str(math.ceil(math.log(value) / _LOG_GAMMA))


def representative(key: str) -> float:
    """The value a bucket answers with."""
    if key == ZERO:
        return 0.0
    return 2 * GAMMA ** int(key) / (GAMMA + 1)


def add(histogram: Histogram, value: float) -> None:
    key = bucket(value)
    histogram[key] = histogram.get(key, 0) + 1


def merge(histograms: Iterable[Mapping[str, int]]) -> Histogram:
    total: Histogram = {}
    for histogram in histograms:
        for key, count in histogram.items():
            total[key] = total.get(key, 0) + count
    return total


def percentile(histogram: Mapping[str, int], p: float) -> float | None:
    """The nearest-rank `p`-th percentile (0 < p ≤ 100), or None for an empty histogram."""
    count = sum(histogram.values())
    if count == 0:
        return None
    rank = max(1, math.ceil(p / 100 * count))
    seen = 0
    for key in sorted(histogram, key=lambda k: -math.inf if k == ZERO else int(k)):
        seen += histogram[key]
        if seen >= rank:
            return representative(key)
    raise AssertionError("rank beyond the histogram's count")


def dumps(histogram: Mapping[str, int]) -> str:
    return json.dumps(histogram, separators=(",", ":"), sort_keys=True)


def loads(text: str) -> Histogram:
    value = json.loads(text)
    return {str(k): int(v) for k, v in value.items()}
