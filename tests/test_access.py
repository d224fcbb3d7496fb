"""Who may read what, over real HTTP on loopback: every API and page route for anonymous, two
viewers and an admin (by basic auth and by session cookie); no answer holds a secret; the login form
with CSRF, logout, cookie attributes, the session key file; /metrics; HTTPS with trustme."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import re
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from slawatch.config import ConfigError, load_watchdog
from slawatch.watchdog import auth, passwords
from slawatch.watchdog.server import Settings, Watchdog

from .access_peers import (
    BRAVO_AGENT, HASHES, PASSWORDS, PERIOD, Browser, basic, form_fields, secrets_of, seeded, wait_for,
    write_access_config,
)
from .conftest import ROOT, free_port
from .watchdog_peers import WATCHDOG_BIN, Served, serving

ROLES = ("anonymous", "alice", "bob", "root")
LOGIN = "login"  # 401 under /api/, else a redirect to /login
# path, then the status for anonymous, alice (reads acme-a), bob (reads bravo-b), root (admin).
# public-p is `public = true`: its status is anyone's, its figures only the admin's.
MATRIX: list[tuple[str, Any, int, int, int]] = [
    ("/api/v1/contracts", LOGIN, 200, 200, 200),
    (f"/api/v1/contracts/acme-a/report?period={PERIOD}", LOGIN, 200, 404, 200),
    ("/api/v1/contracts/bravo-b/report", LOGIN, 404, 200, 200),
    ("/api/v1/contracts/public-p/report", LOGIN, 404, 404, 200),
    ("/api/v1/contracts/no-such/report", LOGIN, 404, 404, 404),
    ("/api/v1/contracts/acme-a/report?period=2026-13", LOGIN, 400, 404, 400),
    ("/api/v1/contracts/acme-a/status", LOGIN, 200, 404, 200),
    ("/api/v1/contracts/bravo-b/status", LOGIN, 404, 200, 200),
    ("/api/v1/contracts/public-p/status", 200, 200, 200, 200),
    ("/api/v1/contracts/no-such/status", LOGIN, 404, 404, 404),
    (f"/api/v1/contracts/acme-a/services/shop/incidents?period={PERIOD}", LOGIN, 200, 404, 200),
    ("/api/v1/contracts/bravo-b/services/mail/incidents", LOGIN, 404, 200, 200),
    ("/api/v1/contracts/public-p/services/shop/incidents", LOGIN, 404, 404, 200),
    ("/api/v1/contracts/acme-a/services/no-such/incidents", LOGIN, 404, 404, 404),
    (f"/api/v1/services/shop/incidents?contract=acme-a&period={PERIOD}", LOGIN, 200, 404, 200),
    ("/api/v1/services/shop/incidents", LOGIN, 200, 404, 400),  # root reads two contracts with a "shop"
    ("/api/v1/services/mail/incidents", LOGIN, 404, 200, 200),
    ("/api/v1/services/mail/incidents?contract=bravo-b", LOGIN, 404, 200, 200),
    ("/api/v1/agents", LOGIN, 200, 200, 200),
    ("/api/v1/alerts", LOGIN, 403, 403, 200),
    ("/api/v1/alerts?status=dead", LOGIN, 403, 403, 200),
    ("/api/v1/alerts?status=bogus", LOGIN, 403, 403, 400),
    ("/api/v1/openapi.json", LOGIN, 200, 200, 200),
    ("/api/v1/no-such-route", LOGIN, 404, 404, 404),
    ("/", 200, 200, 200, 200),  # the overview shows anonymous readers the public contracts
    ("/contracts/acme-a", LOGIN, 200, 404, 200),
    ("/contracts/bravo-b", LOGIN, 404, 200, 200),
    ("/contracts/public-p", 200, 200, 200, 200),
    ("/contracts/no-such", LOGIN, 404, 404, 404),
    ("/contracts/acme-a/services/shop", LOGIN, 200, 404, 200),
    ("/contracts/bravo-b/services/mail", LOGIN, 404, 200, 200),
    ("/contracts/public-p/services/shop", LOGIN, 404, 404, 200),
    (f"/contracts/acme-a/report?period={PERIOD}", LOGIN, 200, 404, 200),
    ("/contracts/bravo-b/report", LOGIN, 404, 200, 200),
    ("/contracts/public-p/report", LOGIN, 404, 404, 200),
    ("/agents", LOGIN, 200, 200, 200),
    ("/alerts", LOGIN, 404, 404, 200),
    ("/login", 200, 200, 200, 200),
    ("/healthz", 200, 200, 200, 200),
    ("/metrics", 200, 200, 200, 200),  # loopback clients; see test_metrics_from_elsewhere_needs_an_admin
]
# For the host's operators: /metrics answers loopback clients only (else admins); /healthz is open
# and names silent agents. Neither shows a secret.
OPERATOR_ROUTES = ("/metrics", "/healthz")
# What each reader must never see (besides the secrets no one sees), unless it asked for it by name.
MONEY_OF_PUBLIC = [r"(?<![\w-])CHF(?![\w-])", r"(?<![\d:.])7[ ,.']?777[.,]5", r"(?<![\d:.])777[.,]75"]
FORBIDDEN = {
    "anonymous": [r"acme-a", r"bravo-b", "Alpha Client Corp", "Bravo Client Corp", BRAVO_AGENT, *MONEY_OF_PUBLIC],
    "alice": [r"bravo-b", "Bravo Client Corp", BRAVO_AGENT, "9\\.9\\.9-bravo", *MONEY_OF_PUBLIC],
    "bob": [r"acme-a", "Alpha Client Corp", *MONEY_OF_PUBLIC],
    "root": [],
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with seeded(tmp_path_factory.mktemp("access")) as served:
        wait_for(lambda: Browser(served.client.base).get("/api/v1/alerts", headers=basic("root")).json()["alerts"],
                 20, "alerts in the outbox")
        yield served


@pytest.fixture(scope="module")
def sessions(served: Served) -> dict[str, Browser]:
    """A browser logged in through the form for each user."""
    browsers = {}
    for name in ("alice", "bob", "root"):
        browser = Browser(served.client.base)
        assert browser.login(name).status == 303
        browsers[name] = browser
    return browsers


def ask(served: Served, sessions: dict[str, Browser], role: str, how: str, path: str) -> Any:
    if role == "anonymous":
        return Browser(served.client.base).get(path)
    if how == "basic":
        return Browser(served.client.base).get(path, headers=basic(role))
    return Browser(served.client.base, dict(sessions[role].cookies)).get(path, keep=False)


def expected(path: str, status: Any) -> int:
    if status == LOGIN:
        return 401 if path.startswith("/api/") else 302
    return int(status)


@pytest.mark.parametrize("how", ["basic", "session"])
@pytest.mark.parametrize("row", MATRIX, ids=[row[0] for row in MATRIX])
def test_route_answers_each_role_as_the_matrix_says(served: Served, sessions: dict[str, Browser], how: str,
                                                     row: tuple[Any, ...]) -> None:
    path, *statuses = row
    got = {role: ask(served, sessions, role, how, path) for role in ROLES}
    assert {role: reply.status for role, reply in got.items()} == {
        role: expected(path, status) for role, status in zip(ROLES, statuses)}
    anonymous = got["anonymous"]
    if anonymous.status == 302:
        assert anonymous.headers["Location"].startswith("/login?next=/")
    if anonymous.status == 401:
        assert anonymous.headers["WWW-Authenticate"].startswith("Basic realm=")
    for role, reply in got.items():
        if path.startswith("/api/"):
            assert reply.headers["Content-Type"].startswith("application/json"), (role, reply.text[:200])
            if reply.status >= 400:
                assert set(reply.json()) == {"error", "code"} and reply.json()["error"], (role, reply.text)


@pytest.mark.parametrize("role", ROLES)
def test_no_answer_holds_a_secret_or_what_the_reader_may_not_see(served: Served, sessions: dict[str, Browser],
                                                                  role: str) -> None:
    secrets = secrets_of(served)
    seen = 0
    for path, *_ in MATRIX:
        for how in ("basic", "session"):
            reply = ask(served, sessions, role, how, path)
            text = reply.text + "\n".join(f"{k}: {v}" for k, v in reply.headers.items())
            for what, secret in secrets.items():
                assert secret not in text, f"{role} GET {path}: the answer holds the {what}"
            for pattern in FORBIDDEN[role]:
                if not re.search(pattern, path) and path not in OPERATOR_ROUTES:
                    assert not re.search(pattern, reply.text), f"{role} GET {path} shows {pattern!r}"
            seen += len(reply.body)
    assert seen > 10_000  # real pages and documents were looked at, not just empty answers


def test_what_readers_must_not_see_is_there_for_the_admin(served: Served) -> None:
    """The leak test's patterns do match how these things show (else it would prove nothing)."""
    texts = [Browser(served.client.base).get(path, headers=basic("root")).text for path, *_ in MATRIX]
    for pattern in {p for patterns in FORBIDDEN.values() for p in patterns}:
        assert any(re.search(pattern, text) for text in texts), pattern


