"""Collector benchmarks: our HTTP and SNMP collectors beside real peers, in one run.

    make bench     (or: .venv/bin/python bench/collectors.py [--quick])

Prints CPU per plain HTTP check (ours vs prometheus-blackbox-exporter probing the same loopback
server), SNMP GETs/s and walked values/s (ours vs net-snmp `snmpbulkwalk` and
prometheus-snmp-exporter against the same snmpd), and the SNMP engine count after 1,000 polls.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import urllib.parse
from pathlib import Path

import aiohttp

from slawatch.collectors.http import collect as http_collect
from slawatch.collectors.reading import UP
from slawatch.collectors.vantage import Vantage
from slawatch.config import HttpCheck
from slawatch.config.values import Secret

from peers import cpu_seconds, free_port, http_target, result, start, stop, wait_http
import snmp_bench

BLACKBOX_YML = """\
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
"""


async def ours_http(url: str, count: int, concurrency: int, fresh: bool) -> float:
    """CPU milliseconds per HTTP check, measured in this process (the agent's own cost).

    With `fresh`, every check opens a new connection (`Connection: close`), as polls a minute
    apart do in practice and as the blackbox exporter does for every probe.
    """
    headers = ((("Connection", Secret("close")),) if fresh else ())
    check = HttpCheck(id="bench", type="http", interval=60.0, timeout=5.0, url=url, expect_body="OK",
                      headers=headers)
    limit = asyncio.Semaphore(concurrency)

    async def one(vantage: Vantage) -> None:
        async with limit:
            reading = await http_collect(check, vantage)
            assert reading.status == UP, reading.error

    async with Vantage("bench") as vantage:
        for _ in range(50):
            await one(vantage)  # warm the pool and the code paths
        before = time.process_time()
        await asyncio.gather(*(one(vantage) for _ in range(count)))
        spent = time.process_time() - before
    return spent / count * 1000


async def blackbox_http(url: str, count: int, concurrency: int, folder: Path) -> float:
    """CPU milliseconds per probe of prometheus-blackbox-exporter on the same target."""
    config = folder / "blackbox.yml"
    config.write_text(BLACKBOX_YML)
    port = free_port()
    exporter = start("prometheus-blackbox-exporter", f"--config.file={config}",
                     f"--web.listen-address=127.0.0.1:{port}")
    try:
        wait_http(f"http://127.0.0.1:{port}/metrics")
        probe = f"http://127.0.0.1:{port}/probe?module=http_2xx&target={urllib.parse.quote(url, safe='')}"
        limit = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession() as session:
            async def one() -> None:
                async with limit, session.get(probe) as response:
                    assert "probe_success 1" in await response.text()

            for _ in range(50):
                await one()
            before = cpu_seconds(exporter.pid)
            await asyncio.gather(*(one() for _ in range(count)))
            spent = cpu_seconds(exporter.pid) - before
    finally:
        stop(exporter)
    return spent / count * 1000


def row(what: str, ours: float, peer_name: str, peer: float, unit: str, lower_is_better: bool) -> str:
    ratio = ours / peer if peer else float("nan")
    better = "lower is better" if lower_is_better else "higher is better"
    return f"{what:<34} {ours:>10.3f} {peer_name:<28} {peer:>10.3f} {ratio:>7.2f}x  {unit}, {better}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    args = parser.parse_args()
    count = 500 if args.quick else 3000
    print(f"{'measure':<34} {'slawatch':>10} {'peer':<28} {'peer value':>10} {'ratio':>8}")
    target, url = http_target()
    try:
        with tempfile.TemporaryDirectory() as folder:
            fresh = await ours_http(url, count, concurrency=10, fresh=True)
            reused = await ours_http(url, count, concurrency=10, fresh=False)
            peer = await blackbox_http(url, count, concurrency=10, folder=Path(folder))
            print(row("HTTP CPU/check, new connection", fresh, "blackbox-exporter 0.23", peer, "ms", True))
            print(row("HTTP CPU/check, kept-alive conn.", reused, "blackbox-exporter 0.23", peer, "ms", True))
            print(result("HTTP collector CPU per check, new connection", fresh, "ms", "<= 0.5",
                         "blackbox-exporter", peer))
            print(result("HTTP collector CPU per check, kept-alive", reused, "ms", "<= 0.5",
                         "blackbox-exporter", peer), flush=True)
    finally:
        stop(target)
    for line in await snmp_bench.run(quick=args.quick, row=row):
        print(line, flush=True)
    print("targets: HTTP <= 0.5 ms CPU per check; SNMP >= 4,000 walked values/s per core; 1 SNMP engine")


if __name__ == "__main__":
    asyncio.run(main())
