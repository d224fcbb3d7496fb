"""`slawatch-watchdog run` as a real process: the real agent ships to it, kill -9 loses no
acknowledged batch, SIGTERM/SIGHUP/systemd behave, liveness and blind spots show."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slawatch.agent.protocol import MANIFEST_PATH, canonical_json, new_batch_id
from slawatch.watchdog.intervals import clip
from slawatch.watchdog.server import LIVENESS_EVERY_S
from slawatch.watchdog.store import Reader

from .conftest import EXAMPLES, free_port
from .watchdog_peers import (
    AGENT, CONTRACT, PUBLIC, WATCHDOG_BIN, Answer, Client, reading, start_daemon, write_config,
)

AGENT_BIN = str(Path(sys.executable).parent / "slawatch-agent")
pytestmark = pytest.mark.slow


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def agent_config(folder: Path, port: int, interval: str = "1s") -> Path:
    (folder / "agent.key").write_bytes((EXAMPLES / "secrets" / "agent.key").read_bytes())
    (folder / "agent.key").chmod(0o600)
    path = folder / "agent.toml"
    path.write_text(
        f'[agent]\nid = "{AGENT}"\nspool = "spool.db"\nkey_file = "agent.key"\n'
        f'[watchdog]\nurl = "http://127.0.0.1:{port}"\nbatch_wait = "0.2s"\n'
        f'[[check]]\nid = "web"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {port}\ninterval = "{interval}"\n'
        'timeout = "0.5s"\n'
        f'[[check]]\nid = "dead"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {free_port()}\n'
        f'interval = "{interval}"\ntimeout = "0.5s"\n')
    return path


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout)


def test_agent_ships_to_watchdog_end_to_end(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port=port)
    watchdog = start_daemon(config, port)
    agent = subprocess.Popen([AGENT_BIN, "run", "-c", str(agent_config(tmp_path, port))],
                             stdout=subprocess.DEVNULL, stderr=(tmp_path / "agent.log").open("wb"))
    database = tmp_path / "watchdog.db"
    try:
        def shipped() -> bool:
            with Reader(database) as reader:
                return reader.count("readings") >= 8

        wait_for(shipped, 20, "readings from the agent")
        assert stop(agent) == 0
    finally:
        agent.kill()
    try:
        with Reader(database) as reader:
            rows = list(reader.readings(AGENT))
            seqs = [row[1] for row in rows]
            assert seqs == sorted(set(seqs)), "every seq once, in order"
            agents = {a.name: a for a in reader.agents()}
            for check, status in (("web", "up"), ("dead", "down")):
                mine = [row for row in rows if row[2] == check]
                runs = reader.intervals(AGENT, check)
                assert [r.status for r in runs] == [status], runs  # regular readings: one run
                assert runs[0].start == mine[0][3]
                assert runs[0].last_ts == mine[-1][3]
                assert runs[0].end == mine[-1][3] + 1500  # 1.5 x the 1 s interval
        assert agents[AGENT].manifest is not None
        assert {c["id"] for c in agents[AGENT].manifest["checks"]} == {"web", "dead", "agent.self"}
        assert agents[AGENT].last_seq == seqs[-1]
        verified = subprocess.run([WATCHDOG_BIN, "evidence", "verify", "-c", str(config)],
                                  capture_output=True, text=True)
        assert verified.returncode == 0, verified.stderr
        assert verified.stdout.startswith("OK ")
    finally:
        assert stop(watchdog.process) == 0
    assert "event=stopped" in watchdog.log_text()


def test_kill_9_during_a_flood_loses_no_acknowledged_batch(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port=port, settings="agent_rate = 100000")
    watchdog = start_daemon(config, port)
    batches = {new_batch_id(): [reading(b * 50 + i + 1, check=f"c{i % 5}", at_s=b * 60 + i) for i in range(50)]
               for b in range(400)}
    acknowledged: dict[str, Answer] = {}

    def send(batch: str) -> tuple[str, Answer | None]:
        try:
            return batch, watchdog.client.send(batches[batch], batch=batch)
        except OSError:
            return batch, None  # the watchdog died under it: not acknowledged

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(send, batch) for batch in batches]
        wait_for(lambda: sum(f.done() for f in futures) >= 60, 30, "the first acknowledgements")
        watchdog.process.kill()
        watchdog.process.wait()
        for future in futures:
            batch, answer = future.result()
            if answer is not None and answer.status == 200:
                acknowledged[batch] = answer
    assert 60 <= len(acknowledged) < len(batches)
    restarted = start_daemon(config, port)
    try:
        with Reader(tmp_path / "watchdog.db") as reader:
            stored = {row[1] for row in reader.readings(AGENT)}
        for batch in acknowledged:
            assert {r.seq for r in batches[batch]} <= stored, f"acknowledged batch {batch} lost"
        # the agent's retries: every batch again, same ids; acknowledged ones come back as resends
        for batch, readings in batches.items():
            answer = restarted.client.send(readings, batch=batch)
            assert answer.status == 200, answer.body
            if batch in acknowledged:
                assert answer.body["resend"] is True
                assert answer.body["chain"] == acknowledged[batch].body["chain"]
        with Reader(tmp_path / "watchdog.db") as reader:
            seqs = [row[1] for row in reader.readings(AGENT)]
            assert seqs == list(range(1, 400 * 50 + 1))
            assert reader.count("evidence") == len(batches)
    finally:
        stop(restarted.process)
    verified = subprocess.run([WATCHDOG_BIN, "evidence", "verify", "-c", str(config)], capture_output=True,
                              text=True)
    assert verified.returncode == 0, verified.stderr
    assert f"OK {len(batches)} signed and 0 imported batches verify, with the {400 * 50} stored readings" \
        in verified.stdout


def test_systemd_notify_sigterm_and_sighup(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port=port)
    notify_path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(notify_path)
        notify.settimeout(10)
        watchdog = start_daemon(config, port, env={"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "400000",
                                                   "WATCHDOG_PID": ""})
        messages: list[str] = []
        while not any("WATCHDOG=1" in m for m in messages):
            messages.append(notify.recv(4096).decode())
        assert "READY=1" in messages[0]
        try:
            # a broken config: the daemon keeps the old one and says where the problem is
            good = config.read_text()
            config.write_text(good.replace('database = "watchdog.db"', 'database = 5'))
            watchdog.process.send_signal(signal.SIGHUP)
            wait_for(lambda: "event=reload-refused" in watchdog.log_text(), 10, "the refused reload")
            assert "watchdog.toml:3: watchdog.database" in watchdog.log_text()
            assert watchdog.client.send([reading(1)]).status == 200
            # a good config adding an agent: its batches are accepted from then on
            newcomer = Client(watchdog.client.base, agent="newcomer")
            assert newcomer.send([reading(1, agent="newcomer")]).status == 403
            config.write_text(good + f'[[agent]]\nid = "newcomer"\npublic_key = "{PUBLIC}"\n')
            watchdog.process.send_signal(signal.SIGHUP)
            wait_for(lambda: "event=reloaded" in watchdog.log_text(), 10, "the reload")
            assert newcomer.send([reading(1, agent="newcomer")]).status == 200
        finally:
            assert stop(watchdog.process) == 0
        while "STOPPING=1" not in messages[-1]:
            messages.append(notify.recv(4096).decode())  # a timeout fails the test


def test_silent_agent_and_blind_spots(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port=port, contracts={"shop.toml": CONTRACT.format(quorum=2)})
    watchdog = start_daemon(config, port)
    try:
        assert "event=blind-spot contract=shop-2026 service=shop check=web agents=0 quorum=2" in watchdog.log_text()
        manifest = {"agent": AGENT, "version": "test", "canaries": [],
                    "checks": [{"id": "web", "type": "tcp", "interval_s": 1, "timeout_s": 0.5, "target": "x"}]}
        assert watchdog.client.send(body=canonical_json(manifest), path=MANIFEST_PATH).status == 200
        wait_for(lambda: "event=blind-spot contract=shop-2026 service=shop check=web agents=1 quorum=2"
                 in watchdog.log_text(), 5, "the blind spot with one agent")
        # 3 x its 1 s interval without a batch: silent
        wait_for(lambda: f"event=agent-silent agent={AGENT}" in watchdog.log_text(), 15, "agent-silent")
        status, metrics = watchdog.client.get("/metrics")
        assert "slawatch_agents_silent 1.0" in metrics
        assert ('slawatch_blind_spot_agents{check="web",contract="shop-2026",quorum="2",service="shop"} 1.0'
                in metrics)
        with Reader(tmp_path / "watchdog.db") as reader:
            assert next(a for a in reader.agents() if a.name == AGENT).silent_since is not None
            silent = [m for m in reader.outbox() if m.event == "agent-silent"]
        # the client hears of it by default (it is blind there); the provider does not
        assert [(m.party, m.title) for m in silent] == [("client", f"[slawatch] Agent {AGENT} is silent")]
        assert "The checks it runs for contract shop-2026 have no data from this vantage point" in silent[0].body
        # a restart of the watchdog is not the agent coming back: it still sends nothing
        stop(watchdog.process)
        watchdog = start_daemon(config, port)
        time.sleep(LIVENESS_EVERY_S + 1)
        assert "event=agent-back" not in watchdog.log_text()
        with Reader(tmp_path / "watchdog.db") as reader:
            assert next(a for a in reader.agents() if a.name == AGENT).silent_since is not None
            assert not [m for m in reader.outbox() if m.event == "agent-back"]
        seqs = iter(range(1, 1000))

        def back() -> bool:  # the agent reports again, as often as its manifest says
            assert watchdog.client.send([reading(next(seqs))]).status == 200
            return f"event=agent-back agent={AGENT}" in watchdog.log_text()

        wait_for(back, 15, "agent-back")

        def told_back() -> list[tuple[str, str]]:
            with Reader(tmp_path / "watchdog.db") as reader:
                return [(m.party, m.title) for m in reader.outbox() if m.event == "agent-back"]

        wait_for(told_back, 5, "the agent-back message")
        assert told_back() == [("client", f"[slawatch] Agent {AGENT} is back")]  # the client, told it sees again
        checked = subprocess.run([WATCHDOG_BIN, "check", "-c", str(config)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        assert "blind spot: contract shop-2026, service shop: check web is reported by 1 agent, quorum 2" \
            in checked.stdout
    finally:
        stop(watchdog.process)


def test_intervals_cover_silence_as_unknown(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port=port)
    watchdog = start_daemon(config, port)
    try:
        readings = [reading(1, at_s=0), reading(2, at_s=30), reading(3, at_s=300, status="down")]
        assert watchdog.client.send(readings).status == 200
        with Reader(tmp_path / "watchdog.db") as reader:
            runs = reader.intervals(AGENT, "web")
        start = readings[0].ts.timestamp() * 1000
        assert clip(runs, int(start), int(start) + 400_000) == [
            (int(start), int(start) + 75_000, "up"),             # 30 s + 1.5 x 30 s
            (int(start) + 75_000, int(start) + 300_000, "unknown"),
            (int(start) + 300_000, int(start) + 345_000, "down"),
            (int(start) + 345_000, int(start) + 400_000, "unknown"),
        ]
    finally:
        stop(watchdog.process)


def test_listen_failure_exits_non_zero(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, port=port)
        result = subprocess.run([WATCHDOG_BIN, "run", "-c", str(config)], capture_output=True, text=True,
                                timeout=30, env=os.environ)
    assert result.returncode == 1
    assert "event=listen-failed" in result.stderr
