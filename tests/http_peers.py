"""A loopback HTTP(S) server with the endpoints the HTTP checks are tested against."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import trustme
from aiohttp import web

NOW = dt.datetime.now(dt.timezone.utc)


def peer_app() -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="status: OK\n")

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="see status")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "5")))
        return web.Response(text="late")

    async def redirect(request: web.Request) -> web.Response:
        hops = int(request.match_info["hops"])
        raise web.HTTPFound("/ok" if hops == 0 else f"/redirect/{hops - 1}")

    async def json_doc(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "db": {"connected": True, "lag": 0}, "nodes": [{"name": "a"}]})

    async def auth(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") not in ("Basic bW9uaXRvcjpzM2NyZXQ=", "Bearer t0ken"):
            return web.Response(status=401, text="who are you")
        return web.Response(text="welcome")

    async def echo(request: web.Request) -> web.Response:
        body = await request.text()
        return web.json_response({"method": request.method, "body": body,
                                  "probe": request.headers.get("X-Probe", "")})

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(6):
            await response.write(b"x" * 2**20)
        return response

    app = web.Application()
    app.router.add_get("/huge", huge)
    app.router.add_get("/ok", ok)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/redirect/{hops}", redirect)
    app.router.add_get("/json", json_doc)
    app.router.add_get("/auth", auth)
    app.router.add_route("*", "/echo", echo)
    return app


@dataclass
class Certificates:
    """A private CA and server contexts for valid, expired, soon-expiring and wrong-host certificates."""

    ca_file: str
    valid: ssl.SSLContext
    expired: ssl.SSLContext
    soon: ssl.SSLContext
    wrong_host: ssl.SSLContext


def certificates(folder: Path) -> Certificates:
    ca = trustme.CA()
    ca_file = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Certificates(
        ca_file=str(ca_file),
        valid=server_context(ca, "127.0.0.1", "localhost", not_after=NOW + dt.timedelta(days=90, hours=1)),
        expired=server_context(ca, "127.0.0.1", not_before=NOW - dt.timedelta(days=60),
                               not_after=NOW - dt.timedelta(days=1)),
        soon=server_context(ca, "127.0.0.1", not_after=NOW + dt.timedelta(days=5, hours=1)),
        wrong_host=server_context(ca, "shop.example.com", not_after=NOW + dt.timedelta(days=90)),
    )


def server_context(ca: trustme.CA, *names: str, **validity: dt.datetime) -> ssl.SSLContext:
    """A server's TLS context with a certificate of `ca` for `names`, valid as `validity` says."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names, **validity).configure_cert(context)
    return context


async def serve(app: web.Application, context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """Run `app` on a free loopback port; yield its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