def test_viewers_see_their_contract_and_the_public_one_without_its_money(served: Served) -> None:
    alice = Browser(served.client.base).get("/api/v1/contracts", headers=basic("alice")).json()["contracts"]
    assert [(c["id"], c["access"]) for c in alice] == [("acme-a", "full"), ("public-p", "status")]
    assert (alice[0]["currency"], alice[0]["fee"]) == ("EUR", 1000.0)
    assert not {"currency", "fee", "credit"} & set(alice[1]) and "credit" not in alice[1]["services"][0]
    root = Browser(served.client.base).get("/api/v1/contracts", headers=basic("root")).json()["contracts"]
    assert [(c["id"], c["access"], c.get("fee")) for c in root] == [
        ("acme-a", "full", 1000.0), ("bravo-b", "full", 1000.0), ("public-p", "full", 7777.5)]


def test_anonymous_status_of_a_public_contract_has_no_money(served: Served) -> None:
    reply = Browser(served.client.base).get("/api/v1/contracts/public-p/status")
    assert reply.status == 200

    def keys(value: Any) -> set[str]:
        if isinstance(value, dict):
            return set(value) | set().union(*(keys(v) for v in value.values()))
        if isinstance(value, list):
            return set().union(*(keys(v) for v in value))
        return set()
    assert keys(reply.json()) & {"fee", "credit", "credit_percent", "currency", "budget"} == set()
    assert reply.json()["services"][0]["state"] == "down"


