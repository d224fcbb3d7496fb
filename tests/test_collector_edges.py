"""Collectors at their edges: redirects counted as configured, the certificate of the port polled
(and an expired one failing tls_min_days = 0), JSON nested too deeply, SNMP rates over the interval
of their two samples and SNMPv3 over IPv6, a zombie process, a mount point with nothing mounted."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import trustme

from slawatch.collectors.host import collect as host_collect
from slawatch.collectors.http import collect as http_collect
from slawatch.collectors.reading import DOWN, UP
from slawatch.collectors.snmp import collect as snmp_collect
from slawatch.collectors.vantage import Vantage
from slawatch.config import HostCheck, SnmpCheck
from slawatch.config.values import Secret

from .http_peers import peer_app, serve, server_context
from .snmp_peers import free_udp_port, running_snmpsim, snmpd_path, stop, wait_for_agent
from .test_http import check as http_check
from .test_snmp import snmp_check


NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture
async def plain() -> AsyncIterator[str]:
    async for url in serve(peer_app()):
        yield url


# --- HTTP: redirects ------------------------------------------------------------------------------

async def test_max_redirects_zero_follows_no_redirect(vantage: Vantage, plain: str) -> None:
    """config/checks/http.py: max_redirects = "most redirects followed" (0..30 allowed).
    With 0, a 302 must not be followed; aiohttp treats 0 as 'no limit' and the check is up."""
    reading = await http_collect(http_check(f"{plain}/redirect/4", max_redirects=0), vantage)
    assert reading.status == DOWN, (reading.status, reading.error, reading.metrics)


async def test_exactly_max_redirects_is_allowed(vantage: Vantage, plain: str) -> None:
    """max_redirects = 3 promises 3 redirects are followed: /redirect/2 -> /redirect/1 ->
    /redirect/0 -> /ok is 3 redirects and then 200; it must be up (not 'more than 3')."""
    reading = await http_collect(http_check(f"{plain}/redirect/2", max_redirects=3), vantage)
    assert (reading.status, reading.error) == (UP, None), reading.error


# --- HTTP: TLS certificate lifetime -----------------------------------------------------------

@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


async def test_tls_min_days_reads_the_certificate_of_the_polled_port(vantage: Vantage, ca: trustme.CA,
                                                                     tmp_path: Path) -> None:
    """tls_min_days: "down when the certificate expires sooner". Two services on one host, ports
    A (90 days left) and B (5 days left). Polling B, A, then B again: the third poll must see
    B's certificate (5 days < 14 -> down), not A's."""
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    good = serve(peer_app(), server_context(ca, "127.0.0.1", not_after=NOW + dt.timedelta(days=90, hours=1)))
    soon = serve(peer_app(), server_context(ca, "127.0.0.1", not_after=NOW + dt.timedelta(days=5, hours=1)))
    good_url, soon_url = await good.__anext__(), await soon.__anext__()
    try:
        check_b = http_check(f"{soon_url}/ok", id="b", ca_file=str(ca_file), tls_min_days=14)
        check_a = http_check(f"{good_url}/ok", id="a", ca_file=str(ca_file), tls_min_days=14)
        first = await http_collect(check_b, vantage)
        assert (first.status, first.metrics["tls.days_left"]) == (DOWN, 5)
        assert (await http_collect(check_a, vantage)).status == UP
        again = await http_collect(check_b, vantage)
        assert (again.status, again.metrics["tls.days_left"]) == (DOWN, 5)
    finally:
        await good.aclose()
        await soon.aclose()


async def test_tls_min_days_zero_with_an_expired_certificate(vantage: Vantage, ca: trustme.CA) -> None:
    """tls_min_days = 0 with verify_tls = false (a self-signed service): "down when the certificate
    expires sooner" than 0 days, i.e. down once it has expired. Expired 12 h ago must be down."""
    server = serve(peer_app(), server_context(ca, "127.0.0.1", not_before=NOW - dt.timedelta(days=30),
                                              not_after=NOW - dt.timedelta(hours=12)))
    url = await server.__anext__()
    try:
        reading = await http_collect(http_check(f"{url}/ok", verify_tls=False, tls_min_days=0), vantage)
    finally:
        await server.aclose()
    assert reading.status == DOWN, (reading.status, reading.metrics)
    assert reading.metrics["tls.days_left"] < 0


async def test_json_expectation_on_a_deeply_nested_body_gives_a_down_reading(vantage: Vantage) -> None:
    """Every failure is a down reading with a reason, never an exception out of the collector:
    expect_json against a body nested 100,000 deep (RecursionError in json.loads)."""
    from aiohttp import web

    async def deep(request: web.Request) -> web.Response:
        return web.Response(text="[" * 100_000 + "]" * 100_000, content_type="application/json")

    app = web.Application()
    app.router.add_get("/deep", deep)
    server = serve(app)
    url = await server.__anext__()
    try:
        reading = await http_collect(http_check(f"{url}/deep", expect_json=(("a", 1),)), vantage)
    finally:
        await server.aclose()
    assert reading.status == DOWN and reading.error.startswith("body is not JSON")  # type: ignore[union-attr]



# --- SNMP: rates ----------------------------------------------------------------------------------


IF = "1.3.6.1.2.1.2.2.1"
IFX = "1.3.6.1.2.1.31.1.1.1"


