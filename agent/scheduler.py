"""The schedule: every check at start, then every interval at its own stable offset."""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from slawatch.collectors.reading import Reading
from slawatch.collectors.registry import run_check
from slawatch.collectors.vantage import Vantage
from slawatch.config import CheckConfig

from .canaries import as_unknown, blind_reason

log = logging.getLogger(__name__)

Record = Callable[[Reading], Awaitable[None]]
# Runs start on a 250 ms grid. Consecutive starts of a check are then at most interval + 0.25 s
# apart, well inside the 1.5 × interval a reading covers (intervals are at least 1 s).
TICK_S = 0.25
CANARY_HISTORY = 64  # a canary's readings kept to judge the others by the one in force when they were taken


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
        # Canaries first: of the checks due together they start first, so a canary reading covers
        # the others' time (see _through_canaries).
        self.checks = sorted(self.checks, key=lambda c: c.id not in self.canaries)
        self._free = self.concurrency                   # run slots not in use
        self._waiting: deque[CheckConfig] = deque()     # due, waiting for a free slot, in order
        self._queued: set[str] = set()
        self._missed: set[str] = set()                  # slot came while the previous run went on
        self._launched: dict[str, float] = {}           # check id -> wall time its running run started
        self._history: dict[str, deque[Reading]] = {}   # canary -> its recent readings, oldest first
        self._stopping = False
        self.stats = {c.id: CheckStats() for c in self.checks}

    async def run(self, stopping: asyncio.Event) -> None:
        """Schedule until `stopping` is set; then cancel running checks and return."""
        loop = asyncio.create_task(self._loop(), name="schedule")
        try:
            await stopping.wait()
        finally:
            # Nothing new starts from here on: a cancelled run frees its slot, and a check waiting
            # for one must not start then, under a schedule already stopped (a reload's old one).
            self._stopping = True
            self._waiting.clear()
            self._queued.clear()
            running = list(self._running.values())
            for task in [loop, *running]:
                task.cancel()
            await asyncio.gather(loop, *running, return_exceptions=True)

    async def _loop(self) -> None:
        """One timer for all checks: a heap of (next run, check), so thousands of checks cost
        no more than their own runs (a sleeping task per check costs ~3 KB each)."""
        phases = [offset(self.agent, c.id, c.interval) for c in self.checks]
        due = [(0.0, i) for i in range(len(self.checks))]  # 0: every check runs once at start
        while due:
            when, i = due[0]
            now = time.monotonic()
            if when > now:
                # Wake on a TICK_S grid: the checks due within one tick start together, which
                # costs far less CPU than a wake-up per check (a check starts < TICK_S late).
                await asyncio.sleep(math.ceil(when / TICK_S) * TICK_S - now)
                continue
            # Slots are wall-clock points (stable across restarts); waiting is monotonic, so a
            # clock stepped back or forward moves the next slot, never stalls the schedule.
            wall = time.time()
            slot = next_slot(wall, self.checks[i].interval, phases[i])
            heapq.heapreplace(due, (now + (slot - wall), i))
            self._due(self.checks[i])

    def _due(self, check: CheckConfig) -> None:
        """A check's slot came: run it now, or as soon as a run slot is free (in order of coming
        due). The loop itself never waits, so hanging checks cannot hold up healthy ones. A slot
        missed because the previous run is still waiting for a run slot is skipped and counted; one
        missed because the previous run is still going starts as soon as that run ends (a check
        whose timeout is close to its interval, against a target that hangs, would otherwise skip
        every other slot: a gap in its readings, unknown time, in the middle of an outage)."""
        if self._stopping:
            return
        stats = self.stats[check.id]
        if check.id in self._running or check.id in self._queued:
            if check.id in self._running:
                self._missed.add(check.id)
            else:
                stats.skipped += 1
            if not stats.overran:
                stats.overran = True
                log.warning("event=check-overrun check=%s interval_s=%g skipped=%d", check.id, check.interval,
                            stats.skipped)
            return
        if self._free > 0:
            self._launch(check)
        elif check.id in self.canaries:  # a canary goes first: it tells whether the others can see
            self._waiting.appendleft(check)
            self._queued.add(check.id)
        else:
            self._waiting.append(check)
            self._queued.add(check.id)

    def _launch(self, check: CheckConfig) -> None:
        self._free -= 1
        self._launched[check.id] = time.time()
        task = asyncio.create_task(self._run(check), name=f"run:{check.id}")
        self._running[check.id] = task
        task.add_done_callback(lambda done: self._finished(check.id, done))

    def _release(self) -> None:
        """A run slot came free: start the check that has waited longest."""
        self._free += 1
        while self._free > 0 and self._waiting and not self._stopping:
            check = self._waiting.popleft()
            self._queued.discard(check.id)
            self._launch(check)

    def _finished(self, check_id: str, task: asyncio.Task[None]) -> None:
        if self._running.get(check_id) is task:
            del self._running[check_id]

    async def _run(self, check: CheckConfig) -> None:
        try:
            reading = await run_check(check, self.vantage)
        finally:
            self._release()
        stats = self.stats[check.id]
        stats.runs += 1
        try:
            await self._canaries_covering(check, reading)
        finally:  # stopped meanwhile: decided with what is known, and recorded all the same
            reading = self._through_canaries(check, reading)
            if reading.status != stats.last_status:
                self._log_change(check, stats.last_status, reading)
                stats.last_status = reading.status
            # The check is free to run again while its reading waits for the spool: a slow disk must
            # not turn into skipped runs.
            self._finished(check.id, asyncio.current_task())  # type: ignore[arg-type]
            if check.id in self._missed:  # its slot came while it ran: it runs again now
                self._missed.discard(check.id)
                self._due(check)
            try:
                await self.record(reading)
            except Exception as exc:  # the spool failed even after making room: say exactly what is lost
                log.error("event=reading-lost check=%s ts=%s status=%s error=%r", check.id, reading.ts.isoformat(),
                          reading.status, exc)

    async def _canaries_covering(self, check: CheckConfig, reading: Reading) -> None:
        """Wait for the canary runs that began before this reading was taken: their readings say
        whether the agent could see out then (a check failing fast while a canary times out)."""
        if check.id in self.canaries:
            return
        taken = reading.ts.timestamp()
        covering = [task for name, task in self._running.items()
                    if name in self.canaries and self._launched.get(name, math.inf) <= taken]
        if covering:
            await asyncio.wait(covering)

    def seed_canaries(self, readings: dict[str, Reading]) -> None:
        for name, reading in readings.items():
            if name in self.canaries:
                self._remember_canary(reading)

    def canary_readings(self) -> dict[str, Reading]:
        """The latest reading of each canary (handed to the next schedule on reload)."""
        return dict(self._latest_canary)

    def _remember_canary(self, reading: Reading) -> None:
        self._latest_canary[reading.check] = reading
        self._history.setdefault(reading.check, deque(maxlen=CANARY_HISTORY)).append(reading)

    def _through_canaries(self, check: CheckConfig, reading: Reading) -> Reading:
        """A canary's reading is kept; another's is unknown while, at the time it was taken, every
        canary's reading in force (the latest taken by then) was down: the network that came back
        while a check hung does not make its failure the provider's."""
        if check.id in self.canaries:
            self._remember_canary(reading)
            return reading
        in_force = {name: found for name in self.canaries
                    if (found := next((r for r in reversed(self._history.get(name, ())) if r.ts <= reading.ts),
                                      None)) is not None}
        reason = blind_reason(self.canaries, in_force)
        return as_unknown(reading, reason) if reason else reading

    def _log_change(self, check: CheckConfig, before: str | None, reading: Reading) -> None:
        if before is None and reading.status == "up":
            log.info("event=check-up check=%s", check.id)
        elif reading.status == "up":
            log.info("event=check-recovered check=%s was=%s", check.id, before)
        else:
            log.warning("event=check-%s check=%s error=%r", reading.status, check.id, reading.error)
