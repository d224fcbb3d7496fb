"""`Reading`: one observation of one check by one agent, and its JSON form."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace
from typing import Any

UP, DOWN, UNKNOWN = "up", "down", "unknown"
STATUSES = (UP, DOWN, UNKNOWN)
FIELDS = ("agent", "check", "seq", "ts", "status", "interval_s", "latency_ms", "metrics", "error")

Metrics = dict[str, float | int]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def format_ts(ts: dt.datetime) -> str:
    """UTC as `2026-10-03T12:00:30Z`, with milliseconds when there are any."""
    if ts.utcoffset():
        ts = ts.astimezone(dt.timezone.utc)
    text = ts.replace(tzinfo=None).isoformat(timespec="milliseconds" if ts.microsecond >= 1000 else "seconds")
    return text + "Z"


def parse_ts(text: str) -> dt.datetime:
    """Parse an ISO 8601 time with an offset or Z; raise ValueError on naive or malformed times."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no offset; readings are in UTC (end it with Z)")
    try:
        return value.astimezone(dt.timezone.utc)
    except OverflowError:  # year 1 or 9999 pushed past the calendar by its offset
        raise ValueError(f"time {text!r} is out of range") from None


@dataclass(frozen=True)
class Reading:
    """One check's result as one agent saw it at `ts` (UTC, when the check started)."""

    agent: str
    check: str
    ts: dt.datetime
    status: str
    interval_s: float
    latency_ms: float | None = None
    metrics: Metrics = field(default_factory=dict)
    error: str | None = None
    seq: int = 0  # given by the agent's spool when the reading is stored; 0 until then

    def with_seq(self, seq: int) -> Reading:
        return replace(self, seq=seq)

    def to_json(self) -> dict[str, Any]:
        """The wire and import/export form (DESIGN.md "Readings")."""
        return {
            "agent": self.agent,
            "check": self.check,
            "seq": self.seq,
            "ts": format_ts(self.ts),
            "status": self.status,
            "interval_s": _number(self.interval_s),
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
            "metrics": {k: _number(v) for k, v in self.metrics.items()},
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: Any) -> Reading:
        """Build a Reading from its JSON form; raise ValueError naming the first bad field."""
        agent, check, seq, ts, status, interval_s, latency_ms, metrics, error = fields(data)
        return cls(agent=agent, check=check, seq=seq, ts=ts, status=status, interval_s=interval_s,
                   latency_ms=latency_ms, metrics=metrics, error=error)


Fields = tuple[str, str, int, dt.datetime, str, float, float | None, Metrics, str | None]
_FIELDS = frozenset(FIELDS)
_REQUIRED = ("agent", "check", "seq", "ts", "status", "interval_s")


def fields(data: Any) -> Fields:
    """A reading's JSON form checked field by field: (agent, check, seq, ts, status, interval_s,
    latency_ms, metrics, error). Raise ValueError naming the first bad field.

    The one validation of readings, for Reading.from_json and for the watchdog's ingest, which
    skips building Reading objects (it runs per reading at 10^5/s).
    """
    if not isinstance(data, dict):
        raise ValueError("a reading must be a JSON object")
    if not data.keys() <= _FIELDS:
        raise ValueError(f"unknown field {sorted(data.keys() - _FIELDS)[0]!r}")
    if len(data) < 6 or not all(f in data for f in _REQUIRED):
        raise ValueError(f"missing field {next(f for f in _REQUIRED if f not in data)!r}")
    latency = data.get("latency_ms")
    metrics = data.get("metrics", {})
    error = data.get("error")
    return (_text(data, "agent"), _text(data, "check"), _seq(data["seq"]), _ts(data["ts"]),
            _status(data["status"]), _positive(data, "interval_s"),
            None if latency is None else _latency(latency), _metrics(metrics),
            None if error is None else _error(error))


def _number(value: float | int) -> float | int:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _text(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name!r} must be a non-empty string")
    return value


def _seq(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**63:
        raise ValueError("'seq' must be a positive integer below 2**63")
    return value


def _ts(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError("'ts' must be an ISO 8601 string")
    try:
        return parse_ts(value)
    except ValueError as exc:
        raise ValueError(f"'ts': {exc}") from None


def _status(value: Any) -> str:
    if value.__class__ is not str or value not in STATUSES:
        raise ValueError(f"'status' must be one of {', '.join(STATUSES)}, not {value!r}")
    return str(value)


def _finite(value: Any) -> bool:
    """A JSON number a database can hold: no bool, no NaN/infinity, no integer beyond 64 bits."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) < 2**64
    return isinstance(value, float) and math.isfinite(value)


MAX_INTERVAL_S = 1e9  # ~31 years: beyond any schedule, and 1.5 x it in ms still fits a 64-bit integer
MAX_LATENCY_MS = 1e19  # beyond any real latency, and its histogram bucket's value is a finite float


def _positive(data: dict[str, Any], name: str) -> float:
    value = data[name]
    if not _finite(value) or not 0 < value <= MAX_INTERVAL_S:
        raise ValueError(f"{name!r} must be a positive number of seconds up to {MAX_INTERVAL_S:g}")
    return float(value)


def _latency(value: Any) -> float | None:
    if value is None:
        return None
    if not _finite(value) or not 0 <= value <= MAX_LATENCY_MS:
        raise ValueError(f"'latency_ms' must be a number from 0 to {MAX_LATENCY_MS:g} or null")
    return float(value)


def _metrics(value: Any) -> Metrics:
    if not isinstance(value, dict):
        raise ValueError("'metrics' must be an object")
    for name, number in value.items():
        if not _finite(number):
            raise ValueError(f"metric {name!r} must be a finite number")
    return dict(value)


def _error(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError("'error' must be a string or null")
    return value
