"""The ingest API over real HTTP on loopback: what is accepted, what is refused, and that a refusal
stores nothing."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slawatch.agent.protocol import HEADER_SIGNATURE, MANIFEST_PATH, canonical_json
from slawatch.watchdog.store import Reader

from .watchdog_peers import AGENT, KEY, Client, Served, reading, serving, write_config

NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("ingest")
    other = ("other-probe", "ed25519:" + base64.b64encode(
        Ed25519PrivateKey.generate().public_key().public_bytes_raw()).decode())
    with serving(write_config(folder, agents=[(AGENT, _public()), other], settings='max_batch_size = "64KiB"')) as s:
        yield s


def _public() -> str:
    return "ed25519:" + base64.b64encode(KEY.public_bytes_raw()).decode()


def counts(database: Path) -> dict[str, int]:
    with Reader(database) as reader:
        return {table: reader.count(table) for table in ("evidence", "readings", "intervals", "dropped")}


# seqs per test never overlap, so tests can share one database
def test_batch_is_stored_once_with_its_chain(served: Served) -> None:
    before = counts(served.database)
    readings = [reading(101, at_s=0), reading(102, at_s=30, status="down", error="timeout"),
                reading(103, check="mail", at_s=0, latency_ms=12.5)]
    answer = served.client.send(readings, batch="batch-stored-once")
    assert answer.status == 200, answer.body
    assert answer.body["stored"] == 3 and answer.body["duplicates"] == 0 and answer.body["resend"] is False
    assert len(answer.body["chain"]) == 64
    after = counts(served.database)
    assert after["readings"] - before["readings"] == 3
    assert after["evidence"] - before["evidence"] == 1
    with Reader(served.database) as reader:
        stored = {row[1]: row for row in reader.readings(AGENT)}
    assert stored[102][4] == "down" and stored[102][8] == "timeout"
    assert stored[103][6] == 12.5


def test_resend_gets_the_same_acknowledgement(served: Served) -> None:
    readings = [reading(201), reading(202, at_s=30)]
    first = served.client.send(readings, batch="batch-resent-1")
    before = counts(served.database)
    again = served.client.send(readings, batch="batch-resent-1")
    assert again.status == 200
    assert again.body == first.body | {"resend": True}
    assert counts(served.database) == before


def test_a_resend_signed_by_a_clock_set_back_since_gets_the_same_acknowledgement(served: Served) -> None:
    """Stored when sent 4.5 minutes "ahead" (within the allowed skew), resent with a clock set back
    behind the watchdog's: its readings now count as taken after the send time, which a new batch
    is refused for (422); the resend of a stored batch still gets its acknowledgement."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    readings = [replace(reading(501 + i, at_s=30 * i), ts=now + dt.timedelta(minutes=4, seconds=25 + i))
                for i in range(2)]
    first = served.client.send(readings, batch="batch-set-back", now=now + dt.timedelta(minutes=4, seconds=30))
    assert first.status == 200 and first.body["stored"] == 2
    before = counts(served.database)
    back = now - dt.timedelta(minutes=1)
    again = served.client.send(readings, batch="batch-set-back", now=back)
    assert again.status == 200 and again.body == first.body | {"resend": True}
    new = served.client.send(readings, batch="batch-set-back-2", now=back)
    assert new.status == 422 and "taken after the batch was sent" in new.body["error"]
    changed = served.client.send(readings[:1], batch="batch-set-back", now=now)
    assert changed.status == 409
    assert counts(served.database) == before


