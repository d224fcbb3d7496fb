"""`slawatch-agent run`: the daemon — schedule, spool, ship, report to systemd, reload, stop cleanly."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
import signal
import sqlite3
import time
from dataclasses import dataclass, field

import psutil

from slawatch.collectors.reading import UP, Reading, utc_now
from slawatch.collectors.vantage import Vantage
from slawatch.config import AgentConfig, ConfigError, load_agent
from slawatch.config.cli import package_version
from slawatch.config.keys import exposed_key, load_private_key
from slawatch.config.agent import SELF_CHECK, SELF_INTERVAL_S

from . import systemd
from .protocol import Signer, canonical_json
from .recorder import Recorder
from .scheduler import Scheduler
from .shipper import Shipper, SpoolAccess
from .spool import Spool, SpoolDamaged

log = logging.getLogger(__name__)

FLUSH_ON_STOP_S = 5.0
BOUNDS_EVERY_S = 300.0


def manifest(config: AgentConfig) -> bytes:
    """What this vantage point is supposed to report, and how often (no secrets)."""
    return canonical_json({
        "agent": config.id,
        "version": package_version(),
        "canaries": list(config.canaries),
        "checks": [{"id": c.id, "type": c.type, "interval_s": c.interval, "timeout_s": c.timeout,
                    "target": c.target()} for c in config.checks]
                  + [{"id": SELF_CHECK, "type": "self", "interval_s": SELF_INTERVAL_S, "timeout_s": 1.0,
                      "target": "the agent itself"}],
    })


@dataclass
class Agent:
    """The running daemon's parts; `config` and the scheduler are replaced on reload."""

    config_path: str
    config: AgentConfig
    key: Signer
    spool: SpoolAccess
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    reloading: asyncio.Event = field(default_factory=asyncio.Event)
    failed: bool = False

    async def record(self, reading: Reading) -> None:
        """A reading is taken once the spool has committed it."""
        await self.recorder.record(reading)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reloading.set)
        self.shipper = Shipper(self.config.id, self.config.watchdog_url, self.key, self.spool,
                               self.config.batch_size, self.config.batch_wait, self.config.watchdog_ca_file,
                               manifest=manifest(self.config))
        self.recorder = Recorder(self.spool)
        writer = asyncio.create_task(self.recorder.run(), name="spool-writer")
        async with Vantage(self.config.id) as vantage:
            self.vantage = vantage
            self.scheduler = self._scheduler()
            tasks = [asyncio.create_task(coro, name=name) for name, coro in (
                ("schedule", self._schedule()), ("ship", self.shipper.run(self.stopping)),
                ("self", self._self_metrics()), ("systemd", self._systemd_watchdog()),
                ("bounds", self._bounds()))]
            for task in tasks:
                task.add_done_callback(self._task_ended)
            # Everything built so far (modules, config, checks) lives as long as the process: keep
            # it out of the cyclic collector's scans, which otherwise cost more than the checks.
            release_memory()
            gc.freeze()
            systemd.notify(f"READY=1\nSTATUS={self._status()}")
            log.info("event=started agent=%s checks=%d spool_depth=%d", self.config.id, len(self.config.checks),
                     await self.spool.call(self.spool.spool.depth))
            await self.stopping.wait()
            systemd.notify("STOPPING=1\nSTATUS=stopping: flushing the spool")
            log.info("event=stopping")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        writer.cancel()  # it commits what is still waiting before it ends
        await asyncio.gather(writer, return_exceptions=True)
        await self.shipper.flush(FLUSH_ON_STOP_S)
        depth = await self.spool.call(self.spool.spool.depth)
        log.info("event=stopped spool_depth=%d", depth)

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        """A part of the daemon must never end on its own: if one does, stop with an error so
        systemd restarts the agent (Restart=on-failure) instead of it polling half-alive."""
        if task.cancelled() or self.stopping.is_set() or task.exception() is None:
            return  # cancelled at shutdown, or a part with nothing to do (no WatchdogSec)
        log.error("event=task-died task=%s error=%r action=exit", task.get_name(), task.exception())
        self.failed = True
        self.stopping.set()

    def _scheduler(self) -> Scheduler:
        scheduler = Scheduler(self.config.id, self.config.checks, self.vantage, self.record,
                              self.config.canaries, self.config.concurrency)
        old = getattr(self, "scheduler", None)
        if old is not None:  # a reload: what the canaries last said still holds
            scheduler.seed_canaries(old.canary_readings())
        return scheduler

    async def _schedule(self) -> None:
        """Run the schedule; on SIGHUP swap in the new configuration's, or keep the old one."""
        while True:
            run_until = asyncio.Event()
            task = asyncio.create_task(self.scheduler.run(run_until))
            try:
                new = await self._next_valid_reload()
                run_until.set()
                await task
            finally:
                if not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            self.config = new
            self.scheduler = self._scheduler()
            self.shipper.manifest = manifest(new)
            log.info("event=reloaded checks=%d", len(new.checks))

    async def _next_valid_reload(self) -> AgentConfig:
        """Wait for SIGHUP until one brings a valid configuration."""
        while True:
            await self.reloading.wait()
            self.reloading.clear()
            new = self._reload()
            if new is not None:
                return new

    def _reload(self) -> AgentConfig | None:
        try:
            new = load_agent(self.config_path)
        except ConfigError as err:
            for problem in err.problems:
                log.error("event=reload-refused problem=%r", str(problem))
            log.error("event=reload-refused action=keep-running-old-config")
            return None
        fixed = ("id", "spool", "key_file", "spool_max_age", "spool_max_size", "watchdog_url",
                 "watchdog_ca_file", "batch_size", "batch_wait")
        changed = [name for name in fixed if getattr(new, name) != getattr(self.config, name)]
        if changed:
            log.error("event=reload-refused changed=%s hint=%r", ",".join(changed),
                      "[agent] identity and spool, and [watchdog] settings, take effect on restart only; "
                      "restart the agent (checks, canaries and concurrency reload)")
            return None
        return new

    async def _self_metrics(self) -> None:
        """Readings of `agent.self`: the agent's own health, so the watchdog can show it."""
        process = psutil.Process()
        while True:
            try:
                await self._self_reading(process)
            except Exception as exc:  # a locked or full spool: logged; the next minute tries again
                log.error("event=self-reading-failed error=%r", exc)
            await asyncio.sleep(SELF_INTERVAL_S / 4)
            release_memory()  # after the start-up burst, and each minute: freed heap back to the system
            await asyncio.sleep(SELF_INTERVAL_S * 3 / 4)

    async def _self_reading(self, process: psutil.Process) -> None:
        started = utc_now()
        spool = self.spool.spool
        depth = await self.spool.call(spool.depth)
        oldest = await self.spool.call(spool.oldest_age_s)
        cpu = process.cpu_times()
        metrics = {
            "spool.depth": depth, "spool.oldest_s": round(oldest, 1),
            "rss_bytes": process.memory_info().rss, "cpu_s": round(cpu.user + cpu.system, 3),
            "checks.skipped": sum(s.skipped for s in self.scheduler.stats.values()),
            "ship.failures": self.shipper.delivery.failures,
            "ship.readings": self.shipper.delivery.readings,
        }
        await self.record(Reading(agent=self.config.id, check=SELF_CHECK, ts=started, status=UP,
                                  interval_s=SELF_INTERVAL_S, metrics=metrics))
        systemd.notify(f"STATUS={self._status(depth)}")

    async def _systemd_watchdog(self) -> None:
        """WATCHDOG=1 at half of WatchdogSec, from the main loop (a stuck loop stops the pings)."""
        interval = systemd.watchdog_interval()
        if interval is None:
            return
        while True:
            systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def _bounds(self) -> None:
        while True:
            try:
                await self.spool.call(self.spool.spool.enforce_bounds)
            except sqlite3.Error as exc:  # locked or full: the next round tries again
                log.error("event=spool-bounds-failed error=%r", exc)
            await asyncio.sleep(BOUNDS_EVERY_S)

    def _status(self, depth: int | None = None) -> str:
        text = f"{len(self.config.checks)} checks, shipped {self.shipper.delivery.readings}"
        return text + (f", spool {depth}" if depth is not None else "")