def test_agents_show_viewers_only_their_checks_and_never_keys(served: Served) -> None:
    alice = Browser(served.client.base).get("/api/v1/agents", headers=basic("alice")).json()["agents"]
    assert [(a["name"], a["checks"]) for a in alice] == [("ams-probe", ["web"])]
    bob = Browser(served.client.base).get("/api/v1/agents", headers=basic("bob")).json()["agents"]
    assert [(a["name"], a["checks"]) for a in bob] == [("ams-probe", ["mail"]), (BRAVO_AGENT, ["mail"])]
    root = Browser(served.client.base).get("/api/v1/agents", headers=basic("root")).json()["agents"]
    assert {a["name"]: a["checks"] for a in root} == {"ams-probe": ["web", "mail", "site"], BRAVO_AGENT: ["mail"]}
    for agent in root:
        assert not {k for k in agent if "key" in k.lower()}


# --- basic auth --------------------------------------------------------------------------------

def test_wrong_basic_credentials_are_refused_and_logged_without_the_password(
        served: Served, caplog: pytest.LogCaptureFixture) -> None:
    browser = Browser(served.client.base)
    with caplog.at_level(logging.WARNING, logger="slawatch.watchdog.auth"):
        wrong = browser.get("/api/v1/contracts", headers=basic("alice", "Not-Her-Password-42"))
        unknown = browser.get("/api/v1/contracts", headers=basic("mallory", "Mallory-Guess-43"))
        page = browser.get("/agents", headers=basic("bob", "Not-His-Password-44"))
        malformed = browser.get("/api/v1/contracts", headers={"Authorization": "Basic not base64!"})
    for reply in (wrong, unknown, page, malformed):
        assert reply.status == 401 and reply.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert wrong.json()["code"] == "login-required"
    failed = [r.getMessage() for r in caplog.records if "event=login-failed" in r.getMessage()]
    assert len(failed) == 3
    assert "user='alice'" in failed[0] and "known=True" in failed[0]
    assert "user='mallory'" in failed[1] and "known=False" in failed[1]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for password in ("Not-Her-Password-42", "Mallory-Guess-43", "Not-His-Password-44"):
        assert password not in logged


