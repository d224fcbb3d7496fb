"""TCP checks: connect time to host:port, and optionally the server's greeting."""

from __future__ import annotations

import asyncio
import re
import socket
import time

from slawatch.config import TcpCheck

from .reading import DOWN, UP, Reading, utc_now
from .vantage import Vantage, elapsed_ms

BANNER_LIMIT = 4096


async def collect(check: TcpCheck, vantage: Vantage) -> Reading:
    """Open a connection (and read the banner when one is expected), then close it."""
    started, clock = utc_now(), time.perf_counter()
    deadline = clock + check.timeout
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(check.host, check.port), check.timeout)
    except (asyncio.TimeoutError, TimeoutError):
        return vantage.reading(check, started, DOWN, error=f"timeout after {check.timeout:g}s connecting to {_where(check)}")
    except OSError as exc:
        return vantage.reading(check, started, DOWN, error=_connect_failure(check, exc))
    except ValueError as exc:  # a host name the resolver refuses outright (IDNA)
        return vantage.reading(check, started, DOWN, error=f"cannot resolve {check.host!r}: {exc}")
    connect_ms = elapsed_ms(clock)
    try:
        error = await _judge_banner(check, reader, deadline) if check.expect_banner is not None else None
    finally:
        writer.close()
    if error is not None:
        return vantage.reading(check, started, DOWN, latency_ms=connect_ms, error=error)
    return vantage.reading(check, started, UP, latency_ms=connect_ms)


async def _judge_banner(check: TcpCheck, reader: asyncio.StreamReader, deadline: float) -> str | None:
    """Read the greeting until it matches, the server stops, or the check's time is up."""
    assert check.expect_banner is not None
    pattern = re.compile(check.expect_banner)
    received = b""
    while len(received) < BANNER_LIMIT:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return _banner_mismatch(check, received, "timeout waiting for")
        try:
            chunk = await asyncio.wait_for(reader.read(BANNER_LIMIT - len(received)), remaining)
        except (asyncio.TimeoutError, TimeoutError):
            return _banner_mismatch(check, received, "timeout waiting for")
        except OSError as exc:
            return f"connection to {_where(check)} failed while reading the banner: {exc.strerror or exc}"
        if not chunk:
            return _banner_mismatch(check, received, "connection closed before")
        received += chunk
        if pattern.search(received.decode("utf-8", errors="replace")):
            return None
    return _banner_mismatch(check, received, "no match in the first 4 KiB for")


def _banner_mismatch(check: TcpCheck, received: bytes, what: str) -> str:
    shown = received[:80].decode("utf-8", errors="replace").strip()
    return f'{what} a banner matching "{check.expect_banner}" (received: "{shown}")'


def _connect_failure(check: TcpCheck, exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {_where(check)}"
    if isinstance(exc, socket.gaierror):
        return f"DNS lookup failed for {check.host}: {exc.strerror or exc}"
    return f"cannot connect to {_where(check)}: {exc.strerror or exc}"


def _where(check: TcpCheck) -> str:
    return f"[{check.host}]:{check.port}" if ":" in check.host else f"{check.host}:{check.port}"
