"""HTTP(S) checks: one request through the agent's shared session, judged by its expectations."""

from __future__ import annotations

import asyncio
import base64
import contextvars
import json
import re
import ssl
import time
from typing import Any

import aiohttp

from slawatch.config import HttpCheck

from .reading import DOWN, UP, Metrics, Reading, utc_now
from .vantage import Vantage, elapsed_ms

# OpenSSL verify codes worth naming: what a user must fix differs for each.
_VERIFY_REASONS = {
    10: "certificate has expired",
    9: "certificate is not yet valid",
    62: "certificate does not match the host name",
    64: "certificate does not match the IP address",
    18: "self-signed certificate (not trusted)",
    19: "self-signed certificate in the chain (not trusted)",
    20: "certificate issuer is not trusted (unknown CA)",
    21: "certificate chain cannot be verified (unknown CA)",
}


MAX_BODY = 4 * 2**20


class Mismatch(Exception):
    """The response arrived but does not meet the check's expectations."""


async def collect(check: HttpCheck, vantage: Vantage) -> Reading:
    """Request the check's URL once and judge the response."""
    started, clock = utc_now(), time.perf_counter()
    metrics: Metrics = {}
    try:
        await _request(check, vantage, metrics)
    except Mismatch as exc:
        return vantage.reading(check, started, DOWN, latency_ms=elapsed_ms(clock), metrics=metrics, error=str(exc))
    except (aiohttp.ClientError, asyncio.TimeoutError, ssl.SSLError, OSError) as exc:
        return vantage.reading(check, started, DOWN, metrics=metrics, error=describe_failure(check, exc))
    except ValueError as exc:  # aiohttp refuses a request it cannot send (bad header or URL)
        return vantage.reading(check, started, DOWN, error=f"request not sent: {type(exc).__name__} (check the URL and headers)")
    return vantage.reading(check, started, UP, latency_ms=elapsed_ms(clock), metrics=metrics)


async def _request(check: HttpCheck, vantage: Vantage, metrics: Metrics) -> None:
    session = vantage.http()
    tls = await _tls(check, vantage)
    handshakes: list[Certificate] = []
    recording = _HANDSHAKES.set(handshakes)
    try:
        async with session.request(
            check.method, check.url, headers=_headers(check), data=check.body,
            # aiohttp refuses the redirect that reaches max_redirects, and takes 0 for no limit: one more,
            # and none followed at 0 (the 3xx is then judged as any status is)
            allow_redirects=check.follow_redirects and check.max_redirects > 0,
            max_redirects=check.max_redirects + 1, timeout=aiohttp.ClientTimeout(total=check.timeout), ssl=tls,
        ) as response:
            certificates = _certificates(response, tls, handshakes)
            body = await _read_body(response, metrics)
    finally:
        _HANDSHAKES.reset(recording)
    # The certificate that expires first of those on the way: behind a redirect (example.com to
    # www.example.com), the one of the URL checked counts as much as the one that answered.
    days_left = min((d for d in map(_days_left, certificates) if d is not None), default=None)
    metrics["http.status"] = response.status
    metrics["http.bytes"] = len(body)
    if days_left is not None:
        metrics["tls.days_left"] = days_left
        if check.tls_min_days is not None:  # the watchdog warns both parties when days_left drops below it
            metrics["tls.min_days"] = check.tls_min_days
    _judge(check, response.status, body, days_left)


def _headers(check: HttpCheck) -> dict[str, str]:
    headers = {name: str(value) for name, value in check.headers}
    if check.username is not None and check.password is not None:
        pair = f"{check.username}:{check.password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    elif check.token is not None:
        headers["Authorization"] = f"Bearer {check.token}"
    return headers


class _RecordingSSLObject(ssl.SSLObject):
    """Keeps the server certificate of each handshake on its context.

    aiohttp hands a response's connection back to the pool as soon as the body is complete,
    often before the caller can look at it; the handshake is the one moment that always sees it.
    """

    def do_handshake(self) -> None:
        super().do_handshake()
        certificate = _certificate_of(self)
        context = self.context
        if isinstance(context, RecordingContext):
            context.peer_certs[self.server_hostname or ""] = certificate
        seen = _HANDSHAKES.get()  # the request that opened this connection (asyncio runs the handshake
        if seen is not None:      # in the context of the task that connected)
            seen.append(certificate)


# The certificates of the handshakes made by the request running in this context (see _request).
_HANDSHAKES: contextvars.ContextVar[list[Certificate] | None] = contextvars.ContextVar("handshakes", default=None)


class RecordingContext(ssl.SSLContext):
    """A client TLS context that remembers the last certificate seen per server name."""

    sslobject_class = _RecordingSSLObject
    peer_certs: dict[str, Certificate]


async def _tls(check: HttpCheck, vantage: Vantage) -> ssl.SSLContext | bool:
    """The TLS context of a check, shared by every check with the same settings.

    A context with the system's CA bundle costs ~30 ms and ~1 MB to build, so it is built once
    per (verify, CA file) in a worker thread, never per check and never on the event loop.
    """
    if not check.url.startswith("https://"):
        return True
    key = ("http-tls", check.verify_tls, check.ca_file)
    building = vantage.shared.get(key)
    if building is None or building.done() and (building.cancelled() or building.exception() is not None):
        building = vantage.shared[key] = asyncio.ensure_future(
            asyncio.to_thread(_build_context, check.verify_tls, check.ca_file))
    # Shielded: a check cancelled while it waits (a timeout, a reload) must not cancel the build the
    # other checks wait for, nor leave a cancelled one in place for every later run.
    context: ssl.SSLContext = await asyncio.shield(building)
    return context