def test_verified_passwords_are_cached_but_every_wrong_one_costs_scrypt(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = passwords.verify_password

    def counting(password: str, stored: str) -> bool:
        calls.append(stored)
        return real(password, stored)
    monkeypatch.setattr(passwords, "verify_password", counting)
    with serving(write_access_config(tmp_path)) as served:
        browser = Browser(served.client.base)
        assert browser.get("/api/v1/agents", headers=basic("carol")).status == 200
        assert browser.get("/api/v1/agents", headers=basic("carol")).status == 200
        assert calls == [HASHES["carol"]]  # the second request did not run scrypt
        assert browser.get("/api/v1/agents", headers=basic("carol", "wrong-password")).status == 401
        assert browser.get("/api/v1/agents", headers=basic("nobody", "x")).status == 401
        assert len(calls) == 3  # a wrong password and an unknown user each ran scrypt
        assert browser.get("/api/v1/agents", headers=basic("carol")).status == 200
        assert len(calls) == 3  # the cached success still holds


# --- the login form, sessions, CSRF ------------------------------------------------------------

def test_login_form_sets_a_signed_http_only_strict_session_cookie(served: Served) -> None:
    browser = Browser(served.client.base)
    form = browser.get("/login?next=/contracts/acme-a")
    assert form.status == 200 and form.headers["Cache-Control"] == "no-store"
    fields = form_fields(form.text)
    assert fields["next"] == "/contracts/acme-a" and len(fields["csrf"]) >= 32
    csrf_cookie = form.cookies()["slawatch_csrf"]
    assert "HttpOnly" in csrf_cookie and "SameSite=Strict" in csrf_cookie and "Secure" not in csrf_cookie
    reply = browser.post("/login", {"csrf": fields["csrf"], "name": "alice", "password": PASSWORDS["alice"],
                                    "next": fields["next"]})
    assert reply.status == 303 and reply.headers["Location"] == "/contracts/acme-a"
    session = reply.cookies()["slawatch_session"]
    assert "HttpOnly" in session and "SameSite=Strict" in session and "Path=/" in session
    assert "Max-Age=43200" in session and "Secure" not in session  # plain HTTP listener
    assert PASSWORDS["alice"] not in session and HASHES["alice"] not in session
    assert [c["id"] for c in browser.get("/api/v1/contracts").json()["contracts"]] == ["acme-a", "public-p"]


def test_login_refuses_a_missing_or_wrong_csrf_token(served: Served) -> None:
    browser = Browser(served.client.base)
    token = form_fields(browser.get("/login").text)["csrf"]
    credentials = {"name": "alice", "password": PASSWORDS["alice"], "next": "/"}
    assert browser.post("/login", credentials).status == 403
    assert browser.post("/login", credentials | {"csrf": token[:-2] + "xx"}).status == 403
    other = Browser(served.client.base)  # another browser's token does not fit this browser's cookie
    other_token = form_fields(other.get("/login").text)["csrf"]
    assert browser.post("/login", credentials | {"csrf": other_token}).status == 403
    cookieless = Browser(served.client.base)
    assert cookieless.post("/login", credentials | {"csrf": token}).status == 403
    for refused in (browser, cookieless):
        assert "slawatch_session" not in refused.cookies
    assert browser.post("/login", credentials | {"csrf": token}).status == 303


def test_wrong_password_on_the_form_sets_no_session(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    browser = Browser(served.client.base)
    with caplog.at_level(logging.WARNING, logger="slawatch.watchdog.auth"):
        reply = browser.login("bob", "Guessing-Bobs-Password")
    assert reply.status == 401 and "Wrong name or password" in reply.text
    assert "slawatch_session" not in reply.cookies()
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert "event=login-failed via=form user='bob'" in messages and "Guessing-Bobs-Password" not in messages


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "evil"])
def test_login_never_redirects_off_the_site(served: Served, target: str) -> None:
    reply = Browser(served.client.base).login("alice", next_path=target)
    assert reply.status == 303 and reply.headers["Location"] == "/"


