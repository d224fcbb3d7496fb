"""SNMP checks (placeholder until the collector lands)."""

from __future__ import annotations

from slawatch.config import SnmpCheck

from .reading import Reading
from .vantage import Vantage


async def collect(check: SnmpCheck, vantage: Vantage) -> Reading:
    raise NotImplementedError("snmp collector")
