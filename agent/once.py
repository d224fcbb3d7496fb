"""`slawatch-agent once`: run every check one time, concurrently, and show the readings."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from slawatch.collectors.reading import UP, Reading
from slawatch.collectors.registry import run_check
from slawatch.collectors.vantage import Vantage
from slawatch.config import AgentConfig

from .canaries import apply_canaries

# Metrics worth a glance in the table, by prefix; the rest are in --json.
KEY_METRICS = ("http.status", "tls.days_left", "snmp.uptime_s", "snmp.rebooted", "if.", "cpu.percent",
               "mem.percent", "disk.", "process.")


async def take_readings(config: AgentConfig) -> list[Reading]:
    """One reading per check, all checks at once, canaries applied."""
    async with Vantage(config.id) as vantage:
        readings = await asyncio.gather(*(run_check(check, vantage) for check in config.checks))
    return apply_canaries(list(readings), config.canaries)


def table(config: AgentConfig, readings: Sequence[Reading]) -> str:
    """A plain-text table: check, type, status, latency, key metrics, error."""
    types = {c.id: c.type for c in config.checks}
    rows = [("CHECK", "TYPE", "STATUS", "LATENCY", "METRICS", "ERROR")]
    for r in readings:
        latency = f"{r.latency_ms:.1f} ms" if r.latency_ms is not None else "-"
        rows.append((r.check, types[r.check], r.status, latency, _key_metrics(r), r.error or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5]
        for row in rows
    ).rstrip() + "\n"


def _key_metrics(reading: Reading) -> str:
    shown = [f"{k}={_value(v)}" for k, v in reading.metrics.items() if k.startswith(KEY_METRICS)]
    text = " ".join(shown[:4])
    return text + (f" (+{len(shown) - 4})" if len(shown) > 4 else "")


def _value(value: float | int) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def json_lines(readings: Sequence[Reading]) -> str:
    return "".join(json.dumps(r.to_json(), separators=(",", ":")) + "\n" for r in readings)


def all_up(readings: Sequence[Reading]) -> bool:
    return all(r.status == UP for r in readings)
