"""Host checks: the agent machine's own metrics through psutil, off the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from typing import Any

import psutil

from slawatch.config import HostCheck

from .reading import DOWN, UP, Metrics, Reading, utc_now
from .vantage import Vantage

# Rates need two samples; on a check's first poll they are this far apart.
BASELINE_S = 0.25
# Host samples run in threads of their own: a read that hangs (a dead NFS mount's statvfs) holds one
# of these, never the event loop's default threads, which resolve the names of every other check.
_SAMPLERS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="host-sample")


async def collect(check: HostCheck, vantage: Vantage) -> Reading:
    """Sample the host in a worker thread and judge the metrics against the thresholds."""
    started = utc_now()
    memory = vantage.memory(check.id)
    hung = memory.get("sampling")
    if hung is not None and not hung.done():  # a thread cannot be stopped: one hung sample per check at most
        return vantage.reading(check, started, DOWN, error="the previous sample has not finished: reading the "
                                                           "host hangs (a disk that does not answer?)")
    memory["sampling"] = _SAMPLERS.submit(sample, check, memory)
    metrics, problems = await asyncio.wrap_future(memory["sampling"])
    # A metric that could not be measured is already explained by its item's problem.
    problems += judge(check, metrics, explained=bool(problems))
    if problems:
        return vantage.reading(check, started, DOWN, metrics=metrics, error="; ".join(problems))
    return vantage.reading(check, started, UP, metrics=metrics)


def sample(check: HostCheck, memory: dict[str, Any]) -> tuple[Metrics, list[str]]:
    """Every metric of the check, and what could not be measured (blocking: run in a thread)."""
    if "counters" not in memory:
        memory["counters"] = _counters()
        time.sleep(BASELINE_S)
    before, now = memory["counters"], _counters()
    memory["counters"] = now
    metrics: Metrics = {"cpu.percent": _cpu_percent(before["cpu"], now["cpu"])}
    metrics.update(zip(("load1", "load5", "load15"), (round(x, 2) for x in os.getloadavg())))
    metrics["mem.percent"] = psutil.virtual_memory().percent
    metrics["swap.percent"] = psutil.swap_memory().percent
    metrics["uptime_s"] = round(time.time() - psutil.boot_time())
    problems = _disks(check, metrics) + _processes(check, metrics)
    problems += _network(check, before, now, metrics)
    return metrics, problems


def _counters() -> dict[str, Any]:
    return {"at": time.monotonic(), "cpu": psutil.cpu_times(), "net": psutil.net_io_counters(pernic=True)}


def _cpu_percent(before: Any, now: Any) -> float:
    """Busy share of CPU time between two samples, as psutil computes it (idle and iowait are idle;
    Linux counts guest time in user and nice already, so it is not added twice)."""
    def split(times: Any) -> tuple[float, float]:
        idle = times.idle + getattr(times, "iowait", 0.0)
        total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
        return total - idle, total

    busy_before, total_before = split(before)
    busy_now, total_now = split(now)
    if total_now <= total_before:
        return 0.0
    return round(max(0.0, min(100.0, 100.0 * (busy_now - busy_before) / (total_now - total_before))), 1)


def _disks(check: HostCheck, metrics: Metrics) -> list[str]:
    problems = []
    for mount in check.disks:
        if os.path.isdir(mount) and not os.path.ismount(mount):  # a volume that failed to mount: its parent's figures
            problems.append(f"disk {mount}: not a mount point (nothing is mounted there)")
            continue
        try:
            usage = psutil.disk_usage(mount)
        except OSError as exc:
            problems.append(f"disk {mount}: {exc.strerror or exc}")
            continue
        metrics[f"disk.{mount}.percent"] = usage.percent
        metrics[f"disk.{mount}.free_bytes"] = usage.free
    return problems


def _processes(check: HostCheck, metrics: Metrics) -> list[str]:
    if not check.processes:
        return []
    counts = dict.fromkeys(check.processes, 0)
    for process in psutil.process_iter(["name", "cmdline", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:  # exited, not yet reaped: not running
            continue
        names = {process.info["name"]}
        if process.info["cmdline"]:
            names.add(os.path.basename(process.info["cmdline"][0]))
        for wanted in counts.keys() & names:
            counts[wanted] += 1
    for name, count in counts.items():
        metrics[f"process.{name}.count"] = count
    return [f"process {name} is not running" for name, count in counts.items() if count == 0]


def _network(check: HostCheck, before: dict[str, Any], now: dict[str, Any], metrics: Metrics) -> list[str]:
    problems = []
    seconds = now["at"] - before["at"]
    for name in check.interfaces:
        if name not in now["net"]:
            problems.append(f"interface {name} not found (have: {', '.join(sorted(now['net']))})")
            continue
        if name not in before["net"] or seconds <= 0:
            continue  # appeared since the last poll: a rate needs two samples, next poll has it
        old, new = before["net"][name], now["net"][name]
        if new.bytes_recv < old.bytes_recv or new.bytes_sent < old.bytes_sent:
            continue  # counters reset (interface re-created): no rate rather than a false one
        metrics[f"net.{name}.rx_bytes_per_s"] = round((new.bytes_recv - old.bytes_recv) / seconds, 1)
        metrics[f"net.{name}.tx_bytes_per_s"] = round((new.bytes_sent - old.bytes_sent) / seconds, 1)
    return problems


def judge(check: HostCheck, metrics: Metrics, explained: bool = False) -> list[str]:
    """Thresholds crossed, each naming its metric; a threshold on a missing metric is a problem too."""
    problems = []
    for bound, limits, crossed in (("max", check.max, lambda v, l: v > l), ("min", check.min, lambda v, l: v < l)):
        for name, limit in limits:
            if name not in metrics:
                if explained:
                    continue
                problems.append(f"{name} not measured this poll ({bound} {_show(limit)} cannot be checked)")
            elif crossed(metrics[name], limit):
                side = "above" if bound == "max" else "below"
                problems.append(f"{name} {_show(metrics[name])} {side} {bound} {_show(limit)}")
    return problems


def _show(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"