def test_logout_needs_the_token_and_ends_the_session(served: Served) -> None:
    browser = Browser(served.client.base)
    assert browser.login("carol").status == 303
    stolen = dict(browser.cookies)
    assert browser.get("/api/v1/agents").status == 200
    assert browser.post("/logout", {}).status == 403
    assert browser.post("/logout", {"csrf": "forged"}).status == 403
    assert browser.get("/api/v1/agents").status == 200  # a refused logout changed nothing
    token = form_fields(browser.get("/login").text)["csrf"]  # as base.html's logout form carries it
    reply = browser.post("/logout", {"csrf": token})
    assert reply.status == 303 and reply.headers["Location"] == "/login"
    assert "Max-Age=0" in reply.cookies()["slawatch_session"]
    assert browser.get("/api/v1/agents").status == 401
    assert Browser(served.client.base, stolen).get("/api/v1/agents").status == 401  # a copied cookie died too
    assert browser.login("carol").status == 303 and browser.get("/api/v1/agents").status == 200


def test_every_form_post_needs_the_token(served: Served, sessions: dict[str, Browser]) -> None:
    root = Browser(served.client.base, dict(sessions["root"].cookies))
    assert root.post("/alerts/1/retry", {}).status == 403
    assert root.post("/alerts/1/retry", {"csrf": "forged"}).status == 403
    assert Browser(served.client.base).post("/alerts/1/retry", {}, headers=basic("root")).status == 403
    token = form_fields(root.get("/login").text)["csrf"]
    assert root.post("/alerts/1/retry", {"csrf": token}).status == 303
    for bad in ("abc", "99999999999999999999999"):  # no such alert: a 404, not a 500
        assert root.post(f"/alerts/{bad}/retry", {"csrf": token}).status == 404
    assert Browser(served.client.base).get("/contracts/public-p?period=9999-W52").status == 400
    # a session's token is the session user's: alice's token is no good with root's cookie
    alice = Browser(served.client.base, dict(sessions["alice"].cookies))
    alice_token = form_fields(alice.get("/login").text)["csrf"]
    assert root.post("/alerts/1/retry", {"csrf": alice_token}).status == 403


