"""What the collectors of one agent process share: its id, one HTTP client, one SNMP engine."""

from __future__ import annotations

import datetime as dt
import logging
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp
import aiohttp.abc

from slawatch.config import CheckConfig

from .reading import Metrics, Reading

if TYPE_CHECKING:
    from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

log = logging.getLogger(__name__)


class Vantage:
    """The agent's point of view: shared clients and each check's memory between polls.

    One per process. The HTTP session and the SNMP engine are created on first use (inside the
    running event loop) and closed by `close()`.
    """

    engines_created = 0  # SNMP engines made in this process; the design allows exactly one

    def __init__(self, agent_id: str, resolver: aiohttp.abc.AbstractResolver | None = None) -> None:
        self.agent_id = agent_id
        self._resolver = resolver
        self._http: aiohttp.ClientSession | None = None
        self._snmp: SnmpEngine | None = None
        self._memory: dict[str, dict[str, Any]] = {}
        self.shared: dict[Any, Any] = {}  # objects every check of a kind shares (TLS contexts)

    def http(self) -> aiohttp.ClientSession:
        """The one HTTP client session. Its pool sets no limit of its own: the scheduler's concurrency
        bounds the requests in flight, and a request waiting for a free connection would count that
        wait in the check's latency and timeout (a false slowness or outage of the provider)."""
        if self._http is None or self._http.closed:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=60, resolver=self._resolver)
            self._http = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                               headers={"User-Agent": "slawatch-agent"})
        return self._http

    def snmp_engine(self) -> SnmpEngine:
        """The one SNMP engine of this process (a new engine costs ~100 ms and ~5 MB)."""
        if self._snmp is None:
            from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

            self._snmp = SnmpEngine()
            Vantage.engines_created += 1
        return self._snmp

    def memory(self, check_id: str) -> dict[str, Any]:
        """What a check remembers between polls (previous counters, cached indexes)."""
        return self._memory.setdefault(check_id, {})

    def reading(self, check: CheckConfig, started: dt.datetime, status: str, *,
                latency_ms: float | None = None, metrics: Metrics | None = None,
                error: str | None = None) -> Reading:
        """A Reading of `check` taken by this agent, started at `started`."""
        return Reading(agent=self.agent_id, check=check.id, ts=started, status=status,
                       interval_s=check.interval, latency_ms=latency_ms, metrics=metrics or {},
                       error=error)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._snmp is not None:
            self._snmp.close_dispatcher()
            self._snmp = None

    async def __aenter__(self) -> Vantage:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


def elapsed_ms(since: float) -> float:
    """Milliseconds since a `time.perf_counter()` value."""
    return (time.perf_counter() - since) * 1000.0
