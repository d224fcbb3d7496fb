"""Signing and verifying batches: one implementation for agent and watchdog."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from slawatch.agent.protocol import (
    HEADER_SIGNATURE, INGEST_PATH, MANIFEST_PATH, Refused, batch_body, parse_batch, sign, verify,
)
from slawatch.collectors.reading import Reading

NOW = dt.datetime(2026, 10, 3, 12, 0, 31, tzinfo=dt.timezone.utc)
KEY = Ed25519PrivateKey.generate()
KEYS = {"probe": KEY.public_key()}
READING = Reading(agent="probe", check="web", seq=7, ts=NOW, status="up", interval_s=30.0)
BODY = batch_body("probe", [READING], [(3, 5)])
BATCH = "0123456789abcdef"


def headers(**change: str) -> dict[str, str]:
    return sign(KEY, "probe", BATCH, INGEST_PATH, BODY, now=NOW) | change


def test_round_trip() -> None:
    envelope = verify(headers(), INGEST_PATH, BODY, KEYS, now=NOW + dt.timedelta(seconds=2))
    batch = parse_batch(envelope, BODY)
    assert batch.readings == (READING,)
    assert batch.dropped == ((3, 5),)


@pytest.mark.parametrize("case,status,reason", [
    ("altered body", 401, "bad signature"),
    ("wrong key", 401, "bad signature"),
    ("other path", 401, "bad signature"),
    ("unknown agent", 403, "unknown agent 'ghost'"),
    ("stale", 401, "send time is 301s off"),
    ("missing header", 401, "missing Slawatch-Agent"),
    ("other batch id", 401, "bad signature"),
])
def test_refusals(case: str, status: int, reason: str) -> None:
    body, path, hdrs, now = BODY, INGEST_PATH, headers(), NOW
    if case == "altered body":
        body = BODY.replace(b'"up"', b'"down"')
    elif case == "wrong key":
        hdrs = sign(Ed25519PrivateKey.generate(), "probe", BATCH, INGEST_PATH, BODY, now=NOW)
    elif case == "other path":
        path = MANIFEST_PATH
    elif case == "unknown agent":
        hdrs = headers(**{"Slawatch-Agent": "ghost"})
    elif case == "stale":
        now = NOW + dt.timedelta(seconds=301)
    elif case == "missing header":
        del hdrs[HEADER_SIGNATURE]
    elif case == "other batch id":
        hdrs = headers(**{"Slawatch-Batch": "fedcba9876543210"})
    with pytest.raises(Refused) as caught:
        verify(hdrs, path, body, KEYS, now=now)
    assert caught.value.status == status
    assert caught.value.reason.startswith(reason)


def test_header_names_ignore_case() -> None:
    lowered = {name.lower(): value for name, value in headers().items()}
    assert verify(lowered, INGEST_PATH, BODY, KEYS, now=NOW).agent == "probe"


def test_body_must_match_the_signed_agent() -> None:
    body = batch_body("other", [])
    envelope = verify(sign(KEY, "probe", BATCH, INGEST_PATH, body, now=NOW), INGEST_PATH, body, KEYS, now=NOW)
    with pytest.raises(Refused, match="body's agent differs"):
        parse_batch(envelope, body)


@settings(max_examples=200)
@given(body=st.binary(max_size=300) | st.from_regex(rb'\{"agent":"probe".{0,80}\}', fullmatch=True))
def test_any_signed_body_is_parsed_or_refused_with_4xx(body: bytes) -> None:
    envelope = verify(sign(KEY, "probe", BATCH, INGEST_PATH, body, now=NOW), INGEST_PATH, body, KEYS, now=NOW)
    try:
        parse_batch(envelope, body)
    except Refused as refused:
        assert 400 <= refused.status < 500
