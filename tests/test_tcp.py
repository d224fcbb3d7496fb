"""TCP checks against real loopback sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from slawatch.collectors.reading import DOWN, UP
from slawatch.collectors.tcp import collect
from slawatch.collectors.vantage import Vantage
from slawatch.config import TcpCheck

from .conftest import free_port


def check(port: int, **settings: Any) -> TcpCheck:
    settings.setdefault("timeout", 1.0)
    return TcpCheck(id="smtp", type="tcp", interval=30.0, host="127.0.0.1", port=port, **settings)


@pytest.fixture
async def smtp() -> AsyncIterator[int]:
    """A server that greets like an SMTP relay, in two pieces."""
    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mail.example")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b".com ESMTP ready\r\n")
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


@pytest.fixture
async def silent() -> AsyncIterator[int]:
    """A server that accepts and says nothing."""
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3)
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A listening socket whose accept queue is full: the kernel drops further SYNs, so connects hang."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    yield port
    for s in fillers:
        s.close()
    listener.close()


async def test_connect_time_is_the_latency(vantage: Vantage, smtp: int) -> None:
    reading = await collect(check(smtp), vantage)
    assert (reading.status, reading.error) == (UP, None)
    assert reading.latency_ms is not None and 0 < reading.latency_ms < 1000


async def test_banner_matches_across_pieces(vantage: Vantage, smtp: int) -> None:
    reading = await collect(check(smtp, expect_banner=r"^220 .*ESMTP"), vantage)
    assert (reading.status, reading.error) == (UP, None)


async def test_banner_mismatch(vantage: Vantage, smtp: int) -> None:
    reading = await collect(check(smtp, expect_banner="^554"), vantage)
    assert reading.status == DOWN
    assert reading.error == 'connection closed before a banner matching "^554" (received: "220 mail.example.com ESMTP ready")'


async def test_banner_timeout(vantage: Vantage, silent: int) -> None:
    reading = await collect(check(silent, expect_banner="^220", timeout=0.5), vantage)
    assert (reading.status, reading.error) == (DOWN, 'timeout waiting for a banner matching "^220" (received: "")')


async def test_refused(vantage: Vantage) -> None:
    port = free_port()
    reading = await collect(check(port), vantage)
    assert (reading.status, reading.error) == (DOWN, f"connection refused by 127.0.0.1:{port}")


async def test_connect_timeout(vantage: Vantage, full_backlog: int) -> None:
    reading = await collect(check(full_backlog, timeout=0.5), vantage)
    assert (reading.status, reading.error) == (DOWN, f"timeout after 0.5s connecting to 127.0.0.1:{full_backlog}")
