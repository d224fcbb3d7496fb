"""HTTP(S) checks against real aiohttp servers on loopback, with trustme certificates."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.resolver import ThreadedResolver

from slawatch.collectors.http import collect
from slawatch.collectors.reading import DOWN, UP
from slawatch.collectors.registry import run_check
from slawatch.collectors.vantage import Vantage
from slawatch.config import HttpCheck
from slawatch.config.values import Secret

from .conftest import free_port
from .http_peers import Certificates, certificates, peer_app, serve


def check(url: str, **settings: Any) -> HttpCheck:
    settings.setdefault("timeout", 2.0)
    settings.setdefault("id", "web")
    return HttpCheck(type="http", interval=30.0, url=url, **settings)


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    return certificates(tmp_path)


@pytest.fixture
async def plain() -> AsyncIterator[str]:
    async for url in serve(peer_app()):
        yield url


@pytest.fixture
async def tls(certs: Certificates) -> AsyncIterator[dict[str, str]]:
    urls: dict[str, str] = {}
    servers = [serve(peer_app(), getattr(certs, kind)) for kind in ("valid", "expired", "soon", "wrong_host")]
    for kind, server in zip(("valid", "expired", "soon", "wrong_host"), servers):
        urls[kind] = await server.__anext__()
    yield urls
    for server in servers:
        await server.aclose()


async def test_up_with_status_bytes_and_latency(vantage: Vantage, plain: str) -> None:
    reading = await collect(check(f"{plain}/ok", expect_body="OK"), vantage)
    assert (reading.status, reading.error) == (UP, None)
    assert reading.metrics == {"http.status": 200, "http.bytes": 11}
    assert reading.latency_ms is not None and 0 < reading.latency_ms < 2000
    assert (reading.agent, reading.check, reading.interval_s) == ("probe", "web", 30.0)


async def test_wrong_status(vantage: Vantage, plain: str) -> None:
    reading = await collect(check(f"{plain}/status/503"), vantage)
    assert (reading.status, reading.error) == (DOWN, "HTTP 503, expected 200-299")
    assert reading.metrics["http.status"] == 503


async def test_status_list_and_ranges(vantage: Vantage, plain: str) -> None:
    accepting = check(f"{plain}/status/404", expect_status=((200, 200), (400, 404)))
    assert (await collect(accepting, vantage)).status == UP
    refusing = check(f"{plain}/status/405", expect_status=((200, 200), (400, 404)))
    assert (await collect(refusing, vantage)).error == "HTTP 405, expected 200, 400-404"


async def test_body_mismatch(vantage: Vantage, plain: str) -> None:
    reading = await collect(check(f"{plain}/ok", expect_body="^healthy"), vantage)
    assert (reading.status, reading.error) == (DOWN, 'body does not match "^healthy" (11 bytes received)')


async def test_json_fields(vantage: Vantage, plain: str) -> None:
    good = check(f"{plain}/json", expect_json=(("status", "ok"), ("db.connected", True), ("nodes.0.name", "a")))
    assert (await collect(good, vantage)).status == UP
    wrong = await collect(check(f"{plain}/json", expect_json=(("db.lag", False),)), vantage)
    assert wrong.error == 'JSON field "db.lag" is 0, expected false'
    missing = await collect(check(f"{plain}/json", expect_json=(("db.replica", "up"),)), vantage)
    assert missing.error == 'JSON field "db.replica" is missing, expected "up"'
    not_json = await collect(check(f"{plain}/ok", expect_json=(("status", "ok"),)), vantage)
    assert not_json.status == DOWN and not_json.error.startswith("body is not JSON")  # type: ignore[union-attr]


async def test_connection_refused(vantage: Vantage) -> None:
    port = free_port()
    reading = await collect(check(f"http://127.0.0.1:{port}/"), vantage)
    assert (reading.status, reading.error) == (DOWN, f"connection refused by 127.0.0.1:{port}")
    assert reading.latency_ms is None


async def test_timeout(vantage: Vantage, plain: str) -> None:
    reading = await collect(check(f"{plain}/slow?s=3", timeout=0.5), vantage)
    assert (reading.status, reading.error) == (DOWN, "timeout after 0.5s")


async def test_redirects_followed_limited_or_not(vantage: Vantage, plain: str) -> None:
    assert (await collect(check(f"{plain}/redirect/2", expect_body="OK"), vantage)).status == UP
    limited = await collect(check(f"{plain}/redirect/5", max_redirects=3), vantage)
    assert (limited.status, limited.error) == (DOWN, "too many redirects (more than 3)")
    kept = await collect(check(f"{plain}/redirect/0", follow_redirects=False), vantage)
    assert (kept.status, kept.error) == (DOWN, "HTTP 302, expected 200-299")
    allowed = check(f"{plain}/redirect/0", follow_redirects=False, expect_status=((300, 399),))
    assert (await collect(allowed, vantage)).status == UP


async def test_method_headers_and_body(vantage: Vantage, plain: str) -> None:
    posted = check(f"{plain}/echo", method="POST", body='{"ping": true}', headers=(("X-Probe", Secret("slawatch")),),
                   expect_json=(("method", "POST"), ("body", '{"ping": true}'), ("probe", "slawatch")))
    assert (await collect(posted, vantage)).status == UP


async def test_basic_and_bearer_auth(vantage: Vantage, plain: str) -> None:
    basic = check(f"{plain}/auth", username="monitor", password=Secret("s3cret"))
    assert (await collect(basic, vantage)).status == UP
    bearer = check(f"{plain}/auth", token=Secret("t0ken"))
    assert (await collect(bearer, vantage)).status == UP
    wrong = await collect(check(f"{plain}/auth", token=Secret("wrong-token-value")), vantage)
    assert wrong.error == "HTTP 401, expected 200-299"
    assert "wrong-token-value" not in repr(wrong)


async def test_tls_valid_reports_days_left(vantage: Vantage, tls: dict[str, str], certs: Certificates) -> None:
    reading = await collect(check(f"{tls['valid']}/ok", ca_file=certs.ca_file, tls_min_days=14), vantage)
    assert (reading.status, reading.error) == (UP, None)
    assert reading.metrics["tls.days_left"] == 90


async def test_tls_expiring_soon_is_down_with_days(vantage: Vantage, tls: dict[str, str], certs: Certificates) -> None:
    reading = await collect(check(f"{tls['soon']}/ok", ca_file=certs.ca_file, tls_min_days=14), vantage)
    assert (reading.status, reading.error) == (DOWN, "certificate expires in 5 days, fewer than tls_min_days = 14")
    assert reading.metrics["tls.days_left"] == 5 and reading.metrics["tls.min_days"] == 14
    assert reading.metrics["http.status"] == 200


@pytest.mark.parametrize("kind,error", [
    ("expired", "TLS certificate error: certificate has expired"),
    ("wrong_host", "TLS certificate error: certificate does not match the IP address"),
])
async def test_tls_errors(vantage: Vantage, tls: dict[str, str], certs: Certificates, kind: str, error: str) -> None:
    reading = await collect(check(f"{tls[kind]}/ok", ca_file=certs.ca_file), vantage)
    assert (reading.status, reading.error) == (DOWN, error)


async def test_tls_untrusted_without_the_ca(vantage: Vantage, tls: dict[str, str]) -> None:
    reading = await collect(check(f"{tls['valid']}/ok"), vantage)
    assert reading.status == DOWN
    assert reading.error in ("TLS certificate error: certificate issuer is not trusted (unknown CA)",
                             "TLS certificate error: certificate chain cannot be verified (unknown CA)")


async def test_tls_verification_can_be_turned_off_and_still_reports_days(vantage: Vantage, tls: dict[str, str]) -> None:
    reading = await collect(check(f"{tls['expired']}/ok", verify_tls=False), vantage)
    assert reading.status == UP
    assert reading.metrics["tls.days_left"] == -1


class NoDns(ThreadedResolver):
    """There is no DNS server here; names under .invalid fail the way getaddrinfo fails them."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> Any:
        if host.endswith(".invalid"):
            raise OSError(socket.EAI_NONAME, "Name or service not known")
        return await super().resolve(host, port, family)