def _forge(served: Served, claims: dict[str, Any]) -> str:
    key = Path(f"{served.database}.session-key").read_bytes()
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    mac = hmac.new(key, b"session\0" + body.encode(), hashlib.sha256).digest()
    return f"{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_session_cookie_is_checked_for_signature_expiry_and_password(served: Served, sessions: dict[str, Browser]) -> None:
    cookie = sessions["alice"].cookies["slawatch_session"]
    body, mac = cookie.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert claims["u"] == "alice" and claims["x"] - time.time() == pytest.approx(12 * 3600, abs=600)

    def status(value: str) -> int:
        return Browser(served.client.base, {"slawatch_session": value}).get("/api/v1/contracts").status
    assert status(cookie) == 200
    assert status(_forge(served, claims)) == 200  # the test forges correctly ...
    as_root = base64.urlsafe_b64encode(json.dumps(claims | {"u": "root"}).encode()).rstrip(b"=").decode()
    assert status(f"{as_root}.{mac}") == 401  # ... and a changed claim breaks the signature
    assert status(cookie[:-3] + ("AAA" if not cookie.endswith("AAA") else "BBB")) == 401
    assert status(_forge(served, claims | {"x": int(time.time()) - 1})) == 401  # expired
    assert status(_forge(served, claims | {"h": "another-password-hash"})) == 401
    assert status(_forge(served, claims | {"u": "mallory"})) == 401
    assert status("garbage") == 401 and status("a.b.c") == 401


def test_a_new_password_ends_the_old_sessions(tmp_path: Path) -> None:
    config = write_access_config(tmp_path)
    with serving(config) as served:
        browser = Browser(served.client.base)
        assert browser.login("alice").status == 303 and browser.get("/api/v1/agents").status == 200
        write_access_config(tmp_path, hashes=HASHES | {"alice": passwords.hash_password("a-new-one")})
        served.loop.call_soon_threadsafe(served.watchdog.reload)
        wait_for(lambda: browser.get("/api/v1/agents", keep=False).status == 401, 10, "the old session to end")
        assert Browser(served.client.base).login("alice", "a-new-one").status == 303


def test_session_key_file_is_private_and_survives_restarts(tmp_path: Path) -> None:
    config = write_access_config(tmp_path)
    key_file = tmp_path / "watchdog.db.session-key"
    with serving(config) as served:
        assert key_file.stat().st_mode & 0o777 == 0o600 and len(key_file.read_bytes()) == 32
        browser = Browser(served.client.base)
        assert browser.login("alice").status == 303
    key = key_file.read_bytes()
    key_file.chmod(0o644)
    with serving(config) as served:
        assert key_file.read_bytes() == key and key_file.stat().st_mode & 0o777 == 0o600
        assert Browser(served.client.base, dict(browser.cookies)).get("/api/v1/agents").status == 200
    key_file.write_bytes(b"short")
    with pytest.raises(auth.SessionKeyError, match="expected 32 bytes"):
        with serving(config):
            pass


# --- /metrics ----------------------------------------------------------------------------------

async def test_metrics_from_elsewhere_needs_an_admin(tmp_path: Path) -> None:
    config = load_watchdog(write_access_config(tmp_path))
    app = Watchdog(str(config.file), Settings.of(config)).app()
    app[auth.ACCESS].key = bytes(32)

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="metrics")

    async def scrape(remote: str, headers: dict[str, str]) -> int:
        request = make_mocked_request("GET", "/metrics", headers=headers, app=app).clone(remote=remote)
        try:
            return (await auth.middleware(request, handler)).status
        except web.HTTPException as refused:
            return refused.status
    assert await scrape("127.0.0.1", {}) == 200
    assert await scrape("::1", {}) == 200
    assert await scrape("192.0.2.7", {}) == 401
    assert await scrape("192.0.2.7", basic("alice")) == 403
    assert await scrape("192.0.2.7", basic("root")) == 200


# --- HTTPS -------------------------------------------------------------------------------------

def test_tls_settings_must_come_in_pairs_that_load(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "both.pem"))
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    only_cert = write_access_config(tmp_path, settings='tls_cert_file = "both.pem"')
    with pytest.raises(ConfigError, match='"tls_cert_file" needs "tls_key_file"'):
        load_watchdog(only_cert)
    garbage = write_access_config(tmp_path, settings='tls_cert_file = "garbage.pem"\ntls_key_file = "both.pem"')
    with pytest.raises(ConfigError, match="watchdog.tls_cert_file.*cannot serve TLS"):
        load_watchdog(garbage)
    good = load_watchdog(write_access_config(tmp_path, settings='tls_cert_file = "both.pem"\n'
                                                                'tls_key_file = "both.pem"'))
    assert good.tls_cert_file == str(tmp_path / "both.pem") and good.tls_key_file == good.tls_cert_file


