"""From an authenticated request to rows for the store: batch bodies, manifests, rate limits."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from slawatch.agent.protocol import Envelope, Refused, canonical_json, parse_batch_fields
from slawatch.collectors.reading import MAX_INTERVAL_S, Reading

from .store import Row

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
MS = dt.timedelta(milliseconds=1)
MAX_CHECKS = 100_000


def ts_ms(ts: dt.datetime) -> int:
    """An aware datetime as integer milliseconds since the epoch (exact: no float on the way)."""
    return (ts - EPOCH) // MS


def to_row(reading: Reading) -> Row:
    return Row(reading.seq, reading.check, ts_ms(reading.ts), reading.status, reading.interval_s,
               reading.latency_ms, reading.metrics, reading.error)


def rows(readings: Iterable[Reading]) -> list[Row]:
    """The store's rows of readings (imports, tests); text SQLite cannot hold is refused."""
    made = [to_row(reading) for reading in readings]
    _check_text(made)
    return made


def rows_of_body(envelope: Envelope, body: bytes) -> tuple[list[Row], tuple[tuple[int, int], ...]]:
    """An authenticated ingest body as the store's rows and dropped ranges; raise Refused."""
    items, dropped = parse_batch_fields(envelope, body)
    made = [Row(f[2], f[1], ts_ms(f[3]), f[4], f[5], f[6], f[7], f[8]) for f in items]
    if len({row.seq for row in made}) != len(made):
        raise Refused(422, "a batch holds the same seq twice")
    if b"\\u" in body:  # only JSON escapes can smuggle in a lone surrogate
        _check_text(made)
    return made, dropped


def _check_text(made: list[Row]) -> None:
    for i, row in enumerate(made):
        try:
            for text in (row.check, row.error or "", *row.metrics):
                text.encode()
        except UnicodeEncodeError:
            raise Refused(422, f"readings[{i}]: text is not valid Unicode (lone surrogate)") from None


def parse_manifest(agent: str, data: Any) -> dict[str, Any]:
    """Check an agent's manifest (what it is supposed to report); raise Refused(422) naming the problem."""
    if not isinstance(data, dict):
        raise Refused(422, "a manifest must be a JSON object")
    required = {"agent", "version", "canaries", "checks"}
    if set(data) != required:
        raise Refused(422, f"a manifest has exactly the fields {sorted(required)}")
    if data["agent"] != agent:
        raise Refused(422, "manifest's agent differs from the signed Slawatch-Agent header")
    if not isinstance(data["version"], str):
        raise Refused(422, '"version" must be a string')
    if not isinstance(data["canaries"], list) or not all(isinstance(c, str) for c in data["canaries"]):
        raise Refused(422, '"canaries" must be an array of check ids')
    checks = data["checks"]
    if not isinstance(checks, list) or len(checks) > MAX_CHECKS:
        raise Refused(422, f'"checks" must be an array of at most {MAX_CHECKS} checks')
    seen = set()
    for i, check in enumerate(checks):
        if (not isinstance(check, dict) or set(check) != {"id", "type", "interval_s", "timeout_s", "target"}
                or not isinstance(check["id"], str) or not check["id"]
                or not isinstance(check["type"], str) or not isinstance(check["target"], str)
                or not _positive(check["interval_s"]) or not _positive(check["timeout_s"])):
            raise Refused(422, f"checks[{i}]: expected id, type, interval_s > 0, timeout_s > 0 and target")
        if check["id"] in seen:
            raise Refused(422, f"checks[{i}]: check {check['id']!r} listed twice")
        seen.add(check["id"])
    try:
        canonical_json(data)
    except UnicodeEncodeError:
        raise Refused(422, "the manifest holds text that is not valid Unicode (lone surrogate)") from None
    return data


def _positive(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and 0 < value < MAX_INTERVAL_S)


@dataclass
class RateLimiter:
    """A token bucket per agent: `rate` requests a second, bursts of `burst_s` seconds' worth."""

    rate: float
    burst_s: float = 10.0
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, agent: str, now: float | None = None) -> float:
        """0 when the request may go on, else the seconds to wait before the next one."""
        now = time.monotonic() if now is None else now
        capacity = max(1.0, self.rate * self.burst_s)
        tokens, then = self._buckets.get(agent, (capacity, now))
        tokens = min(capacity, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self._buckets[agent] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[agent] = (tokens - 1.0, now)
        return 0.0