async def test_dns_failure() -> None:
    async with Vantage("probe", resolver=NoDns()) as vantage:
        reading = await collect(check("http://shop.invalid/health"), vantage)
    assert (reading.status, reading.error) == (DOWN, "DNS lookup failed for shop.invalid: Name or service not known")


async def test_run_check_bounds_any_collector(vantage: Vantage, plain: str) -> None:
    reading = await run_check(check(f"{plain}/ok"), vantage)
    assert reading.status == UP


async def test_one_session_is_shared(vantage: Vantage, plain: str) -> None:
    session = vantage.http()
    for _ in range(3):
        await collect(check(f"{plain}/ok"), vantage)
    assert vantage.http() is session


async def test_tls_certificate_for_another_host_name(vantage: Vantage, tls: dict[str, str], certs: Certificates) -> None:
    url = tls["wrong_host"].replace("127.0.0.1", "localhost")  # /etc/hosts: no DNS server involved
    reading = await collect(check(f"{url}/ok", ca_file=certs.ca_file), vantage)
    assert (reading.status, reading.error) == (DOWN, "TLS certificate error: certificate does not match the host name")


async def test_a_huge_body_is_cut_off_not_swallowed(vantage: Vantage, plain: str) -> None:
    reading = await collect(check(f"{plain}/huge"), vantage)
    assert (reading.status, reading.error) == (DOWN, "response body larger than 4 MiB; the check reads no more")
    assert reading.metrics["http.status"] == 200


