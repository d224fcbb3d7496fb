"""Canaries: checks of the agent's own network. While all are down, the agent cannot tell."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from slawatch.collectors.reading import DOWN, UNKNOWN, Reading


def blind_reason(canaries: Iterable[str], latest: Mapping[str, Reading]) -> str | None:
    """Why the agent cannot tell: every canary's latest reading is down, or a canary has not
    reported yet (just started: the agent does not know yet whether it can see out); else None."""
    names = list(canaries)
    if not names:
        return None
    waiting = [name for name in names if name not in latest]
    if waiting:
        return f"canaries not checked yet ({', '.join(waiting)})"
    if any(latest[name].status != DOWN for name in names):
        return None
    return "all canaries down (" + "; ".join(f"{n}: {latest[n].error}" for n in names) + ")"


def as_unknown(reading: Reading, reason: str) -> Reading:
    """The reading stored while the agent is blind: unknown, keeping what was observed in the error."""
    seen = reading.status + (f": {reading.error}" if reading.error else "")
    return replace(reading, status=UNKNOWN, error=f"{reason}; observed {seen}")


def apply_canaries(readings: list[Reading], canaries: Iterable[str]) -> list[Reading]:
    """Readings taken together (one round), with non-canary ones unknown while all canaries are down."""
    names = set(canaries)
    reason = blind_reason(names, {r.check: r for r in readings if r.check in names})
    if reason is None:
        return readings
    return [r if r.check in names else as_unknown(r, reason) for r in readings]
