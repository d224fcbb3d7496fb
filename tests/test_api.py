"""The JSON API against its OpenAPI description and against the CLI's figures, over HTTP on loopback:
every documented answer (status and body shape) happens, every route is documented, reports are the
CLI's (frozen ones included), incidents are the report's, status is now, bad input is a 4xx reason."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from slawatch.agent.protocol import INGEST_PATH, MANIFEST_PATH, batch_body, canonical_json, new_batch_id, sign
from slawatch.config import load_watchdog
from slawatch.config.keys import public_key_line
from slawatch.watchdog.api import OPENAPI, openapi_document
from slawatch.watchdog.server import Settings, Watchdog
from slawatch.watchdog.periods import period_at
from slawatch.watchdog.store import Reader

from .access_peers import NOW, OUTAGE, PERIOD, RECENT_S, URLS, Browser, basic, seeded, sha256_hex, wait_for
from .conftest import ROOT
from .watchdog_peers import AGENT, T0, WATCHDOG_BIN, Answer, Client, Served, reading, stalled_upload

FLOOD = "flood-probe"          # an agent of its own to run out of its rate
FLOOD_KEY = Ed25519PrivateKey.generate()
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with seeded(tmp_path_factory.mktemp("api"), settings='max_batch_size = "8KiB"\nagent_rate = 2\nbody_timeout = "1s"',
                agents={FLOOD: public_key_line(FLOOD_KEY)}) as served:
        wait_for(lambda: get(served, "/api/v1/alerts?status=pending", "root").json()["alerts"], 20,
                 "alerts in the outbox")
        yield served


def get(served: Served, path: str, user: str | None = "root") -> Any:
    return Browser(served.client.base).get(path, headers=basic(user) if user else {})


# --- the description and the implementation ----------------------------------------------------

def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "null": lambda v: v is None,
}


def problems(value: Any, schema: dict[str, Any], document: dict[str, Any], where: str = "$") -> list[str]:
    """Where `value` breaks the schema (the JSON Schema keywords openapi.json uses)."""
    schema = _resolve(schema, document)
    if "oneOf" in schema:
        fits = [s for s in schema["oneOf"] if not problems(value, s, document, where)]
        return [] if len(fits) == 1 else [f"{where}: fits {len(fits)} of the oneOf schemas"]
    found = []
    kinds = schema.get("type")
    if kinds is not None and not any(_TYPES[k](value) for k in ([kinds] if isinstance(kinds, str) else kinds)):
        return [f"{where}: {value!r} is not of type {kinds}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        found.append(f"{where}: {value!r} is not {schema['const']!r}")
    if isinstance(value, dict):
        found += [f"{where}: no {key!r}" for key in schema.get("required", []) if key not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                found += problems(value[key], sub, document, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += problems(item, schema["items"], document, f"{where}[{i}]")
    return found


def documented() -> list[tuple[str, str, str]]:
    """(METHOD, path, status) of every documented answer."""
    document = openapi_document()
    return [(method.upper(), path, status) for path, item in document["paths"].items()
            for method, operation in item.items() if method in METHODS for status in operation["responses"]]


def _signed(served: Served, path: str, body: bytes, *, agent: str = AGENT, key: Any = None,
            batch: str | None = None) -> Any:
    client = Client(served.client.base, key or Client.key, agent)  # type: ignore[arg-type]
    return client.send(body=body, path=path, batch=batch)


def _compressed(served: Served, path: str, body: bytes) -> Any:
    headers = sign(Client.key, AGENT, new_batch_id(), path, body) | {"Content-Encoding": "gzip"}
    return served.client.post(path, body, headers)


def _manifest(version: str) -> bytes:
    return canonical_json({"agent": AGENT, "version": version, "canaries": [], "checks": [
        {"id": c, "type": "tcp", "interval_s": 3600, "timeout_s": 5, "target": f"{c}.example:443"}
        for c in ("web", "mail", "site")]})


def _flooded(served: Served, path: str) -> Any:
    body = canonical_json({"agent": FLOOD, "readings": []}) if path == INGEST_PATH else canonical_json(
        {"agent": FLOOD, "version": "1", "canaries": [], "checks": []})
    for _ in range(200):
        answer = _signed(served, path, body, agent=FLOOD, key=FLOOD_KEY)
        if answer.status == 429:
            return answer
    raise AssertionError("never rate-limited")


def _stalled(served: Served, path: str) -> Answer:
    """An upload that sends one byte of the body it announces and stops: body_timeout ends it."""
    conn = stalled_upload(served.client.base, path, announced=1000)  # under max_batch_size
    try:
        response = conn.getresponse()
        return Answer(response.status, json.loads(response.read()), dict(response.getheaders()))
    finally:
        conn.close()


def _conflict(served: Served, path: str, first: bytes, second: bytes) -> Any:
    batch = f"api-conflict-{sha256_hex(path)[:8]}"
    assert _signed(served, path, first, batch=batch).status == 200
    return _signed(served, path, second, batch=batch)


def _agent_requests(path: str) -> dict[str, Callable[[Served], Any]]:
    if path == INGEST_PATH:
        good, other = batch_body(AGENT, [reading(5001, "web", 9000)]), batch_body(AGENT, [reading(5002, "web", 9030)])
        bad = canonical_json({"agent": AGENT, "readings": [{"seq": "one"}]})
    else:
        good, other, bad = _manifest("1.2.3-ams"), _manifest("1.2.4-ams"), canonical_json({"agent": AGENT})
    stranger = Ed25519PrivateKey.generate()
    return {
        "200": lambda s: _signed(s, path, good),
        "400": lambda s: _signed(s, path, good, batch="not a batch id!"),
        "401": lambda s: Client(s.client.base).post(path, good, {}),
        "403": lambda s: _signed(s, path, good, agent="stranger", key=stranger),
        "408": lambda s: _stalled(s, path),
        "409": lambda s: _conflict(s, path, good, other),
        "413": lambda s: _signed(s, path, b" " * 9000 + good),
        "415": lambda s: _compressed(s, path, good),
        "422": lambda s: _signed(s, path, bad),
        "429": lambda s: _flooded(s, path),
    }


# For each documented answer, a request that must get it.
REQUESTS: dict[tuple[str, str], dict[str, Callable[[Served], Any]]] = {
    ("GET", "/api/v1/contracts"): {
        "200": lambda s: get(s, "/api/v1/contracts"), "401": lambda s: get(s, "/api/v1/contracts", None)},
    ("GET", "/api/v1/contracts/{id}/report"): {
        "200": lambda s: get(s, f"/api/v1/contracts/acme-a/report?period={PERIOD}"),
        "400": lambda s: get(s, "/api/v1/contracts/acme-a/report?period=last-month"),
        "401": lambda s: get(s, "/api/v1/contracts/acme-a/report", None),
        "404": lambda s: get(s, "/api/v1/contracts/acme-a/report", "bob")},
    ("GET", "/api/v1/contracts/{id}/status"): {
        "200": lambda s: get(s, "/api/v1/contracts/public-p/status", None),
        "401": lambda s: get(s, "/api/v1/contracts/acme-a/status", None),
        "404": lambda s: get(s, "/api/v1/contracts/no-such/status")},
    ("GET", "/api/v1/contracts/{id}/services/{sid}/incidents"): {
        "200": lambda s: get(s, f"/api/v1/contracts/acme-a/services/shop/incidents?period={PERIOD}"),
        "400": lambda s: get(s, "/api/v1/contracts/acme-a/services/shop/incidents?period=2026-W99"),
        "401": lambda s: get(s, "/api/v1/contracts/acme-a/services/shop/incidents", None),
        "404": lambda s: get(s, "/api/v1/contracts/acme-a/services/mail/incidents")},
    ("GET", "/api/v1/services/{id}/incidents"): {
        "200": lambda s: get(s, f"/api/v1/services/shop/incidents?contract=acme-a&period={PERIOD}"),
        "400": lambda s: get(s, "/api/v1/services/shop/incidents"),
        "401": lambda s: get(s, "/api/v1/services/shop/incidents", None),
        "404": lambda s: get(s, "/api/v1/services/no-such/incidents")},
    ("GET", "/api/v1/agents"): {
        "200": lambda s: get(s, "/api/v1/agents"), "401": lambda s: get(s, "/api/v1/agents", None)},
    ("GET", "/api/v1/alerts"): {
        "200": lambda s: get(s, "/api/v1/alerts?status=pending&limit=3"),
        "400": lambda s: get(s, "/api/v1/alerts?limit=0"),
        "401": lambda s: get(s, "/api/v1/alerts", None),
        "403": lambda s: get(s, "/api/v1/alerts", "alice")},
    ("GET", "/api/v1/openapi.json"): {
        "200": lambda s: get(s, "/api/v1/openapi.json", "alice"),
        "401": lambda s: get(s, "/api/v1/openapi.json", None)},
    ("POST", INGEST_PATH): _agent_requests(INGEST_PATH),
    ("POST", MANIFEST_PATH): _agent_requests(MANIFEST_PATH),
}


def _status_and_json(reply: Any) -> tuple[int, str, Any]:
    if isinstance(reply.body, dict):  # an Answer of the signing client: JSON already parsed
        return reply.status, reply.headers.get("Content-Type", ""), reply.body
    return reply.status, reply.headers.get("Content-Type", ""), reply.json()


@pytest.mark.parametrize("answer", documented(), ids=lambda a: " ".join(a))
def test_every_documented_answer_happens_with_its_documented_body(served: Served, answer: tuple[str, str, str]) -> None:
    method, path, status = answer
    makers = REQUESTS.get((method, path))
    assert makers is not None and status in makers, f"no test request for the documented {method} {path} {status}"
    got, content_type, body = _status_and_json(makers[status](served))
    assert got == int(status), body
    assert content_type.startswith("application/json")
    document = openapi_document()
    schema = document["paths"][path][method.lower()]["responses"][status]["content"]["application/json"]["schema"]
    assert problems(body, schema, document) == []


def test_every_api_route_is_documented_and_every_documented_path_is_a_route(tmp_path: Path) -> None:
    from .access_peers import write_access_config

    config = load_watchdog(write_access_config(tmp_path))
    app = Watchdog(config.file, Settings.of(config)).app()
    routes = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/api/") and r.method != "HEAD"}
    described = {(method, path) for method, path, _ in documented()}
    assert routes == described
    assert len(routes) == 10
    assert set(REQUESTS) == described  # and the test above has requests for each


def test_openapi_document_is_valid_31_and_served_as_packaged(served: Served) -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.1.") and document["info"]["version"]
    served_text = get(served, "/api/v1/openapi.json", "bob").body
    assert served_text == OPENAPI.read_bytes()
    operation_ids = [op["operationId"] for item in document["paths"].values() for m, op in item.items() if m in METHODS]
    assert len(operation_ids) == len(set(operation_ids))
    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)
    collect(document)
    assert refs and all(_resolve({"$ref": ref}, document) for ref in refs)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == {part[1:-1] for part in path.split("/") if part.startswith("{")}, (method, path)


# --- the same figures as the report ------------------------------------------------------------

def cli_report(served: Served, contract: str, period: str) -> dict[str, Any]:
    config = served.database.parent / "watchdog.toml"
    done = subprocess.run([WATCHDOG_BIN, "report", "-c", str(config), "--contract", contract, "--period", period,
                           "--format", "json"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_report_has_the_cli_figures_and_the_outage(served: Served) -> None:
    api = get(served, f"/api/v1/contracts/acme-a/report?period={PERIOD}", "alice").json()
    cli = cli_report(served, "acme-a", PERIOD)
    steady = ("up_s", "down_s", "availability_percent", "objectives", "credit_percent", "incidents")
    for ours, theirs in zip(api["services"], cli["services"], strict=True):
        assert {k: ours[k] for k in steady} == {k: theirs[k] for k in steady}
    assert {k: api[k] for k in ("contract", "period", "start", "fee", "currency", "credit", "rules_version")} == {
        k: cli[k] for k in ("contract", "period", "start", "fee", "currency", "credit", "rules_version")}
    shop = api["services"][0]
    assert shop["down_s"] == OUTAGE[1] - OUTAGE[0] and len(shop["incidents"]) == 1
    assert shop["incidents"][0]["duration_s"] == OUTAGE[1] - OUTAGE[0]
    current = period_at("month", "Europe/Amsterdam", int(time.time() * 1000)).label
    assert api["frozen_at"] is None and api["partial"] is (PERIOD == current)


def test_a_closed_period_is_frozen_once_and_read_back_as_the_cli_does(served: Served) -> None:
    first = get(served, "/api/v1/contracts/bravo-b/report?period=2025-01", "bob").json()
    assert first["frozen_at"] is not None and first["partial"] is False
    with Reader(served.database) as reader:
        frozen = reader.frozen("bravo-b", "2025-01")
    assert frozen is not None and frozen.figures == {k: v for k, v in first.items() if k != "frozen_at"}
    again = get(served, "/api/v1/contracts/bravo-b/report?period=2025-01", "bob").json()
    assert again == first
    assert cli_report(served, "bravo-b", "2025-01") == first


def test_incidents_are_the_reports_by_either_route(served: Served) -> None:
    report = get(served, f"/api/v1/contracts/acme-a/report?period={PERIOD}").json()
    nested = get(served, f"/api/v1/contracts/acme-a/services/shop/incidents?period={PERIOD}").json()
    flat = get(served, f"/api/v1/services/shop/incidents?contract=acme-a&period={PERIOD}").json()
    only = get(served, f"/api/v1/services/shop/incidents?period={PERIOD}", "alice").json()  # alice reads one "shop"
    steady = [{k: v for k, v in answer.items() if k != "end"} for answer in (nested, flat, only)]  # end: now
    assert steady[0] == steady[1] == steady[2]
    assert nested["incidents"] == report["services"][0]["incidents"] and len(nested["incidents"]) == 1
    assert (nested["contract"], nested["service"], nested["period"]) == ("acme-a", "shop", PERIOD)
    incident = nested["incidents"][0]
    assert _epoch(incident["start"]) == T0.timestamp() + OUTAGE[0] and incident["checks"] == ["web"]
    assert _epoch(incident["end"]) == T0.timestamp() + OUTAGE[1] and incident["agents"] == [AGENT]


def test_status_now_is_down_maintenance_or_unknown_with_since(served: Served) -> None:
    public = get(served, "/api/v1/contracts/public-p/status", None).json()
    shop = public["services"][0]
    assert (shop["id"], shop["state"], shop["counted"]) == ("shop", "down", True)
    assert (shop["checks_down"], shop["agents_down"]) == (["site"], [AGENT])
    assert _epoch(shop["since"]) == T0.timestamp() + RECENT_S - 20  # the first down reading
    bravo = get(served, "/api/v1/contracts/bravo-b/status", "bob").json()["services"][0]
    assert (bravo["state"], bravo["counted"]) == ("maintenance", False)
    assert _epoch(bravo["since"]) == NOW.replace(second=0).timestamp() - 3600
    acme = get(served, "/api/v1/contracts/acme-a/status", "alice").json()["services"][0]
    assert acme["state"] == "unknown" and acme["checks_down"] == []  # its last reading is two days old


def _epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def test_agents_show_manifest_version_sequence_and_own_metrics(served: Served) -> None:
    agents = {a["name"]: a for a in get(served, "/api/v1/agents").json()["agents"]}
    ams = agents[AGENT]
    assert ams["version"] == "1.2.3-ams" and ams["self_metrics"] == {"spool.depth": 7}
    assert ams["last_seq"] >= 103 and ams["silent_since"] is None and ams["last_seen"].endswith("Z")


def test_alerts_show_urls_only_masked(served: Served) -> None:
    alerts = get(served, "/api/v1/alerts?status=pending").json()["alerts"]
    assert alerts and {a["status"] for a in alerts} == {"pending"}
    assert {a["event"] for a in get(served, "/api/v1/alerts").json()["alerts"]} >= {"anchor", "outage"}
    for alert in alerts:
        assert "url_hash" not in alert and "****" in alert["url_shown"]
        text = json.dumps(alert)
        assert "HookSecret" not in text and not any(sha256_hex(url) in text for url in URLS.values())
    assert get(served, "/api/v1/alerts?status=sent").json()["alerts"] == []  # nothing reaches port 9
    assert len(get(served, "/api/v1/alerts?limit=2").json()["alerts"]) == 2


@pytest.mark.parametrize(("path", "code", "reason"), [
    ("/api/v1/contracts/acme-a/report?period=2026-13", "bad-period", "expected a month like 2026-10"),
    ("/api/v1/contracts/acme-a/report?period=last%20month", "bad-period", "expected a month like 2026-10"),
    ("/api/v1/contracts/acme-a/services/shop/incidents?period=2026-Q5", "bad-period", "a quarter like 2026-Q4"),
    ("/api/v1/contracts/acme-a/report?period=2026-W47", "bad-period", "is a week: this contract's periods are months"),
    ("/api/v1/contracts/acme-a/report?period=9999-W52", "bad-period", "is a week"),
    ("/api/v1/contracts/acme-a/report?period=0001-01", "bad-period", "expected a month like 2026-10"),
    ("/api/v1/alerts?limit=%C2%B9", "bad-limit", "from 1 to 1000"),
    ("/api/v1/contracts/nope/report", "not-found", "no contract 'nope'"),
    ("/api/v1/contracts/acme-a/services/nope/incidents", "not-found", "no service 'nope'"),
    ("/api/v1/services/shop/incidents", "ambiguous-service", "give ?contract="),
    ("/api/v1/alerts?status=queued", "bad-status", "pending, sent, dead"),
    ("/api/v1/alerts?limit=5000", "bad-limit", "from 1 to 1000"),
    ("/api/v1/alerts?limit=ten", "bad-limit", "from 1 to 1000"),
    ("/api/v1/nowhere", "not-found", "Not Found"),
])
def test_bad_input_gets_a_json_reason(served: Served, path: str, code: str, reason: str) -> None:
    reply = get(served, path)
    assert 400 <= reply.status < 500
    assert reply.json()["code"] == code and reason in reply.json()["error"]
