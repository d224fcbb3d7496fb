"""SNMP checks against real agents on loopback: Debian snmpd and snmpsim recordings."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from slawatch.collectors.reading import DOWN, UP, Reading
from slawatch.collectors.snmp import collect
from slawatch.collectors.vantage import Vantage
from slawatch.config import SnmpCheck
from slawatch.config.values import Secret

from .snmp_peers import (
    AUTH_KEY, PRIV_KEY, PROTOCOLS, SHARED_AUTH_KEY, SHARED_PRIV_KEY, SHARED_USER, SIM_AUTH_KEY, SIM_PRIV_KEY,
    SIM_USER, Snmpd, running_snmpd, running_snmpsim,
)


def snmp_check(port: int, **settings: Any) -> SnmpCheck:
    settings.setdefault("id", "sw")
    settings.setdefault("timeout", 2.0)
    if settings.setdefault("version", "2c") != "3":
        settings.setdefault("community", Secret("public"))
    return SnmpCheck(type="snmp", interval=30.0, host="127.0.0.1", port=port, **settings)


def v3(port: int, user: str, auth: tuple[str, str] | None = None, priv: tuple[str, str] | None = None,
       **settings: Any) -> SnmpCheck:
    if auth:
        settings.update(auth_protocol=auth[0], auth_key=Secret(auth[1]))
    if priv:
        settings.update(priv_protocol=priv[0], priv_key=Secret(priv[1]))
    return snmp_check(port, version="3", user=user, **settings)


def recording(port: int, community: str, **settings: Any) -> SnmpCheck:
    """A check of the snmpsim device whose state is the recording `community`."""
    return snmp_check(port, community=Secret(community), **settings)


def traffic(reading: Reading) -> dict[str, float | int]:
    return {k: v for k, v in reading.metrics.items() if k.endswith(("_bps", "_errors"))}


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    with running_snmpd(tmp_path_factory.mktemp("snmpd")) as agent:
        yield agent


@pytest.fixture(scope="module")
def snmpsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with running_snmpsim(tmp_path_factory.mktemp("snmpsim")) as port:
        yield port


@pytest.fixture
async def vantage() -> AsyncIterator[Vantage]:
    async with Vantage("probe") as v:
        yield v


# --- versions and security levels -------------------------------------------------------------

@pytest.mark.parametrize("version", ["1", "2c"])
async def test_community_versions_up_with_lo(snmpd: Snmpd, vantage: Vantage, version: str) -> None:
    reading = await collect(snmp_check(snmpd.port, version=version, interfaces=("lo",)), vantage)
    assert reading.status == UP, reading.error
    assert reading.error is None
    assert reading.metrics["if.lo.oper"] == 1
    assert 0 < reading.metrics["snmp.uptime_s"] < 3600
    assert 0 < (reading.latency_ms or 0) < 1000
    assert reading.check == "sw" and reading.agent == "probe" and reading.interval_s == 30.0


@pytest.mark.parametrize("level", ["authNoPriv", "authPriv"])
async def test_v3_up_with_lo(snmpd: Snmpd, vantage: Vantage, level: str) -> None:
    if level == "authPriv":
        check = v3(snmpd.port, snmpd.priv_user, ("SHA", AUTH_KEY), ("AES", PRIV_KEY), interfaces=("lo",))
    else:
        check = v3(snmpd.port, snmpd.auth_user, ("SHA", AUTH_KEY), interfaces=("lo",))
    assert check.security_level == level
    for _ in range(2):  # the second poll reuses the discovered engine ID
        reading = await collect(check, vantage)
        assert reading.status == UP, reading.error
        assert reading.metrics["if.lo.oper"] == 1
        assert reading.metrics["snmp.uptime_s"] > 0


@pytest.mark.parametrize(("auth", "priv"), [(row[0], row[1]) for row in PROTOCOLS])
async def test_v3_protocols(snmpd: Snmpd, vantage: Vantage, auth: str, priv: str | None) -> None:
    check = v3(snmpd.port, snmpd.user(auth, priv), (auth, AUTH_KEY), (priv, PRIV_KEY) if priv else None)
    reading = await collect(check, vantage)
    assert reading.status == UP, reading.error
    assert reading.metrics["snmp.uptime_s"] > 0


async def test_v3_sha256_aes256_with_context(snmpsim: int, vantage: Vantage) -> None:
    check = v3(snmpsim, SIM_USER, ("SHA256", SIM_AUTH_KEY), ("AES256", SIM_PRIV_KEY),
               context="router-t0", interfaces=("eth0",))
    reading = await collect(check, vantage)
    assert reading.status == UP, reading.error
    assert reading.metrics["snmp.uptime_s"] == 1000.0  # router-t0's sysUpTime: the context chose it


async def test_same_user_name_with_different_keys_on_two_devices(snmpd: Snmpd, snmpsim: int,
                                                               vantage: Vantage) -> None:
    """One shared engine, one user name, different protocols and keys per device: no crosstalk."""
    on_snmpd = v3(snmpd.port, SHARED_USER, ("SHA", SHARED_AUTH_KEY), ("AES", SHARED_PRIV_KEY), id="a")
    on_snmpsim = v3(snmpsim, SHARED_USER, ("SHA256", SIM_AUTH_KEY), ("AES256", SIM_PRIV_KEY),
                    context="router-t0", id="b")
    readings = await asyncio.gather(*(collect(check, vantage) for _ in range(5)
                                      for check in (on_snmpd, on_snmpsim)))
    assert [r.error for r in readings] == [None] * 10
    assert {r.metrics["snmp.uptime_s"] for r in readings if r.check == "b"} == {1000.0}


# --- named OIDs ---------------------------------------------------------------------------------

async def test_named_oids_become_metrics(snmpsim: int, vantage: Vantage) -> None:
    check = recording(snmpsim, "router-t0", oids=(("temperature", "1.3.6.1.4.1.9.9.13.1.3.1.3.1"),
                                                 ("load1", "1.3.6.1.4.1.2021.10.1.3.1")))
    reading = await collect(check, vantage)
    assert reading.status == UP, reading.error
    assert reading.metrics["temperature"] == 42
    assert reading.metrics["load1"] == 0.15  # UCD's laLoad is text holding a number


async def test_named_oid_not_a_number_or_missing(snmpd: Snmpd, vantage: Vantage) -> None:
    check = snmp_check(snmpd.port, oids=(("descr", "1.3.6.1.2.1.1.1.0"), ("ghost", "1.3.6.1.4.1.99999.1.0")))
    reading = await collect(check, vantage)
    assert reading.status == DOWN
    assert reading.error is not None
    assert "descr (1.3.6.1.2.1.1.1.0): not a number ('Linux" in reading.error
    assert "ghost (1.3.6.1.4.1.99999.1.0): noSuchObject" in reading.error
    assert "snmp.uptime_s" in reading.metrics  # what was measured is still reported


async def test_named_oid_missing_on_v1_names_it(snmpd: Snmpd, vantage: Vantage) -> None:
    check = snmp_check(snmpd.port, version="1", oids=(("ghost", "1.3.6.1.4.1.99999.1.0"),))
    reading = await collect(check, vantage)
    assert reading.status == DOWN
    assert reading.error == "device answered noSuchName for ghost (1.3.6.1.4.1.99999.1.0)"


# --- failures and their distinct errors ---------------------------------------------------------

async def test_wrong_community_says_device_alive(snmpd: Snmpd, vantage: Vantage) -> None:
    started = time.perf_counter()
    reading = await collect(snmp_check(snmpd.port, community=Secret("n0t-the-community"), timeout=1.0), vantage)
    assert time.perf_counter() - started < 1.3
    assert reading.status == DOWN
    assert reading.error == (f"127.0.0.1:{snmpd.port} is alive (it answered an SNMPv3 probe) but ignored "
                             "SNMPv2c requests: wrong community, or this address is not allowed to use it")


async def test_wrong_auth_key(snmpd: Snmpd, vantage: Vantage) -> None:
    reading = await collect(v3(snmpd.port, snmpd.auth_user, ("SHA", "wrong-auth-key")), vantage)
    assert reading.status == DOWN
    assert reading.error == f"SNMPv3 authentication failed for user {snmpd.auth_user} (wrong auth key or protocol)"


async def test_wrong_auth_protocol(snmpd: Snmpd, vantage: Vantage) -> None:
    reading = await collect(v3(snmpd.port, snmpd.auth_user, ("MD5", AUTH_KEY)), vantage)
    assert reading.error == f"SNMPv3 authentication failed for user {snmpd.auth_user} (wrong auth key or protocol)"


async def test_unknown_user(snmpd: Snmpd, vantage: Vantage) -> None:
    reading = await collect(v3(snmpd.port, "nobody-here", ("SHA", AUTH_KEY)), vantage)
    assert reading.status == DOWN
    assert reading.error == "SNMPv3 user nobody-here unknown to the device"


async def test_wrong_priv_key(snmpd: Snmpd, vantage: Vantage) -> None:
    # snmpd cannot decrypt the request and drops it: silence, explained by the probe
    check = v3(snmpd.port, snmpd.priv_user, ("SHA", AUTH_KEY), ("AES", "wrong-priv-key"), timeout=1.0)
    reading = await collect(check, vantage)
    assert reading.status == DOWN
    assert reading.error == (f"127.0.0.1:{snmpd.port} is alive (it answered an SNMPv3 probe) but ignored "
                             f"user {snmpd.priv_user}'s authPriv requests (wrong priv key or privacy protocol?)")


async def test_security_level_not_allowed(snmpd: Snmpd, vantage: Vantage) -> None:
    # the priv user asks without privacy: snmpd's `rouser ... priv` refuses it
    reading = await collect(v3(snmpd.port, snmpd.priv_user, ("SHA", AUTH_KEY)), vantage)
    assert reading.status == DOWN
    assert reading.error == "device answered authorizationError"


@pytest.mark.parametrize("version", ["2c", "3"])
async def test_dead_port_times_out_within_budget(vantage: Vantage, version: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the poll: nothing listens there
    if version == "2c":
        check = snmp_check(port, timeout=1.0)
    else:
        check = v3(port, "monitor", ("SHA", AUTH_KEY), timeout=1.0)
    started = time.perf_counter()
    reading = await collect(check, vantage)
    assert time.perf_counter() - started < 1.3
    assert reading.status == DOWN
    assert reading.error == (f"no response from 127.0.0.1:{port} within 1s "
                             "(port unreachable: nothing listens there)")
    assert reading.latency_ms is None


async def test_silent_device_times_out(vantage: Vantage) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        for check in (snmp_check(port, timeout=1.0), v3(port, "monitor", ("SHA", AUTH_KEY), timeout=1.0)):
            started = time.perf_counter()
            reading = await collect(check, vantage)
            assert 0.9 < time.perf_counter() - started < 1.3
            assert reading.error == f"no response from 127.0.0.1:{port} within 1s"


async def test_dead_device_does_not_delay_live_one(snmpd: Snmpd, vantage: Vantage) -> None:
    live = snmp_check(snmpd.port, id="live", interfaces=("lo",))
    assert (await collect(live, vantage)).status == UP  # engine and interface index warmed up
    finished: dict[str, float] = {}

    async def poll_dead(check: SnmpCheck) -> Reading:
        reading = await collect(check, vantage)
        finished["dead"] = time.perf_counter() - started
        return reading

    async def poll_live_five_times() -> list[Reading]:
        readings = [await collect(live, vantage) for _ in range(5)]
        finished["live"] = time.perf_counter() - started
        return readings

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        dead = snmp_check(silent.getsockname()[1], id="dead", timeout=2.0)
        started = time.perf_counter()
        dead_reading, live_readings = await asyncio.gather(poll_dead(dead), poll_live_five_times())
    assert dead_reading.status == DOWN and dead_reading.error is not None
    assert dead_reading.error.startswith("no response from 127.0.0.1:")
    assert 1.9 < finished["dead"] < 2.4
    assert all(r.status == UP for r in live_readings)
    assert finished["live"] < 0.5
    assert max(r.latency_ms or 0 for r in live_readings) < 100


async def test_secrets_never_appear(snmpd: Snmpd, vantage: Vantage, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    community, auth_key, priv_key = "c0mmunity-s3cret", "auth-s3cret-key", "priv-s3cret-key"
    checks = [
        snmp_check(snmpd.port, id="c", community=Secret(community), timeout=1.0),
        v3(snmpd.port, snmpd.auth_user, ("SHA", auth_key), id="a"),
        v3(snmpd.port, snmpd.priv_user, ("SHA", AUTH_KEY), ("AES", priv_key), id="p", timeout=1.0),
    ]
    readings = await asyncio.gather(*(collect(check, vantage) for check in checks))
    assert all(r.status == DOWN and r.error for r in readings)
    seen = " ".join(str(r.to_json()) for r in readings) + caplog.text
    for secret in (community, auth_key, priv_key, AUTH_KEY):
        assert secret not in seen
    assert "event=snmp-poll-down check=c" in caplog.text  # the errors were logged, scrubbed


# --- interfaces ---------------------------------------------------------------------------------

async def test_interface_not_found(snmpd: Snmpd, vantage: Vantage) -> None:
    reading = await collect(snmp_check(snmpd.port, interfaces=("lo", "Gi0/9")), vantage)
    assert reading.status == DOWN
    assert reading.error is not None
    assert reading.error.startswith("interface Gi0/9 not found (have: ")
    assert "lo" in reading.error.split("(have: ")[1]
    assert reading.metrics["if.lo.oper"] == 1


async def test_interface_down(snmpsim: int, vantage: Vantage) -> None:
    reading = await collect(recording(snmpsim, "router-t0", interfaces=("eth0", "eth1")), vantage)
    assert reading.status == DOWN
    assert reading.error == "interface eth1 is down(2)"
    assert reading.metrics["if.eth0.oper"] == 1 and reading.metrics["if.eth1.oper"] == 2


async def test_interface_by_ifdescr_on_v1_agent_without_ifxtable(snmpsim: int, vantage: Vantage) -> None:
    check = recording(snmpsim, "legacy", version="1", interfaces=("GigabitEthernet0/1",))
    reading = await collect(check, vantage)
    assert reading.status == UP, reading.error
    assert reading.metrics["if.GigabitEthernet0/1.oper"] == 1


async def test_first_poll_has_no_rates(snmpsim: int, vantage: Vantage) -> None:
    reading = await collect(recording(snmpsim, "router-t0", interfaces=("eth0",)), vantage)
    assert reading.status == UP
    assert traffic(reading) == {}
    assert "snmp.rebooted" not in reading.metrics


async def test_32bit_counters_wrap(snmpsim: int, vantage: Vantage) -> None:
    await collect(recording(snmpsim, "router-t0", interfaces=("eth0",)), vantage)
    reading = await collect(recording(snmpsim, "router-t1", interfaces=("eth0",)), vantage)
    assert reading.status == UP, reading.error
    assert traffic(reading) == {
        "if.eth0.in_bps": pytest.approx(1000 * 8 / 30),    # 296 before the wrap + 704 after
        "if.eth0.out_bps": pytest.approx(12296 * 8 / 30),
        "if.eth0.in_errors": 3,
        "if.eth0.out_errors": 0,
    }
    assert "snmp.rebooted" not in reading.metrics


async def test_reboot_gives_no_rate_then_rates_resume(snmpsim: int, vantage: Vantage) -> None:
    await collect(recording(snmpsim, "router-t0", interfaces=("eth0",)), vantage)
    await collect(recording(snmpsim, "router-t1", interfaces=("eth0",)), vantage)
    rebooted = await collect(recording(snmpsim, "router-reboot", interfaces=("eth0",)), vantage)
    assert rebooted.status == UP, rebooted.error
    assert rebooted.metrics["snmp.rebooted"] == 1
    assert rebooted.metrics["snmp.uptime_s"] == 15.0
    assert rebooted.metrics["if.eth0.oper"] == 1  # found again at its new ifIndex 5
    assert traffic(rebooted) == {}
    after = await collect(recording(snmpsim, "router-reboot-t1", interfaces=("eth0",)), vantage)
    assert "snmp.rebooted" not in after.metrics
    assert after.metrics["if.eth0.in_bps"] == pytest.approx(8000)
    assert after.metrics["if.eth0.out_bps"] == pytest.approx(800)


async def test_restart_hidden_by_a_long_gap_is_still_a_reboot(snmpsim: int, vantage: Vantage) -> None:
    """sysUpTime grew by 30 s while an hour passed: the device restarted in between, so the
    32-bit counters that look wrapped restarted too and must not read as a traffic spike."""
    await collect(recording(snmpsim, "router-t0", interfaces=("eth0",)), vantage)
    vantage.memory("sw")["snmp"].polled_at -= 3600  # the last poll was an hour ago
    reading = await collect(recording(snmpsim, "router-t1", interfaces=("eth0",)), vantage)
    assert reading.metrics["snmp.rebooted"] == 1
    assert traffic(reading) == {}


async def test_sysuptime_wrap_is_not_a_reboot(snmpsim: int, vantage: Vantage) -> None:
    await collect(recording(snmpsim, "old-t0", interfaces=("eth0",)), vantage)
    reading = await collect(recording(snmpsim, "old-t1", interfaces=("eth0",)), vantage)
    assert reading.status == UP, reading.error
    assert "snmp.rebooted" not in reading.metrics
    assert reading.metrics["if.eth0.in_bps"] == pytest.approx(200_000)  # over the 30 s across the wrap
    assert reading.metrics["if.eth0.out_bps"] == 0


async def test_renumbered_interface_is_walked_again(snmpsim: int, vantage: Vantage) -> None:
    await collect(recording(snmpsim, "router-t1", interfaces=("eth0",)), vantage)
    reading = await collect(recording(snmpsim, "router-moved", interfaces=("eth0",)), vantage)
    assert reading.status == UP, reading.error
    assert reading.metrics["if.eth0.in_bps"] == pytest.approx(1000)  # eth0's own counters, at ifIndex 7
    assert reading.metrics["if.eth0.out_bps"] == pytest.approx(20000)
    assert "snmp.rebooted" not in reading.metrics


async def test_64bit_counters_preferred(snmpsim: int, vantage: Vantage) -> None:
    await collect(recording(snmpsim, "switch-t0", interfaces=("eth0",)), vantage)
    reading = await collect(recording(snmpsim, "switch-t1", interfaces=("eth0",)), vantage)
    assert reading.metrics["if.eth0.in_bps"] == pytest.approx(100_000)
    assert reading.metrics["if.eth0.out_bps"] == pytest.approx(10_000)


async def test_rates_from_snmpd_are_sane(snmpd: Snmpd, vantage: Vantage) -> None:
    check = snmp_check(snmpd.port, interfaces=("lo",))
    first = await collect(check, vantage)
    await asyncio.sleep(1.1)
    second = await collect(check, vantage)
    assert second.status == UP, second.error
    assert second.metrics["snmp.uptime_s"] > first.metrics["snmp.uptime_s"]
    assert 0 <= second.metrics["if.lo.in_bps"] < 1e9
    assert second.metrics["if.lo.in_errors"] == 0


# --- the one engine -----------------------------------------------------------------------------

async def test_one_engine_for_many_polls(snmpd: Snmpd, snmpsim: int, vantage: Vantage) -> None:
    before = Vantage.engines_created
    checks = [
        snmp_check(snmpd.port, id="v2", interfaces=("lo",)),
        snmp_check(snmpd.port, id="v1", version="1"),
        v3(snmpd.port, snmpd.priv_user, ("SHA", AUTH_KEY), ("AES", PRIV_KEY), id="v3"),
        recording(snmpsim, "router-t0", id="sim", interfaces=("eth0",)),
    ]
    for _ in range(10):
        readings = await asyncio.gather(*(collect(check, vantage) for check in checks))
        assert [r.error for r in readings] == [None] * len(checks)
    assert Vantage.engines_created - before <= 1