def test_daemon_serves_https_with_secure_cookies(tmp_path: Path) -> None:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    server.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    port = free_port()
    config = write_access_config(tmp_path, port=port,
                                 settings='tls_cert_file = "cert.pem"\ntls_key_file = "key.pem"')
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    browser = Browser(f"https://127.0.0.1:{port}", context=trusted)
    log = (tmp_path / "daemon.log").open("wb")
    process = subprocess.Popen([WATCHDOG_BIN, "run", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT,
                               cwd=ROOT)
    try:
        def healthy() -> bool:
            assert process.poll() is None, (tmp_path / "daemon.log").read_text()
            try:
                return browser.get("/healthz").status == 200
            except OSError:
                return False
        wait_for(healthy, 20, "the HTTPS listener")
        assert browser.get("/api/v1/contracts", headers=basic("alice")).status == 200
        reply = browser.login("alice", next_path="/agents")
        assert reply.status == 303
        for name in ("slawatch_session", "slawatch_csrf"):
            attributes = [a.strip() for a in reply.cookies()[name].split(";")]
            assert {"Secure", "HttpOnly", "SameSite=Strict"} <= set(attributes)
        assert [c["id"] for c in browser.get("/api/v1/contracts").json()["contracts"]] == ["acme-a", "public-p"]
        with pytest.raises(ssl.SSLCertVerificationError):
            Browser(f"https://127.0.0.1:{port}", context=ssl.create_default_context()).get("/healthz")
        with pytest.raises((OSError, http.client.HTTPException)):
            Browser(f"http://127.0.0.1:{port}").get("/healthz")  # no plain HTTP on the TLS port
    finally:
        process.terminate()
        assert process.wait(15) == 0
        log.close()


# --- agents a viewer sees, on every page alike ------------------------------------------------

PAPA = "papa-probe"  # an agent of public-p's "site" check only: none of alice's


def test_the_overview_lists_no_silent_agent_the_viewer_may_not_see(tmp_path: Path) -> None:
    """README: "Agents show to a viewer only when they report one of its checks". The overview's
    silent agents followed another rule than /agents and the API: a public contract's checks counted
    as the viewer's."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from slawatch.agent.protocol import MANIFEST_PATH
    from slawatch.config.keys import public_key_line

    from .access_peers import _manifest
    from .watchdog_peers import Client

    key = Ed25519PrivateKey.generate()
    with seeded(tmp_path, agents={PAPA: public_key_line(key)}) as served:
        manifest = _manifest(PAPA, "1.0", ["site"]).replace(b'"interval_s":3600', b'"interval_s":1')
        assert Client(served.client.base, key, PAPA).send(body=manifest, path=MANIFEST_PATH).status == 200
        admin = Browser(served.client.base)
        wait_for(lambda: any(a["name"] == PAPA and a["silent_since"]
                             for a in admin.get("/api/v1/agents", headers=basic("root")).json()["agents"]),
                 30, "the agent to fall silent")
        assert PAPA in admin.get("/", headers=basic("root")).text  # the admin sees it, silent
        alice = Browser(served.client.base)
        for path in ("/api/v1/agents", "/agents", "/"):
            assert PAPA not in alice.get(path, headers=basic("alice")).text, path


def test_an_agent_without_a_manifest_shows_to_admins_only() -> None:
    from slawatch.watchdog.pages import visible_agents
    from slawatch.watchdog.store import AgentState

    relay = AgentState("bravo-relay", 0, 1, 1, 1, None, None, None, 5)  # silent, no manifest
    admin = auth.Viewer("root", True, frozenset())
    alice = auth.Viewer("alice", False, frozenset({"acme-a"}))
    assert visible_agents(admin, [], [relay]) == [relay]
    assert visible_agents(alice, [], [relay]) == []
