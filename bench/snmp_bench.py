"""SNMP part of the collector benchmark (filled in with the SNMP collector)."""

from __future__ import annotations

from collections.abc import Callable


async def run(quick: bool, row: Callable[..., str]) -> list[str]:
    return ["SNMP: not measured yet"]