def snmprec(uptime: int, counters: tuple[int, int] | None) -> str:
    """One device with eth0 at ifIndex 2, oper up; 32-bit octet counters unless None."""
    rows = [("1.3.6.1.2.1.1.3.0", 67, uptime), (f"{IF}.1.2", 2, 2), (f"{IF}.2.2", 4, "eth0"),
            (f"{IF}.8.2", 2, 1), (f"{IF}.14.2", 65, 0), (f"{IF}.20.2", 65, 0), (f"{IFX}.1.2", 4, "eth0")]
    if counters is not None:
        rows += [(f"{IF}.10.2", 65, counters[0]), (f"{IF}.16.2", 65, counters[1])]
    rows.sort(key=lambda row: tuple(int(x) for x in row[0].split(".")))
    return "".join(f"{oid}|{tag}|{value}\n" for oid, tag, value in rows)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("sim")
    data = folder / "data"
    data.mkdir()
    (data / "t0.snmprec").write_text(snmprec(100_000, (1_000, 1_000)))
    (data / "t1.snmprec").write_text(snmprec(103_000, None))            # 30 s later: counters not answered
    (data / "t2.snmprec").write_text(snmprec(106_000, (61_000, 1_000)))  # 60 s after t0: +60,000 bytes in
    with running_snmpsim(folder, data, "t0") as port:
        yield port


def device(port: int, community: str) -> SnmpCheck:
    return snmp_check(port, community=Secret(community), interfaces=("eth0",))


async def test_rate_after_a_poll_without_counters_uses_the_interval_of_its_counters(sim: int, vantage: Vantage) -> None:
    """Rates must be computed over the interval between the two counter samples. t0 and t2 are
    60 s apart (sysUpTime 100000 -> 106000) and eth0 received 60,000 bytes: 8,000 bit/s. The poll
    in between (t1) answered no octet counters, so the rate at t2 spans t0..t2, not t1..t2."""
    first = await snmp_collect(device(sim, "t0"), vantage)
    middle = await snmp_collect(device(sim, "t1"), vantage)
    assert (first.status, middle.status) == (UP, UP), (first.error, middle.error)
    last = await snmp_collect(device(sim, "t2"), vantage)
    assert last.status == UP, last.error
    assert last.metrics["if.eth0.in_bps"] == pytest.approx(60_000 * 8 / 60)


# --- host -----------------------------------------------------------------------------------------


async def test_a_zombie_process_is_not_running(vantage: Vantage, tmp_path: Path) -> None:
    """processes: "process names that must be running". A process that has exited and is only a
    zombie (not reaped by its parent: e.g. a crashed daemon child) must not count as running."""
    program = tmp_path / "rvzombie"
    shutil.copy("/bin/true", program)
    child = subprocess.Popen([str(program)])
    try:
        deadline = time.monotonic() + 5
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.01)
        assert psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
        check = HostCheck(id="h", type="host", interval=30.0, timeout=5.0, processes=("rvzombie",))
        reading = await host_collect(check, vantage)
    finally:
        child.wait()
    assert (reading.status, reading.error) == (DOWN, "process rvzombie is not running"), reading


# --- SNMPv3 over IPv6 -----------------------------------------------------------------------------

async def test_snmpv3_over_ipv6(vantage: Vantage, tmp_path: Path) -> None:
    """host: "device address or name" (IPv6 addresses accepted). An SNMPv3 device answering on
    [::1] with the right user and keys must be polled (up), not reported down."""
    import uuid

    port, user = free_udp_port(), f"v6user{uuid.uuid4().hex[:6]}"
    (tmp_path / "persist").mkdir()
    conf = tmp_path / "snmpd.conf"
    conf.write_text(f"[snmp] persistentDir {tmp_path / 'persist'}\nrocommunity public 127.0.0.1\n"
                    f'createUser {user} SHA "authpass-8c1e" AES "privpass-5d2f"\nrouser {user} priv\n')
    env = os.environ | {"SNMP_PERSISTENT_DIR": str(tmp_path / "persist")}
    log = tmp_path / "snmpd.log"
    with log.open("wb") as out:
        process = subprocess.Popen([snmpd_path(), "-f", "-Lo", "-C", "-c", str(conf), "-M", "/dev/null", "-I", "-smux",
                                    f"udp:127.0.0.1:{port},udp6:[::1]:{port}"],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_agent(process, port, "public", log, env)
        check = SnmpCheck(id="v6", type="snmp", interval=30.0, timeout=2.0, host="::1", port=port, version="3",
                          user=user, auth_protocol="SHA", auth_key=Secret("authpass-8c1e"),
                          priv_protocol="AES", priv_key=Secret("privpass-5d2f"))
        control = subprocess.run(["snmpget", "-v3", "-l", "authPriv", "-u", user, "-a", "SHA", "-A", "authpass-8c1e",
                                  "-x", "AES", "-X", "privpass-5d2f", "-t", "1", "-r", "0", f"udp6:[::1]:{port}",
                                  "1.3.6.1.2.1.1.3.0"], capture_output=True, env=env, check=False)
        assert control.returncode == 0, control.stderr  # the device does answer over IPv6
        reading = await snmp_collect(check, vantage)
    finally:
        stop(process)
    assert (reading.status, reading.error) == (UP, None), reading.error


async def test_a_listed_mount_point_that_is_not_mounted(vantage: Vantage, tmp_path: Path) -> None:
    """disks: "mount points whose use is measured". When the listed mount point is not mounted
    (say /var/lib/postgresql's volume failed to mount), the reading must not silently report the
    parent file system's use as that mount's."""
    mount = tmp_path / "data-volume"
    mount.mkdir()
    assert not os.path.ismount(mount)
    reading = await host_collect(HostCheck(id="d", type="host", interval=30.0, timeout=5.0, disks=(str(mount),)), vantage)
    assert reading.status == DOWN, reading.metrics
