"""The agent daemon as a real process shipping to a real loopback receiver."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from slawatch.agent.protocol import public_key_from_line
from slawatch.agent.spool import Spool

from .conftest import free_port
from .http_peers import certificates
from .ingest_peer import Receiver

AGENT = Path(sys.executable).parent / "slawatch-agent"
PUBLIC_KEY = "ed25519:6Vz/K8fkkNMaEdZmz12fRzuY4R9qTH7kzTQquB0vdPA="  # of config/examples/secrets/agent.key


class Peer:
    """The receiver on a fixed port, which tests can stop and start again."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.port = free_port()
        self.tls = tls
        self.receiver = Receiver({"probe": public_key_from_line(PUBLIC_KEY)})
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.receiver.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.tls).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    p = Peer()
    await p.start()
    yield p
    await p.stop()


def write_config(confdir: Path, port: int, extra_check: str = "") -> Path:
    config = confdir / "agent.toml"
    config.write_text(
        '[agent]\nid = "probe"\nspool = "spool.db"\nkey_file = "agent.key"\n'
        f'[watchdog]\nurl = "http://127.0.0.1:{port}"\nbatch_wait = "0.3s"\n'
        f'[[check]]\nid = "tick"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {port}\ninterval = "1s"\ntimeout = "0.5s"\n'
        + extra_check
    )
    return config


