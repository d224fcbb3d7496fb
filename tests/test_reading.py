"""Readings and their JSON form (the spool, the wire and import/export all use it)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slawatch.collectors.reading import Reading, format_ts

UTC = dt.timezone.utc

DESIGN_EXAMPLE = {"agent": "ams-probe", "check": "shop-web", "seq": 1812, "ts": "2026-10-03T12:00:30Z",
                  "status": "up", "interval_s": 30, "latency_ms": 182.4,
                  "metrics": {"http.status": 200, "tls.days_left": 61}, "error": None}


def test_design_example_round_trips_exactly() -> None:
    reading = Reading.from_json(DESIGN_EXAMPLE)
    assert reading.ts == dt.datetime(2026, 10, 3, 12, 0, 30, tzinfo=UTC)
    assert reading.to_json() == DESIGN_EXAMPLE
    assert json.dumps(reading.to_json()) == json.dumps(DESIGN_EXAMPLE)


names = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=1, max_size=20)
finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
times = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1),
                     timezones=st.just(UTC)).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))


@given(agent=names, check=names, seq=st.integers(1, 2**62), ts=times,
       status=st.sampled_from(["up", "down", "unknown"]),
       interval=st.floats(min_value=0.001, max_value=1e6, allow_nan=False),
       latency=st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda x: round(x, 3)),
       metrics=st.dictionaries(names, finite | st.integers(-2**53, 2**53), max_size=5),
       error=st.none() | st.text(max_size=50))
def test_json_round_trip(agent: str, check: str, seq: int, ts: dt.datetime, status: str, interval: float,
                         latency: float | None, metrics: dict[str, float], error: str | None) -> None:
    reading = Reading(agent=agent, check=check, seq=seq, ts=ts, status=status, interval_s=interval,
                      latency_ms=latency, metrics=metrics, error=error)
    again = Reading.from_json(json.loads(json.dumps(reading.to_json())))
    assert again == reading


def test_timestamps_are_utc_with_optional_milliseconds() -> None:
    assert format_ts(dt.datetime(2026, 3, 29, 3, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == "2026-03-29T01:00:00Z"
    assert format_ts(dt.datetime(2026, 3, 29, 1, 0, 0, 123456, tzinfo=UTC)) == "2026-03-29T01:00:00.123Z"


@pytest.mark.parametrize("change,message", [
    ({"status": "degraded"}, "'status' must be one of up, down, unknown, not 'degraded'"),
    ({"seq": 0}, "'seq' must be a positive integer below 2**63"),
    ({"seq": True}, "'seq' must be a positive integer below 2**63"),
    ({"seq": 2**63}, "'seq' must be a positive integer below 2**63"),
    ({"metrics": {"x": 10**400}}, "metric 'x' must be a finite number"),
    ({"latency_ms": 10**400}, "'latency_ms' must be a number from 0 to 1e+19 or null"),
    ({"latency_ms": 1.7e308}, "'latency_ms' must be a number from 0 to 1e+19 or null"),
    ({"ts": "2026-10-03T12:00:30"}, "'ts': time '2026-10-03T12:00:30' has no offset; readings are in UTC (end it with Z)"),
    ({"ts": "yesterday"}, "'ts': Invalid isoformat string: 'yesterday'"),
    ({"interval_s": 0}, "'interval_s' must be a positive number of seconds up to 1e+09"),
    ({"interval_s": 1e300}, "'interval_s' must be a positive number of seconds up to 1e+09"),
    ({"ts": "0001-01-01T00:00:00+01:00"}, "'ts': time '0001-01-01T00:00:00+01:00' is out of range"),
    ({"latency_ms": -1}, "'latency_ms' must be a number from 0 to 1e+19 or null"),
    ({"metrics": {"x": "1"}}, "metric 'x' must be a finite number"),
    ({"metrics": {"x": float("nan")}}, "metric 'x' must be a finite number"),
    ({"agent": ""}, "'agent' must be a non-empty string"),
    ({"colour": "red"}, "unknown field 'colour'"),
    ({"error": 5}, "'error' must be a string or null"),
])
def test_bad_readings_are_refused_with_the_field_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Reading.from_json(DESIGN_EXAMPLE | change)
    assert str(caught.value) == message


def test_missing_field() -> None:
    data = dict(DESIGN_EXAMPLE)
    del data["ts"]
    with pytest.raises(ValueError, match="missing field 'ts'"):
        Reading.from_json(data)
