"""The check types, registered by name, and the one safe way to run a check."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slawatch.config import CheckConfig

from . import host, http, snmp, tcp
from .reading import DOWN, Reading, utc_now
from .vantage import Vantage

log = logging.getLogger(__name__)

Collector = Callable[[Any, Vantage], Awaitable[Reading]]

COLLECTORS: dict[str, Collector] = {
    "http": http.collect,
    "snmp": snmp.collect,
    "host": host.collect,
    "tcp": tcp.collect,
}

# A collector enforces its check's timeout itself; this margin only catches one that does not.
TIMEOUT_MARGIN_S = 2.0


async def run_check(check: CheckConfig, vantage: Vantage) -> Reading:
    """Run one check; whatever goes wrong becomes a `down` reading with the reason."""
    started = utc_now()
    try:
        async with asyncio.timeout(check.timeout + TIMEOUT_MARGIN_S):
            return await COLLECTORS[check.type](check, vantage)
    except TimeoutError:
        return vantage.reading(check, started, DOWN, error=f"timeout after {check.timeout:g}s")
    except Exception as exc:  # a collector bug must cost one reading, not the agent
        log.exception("event=collector-failed check=%s type=%s", check.id, check.type)
        return vantage.reading(check, started, DOWN, error=f"internal error: {type(exc).__name__}: {exc}")