class Daemon:
    """`slawatch-agent run` as a subprocess, its stderr collected."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config, self.env = config, env
        self.process: asyncio.subprocess.Process | None = None
        self.log = b""

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            str(AGENT), "run", "-c", str(self.config), stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL, env={**os.environ, **(self.env or {})})
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for line in self.process.stderr:
            self.log += line

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    async def wait(self, timeout: float = 20.0) -> int:
        assert self.process is not None
        code = await asyncio.wait_for(self.process.wait(), timeout)
        await self._reader
        return code


async def eventually(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def contiguous(seqs: list[int]) -> bool:
    return bool(seqs) and seqs == list(range(seqs[0], seqs[0] + len(seqs)))


async def test_readings_arrive_signed_in_order_without_gaps(confdir: Path, peer: Peer) -> None:
    daemon = Daemon(write_config(confdir, peer.port))
    await daemon.start()
    await eventually(lambda: len(peer.receiver.seqs(check="tick")) >= 4)
    assert daemon.process is not None
    maps = Path(f"/proc/{daemon.process.pid}/maps").read_text()
    assert "libcrypto" in maps and "cryptography" not in maps  # signs with OpenSSL: ~7 MB less resident
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait() == 0
    seqs = peer.receiver.seqs()
    assert contiguous(seqs)
    assert peer.receiver.duplicates == 0 and peer.receiver.refused == []
    assert {r.status for r in peer.receiver.readings.values() if r.check == "tick"} == {"up"}
    manifest = peer.receiver.manifests[0]
    assert manifest["agent"] == "probe"
    assert [c["id"] for c in manifest["checks"]] == ["tick", "agent.self"]
    assert manifest["checks"][0] == {"id": "tick", "type": "tcp", "interval_s": 1.0, "timeout_s": 0.5,
                                     "target": f"tcp 127.0.0.1:{peer.port}"}
    self_readings = [r for r in peer.receiver.readings.values() if r.check == "agent.self"]
    assert self_readings and "spool.depth" in self_readings[0].metrics


async def test_receiver_down_then_back_every_seq_once(confdir: Path, peer: Peer) -> None:
    daemon = Daemon(write_config(confdir, peer.port))
    await daemon.start()
    await eventually(lambda: len(peer.receiver.seqs()) >= 2)
    await peer.stop()
    await asyncio.sleep(3.5)  # the agent keeps polling (its tcp check now fails: readings are down)
    await peer.start()
    await eventually(lambda: any(r.status == "down" for r in peer.receiver.readings.values()))
    await eventually(lambda: len(peer.receiver.seqs()) >= 8)
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait() == 0
    assert contiguous(peer.receiver.seqs())
    assert peer.receiver.duplicates == 0


async def test_kill_9_and_restart_loses_and_repeats_nothing(confdir: Path, peer: Peer) -> None:
    config = write_config(confdir, peer.port)
    first = Daemon(config)
    await first.start()
    await eventually(lambda: len(peer.receiver.seqs()) >= 3)
    first.signal(signal.SIGKILL)
    await first.wait()
    highest_before = max(peer.receiver.seqs())
    second = Daemon(config)
    await second.start()
    await eventually(lambda: max(peer.receiver.seqs()) >= highest_before + 3)
    second.signal(signal.SIGTERM)
    assert await second.wait() == 0
    assert contiguous(peer.receiver.seqs())
    assert peer.receiver.duplicates == 0


async def test_systemd_notify_ready_and_watchdog(confdir: Path, peer: Peer, tmp_path: Path) -> None:
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.setblocking(False)
    daemon = Daemon(write_config(confdir, peer.port), env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"})
    await daemon.start()
    messages: list[str] = []
    loop = asyncio.get_running_loop()

    async def receive() -> None:
        while True:
            messages.append((await loop.sock_recv(sock, 4096)).decode())

    receiving = asyncio.create_task(receive())
    await eventually(lambda: sum("WATCHDOG=1" in m for m in messages) >= 3)
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait() == 0
    await asyncio.sleep(0.1)
    receiving.cancel()
    sock.close()
    assert messages[0].startswith("READY=1\nSTATUS=1 checks")
    assert any(m.startswith("STOPPING=1") for m in messages)


async def test_sigterm_with_a_backlog_exits_and_keeps_it(confdir: Path, peer: Peer) -> None:
    peer.receiver.fail_with = 503
    config = write_config(confdir, peer.port)
    daemon = Daemon(config)
    await daemon.start()
    await asyncio.sleep(2.5)
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait(timeout=15) == 0
    assert time.monotonic() - started < 10
    spool = Spool(confdir / "spool.db", "probe")
    depth, last = spool.depth(), spool.last_seq()
    first = spool._db.execute("SELECT min(seq) FROM reading").fetchone()[0]
    spool.close()
    assert depth >= 2 and depth == last - first + 1  # everything taken is still there, nothing shipped
    peer.receiver.fail_with = None
    again = Daemon(config)
    await again.start()
    await eventually(lambda: len(peer.receiver.seqs()) >= depth + 1)
    again.signal(signal.SIGTERM)
    assert await again.wait() == 0
    assert contiguous(peer.receiver.seqs())


async def test_sighup_with_a_broken_config_keeps_running(confdir: Path, peer: Peer) -> None:
    config = write_config(confdir, peer.port)
    daemon = Daemon(config)
    await daemon.start()
    await eventually(lambda: len(peer.receiver.seqs()) >= 2)
    config.write_text(config.read_text().replace('interval = "1s"', 'interval = "1 second"'))
    daemon.signal(signal.SIGHUP)
    await eventually(lambda: b"reload-refused" in daemon.log)
    count = len(peer.receiver.seqs())
    await eventually(lambda: len(peer.receiver.seqs()) >= count + 2)
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait() == 0
    log = daemon.log.decode()
    assert f"{config}:13: check[0].interval: expected a duration" in log
    assert "keep-running-old-config" in log


async def test_sighup_with_a_good_config_reschedules_and_resends_the_manifest(confdir: Path, peer: Peer) -> None:
    config = write_config(confdir, peer.port)
    daemon = Daemon(config)
    await daemon.start()
    await eventually(lambda: len(peer.receiver.manifests) == 1)
    write_config(confdir, peer.port, extra_check=(
        f'[[check]]\nid = "tock"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {peer.port}\ninterval = "1s"\n'
        'timeout = "0.5s"\n'))
    daemon.signal(signal.SIGHUP)
    await eventually(lambda: len(peer.receiver.seqs(check="tock")) >= 2)
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait() == 0
    assert [c["id"] for c in peer.receiver.manifests[-1]["checks"]] == ["tick", "tock", "agent.self"]
    assert contiguous(peer.receiver.seqs())


async def test_dropped_ranges_reach_the_watchdog_as_such(tmp_path: Path, peer: Peer) -> None:
    import datetime as dt

    from slawatch.agent.shipper import Shipper, SpoolAccess
    from slawatch.collectors.reading import Reading
    from slawatch.config.keys import load_private_key

    from .conftest import EXAMPLES

    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=8)
    spool = Spool(tmp_path / "spool.db", "probe")
    base = spool.last_seq() + 1
    spool.append([Reading(agent="probe", check="web", ts=old + dt.timedelta(minutes=i), status="up", interval_s=60.0)
                  for i in range(10)])
    spool.append([Reading(agent="probe", check="web", ts=old + dt.timedelta(days=7.9), status="up", interval_s=60.0)])
    assert spool.enforce_bounds() == 10
    access = SpoolAccess(spool)
    key = load_private_key((EXAMPLES / "secrets" / "agent.key").read_bytes())
    shipper = Shipper("probe", f"http://127.0.0.1:{peer.port}", key, access, batch_wait=0.0)
    stopping = asyncio.Event()
    task = asyncio.create_task(shipper.run(stopping))
    await eventually(lambda: peer.receiver.readings)
    stopping.set()
    await task
    access.close()
    assert peer.receiver.dropped == [(base, base + 9)]
    assert peer.receiver.seqs() == [base + 10]


async def test_ships_over_https_only_to_a_watchdog_its_ca_vouches_for(confdir: Path, tmp_path: Path) -> None:
    certs = certificates(tmp_path)
    peer = Peer(tls=certs.valid)
    await peer.start()
    try:
        config = write_config(confdir, peer.port)
        text = config.read_text().replace("http://127.0.0.1", "https://127.0.0.1")
        untrusted = Daemon(config)
        config.write_text(text)
        await untrusted.start()
        await eventually(lambda: b"event=ship-failed" in untrusted.log)
        untrusted.signal(signal.SIGTERM)
        assert await untrusted.wait() == 0
        assert peer.receiver.readings == {}
        assert b"certificate verify failed" in untrusted.log
        config.write_text(text.replace("[watchdog]\n", f'[watchdog]\nca_file = "{certs.ca_file}"\n'))
        trusted = Daemon(config)
        await trusted.start()
        await eventually(lambda: len(peer.receiver.seqs()) >= 3)
        trusted.signal(signal.SIGTERM)
        assert await trusted.wait() == 0
        assert contiguous(peer.receiver.seqs())  # what waited in the spool arrived too
    finally:
        await peer.stop()
