"""Agent benchmark: the real `slawatch-agent run` polling thousands of loopback targets.

    make bench     (or: cd bench && ../.venv/bin/python agent.py [--quick])

Measures, in one run on the same targets: RSS over time and CPU per check of the agent polling
3,000 HTTP checks a minute, beside prometheus-blackbox-exporter probing the same targets at the
same rate; then the drain rate of a 24 h backlog through the real shipper to a verifying receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import aiohttp
import psutil
from aiohttp import web

from peers import cpu_seconds, free_port, http_target, result, start, stop, wait_http

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.snmp_peers import running_snmpd  # noqa: E402  (the tests' snmpd recipe, reused)

from slawatch.agent.protocol import (HEADER_BATCH, INGEST_PATH, MANIFEST_PATH, Refused, parse_batch,
                                     public_key_from_line, verify)
from slawatch.agent.shipper import Shipper, SpoolAccess
from slawatch.agent.spool import Spool
from slawatch.collectors.reading import Reading
from slawatch.config.keys import load_private_key, public_key_line

ROOT = Path(__file__).resolve().parent.parent
KEY_FILE = ROOT / "config" / "examples" / "secrets" / "agent.key"
BLACKBOX_YML = "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n"


class Receiver:
    """Verifies every batch with the shared protocol module and counts readings."""

    def __init__(self) -> None:
        key = load_private_key(KEY_FILE.read_bytes())
        self.keys = {"bench": public_key_from_line(public_key_line(key))}
        self.readings = 0
        self.seqs: set[int] = set()

    async def ingest(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            envelope = verify(request.headers, INGEST_PATH, body, self.keys)
            batch = parse_batch(envelope, body)
        except Refused as refused:
            return web.json_response({"error": refused.reason}, status=refused.status)
        self.readings += len(batch.readings)
        self.seqs.update(r.seq for r in batch.readings)
        return web.json_response({"batch": envelope.batch, "accepted": len(batch.readings)})  # an acknowledgement

    async def manifest(self, request: web.Request) -> web.Response:
        return web.json_response({"batch": request.headers.get(HEADER_BATCH, "")})

    async def serve(self) -> tuple[web.AppRunner, str]:
        app = web.Application(client_max_size=256 * 2**20)
        app.router.add_post(INGEST_PATH, self.ingest)
        app.router.add_post(MANIFEST_PATH, self.manifest)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner, f"http://127.0.0.1:{port}"


def agent_config(folder: Path, watchdog: str, target: str, checks: int, snmp_port: int | None = None,
                 snmp_checks: int = 0) -> Path:
    shutil.copy(KEY_FILE, folder / "agent.key")
    lines = [f'[agent]\nid = "bench"\nspool = "spool.db"\nkey_file = "agent.key"\n'
             f'[watchdog]\nurl = "{watchdog}"\n[defaults]\ninterval = "60s"\ntimeout = "10s"\n']
    for i in range(checks):
        lines.append(f'[[check]]\nid = "web-{i}"\ntype = "http"\nurl = "{target}?n={i}"\nexpect_body = "OK"\n')
    for i in range(snmp_checks):
        lines.append(f'[[check]]\nid = "switch-{i}"\ntype = "snmp"\nhost = "127.0.0.1"\nport = {snmp_port}\n'
                     'community = "public"\ninterfaces = ["lo"]\n')
    path = folder / "agent.toml"
    path.write_text("".join(lines))
    return path


async def measure_agent(folder: Path, target: str, checks: int, seconds: float, snmp_port: int,
                        snmp_checks: int) -> dict[str, float]:
    folder.mkdir()
    receiver = Receiver()
    runner, url = await receiver.serve()
    config = agent_config(folder, url, target, checks, snmp_port, snmp_checks)
    process = await asyncio.create_subprocess_exec(str(Path(sys.executable).parent / "slawatch-agent"), "run",
                                                   "-c", str(config), stderr=asyncio.subprocess.DEVNULL)
    agent = psutil.Process(process.pid)
    await asyncio.sleep(min(20.0, seconds / 4))  # start-up and the first round of every check
    cpu_before, readings_before = cpu_seconds(process.pid), receiver.readings
    rss = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rss.append(agent.memory_info().rss)
        await asyncio.sleep(5)
    cpu = cpu_seconds(process.pid) - cpu_before
    shipped = receiver.readings - readings_before
    process.terminate()
    await process.wait()
    await runner.cleanup()
    return {"cpu_ms_per_check": cpu / max(1, shipped) * 1000, "rss_first_mb": rss[0] / 2**20,
            "rss_last_mb": rss[-1] / 2**20, "rss_max_mb": max(rss) / 2**20, "readings": shipped,
            "per_minute": shipped / seconds * 60}


async def measure_blackbox(folder: Path, target: str, checks: int, seconds: float) -> dict[str, float]:
    """The exporter probing the same targets at the same rate (probes spread over each minute)."""
    (folder / "blackbox.yml").write_text(BLACKBOX_YML)
    port = free_port()
    exporter = start("prometheus-blackbox-exporter", f"--config.file={folder / 'blackbox.yml'}",
                     f"--web.listen-address=127.0.0.1:{port}")
    wait_http(f"http://127.0.0.1:{port}/metrics")
    process = psutil.Process(exporter.pid)
    probes = [f"http://127.0.0.1:{port}/probe?module=http_2xx&target={urllib.parse.quote(f'{target}?n={i}', safe='')}"
              for i in range(checks)]
    gap = 60.0 / checks
    done, rss = 0, []
    async with aiohttp.ClientSession() as session:
        async def probe(url: str) -> None:
            nonlocal done
            async with session.get(url) as response:
                assert "probe_success 1" in await response.text()
                done += 1

        cpu_before = cpu_seconds(exporter.pid)
        started = time.monotonic()
        pending = set()
        i = 0
        while time.monotonic() - started < seconds:
            pending.add(asyncio.create_task(probe(probes[i % checks])))
            i += 1
            if i % 250 == 0:
                rss.append(process.memory_info().rss)
                pending = {t for t in pending if not t.done()}
            await asyncio.sleep(max(0.0, started + i * gap - time.monotonic()))
        await asyncio.gather(*pending)
        cpu = cpu_seconds(exporter.pid) - cpu_before
    stop(exporter)
    return {"cpu_ms_per_check": cpu / max(1, done) * 1000, "rss_max_mb": max(rss) / 2**20, "probes": done}


async def measure_drain(folder: Path, readings: int) -> dict[str, float]:
    """A day of readings (for 1,000 checks at 60 s, scaled to `readings`) shipped from the spool."""
    receiver = Receiver()
    runner, url = await receiver.serve()
    spool = Spool(folder / "backlog.db", "bench")
    start_ts = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    step = dt.timedelta(seconds=86400 / readings)
    chunk = [Reading(agent="bench", check=f"web-{i % 1000}", ts=start_ts + step * i, status="up", interval_s=60.0,
                     latency_ms=12.3, metrics={"http.status": 200, "http.bytes": 2}) for i in range(readings)]
    expected: set[int] = set()
    for i in range(0, readings, 10000):
        expected.update(r.seq for r in spool.append(chunk[i:i + 10000]))
    key = load_private_key(KEY_FILE.read_bytes())
    access = SpoolAccess(spool)
    shipper = Shipper("bench", url, key, access, batch_size=1000, batch_wait=0.0)
    stopping = asyncio.Event()
    started = time.monotonic()
    task = asyncio.create_task(shipper.run(stopping))
    while receiver.readings < readings:
        await asyncio.sleep(0.05)
    seconds = time.monotonic() - started
    stopping.set()
    await task
    access.close()
    await runner.cleanup()
    assert receiver.seqs == expected, "every seq exactly once"
    real_rate = 1000 / 60  # readings/s produced by 1,000 checks at 60 s
    return {"readings_per_s": readings / seconds, "times_real_time": readings / seconds / real_rate,
            "seconds": seconds, "hours": readings / real_rate / 3600}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter run (smoke)")
    args = parser.parse_args()
    seconds = 60.0 if args.quick else 180.0
    checks, snmp_checks = 3000, 1000
    target_process, target = http_target()
    try:
        with tempfile.TemporaryDirectory() as folder, running_snmpd(Path(folder)) as snmpd:
            http_only = await measure_agent(Path(folder) / "http", target, checks, seconds, snmpd.port, 0)
            ours = await measure_agent(Path(folder) / "mixed", target, checks, seconds, snmpd.port, snmp_checks)
            peer = await measure_blackbox(Path(folder), target, checks, seconds)
            drain = await measure_drain(Path(folder), 144_000 if args.quick else 1_440_000)
    finally:
        stop(target_process)
    print(f"agent polling {checks} HTTP checks a minute for {seconds:.0f} s "
          f"({http_only['per_minute']:.0f} readings shipped a minute), blackbox-exporter probing the same targets:")
    print(f"  CPU per HTTP check  slawatch {http_only['cpu_ms_per_check']:.3f} ms   blackbox-exporter "
          f"{peer['cpu_ms_per_check']:.3f} ms   ratio {http_only['cpu_ms_per_check'] / peer['cpu_ms_per_check']:.2f}x"
          "   (target <= 0.5 ms)")
    print(f"  RSS                 slawatch first {http_only['rss_first_mb']:.1f} MB, last {http_only['rss_last_mb']:.1f} MB,"
          f" max {http_only['rss_max_mb']:.1f} MB   blackbox-exporter max {peer['rss_max_mb']:.1f} MB")
    print(f"agent polling {checks} HTTP + {snmp_checks} SNMP checks a minute for {seconds:.0f} s "
          f"({ours['per_minute']:.0f} readings shipped a minute):")
    print(f"  CPU per check       slawatch {ours['cpu_ms_per_check']:.3f} ms (HTTP and SNMP together)")
    print(f"  RSS                 slawatch first {ours['rss_first_mb']:.1f} MB, last {ours['rss_last_mb']:.1f} MB, "
          f"max {ours['rss_max_mb']:.1f} MB   (target <= 64 MB, flat)")
    print(f"backlog drain: {drain['readings_per_s']:.0f} readings/s = {drain['times_real_time']:.0f}x real time "
          f"for 1,000 checks at 60 s ({drain['seconds']:.1f} s)   (target >= 10x)")
    print(result(f"agent CPU per HTTP check, {checks:,} HTTP/min", http_only["cpu_ms_per_check"], "ms", "<= 0.5",
                 "blackbox-exporter", peer["cpu_ms_per_check"]))
    print(result(f"agent RSS max, {checks:,} HTTP/min", http_only["rss_max_mb"], "MB", "<= 64",
                 "blackbox-exporter", peer["rss_max_mb"]))
    print(result(f"agent readings shipped/min, {checks:,} HTTP/min", http_only["per_minute"], "readings"))
    mixed = f"{checks:,} HTTP + {snmp_checks:,} SNMP/min"
    print(result(f"agent CPU per check, {mixed}", ours["cpu_ms_per_check"], "ms"))
    print(result(f"agent RSS max, {mixed}", ours["rss_max_mb"], "MB", "<= 64"))
    print(result(f"agent RSS growth first->last sample, {mixed}", ours["rss_last_mb"] - ours["rss_first_mb"], "MB",
                 "flat"))
    print(result(f"agent readings shipped/min, {mixed}", ours["per_minute"], "readings"))
    print(result("backlog drain, 1,000 checks at 60 s", drain["times_real_time"], "x real time", ">= 10"))
    print(result("spool backlog held and drained, 1,000 checks at 60 s", drain["hours"], "h", ">= 24"))


if __name__ == "__main__":
    asyncio.run(main())
