"""From an authenticated request to rows for the store: batch bodies, manifests, rate limits."""

from __future__ import annotations

import datetime as dt
import math
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Annotated, Any, Literal

import msgspec

from slawatch.agent.protocol import Envelope, Refused, canonical_json, parse_batch_fields
from slawatch.collectors.reading import MAX_INTERVAL_S, MAX_LATENCY_MS, Reading, parse_ts

from .store import Row

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
MS = dt.timedelta(milliseconds=1)
MAX_CHECKS = 100_000
_SEQ = itemgetter(0)  # a Row's seq


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
    try:
        made, dropped = _fast_rows(envelope.agent, body)
    except Exception:  # anything the fast reader does not take, the reference parser names (or takes)
        items, dropped = parse_batch_fields(envelope, body)
        made = [Row(f[2], f[1], ts_ms(f[3]), f[4], f[5], f[6], f[7], f[8]) for f in items]
    if len(set(map(_SEQ, made))) != len(made):
        raise Refused(422, "a batch holds the same seq twice")
    if b"\\u" in body:  # only JSON escapes can smuggle in a lone surrogate
        _check_text(made)
    return made, dropped


# --- the fast reader of ingest bodies ------------------------------------------------------------
# A typed msgspec decode of the body, then the timestamps. It takes a strict subset of what
# `parse_batch_fields` (with `reading.fields`, the reference) takes, to the same values: whatever it
# does not take (a malformed body, a bad field, NaN, an integer beyond 64 bits, a time in another
# form than the agent's `format_ts`...) goes to the reference parser, which refuses it naming the
# field, or takes it. So error messages are the reference's, and the fast reader only has to be
# right about what it accepts.

_Seq = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
_Text = Annotated[str, msgspec.Meta(min_length=1)]
_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]  # the reference takes |n| < 2**64
_Finite = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]


class _WireReading(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    agent: _Text
    check: _Text
    seq: _Seq
    ts: str
    status: Literal["up", "down", "unknown"]
    # an integer beyond 2**64 would become a float here; the bounds keep them out
    interval_s: Annotated[float, msgspec.Meta(gt=0, le=MAX_INTERVAL_S)]
    latency_ms: Annotated[float, msgspec.Meta(ge=0, le=MAX_LATENCY_MS)] | None = None
    metrics: dict[str, _Int64 | _Finite] = {}
    error: str | None = None


class _WireBatch(msgspec.Struct, forbid_unknown_fields=True):
    agent: str
    readings: list[_WireReading]
    dropped: list[tuple[_Seq, _Seq]]


_decode_batch = msgspec.json.Decoder(_WireBatch).decode
_CLOCK = {f"{m:02d}:{s:02d}": (m * 60 + s) * 1000 for m in range(60) for s in range(60)}  # "MM:SS" -> ms
_FRACTION = {f".{n:03d}Z": n for n in range(1000)} | {"Z": 0}  # what follows the seconds -> ms
_HOUR = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:")


class _NotFast(Exception):
    pass


def _fast_rows(agent: str, body: bytes) -> tuple[list[Row], tuple[tuple[int, int], ...]]:
    """The body's rows as the reference parser would give them; raise when unsure."""
    batch = _decode_batch(body)  # validates UTF-8 and every field's type and range
    if batch.agent != agent:
        raise _NotFast
    hours: dict[str, int] = {}  # "YYYY-MM-DDTHH:" -> ms of that hour
    made: list[Row] = []
    append = made.append
    clock, fraction, new = _CLOCK, _FRACTION, tuple.__new__
    for r in batch.readings:
        if r.agent != agent:
            raise _NotFast
        text = r.ts
        base = hours.get(text[:14])
        if base is None:
            base = _hour_ms(text[:14], hours)
        within, ms = clock.get(text[14:19]), fraction.get(text[19:])
        if base is None or within is None or ms is None:
            ms = ts_ms(parse_ts(text))  # another form: the reference's own parse (ValueError: refused)
        else:
            ms += base + within
        append(new(Row, (r.seq, r.check, ms, r.status, r.interval_s, r.latency_ms, r.metrics, r.error)))
    dropped = tuple(batch.dropped)
    for first, last in dropped:
        if first > last:
            raise _NotFast
    return made, dropped


def _hour_ms(hour: str, hours: dict[str, int]) -> int | None:
    """The ms of "YYYY-MM-DDTHH:" (a valid hour of the calendar), else None; remembered in `hours`."""
    if not _HOUR.fullmatch(hour):
        return None
    try:
        found = hours[hour] = ts_ms(parse_ts(hour + "00:00Z"))
    except ValueError:
        return None
    return found


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