def _build_context(verify: bool, ca_file: str | None) -> RecordingContext:
    context = RecordingContext(ssl.PROTOCOL_TLS_CLIENT)
    context.peer_certs = {}
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    else:
        context.load_default_certs()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# A verified peer certificate as `ssl` decodes it, else (verification off) its DER bytes.
Certificate = dict[str, Any] | bytes | None


def _certificate_of(ssl_object: ssl.SSLObject) -> Certificate:
    decoded = ssl_object.getpeercert()
    return decoded if decoded else ssl_object.getpeercert(binary_form=True)


def _certificates(response: aiohttp.ClientResponse, tls: ssl.SSLContext | bool,
                  handshakes: list[Certificate]) -> list[Certificate]:
    """The certificates this request met: those of the handshakes it made (each hop of a redirect
    on a new connection) and that of the server that answered, from its connection, held by the
    response or, once the response handed it back to the pool (a small body), by the stream it was
    read from. Only when none is known (a kept-alive connection the server closed since), the one
    its context saw at the last handshake with that host name (another port may have been the last)."""
    found: list[Certificate] = [certificate for certificate in handshakes if certificate]
    if response.url.scheme != "https":
        return found
    connection = response.connection
    transport = connection.transport if connection is not None else None
    if transport is None:
        protocol = getattr(response.content, "_protocol", None)  # the pooled connection's, same host and port
        transport = getattr(protocol, "transport", None)
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is not None:
        found.append(_certificate_of(ssl_object))
    elif not found and isinstance(tls, RecordingContext):
        found.append(tls.peer_certs.get(response.url.host or ""))
    return found


def _days_left(certificate: Certificate) -> int | None:
    """Whole days until a certificate expires, truncated toward zero (5.9 days left is 5; expired
    1.2 days ago is -1), except that an expired one never has 0: expired 12 hours ago is -1, so it
    fails even tls_min_days = 0."""
    if not certificate:
        return None
    if isinstance(certificate, dict):
        expires: float = ssl.cert_time_to_seconds(certificate["notAfter"])
    else:  # unverified: parse it ourselves (imported only here: the parser costs ~6 MB)
        from cryptography import x509

        expires = x509.load_der_x509_certificate(certificate).not_valid_after_utc.timestamp()
    days = (expires - time.time()) / 86400
    return -1 if -1 < days < 0 else int(days)


async def _read_body(response: aiohttp.ClientResponse, metrics: Metrics) -> bytes:
    """The whole body, up to MAX_BODY: a huge answer must not take the agent's memory."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(65536):
        body += chunk
        if len(body) > MAX_BODY:
            metrics["http.status"] = response.status
            raise Mismatch(f"response body larger than {MAX_BODY // 2**20} MiB; the check reads no more")
    return bytes(body)


def _judge(check: HttpCheck, status: int, body: bytes, days_left: int | None) -> None:
    if not any(low <= status <= high for low, high in check.expect_status):
        raise Mismatch(f"HTTP {status}, expected {_statuses(check)}")
    if check.expect_body is not None:
        text = body.decode("utf-8", errors="replace")
        if not re.search(check.expect_body, text):
            raise Mismatch(f'body does not match "{check.expect_body}" ({len(body)} bytes received)')
    if check.expect_json:
        _judge_json(check, body)
    if check.tls_min_days is not None:
        if days_left is None:
            raise Mismatch("no TLS certificate seen on the connection; cannot check tls_min_days")
        if days_left < check.tls_min_days:
            raise Mismatch(f"certificate expires in {days_left} days, fewer than tls_min_days = {check.tls_min_days}")


def _statuses(check: HttpCheck) -> str:
    return ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in check.expect_status)


def _judge_json(check: HttpCheck, body: bytes) -> None:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise Mismatch(f"body is not JSON ({exc.args[0] if exc.args else exc})") from None
    except RecursionError:
        raise Mismatch("body is not JSON this check reads (nested too deeply)") from None
    for path, expected in check.expect_json:
        found, value = _lookup(document, path)
        if not found:
            raise Mismatch(f'JSON field "{path}" is missing, expected {json.dumps(expected)}')
        if value != expected or isinstance(value, bool) != isinstance(expected, bool):
            raise Mismatch(f'JSON field "{path}" is {json.dumps(value)}, expected {json.dumps(expected)}')


def _lookup(document: Any, path: str) -> tuple[bool, Any]:
    """Follow a dotted path (`a.b.0.c`: list items by index) through a JSON document."""
    value = document
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def describe_failure(check: HttpCheck, exc: BaseException) -> str:
    """A precise, secret-free reason for a request that got no usable response."""
    if isinstance(exc, asyncio.TimeoutError):
        return f"timeout after {check.timeout:g}s"
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid URL (not shown: it may hold credentials); check the url key"
    if isinstance(exc, aiohttp.TooManyRedirects):
        return f"too many redirects (more than {check.max_redirects})"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate error: {_certificate_reason(exc.certificate_error)}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"DNS lookup failed for {exc.host}: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS error: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return f"connection refused by {exc.host}:{exc.port}"
        return f"cannot connect to {exc.host}:{exc.port}: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection without a response"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"response body broken off: {exc}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"bad response: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def _certificate_reason(error: BaseException) -> str:
    code = getattr(error, "verify_code", None)
    if code in _VERIFY_REASONS:
        return _VERIFY_REASONS[code]
    return getattr(error, "verify_message", None) or str(error)


def _os_reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or getattr(error, "reason", None) or str(error) or type(error).__name__
