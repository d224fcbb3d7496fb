"""`slawatch-agent once` as users run it: a real process against loopback peers."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from slawatch.collectors.reading import Reading

from .conftest import free_port
from .http_peers import Certificates, certificates, peer_app, serve
from .snmp_peers import Snmpd, running_snmpd

AGENT = Path(sys.executable).parent / "slawatch-agent"


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    return certificates(tmp_path)


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    with running_snmpd(tmp_path_factory.mktemp("snmpd")) as agent:
        yield agent


@pytest.fixture
async def peers(certs: Certificates) -> AsyncIterator[dict[str, str]]:
    plain, expired = serve(peer_app()), serve(peer_app(), certs.expired)
    yield {"plain": await plain.__anext__(), "expired": await expired.__anext__()}
    await plain.aclose()
    await expired.aclose()


def agent_toml(confdir: Path, checks: str, canaries: str = "") -> Path:
    path = confdir / "agent.toml"
    path.write_text(
        f'[agent]\nid = "probe"\nspool = "spool.db"\nkey_file = "agent.key"\n{canaries}\n'
        '[watchdog]\nurl = "http://127.0.0.1:9"\n[defaults]\ninterval = "30s"\ntimeout = "1s"\n' + checks
    )
    return path


async def run_once(config: Path, *extra: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(str(AGENT), "once", "-c", str(config), *extra,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def loopback_checks(peers: dict[str, str], certs: Certificates, refused: int, snmp_port: int) -> str:
    return (
        f'[[check]]\nid = "web-up"\ntype = "http"\nurl = "{peers["plain"]}/ok"\nexpect_body = "OK"\n'
        f'[[check]]\nid = "web-refused"\ntype = "http"\nurl = "http://127.0.0.1:{refused}/"\n'
        f'[[check]]\nid = "web-slow"\ntype = "http"\nurl = "{peers["plain"]}/slow?s=3"\n'
        f'[[check]]\nid = "web-expired"\ntype = "http"\nurl = "{peers["expired"]}/ok"\nca_file = "{certs.ca_file}"\n'
        f'[[check]]\nid = "switch"\ntype = "snmp"\nhost = "127.0.0.1"\nport = {snmp_port}\ncommunity = "n0t-our-community"\n'
        'interfaces = ["lo"]\n'
    )


async def test_table_shows_each_check_with_its_precise_error(confdir: Path, peers: dict[str, str],
                                                            certs: Certificates, snmpd: Snmpd) -> None:
    refused = free_port()
    code, out, err = await run_once(agent_toml(confdir, loopback_checks(peers, certs, refused, snmpd.port)))
    assert code == 1
    assert "Traceback" not in err
    lines = out.splitlines()
    assert lines[0].split() == ["CHECK", "TYPE", "STATUS", "LATENCY", "METRICS", "ERROR"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["web-up"].split()[1:3] == ["http", "up"]
    assert "http.status=200" in rows["web-up"]
    assert rows["web-refused"].split()[1:3] == ["http", "down"]
    assert rows["web-refused"].endswith(f"connection refused by 127.0.0.1:{refused}")
    assert rows["web-slow"].endswith("timeout after 1s")
    assert rows["web-expired"].endswith("TLS certificate error: certificate has expired")
    assert rows["switch"].split()[1:3] == ["snmp", "down"]
    assert rows["switch"].endswith(f"127.0.0.1:{snmpd.port} is alive (it answered an SNMPv3 probe) but ignored "
                                   "SNMPv2c requests: wrong community, or this address is not allowed to use it")
    assert "n0t-our-community" not in out


async def test_json_lines_are_readings(confdir: Path, peers: dict[str, str], certs: Certificates,
                                       snmpd: Snmpd) -> None:
    checks = loopback_checks(peers, certs, free_port(), snmpd.port)
    code, out, _ = await run_once(agent_toml(confdir, checks), "--json")
    assert code == 1
    readings = [json.loads(line) for line in out.splitlines()]
    assert [r["check"] for r in readings] == ["web-up", "web-refused", "web-slow", "web-expired", "switch"]
    assert [r["status"] for r in readings] == ["up", "down", "down", "down", "down"]
    for data in readings:
        Reading.from_json(data | {"seq": 1})  # the import format, once the spool numbers them


async def test_all_up_exits_0(confdir: Path, peers: dict[str, str]) -> None:
    checks = f'[[check]]\nid = "web-up"\ntype = "http"\nurl = "{peers["plain"]}/ok"\n'
    code, out, _ = await run_once(agent_toml(confdir, checks))
    assert code == 0
    assert " up " in out.splitlines()[1]


async def test_all_canaries_down_makes_other_readings_unknown(confdir: Path, peers: dict[str, str]) -> None:
    checks = (f'[[check]]\nid = "gateway"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {free_port()}\n'
              f'[[check]]\nid = "web-up"\ntype = "http"\nurl = "{peers["plain"]}/ok"\n')
    code, out, _ = await run_once(agent_toml(confdir, checks, canaries='canaries = ["gateway"]'), "--json")
    readings = {r["check"]: r for r in map(json.loads, out.splitlines())}
    assert code == 1
    assert readings["gateway"]["status"] == "down"
    assert readings["web-up"]["status"] == "unknown"
    assert readings["web-up"]["error"].startswith("all canaries down (gateway: connection refused by 127.0.0.1:")
    assert readings["web-up"]["error"].endswith("; observed up")


async def test_config_error_exits_2(confdir: Path) -> None:
    code, out, err = await run_once(agent_toml(confdir, '[[check]]\nid = "x"\ntype = "ping"\n'))
    assert code == 2
    assert out == ""
    assert 'check[0].type: unknown check type "ping"' in err
