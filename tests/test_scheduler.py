"""The schedule: stable spread offsets, no overlapping runs, a global limit, canaries."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slawatch.agent.scheduler import TICK_S, Scheduler, next_slot, offset
from slawatch.collectors.reading import Reading
from slawatch.collectors.vantage import Vantage
from slawatch.config import TcpCheck

from .conftest import free_port


def test_offsets_are_stable_and_spread_across_the_interval() -> None:
    offsets = [offset("probe", f"check-{i}", 60.0) for i in range(1200)]
    assert offsets == [offset("probe", f"check-{i}", 60.0) for i in range(1200)]
    deciles = [sum(1 for o in offsets if 6 * d <= o < 6 * (d + 1)) for d in range(10)]
    assert all(80 <= n <= 160 for n in deciles), deciles
    assert offset("probe", "web", 60.0) != offset("other-probe", "web", 60.0)


@given(now=st.floats(0, 2e9), interval=st.floats(1, 86400), share=st.floats(0, 0.999))
def test_next_slot_is_the_next_point_at_the_phase(now: float, interval: float, share: float) -> None:
    phase = share * interval
    slot = next_slot(now, interval, phase)
    assert now < slot <= now + interval + 1e-6 * max(1.0, now)
    cycles = (slot - phase) / interval
    assert abs(cycles - round(cycles)) < 1e-6 * max(1.0, cycles)


class Silent:
    """A TCP server that accepts and never speaks; counts connections open at once."""

    def __init__(self) -> None:
        self.open = 0
        self.most = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.most = max(self.most, self.open)
        try:
            await reader.read()  # until the client gives up
        finally:
            self.open -= 1
            writer.close()


@pytest.fixture
async def silent() -> AsyncIterator[tuple[Silent, int]]:
    peer = Silent()
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    yield peer, server.sockets[0].getsockname()[1]
    server.close()


def banner_check(name: str, port: int, interval: float = 1.0, timeout: float = 0.9) -> TcpCheck:
    return TcpCheck(id=name, type="tcp", interval=interval, timeout=timeout, host="127.0.0.1", port=port,
                    expect_banner="^220")


async def run_for(scheduler: Scheduler, seconds: float) -> None:
    stopping = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stopping))
    await asyncio.sleep(seconds)
    stopping.set()
    await task


async def test_global_limit_and_no_overlapping_runs(silent: tuple[Silent, int],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    peer, port = silent
    readings: list[Reading] = []

    async def record(reading: Reading) -> None:
        readings.append(reading)

    checks = [banner_check(f"slow-{i}", port) for i in range(4)]
    caplog.set_level(logging.WARNING, logger="slawatch.agent.scheduler")
    async with Vantage("probe") as vantage:
        scheduler = Scheduler("probe", checks, vantage, record, concurrency=2)
        await run_for(scheduler, 3.5)
    assert peer.most == 2  # never more checks at once than the limit
    assert sum(s.skipped for s in scheduler.stats.values()) > 0
    for check in checks:
        starts = sorted(r.ts for r in readings if r.check == check.id)
        gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:])]
        assert all(g >= 0.85 for g in gaps), gaps  # one run at a time: each lasts 0.9 s
    overruns = [r.message for r in caplog.records if "check-overrun" in r.message]
    assert len(overruns) == len({m.split()[1] for m in overruns})  # logged once per check


async def test_hanging_checks_do_not_hold_up_healthy_ones(silent: tuple[Silent, int]) -> None:
    _, port = silent
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    readings: list[Reading] = []

    async def record(reading: Reading) -> None:
        readings.append(reading)

    hanging = [banner_check(f"slow-{i}", port) for i in range(3)]
    healthy = TcpCheck(id="fast", type="tcp", interval=1.0, timeout=0.5, host="127.0.0.1",
                       port=listener.getsockname()[1])
    async with Vantage("probe") as vantage:
        scheduler = Scheduler("probe", [*hanging, healthy], vantage, record, concurrency=2)
        await run_for(scheduler, 4.2)
    listener.close()
    fast = [r for r in readings if r.check == "fast"]
    assert len(fast) >= 3 and all(r.status == "up" for r in fast)  # one per second or so, not starved


async def test_every_check_runs_at_start_then_on_its_slot() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    readings: list[Reading] = []

    async def record(reading: Reading) -> None:
        readings.append(reading)

    checks = [TcpCheck(id=f"c{i}", type="tcp", interval=1.0, timeout=0.5, host="127.0.0.1", port=port)
              for i in range(5)]
    async with Vantage("probe") as vantage:
        await run_for(Scheduler("probe", checks, vantage, record), 2.6)
    listener.close()
    first = min(r.ts for r in readings)
    for check in checks:
        times = sorted((r.ts - first).total_seconds() for r in readings if r.check == check.id)
        assert times[0] < 0.3                       # at start
        assert 2 <= len(times) <= 4
        phase = offset("probe", check.id, 1.0)
        for t in times[1:]:                         # then on its own slot of every second
            late = (t + first.timestamp() - phase) % 1.0
            assert late < TICK_S + 0.1, (check.id, late)  # started on the tick grid after its slot


async def test_while_all_canaries_are_down_other_readings_are_unknown() -> None:
    closed = free_port()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    readings: list[Reading] = []

    async def record(reading: Reading) -> None:
        readings.append(reading)

    canary = TcpCheck(id="gateway", type="tcp", interval=1.0, timeout=0.5, host="127.0.0.1", port=closed)
    service = TcpCheck(id="web", type="tcp", interval=1.0, timeout=0.5, host="127.0.0.1",
                       port=listener.getsockname()[1])
    async with Vantage("probe") as vantage:
        await run_for(Scheduler("probe", [canary, service], vantage, record, canaries=["gateway"]), 2.5)
    listener.close()
    gateway_down = min(r.ts for r in readings if r.check == "gateway")
    later = [r for r in readings if r.check == "web" and r.ts > gateway_down]
    assert later and all(r.status == "unknown" for r in later)
    assert all(r.error and r.error.endswith("; observed up") for r in later)


def test_until_every_canary_has_reported_the_agent_cannot_tell() -> None:
    from slawatch.agent.canaries import blind_reason

    up = Reading(agent="probe", check="gw", ts=dt.datetime.now(dt.timezone.utc), status="up", interval_s=1.0)
    assert blind_reason(["gw", "dns"], {}) == "canaries not checked yet (gw, dns)"
    assert blind_reason(["gw", "dns"], {"gw": up}) == "canaries not checked yet (dns)"
    assert blind_reason(["gw"], {"gw": up}) is None
    assert blind_reason([], {}) is None


async def test_a_stopped_schedule_starts_nothing_more(silent: tuple[Silent, int]) -> None:
    """Stopping (a reload's old schedule, SIGTERM) cancels the running checks; the ones waiting for a
    run slot do not start as those free theirs."""
    _, port = silent
    readings: list[Reading] = []

    async def record(reading: Reading) -> None:
        readings.append(reading)

    checks = [banner_check(f"slow-{i}", port, interval=10.0, timeout=2.0) for i in range(4)]
    async with Vantage("probe") as vantage:
        scheduler = Scheduler("probe", checks, vantage, record, concurrency=2)
        await run_for(scheduler, 0.5)
        await asyncio.sleep(3.0)  # a check started by a cancelled one would have a reading by now
    assert readings == []
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("run:")]


async def test_a_check_whose_run_outlasts_its_slot_runs_again_as_it_ends(silent: tuple[Silent, int]) -> None:
    """Timeout as long as the interval, against a target that hangs: each run takes the whole
    interval, and the next starts as it ends instead of skipping a slot, so the readings cover the
    outage without gaps (1.5 intervals each)."""
    _, port = silent
    readings: list[Reading] = []

    async def record(reading: Reading) -> None:
        readings.append(reading)

    async with Vantage("probe") as vantage:
        await run_for(Scheduler("probe", [banner_check("hang", port, interval=1.0, timeout=1.0)], vantage, record),
                      6.5)
    starts = sorted(r.ts for r in readings)
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:])]
    assert len(starts) >= 5 and all(r.status == "down" for r in readings)
    assert max(gaps) < 1.5, gaps


async def test_a_reading_is_judged_by_the_canary_reading_in_force_when_it_was_taken() -> None:
    """The gateway is down; a check starts, blind, and hangs; the network comes back and the gateway's
    next reading is up before the check ends. The check's reading was taken while every canary was
    down: unknown, not the provider's outage."""
    gateway = socket.socket()
    gateway.bind(("127.0.0.1", 0))
    gateway_port = gateway.getsockname()[1]  # bound, not listening: refused, the gateway is down
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(16)  # takes the connection, never sends the banner
    readings: list[Reading] = []

    async def record(reading: Reading) -> None:
        readings.append(reading)

    canary = TcpCheck(id="gateway", type="tcp", interval=1.0, timeout=0.5, host="127.0.0.1", port=gateway_port)
    service = banner_check("web", hanging.getsockname()[1], interval=10.0, timeout=2.0)
    async with Vantage("probe") as vantage:
        scheduler = Scheduler("probe", [service, canary], vantage, record, canaries=["gateway"])
        stopping = asyncio.Event()
        task = asyncio.create_task(scheduler.run(stopping))
        await asyncio.sleep(0.5)
        gateway.listen(16)  # the network is back: the gateway's next reading is up
        await asyncio.sleep(2.5)
        stopping.set()
        await task
    gateway.close()
    hanging.close()
    gateway_seen = [(r.ts, r.status) for r in sorted(readings, key=lambda r: r.ts) if r.check == "gateway"]
    assert gateway_seen[0][1] == "down" and "up" in [status for _, status in gateway_seen]
    [web] = [r for r in readings if r.check == "web"]
    assert web.status == "unknown" and web.error is not None and "observed down" in web.error
