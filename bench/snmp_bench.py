"""SNMP part of the collector benchmark: our engine beside net-snmp and snmp_exporter on one snmpd."""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from peers import cpu_seconds, free_port, result, start, stop, wait_http

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.snmp_peers import running_snmpd  # noqa: E402  (the tests' snmpd recipe, reused)

from slawatch.collectors.reading import UP  # noqa: E402
from slawatch.collectors.snmp import CommunitySession, collect  # noqa: E402
from slawatch.collectors.vantage import Vantage  # noqa: E402
from slawatch.config import SnmpCheck  # noqa: E402
from slawatch.config.values import Secret  # noqa: E402

# hrSWInstalled: one row per installed package, a few thousand values that stay put (all of MIB-2
# would also walk the TCP connection table, which the HTTP benchmark fills and empties).
SUBTREE = "1.3.6.1.2.1.25.6"
EXPORTER_YML = """\
bench:
  walk:
    - 1.3.6.1.2.1.25.6
  metrics: []
  version: 2
  max_repetitions: 25
  retries: 0
  timeout: 5s
  auth:
    community: public
"""


async def ours_walk(port: int, rounds: int) -> tuple[float, float, int]:
    """Walked values per wall second and per CPU second, on the collector's community session."""
    check = SnmpCheck(id="bench", type="snmp", interval=60.0, timeout=5.0, host="127.0.0.1", port=port,
                      version="2c", community=Secret("public"), retries=0)
    session = await CommunitySession.open(check, attempt_s=5.0)
    count = 0
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            count += len(await session.walk(SUBTREE + ".3.1.2"))  # hrSWInstalledName: one value per row
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await session.close()
    return count / wall, count / cpu, count // rounds


def netsnmp_walk(port: int, rounds: int) -> tuple[float, float, int]:
    """snmpbulkwalk on the same subtree: values per wall second and per CPU second of its processes."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    count = 0
    for _ in range(rounds):
        out = subprocess.run(["snmpbulkwalk", "-v2c", "-c", "public", "-Cr25", "-On", "-t", "5", "-r", "0",
                              f"127.0.0.1:{port}", SUBTREE], capture_output=True, check=True).stdout
        count += out.count(b"\n")
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return count / wall, count / cpu, count // rounds


def exporter_walk(port: int, rounds: int, folder: Path) -> tuple[float, float, int]:
    """prometheus-snmp-exporter walking the same subtree: values per wall and per CPU second."""
    (folder / "snmp.yml").write_text(EXPORTER_YML)
    listen = free_port()
    exporter = start("prometheus-snmp-exporter", f"--config.file={folder / 'snmp.yml'}",
                     f"--web.listen-address=127.0.0.1:{listen}")
    try:
        wait_http(f"http://127.0.0.1:{listen}/metrics")
        url = f"http://127.0.0.1:{listen}/snmp?module=bench&target=127.0.0.1:{port}"
        count, cpu_before, wall = 0, cpu_seconds(exporter.pid), time.perf_counter()
        for _ in range(rounds):
            text = urllib.request.urlopen(url, timeout=30).read().decode()
            count += int(next(line.split()[1] for line in text.splitlines()
                              if line.startswith("snmp_scrape_pdus_returned ")))
        wall, cpu = time.perf_counter() - wall, cpu_seconds(exporter.pid) - cpu_before
    finally:
        stop(exporter)
    return count / wall, count / cpu, count // rounds


async def ours_polls(port: int, polls: int) -> tuple[float, float, int]:
    """Interface polls (sysUpTime + lo's state, counters, errors) per second; engines made."""
    check = SnmpCheck(id="bench", type="snmp", interval=60.0, timeout=5.0, host="127.0.0.1", port=port,
                      version="2c", community=Secret("public"), interfaces=("lo",))
    engines = Vantage.engines_created
    async with Vantage("bench") as vantage:
        assert (await collect(check, vantage)).status == UP
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(polls):
            reading = await collect(check, vantage)
            assert reading.status == UP, reading.error
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return polls / wall, cpu / polls * 1000, Vantage.engines_created - engines


async def run(quick: bool, row: Callable[..., str]) -> list[str]:
    rounds, polls = (3, 300) if quick else (10, 1000)
    lines = []
    with tempfile.TemporaryDirectory() as folder, running_snmpd(Path(folder)) as agent:
        ours = await ours_walk(agent.port, rounds)
        netsnmp = netsnmp_walk(agent.port, rounds)
        exporter = exporter_walk(agent.port, rounds, Path(folder))
        lines.append(f"(walk of {SUBTREE}: {ours[2]} values per walk, snmpbulkwalk saw {netsnmp[2]}, "
                     f"snmp_exporter {exporter[2]})")
        lines.append(row("SNMP walked values/s (wall)", ours[0], "snmpbulkwalk", netsnmp[0], "values/s", False))
        lines.append(row("SNMP walked values per CPU s", ours[1], "snmpbulkwalk", netsnmp[1], "values/s", False))
        lines.append(row("SNMP walked values per CPU s", ours[1], "snmp_exporter 0.21", exporter[1], "values/s", False))
        per_s, cpu_ms, engines = await ours_polls(agent.port, polls)
        lines.append(f"{'SNMP interface polls/s (1 device)':<34} {per_s:>10.1f}   CPU {cpu_ms:.2f} ms per poll")
        lines.append(f"{f'SNMP engines created for {polls + 1} polls':<34} {engines:>10d}   "
                     "(v1/v2c need none; SNMPv3 shares one)")
        lines.append(result("SNMP walked values per CPU-s", ours[1], "values/s", ">= 4000", "snmpbulkwalk",
                            netsnmp[1]))
        lines.append(result("SNMP walked values per CPU-s", ours[1], "values/s", ">= 4000", "snmp_exporter",
                            exporter[1]))
        lines.append(result("SNMP walked values/s (wall)", ours[0], "values/s", "", "snmpbulkwalk", netsnmp[0]))
        lines.append(result("SNMP interface poll CPU (1 device)", cpu_ms, "ms"))
        lines.append(result(f"SNMP engines created for {polls + 1} v2c polls", engines, "engines", "<= 1"))
    return lines