def test_readings_ahead_of_the_watchdogs_clock_by_more_than_the_skew_are_refused(served: Served) -> None:
    """A send time within the skew does not stretch it: readings 8 minutes ahead of the watchdog's
    clock, sent 4 minutes "ahead", are refused (max_clock_skew 5 min), as they are in an import."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    ahead = [replace(reading(601), ts=now + dt.timedelta(minutes=8))]
    before = counts(served.database)
    answer = served.client.send(ahead, now=now + dt.timedelta(minutes=4))
    assert answer.status == 422
    assert "further ahead of the clock of the watchdog than max_clock_skew" in answer.body["error"]
    assert counts(served.database) == before


def test_replay_with_another_body_is_refused(served: Served) -> None:
    assert served.client.send([reading(301)], batch="batch-replayed").status == 200
    before = counts(served.database)
    answer = served.client.send([reading(301), reading(302, at_s=30)], batch="batch-replayed")
    assert answer.status == 409
    assert answer.body["code"] == "conflict"
    assert counts(served.database) == before


def test_same_seq_in_a_new_batch_counts_as_duplicate(served: Served) -> None:
    served.client.send([reading(401)], batch="batch-dup-a")
    before = counts(served.database)
    answer = served.client.send([reading(401), reading(402, at_s=30)], batch="batch-dup-b")
    assert answer.status == 200
    assert (answer.body["stored"], answer.body["duplicates"]) == (1, 1)
    assert counts(served.database)["readings"] - before["readings"] == 1


def test_dropped_ranges_are_recorded(served: Served) -> None:
    answer = served.client.send([reading(520)], dropped=[(500, 519)])
    assert answer.status == 200 and answer.body["dropped_ranges"] == 1
    with Reader(served.database) as reader:
        assert (500, 519) in reader.dropped(AGENT)


def _forged(client: Client) -> dict[str, str]:
    return {HEADER_SIGNATURE: base64.b64encode(bytes(64)).decode()}


@pytest.mark.parametrize("case,status,code", [
    ("forged signature", 401, "bad-signature"),
    ("wrong key", 401, "bad-signature"),
    ("unknown agent", 403, "unknown-agent"),
    ("stale send time", 401, "stale"),
    ("send time from the future", 401, "stale"),
    ("no signature", 401, "unsigned"),
    ("oversized body", 413, "too-large"),
    ("not JSON", 400, "not-json"),
    ("deeply nested JSON", 400, "not-json"),
    ("wrong types", 422, "invalid-body"),
    ("seq beyond 64 bits", 422, "invalid-body"),
    ("infinite metric", 422, "invalid-body"),
    ("lone surrogate", 422, "invalid-body"),
    ("another agent's reading", 422, "invalid-body"),
    ("reading after the send time", 422, "invalid-body"),
    ("body agent differs", 422, "invalid-body"),
])
def test_refusals_store_nothing(served: Served, case: str, status: int, code: str) -> None:
    client = served.client
    good = [reading(601)]
    before = counts(served.database)
    body = None
    kwargs: dict = {}
    match case:
        case "forged signature":
            kwargs["headers"] = _forged(client)
        case "wrong key":
            client = Client(client.base, key=Ed25519PrivateKey.generate())
        case "unknown agent":
            client = Client(client.base, agent="ghost")
        case "stale send time":
            kwargs["now"] = NOW - dt.timedelta(minutes=6)
        case "send time from the future":
            kwargs["now"] = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=6)
        case "no signature":
            kwargs["headers"] = {HEADER_SIGNATURE: ""}
        case "oversized body":
            body = canonical_json({"agent": AGENT, "readings": [], "dropped": [], "pad": "x" * 70_000})
        case "not JSON":
            body = b"{not json"
        case "deeply nested JSON":
            body = b"[" * 30_000 + b"]" * 30_000
        case "wrong types":
            body = _body([{**reading(601).to_json(), "seq": "601", "status": "maybe"}])
        case "seq beyond 64 bits":
            body = _body([{**reading(601).to_json(), "seq": 2**70}])
        case "infinite metric":
            body = _body([reading(601).to_json()]).replace(b'"metrics":{}', b'"metrics":{"x":1e400}')
        case "lone surrogate":
            body = _body([{**reading(601).to_json(), "check": "web"}]).replace(b'"check":"web"',
                                                                               b'"check":"w\\ud800b"')
        case "another agent's reading":
            body = _body([reading(601, agent="other-probe").to_json()])
        case "reading after the send time":
            late = reading(601).to_json() | {"ts": (NOW + dt.timedelta(hours=1)).isoformat()}
            body = _body([late])
        case "body agent differs":
            body = canonical_json({"agent": "other-probe", "readings": [], "dropped": []})
    answer = client.send(good, body=body, **kwargs)
    assert (answer.status, answer.body.get("code")) == (status, code), answer.body
    assert answer.body.get("error")
    assert counts(served.database) == before


def _body(readings: list[dict]) -> bytes:
    return canonical_json({"agent": AGENT, "readings": readings, "dropped": []})


def test_unicode_and_huge_but_valid_values_are_kept(served: Served) -> None:
    odd = reading(701, check="wéb-☃-检查", latency_ms=1e15, metrics={"big": 2**63 + 5, "tiny": 1e-300},
                  error="✗ down")
    answer = served.client.send([odd])
    assert answer.status == 200, answer.body
    with Reader(served.database) as reader:
        row = next(r for r in reader.readings(AGENT) if r[1] == 701)
    assert row[2] == "wéb-☃-检查"
    assert json.loads(row[7]) == {"big": 2**63 + 5, "tiny": 1e-300}


def test_manifest_is_stored_and_bad_manifest_refused(served: Served) -> None:
    manifest = {"agent": AGENT, "version": "0.1.0", "canaries": [],
                "checks": [{"id": "web", "type": "http", "interval_s": 30, "timeout_s": 10,
                            "target": "https://shop.example"}]}
    answer = served.client.send(body=canonical_json(manifest), path=MANIFEST_PATH)
    assert answer.status == 200, answer.body
    with Reader(served.database) as reader:
        state = next(a for a in reader.agents() if a.name == AGENT)
    assert state.manifest == manifest
    before = counts(served.database)
    bad = served.client.send(body=canonical_json(manifest | {"checks": [{"id": "web"}]}), path=MANIFEST_PATH)
    assert bad.status == 422 and "checks[0]" in bad.body["error"]
    assert counts(served.database) == before


def test_metrics_count_refusals_by_reason(served: Served) -> None:
    Client(served.client.base, agent="ghost").send([reading(801)])
    status, text = served.client.get("/metrics")
    assert status == 200
    assert 'slawatch_ingest_refused_total{reason="unknown-agent"}' in text
    assert "slawatch_db_bytes" in text
    assert 'slawatch_agent_last_seen_timestamp_seconds{agent="ams-probe"}' in text
    assert served.client.get("/healthz")[0] == 200


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                 max_leaves=20).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"agent": st.just(AGENT), "dropped": st.lists(st.lists(st.integers(), max_size=3),
                                                                         max_size=2),
                           "readings": st.lists(st.dictionaries(
                               st.sampled_from(["agent", "check", "seq", "ts", "status", "interval_s",
                                                "latency_ms", "metrics", "error"]),
                               st.one_of(st.integers(), st.floats(), st.text(max_size=10), st.none(),
                                         st.just(AGENT), st.just("2026-10-03T12:00:00Z"), st.just("up"))),
                               max_size=3)}).map(lambda v: json.dumps(v).encode()),
))
def test_generated_bodies_never_cause_a_server_error(served: Served, body: bytes) -> None:
    before = counts(served.database)
    answer = served.client.send(body=body)
    assert answer.status < 500, answer.body
    if answer.status != 200:
        assert counts(served.database) == before


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    with serving(write_config(tmp_path, settings="agent_rate = 0.1")) as served:
        first = served.client.send([reading(1)])
        second = served.client.send([reading(2, at_s=30)])
    assert first.status == 200
    assert second.status == 429 and second.body["code"] == "rate-limited"
    assert int(second.headers["Retry-After"]) >= 1
