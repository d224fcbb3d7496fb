"""Host checks on this machine's real psutil figures."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import psutil
import pytest

from slawatch.collectors.host import collect
from slawatch.collectors.reading import DOWN, UP
from slawatch.collectors.vantage import Vantage
from slawatch.config import HostCheck


def check(**settings: Any) -> HostCheck:
    return HostCheck(id="self", type="host", interval=30.0, timeout=10.0, **settings)


async def test_reports_every_metric(vantage: Vantage) -> None:
    me = psutil.Process().name()
    reading = await collect(check(disks=("/",), processes=(me,), interfaces=("lo",)), vantage)
    assert (reading.status, reading.error) == (UP, None)
    assert set(reading.metrics) == {
        "cpu.percent", "load1", "load5", "load15", "mem.percent", "swap.percent", "uptime_s",
        "disk./.percent", "disk./.free_bytes", f"process.{me}.count", "net.lo.rx_bytes_per_s", "net.lo.tx_bytes_per_s",
    }
    assert 0 <= reading.metrics["cpu.percent"] <= 100
    assert reading.metrics[f"process.{me}.count"] >= 1
    usage = psutil.disk_usage("/")
    assert abs(reading.metrics["disk./.free_bytes"] - usage.free) < 0.05 * usage.total
    assert reading.metrics["uptime_s"] > 0
    assert reading.latency_ms is None


async def test_max_below_the_current_value_is_down_naming_the_metric(vantage: Vantage) -> None:
    reading = await collect(check(max=(("uptime_s", 1.0),)), vantage)
    assert reading.status == DOWN
    assert reading.error == f"uptime_s {int(reading.metrics['uptime_s'])} above max 1"


async def test_min_above_the_current_value_is_down(vantage: Vantage) -> None:
    reading = await collect(check(disks=("/",), min=(("disk./.free_bytes", 1e18),)), vantage)
    assert reading.status == DOWN
    assert reading.error == f"disk./.free_bytes {int(reading.metrics['disk./.free_bytes'])} below min 1000000000000000000"


async def test_thresholds_that_hold_are_up(vantage: Vantage) -> None:
    reading = await collect(check(disks=("/",), max=(("disk./.percent", 100.0), ("mem.percent", 100.0)),
                                  min=(("uptime_s", 1.0),)), vantage)
    assert (reading.status, reading.error) == (UP, None)


async def test_missing_process_disk_and_interface(vantage: Vantage) -> None:
    reading = await collect(check(disks=("/no/such/mount",), processes=("no-such-process-x",),
                                  interfaces=("nosuch0",)), vantage)
    assert reading.status == DOWN
    assert reading.error is not None
    parts = reading.error.split("; ")
    assert parts[0] == "disk /no/such/mount: No such file or directory"
    assert parts[1] == "process no-such-process-x is not running"
    assert parts[2].startswith("interface nosuch0 not found (have: ") and "lo" in parts[2]
    assert reading.metrics["process.no-such-process-x.count"] == 0


async def test_network_rates_follow_traffic(vantage: Vantage) -> None:
    host = check(interfaces=("lo",))
    first = time.monotonic()
    await collect(host, vantage)
    payload = os.urandom(1 << 20)
    with socket.socket() as server, socket.socket() as client:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        client.connect(server.getsockname())
        peer, _ = server.accept()
        client.sendall(payload)
        received = 0
        while received < len(payload):
            received += len(peer.recv(1 << 16))
        peer.close()
    reading = await collect(host, vantage)
    last = time.monotonic()
    # At least the megabyte sent, spread over no more than the time between the two samples.
    least = len(payload) / (last - first)
    assert reading.metrics["net.lo.rx_bytes_per_s"] >= least
    assert reading.metrics["net.lo.tx_bytes_per_s"] >= least


def test_cpu_percent_does_not_count_guest_time_twice() -> None:
    """Linux counts a guest's time in user (and nice) already: 5 s of a VM and 5 s idle is 50 %."""
    from slawatch.collectors.host import _cpu_percent

    kind = type(psutil.cpu_times())
    zero = dict.fromkeys(kind._fields, 0.0)
    before = kind(**zero)
    after = kind(**zero | {"user": 5.0, "idle": 5.0} | ({"guest": 5.0} if "guest" in kind._fields else {}))
    assert _cpu_percent(before, after) == 50.0


async def test_a_hung_host_sample_holds_one_thread_of_its_own(vantage: Vantage,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that hangs (a dead NFS mount) makes the host check down, never runs twice at once, and
    leaves the default threads (name lookups of every other check) free."""
    import asyncio
    import threading

    from slawatch.collectors import host
    from slawatch.collectors.registry import run_check

    release, real = threading.Event(), host.sample
    monkeypatch.setattr(host, "sample", lambda *args: (release.wait(30), real(*args))[1])
    hung = HostCheck(id="self", type="host", interval=30.0, timeout=0.2)
    try:
        for _ in range(10):
            assert (await run_check(hung, vantage)).status == DOWN
        again = await collect(hung, vantage)
        assert again.error is not None and "the previous sample has not finished" in again.error
        assert await asyncio.wait_for(asyncio.gather(*(asyncio.to_thread(lambda: 1) for _ in range(40))), 5)
    finally:
        release.set()
    await asyncio.sleep(0.5)
    assert (await collect(hung, vantage)).status == UP