def release_memory() -> None:
    """Hand what start-up used and freed (the TOML tree, the config's working copies) back to
    the system: a freed heap is otherwise kept by malloc for good."""
    gc.collect()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError) as exc:  # not glibc: memory stays with the process, no harm
        log.debug("event=malloc-trim-unavailable error=%s", exc)


def run(config_path: str) -> int:
    """Load, open the spool and run until SIGTERM; config problems raise ConfigError."""
    config = load_agent(config_path)
    with open(config.key_file, "rb") as handle:
        key = load_private_key(handle.read())
    if (exposed := exposed_key(config.key_file)) is not None:
        log.warning("event=key-file-exposed warning=%r", exposed)
    try:
        opened = Spool(config.spool, config.id, config.spool_max_age, config.spool_max_size)
    except SpoolDamaged as damaged:
        log.error("event=spool-damaged action=refuse-to-start: %s", damaged)
        return 1
    spool = SpoolAccess(opened)
    agent = Agent(config_path, config, key, spool)
    try:
        asyncio.run(agent.run())
    finally:
        spool.close()
    return 1 if agent.failed else 0


def configure_logging() -> None:
    """One line per event on stderr; journald adds time and unit."""
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    logging.basicConfig(level=logging.INFO, format=stamp + "%(levelname)s %(name)s %(message)s")
    time.tzset()
