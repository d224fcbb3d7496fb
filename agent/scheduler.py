"""The schedule: every check at start, then every interval at its own stable offset."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from slawatch.collectors.reading import Reading
from slawatch.collectors.registry import run_check
from slawatch.collectors.vantage import Vantage
from slawatch.config import CheckConfig

from .canaries import as_unknown, blind_reason

log = logging.getLogger(__name__)

Record = Callable[[Reading], Awaitable[None]]


def offset(agent: str, check: str, interval: float) -> float:
    """A stable point in the interval for this check, so checks spread out and restarts keep it."""
    digest = hashlib.sha256(f"{agent}/{check}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * interval


def next_slot(now: float, interval: float, phase: float) -> float:
    """The first time after `now` that is `phase` seconds into an interval (wall-clock aligned)."""
    return (((now - phase) // interval) + 1) * interval + phase


@dataclass
class CheckStats:
    """What the schedule knows of one check: runs, skips, the last reading's status."""

    runs: int = 0
    skipped: int = 0
    overran: bool = False
    last_status: str | None = None


@dataclass
class Scheduler:
    """Runs checks on schedule under a global concurrency limit, and records every reading."""

    agent: str
    checks: Sequence[CheckConfig]
    vantage: Vantage
    record: Record
    canaries: Sequence[str] = ()
    concurrency: int = 64
    stats: dict[str, CheckStats] = field(default_factory=dict)
    _latest_canary: dict[str, Reading] = field(default_factory=dict)
    _running: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._limit = asyncio.Semaphore(self.concurrency)
        self.stats = {c.id: CheckStats() for c in self.checks}

    async def run(self, stopping: asyncio.Event) -> None:
        """Schedule until `stopping` is set; then cancel running checks and return."""
        loops = [asyncio.create_task(self._loop(check, stopping), name=f"check:{check.id}") for check in self.checks]
        try:
            await stopping.wait()
        finally:
            for task in loops + list(self._running.values()):
                task.cancel()
            await asyncio.gather(*loops, *self._running.values(), return_exceptions=True)

    async def _loop(self, check: CheckConfig, stopping: asyncio.Event) -> None:
        phase = offset(self.agent, check.id, check.interval)
        self._start(check)
        while not stopping.is_set():
            now = time.time()
            await asyncio.sleep(next_slot(now, check.interval, phase) - now)
            self._start(check)

    def _start(self, check: CheckConfig) -> None:
        """Start a run unless the previous one is still going (never two runs of one check)."""
        stats = self.stats[check.id]
        running = self._running.get(check.id)
        if running is not None and not running.done():
            stats.skipped += 1
            if not stats.overran:
                stats.overran = True
                log.warning("event=check-overrun check=%s interval_s=%g skipped=%d", check.id, check.interval,
                            stats.skipped)
            return
        self._running[check.id] = asyncio.create_task(self._run(check), name=f"run:{check.id}")

    async def _run(self, check: CheckConfig) -> None:
        async with self._limit:
            reading = await run_check(check, self.vantage)
        stats = self.stats[check.id]
        stats.runs += 1
        reading = self._through_canaries(check, reading)
        if reading.status != stats.last_status:
            self._log_change(check, stats.last_status, reading)
            stats.last_status = reading.status
        try:
            await self.record(reading)
        except Exception as exc:  # the spool failed even after making room: say exactly what is lost
            log.error("event=reading-lost check=%s ts=%s status=%s error=%r", check.id, reading.ts.isoformat(),
                      reading.status, exc)

    def _through_canaries(self, check: CheckConfig, reading: Reading) -> Reading:
        if check.id in self.canaries:
            self._latest_canary[check.id] = reading
            return reading
        reason = blind_reason(self.canaries, self._latest_canary)
        return as_unknown(reading, reason) if reason else reading

    def _log_change(self, check: CheckConfig, before: str | None, reading: Reading) -> None:
        if before is None and reading.status == "up":
            log.info("event=check-up check=%s", check.id)
        elif reading.status == "up":
            log.info("event=check-recovered check=%s was=%s", check.id, before)
        else:
            log.warning("event=check-%s check=%s error=%r", reading.status, check.id, reading.error)