async def test_tls_contexts_are_shared_between_checks_with_the_same_settings(
        vantage: Vantage, tls: dict[str, str], certs: Certificates) -> None:
    for name in ("a", "b", "c"):
        web = HttpCheck(id=name, type="http", interval=30.0, timeout=2.0, url=f"{tls['valid']}/ok", ca_file=certs.ca_file)
        assert (await collect(web, vantage)).status == UP
    assert len([k for k in vantage.shared if k[0] == "http-tls"]) == 1


async def test_a_check_cancelled_while_the_tls_context_is_built_does_not_stop_later_runs(
        vantage: Vantage, tls: dict[str, str], certs: Certificates) -> None:
    """A reload cancels running checks; one cancelled while it waited for the shared TLS context must
    not cancel the build for the others, nor leave a cancelled one for every later run."""
    web = check(f"{tls['valid']}/ok", ca_file=certs.ca_file)
    first = asyncio.ensure_future(collect(web, vantage))
    await asyncio.sleep(0)  # the build has started in its thread
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    other = asyncio.ensure_future(collect(check(f"{tls['valid']}/ok", id="other", ca_file=certs.ca_file), vantage))
    assert ((await collect(web, vantage)).status, (await other).status) == (UP, UP)


async def test_latency_does_not_count_a_wait_for_the_agents_own_connections(vantage: Vantage, plain: str) -> None:
    """30 checks of one slow server at once (within the scheduler's concurrency): each is timed from
    its own request, none waits for a connection another check holds."""
    readings = await asyncio.gather(*(collect(check(f"{plain}/slow?s=1", id=f"w{i}", timeout=1.8), vantage)
                                      for i in range(30)))
    assert [r.status for r in readings] == [UP] * 30
    assert max(r.latency_ms or 0 for r in readings) < 1700


def _closing_app(redirect_to: str | None = None) -> web.Application:
    """Answers /ok and closes the connection (no keep-alive); /away redirects to `redirect_to`."""
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="status: OK\n", headers={"Connection": "close"})

    async def away(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{redirect_to}/ok", headers={"Connection": "close"})

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/away", away)
    return app


async def test_a_redirect_does_not_hide_the_certificate_of_the_url_checked(vantage: Vantage, certs: Certificates) -> None:
    """example.com (expiring) redirects to www.example.com (fine): the check is down for the first."""
    fine = serve(_closing_app(), certs.valid)
    fine_url = await fine.__anext__()
    soon = serve(_closing_app(fine_url), certs.soon)
    soon_url = await soon.__anext__()
    try:
        reading = await collect(check(f"{soon_url}/away", ca_file=certs.ca_file, tls_min_days=14), vantage)
    finally:
        await soon.aclose()
        await fine.aclose()
    assert reading.metrics["http.status"] == 200
    assert (reading.status, reading.metrics["tls.days_left"]) == (DOWN, 5)


async def test_each_check_judges_its_own_servers_certificate(vantage: Vantage, certs: Certificates) -> None:
    """Two servers of one host name on two ports, closing each connection: checks of both at once,
    with one shared TLS context, each see their own server's certificate."""
    fine, soon = serve(_closing_app(), certs.valid), serve(_closing_app(), certs.soon)
    fine_url, soon_url = await fine.__anext__(), await soon.__anext__()
    try:
        readings = await asyncio.gather(*(collect(check(f"{url}/ok", id=f"w{i}", ca_file=certs.ca_file), vantage)
                                          for i in range(10) for url in (fine_url, soon_url)))
    finally:
        await soon.aclose()
        await fine.aclose()
    assert [r.metrics["tls.days_left"] for r in readings] == [90, 5] * 10
