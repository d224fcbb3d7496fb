"""Fault drills: the real agent and watchdog daemons as subprocesses on loopback, a fault injected
for real (SIGTERM, SIGKILL, a dead receiver, a full tmpfs, a skewed clock, a damaged file), and the
exact outcome asserted: every reading the agent took is in the watchdog's readings table once (or,
where the spool had to drop it, inside a dropped seq range the watchdog holds), every alert is
delivered once.

| # | drill | tested in |
|---|---|---|
| 1 | watchdog stopped 15 s while the agent polls every 1 s | `test_watchdog_down_15_s_every_reading_arrives_once` |
| 2 | agent `kill -9` and restart | `test_kill_9_mid_ingest_loses_and_repeats_nothing[agent]` (mid-backlog, real watchdog); against the test receiver, between batches: `test_agent_daemon.py::test_kill_9_and_restart_loses_and_repeats_nothing` |
| 3 | watchdog `kill -9` mid-ingest | `test_kill_9_mid_ingest_loses_and_repeats_nothing[watchdog]` (the real agent retries); 400 batches from 8 signing clients, retries simulated: `test_watchdog_daemon.py::test_kill_9_during_a_flood_loses_no_acknowledged_batch` |
| 4 | notification receiver down, then up | `test_receiver_down_then_up_every_alert_once` (real agent: outage, recovery, anchor); receiver down and the watchdog `kill -9`: `test_alerting.py::test_an_alert_decided_before_kill_9_is_delivered_once_after_restart` |
| 5 | agent spool disk full | `test_spool_disk_full_drops_the_oldest_reports_them_and_takes_every_new_reading` (the daemon on a 12 MB tmpfs, shipping to the watchdog); the spool alone on a 6 MB tmpfs: `test_spool.py::test_a_really_full_disk_still_takes_every_new_reading` |
| 6 | agent clock 10 min behind (libfaketime) | `test_agent_clock_skewed_is_refused_then_ships_everything` |
| 6b | agent clock 10 min ahead (libfaketime), then set right | `test_agent_clock_ahead_is_refused_then_reports_the_future_readings_dropped` |
| 7 | damaged spool file | `test_damaged_spool_refuses_to_start_and_keeps_the_file[garbage]`, `[pages]` |

A clock *ahead* is refused the same way (401 stale). Once it is set right, the readings it stamped in
the future cannot be sent honestly: the watchdog refuses them (422, "taken after the batch was sent")
until real time has caught up with them, and stamping them anew would forge evidence. The batch formed
while the clock was ahead is abandoned on that refusal, and the spool drops every reading stamped more
than a minute ahead of the agent's clock and reports them as dropped ranges (that time reads as
unknown), so the readings after them ship at once instead of waiting for real time to catch up.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from slawatch.agent.spool import Spool
from slawatch.collectors.reading import Reading
from slawatch.watchdog.store import Reader

from .conftest import EXAMPLES, free_port
from .test_alerting import receiver
from .watchdog_peers import AGENT, WATCHDOG_BIN, Daemon, start_daemon, write_config

pytestmark = pytest.mark.slow

AGENT_BIN = str(Path(sys.executable).parent / "slawatch-agent")
FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")

Processes = list[subprocess.Popen[bytes]]


@pytest.fixture
def procs() -> Iterator[Processes]:
    """Every process a drill starts; whatever still runs at the end is killed."""
    started: Processes = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def wait_for(condition: Callable[[], object], timeout: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


# --- the agent ----------------------------------------------------------------------------------

def agent_config(folder: Path, port: int, checks: dict[str, int], *, spool: str = "spool.db",
                 batch_size: int = 1000) -> Path:
    """agent.toml shipping to the watchdog on `port`; one 1 s tcp check per entry (id -> port)."""
    key = folder / "agent.key"
    key.write_bytes((EXAMPLES / "secrets" / "agent.key").read_bytes())
    key.chmod(0o600)
    text = (f'[agent]\nid = "{AGENT}"\nspool = "{spool}"\nkey_file = "agent.key"\n'
            f'[watchdog]\nurl = "http://127.0.0.1:{port}"\nbatch_size = {batch_size}\nbatch_wait = "0.2s"\n')
    for check, target in checks.items():
        text += (f'[[check]]\nid = "{check}"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {target}\n'
                 'interval = "1s"\ntimeout = "0.5s"\n')
    path = folder / "agent.toml"
    path.write_text(text)
    return path


class Agent:
    """`slawatch-agent run` as a subprocess; each start logs to a file of its own."""

    def __init__(self, config: Path, procs: Processes) -> None:
        self.config, self.procs = config, procs
        self.logs: list[Path] = []

    def start(self, env: dict[str, str] | None = None) -> Agent:
        log = self.config.parent / f"agent-{len(self.logs)}.log"
        with log.open("wb") as stderr:
            self.process = subprocess.Popen([AGENT_BIN, "run", "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                            stderr=stderr, env=os.environ | (env or {}))
        self.procs.append(self.process)
        self.logs.append(log)
        return self

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(20)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def log_text(self) -> str:
        return self.logs[-1].read_text(errors="replace")


def new_spool(path: Path, backlog: int = 0) -> int:
    """The agent's spool, made before its first start, with `backlog` readings of `tick` over the last
    `backlog` seconds (taken while the watchdog was out of reach). Return its seed: the seqs follow it."""
    spool = Spool(path, AGENT)
    seed = spool.last_seq()
    now = dt.datetime.now(dt.timezone.utc)
    spool.append([Reading(agent=AGENT, check="tick", ts=now - dt.timedelta(seconds=backlog - i), status="up",
                          interval_s=1.0, latency_ms=1.0) for i in range(backlog)])
    spool.close()
    return seed


@dataclass
class SpoolState:
    last: int        # the last seq taken
    depth: int       # readings waiting
    first: int       # the oldest waiting (last + 1 when none)


def spool_state(path: Path) -> SpoolState:
    """Read-only, while the agent may be running (WAL: readers never block it)."""
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        last = int(db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'reading'").fetchone()[0])
        depth, first = db.execute("SELECT count(*), min(seq) FROM reading").fetchone()
    finally:
        db.close()
    return SpoolState(last, int(depth), last + 1 if first is None else int(first))


# --- the watchdog -------------------------------------------------------------------------------

def watchdog(config: Path, port: int, procs: Processes) -> Daemon:
    daemon = start_daemon(config, port)
    procs.append(daemon.process)
    return daemon


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(20)


@dataclass
class Held:
    """What the watchdog's database holds of the agent."""

    readings: list[tuple[Any, ...]]   # (agent, seq, check, ts ms, status, ...) in seq order
    dropped: list[tuple[int, int]]
    duplicates: int                   # readings that came again in another batch (acks' duplicates + reused)

    @property
    def seqs(self) -> list[int]:
        return [row[1] for row in self.readings]


def held(database: Path) -> Held:
    with Reader(database) as reader:
        readings = list(reader.readings(AGENT))
        dropped = reader.dropped(AGENT)
        acks = [json.loads(ack) for (ack,) in reader.conn.execute(
            "SELECT e.ack FROM evidence e JOIN agents a ON a.id = e.agent_id WHERE a.name = ? AND e.kind = 'readings'",
            (AGENT,))]
    return Held(readings, dropped, sum(a.get("duplicates", 0) + a.get("reused_seqs", 0) for a in acks))


def stored_count(database: Path) -> int:
    with Reader(database) as reader:
        return reader.count("readings")


def stored_up_to(database: Path, seq: int) -> Callable[[], bool]:
    """Whether the agent's readings up to `seq` arrived (the highest stored seq, cheaply)."""
    def arrived() -> bool:
        with Reader(database) as reader:
            top = reader.conn.execute("SELECT max(r.seq) FROM readings r JOIN agents a ON a.id = r.agent_id "
                                      "WHERE a.name = ?", (AGENT,)).fetchone()[0]
        return top is not None and top >= seq

    return arrived


def assert_each_once(database: Path, seed: int, last: int) -> Held:
    """The readings table holds seqs seed+1 ... last of the agent, each once, and no reading came twice."""
    got = held(database)
    expected = range(seed + 1, last + 1)
    missing, extra = sorted(set(expected) - set(got.seqs)), sorted(set(got.seqs) - set(expected))
    assert not missing and not extra, f"missing {missing[:10]} ({len(missing)}), extra {extra[:10]} ({len(extra)})"
    assert got.seqs == list(expected)
    assert got.duplicates == 0
    return got


def evidence_verifies(config: Path) -> None:
    verified = subprocess.run([WATCHDOG_BIN, "evidence", "verify", "-c", str(config)], capture_output=True, text=True,
                              timeout=60, check=False)
    assert verified.returncode == 0 and verified.stdout.startswith("OK "), verified.stdout + verified.stderr


# --- 1. the watchdog down for a while -----------------------------------------------------------

OUTAGE_S = 15.0


def test_watchdog_down_15_s_every_reading_arrives_once(tmp_path: Path, procs: Processes) -> None:
    port = free_port()
    config = write_config(tmp_path, port=port)
    database, spool = tmp_path / "watchdog.db", tmp_path / "spool.db"
    seed = new_spool(spool)
    daemon = watchdog(config, port, procs)
    # `tick` polls the watchdog's own port: up while it runs, down while it is away
    agent = Agent(agent_config(tmp_path, port, {"tick": port, "dead": free_port()}), procs).start()
    wait_for(lambda: stored_count(database) >= 4, 15, "the first readings")
    assert stop(daemon.process) == 0
    down = time.time()
    time.sleep(OUTAGE_S)
    up = time.time()
    waiting = spool_state(spool)
    assert waiting.depth >= 2 * (OUTAGE_S - 2)  # both checks went on: the backlog waits in the spool
    watchdog(config, port, procs)
    wait_for(stored_up_to(database, waiting.last), 25, "the backlog (the agent's backoff is 16 s at most by now)")
    assert agent.stop() == 0
    final = spool_state(spool)
    assert final.depth == 0 and "event=stopped spool_depth=0" in agent.log_text()
    got = assert_each_once(database, seed, final.last)
    during = [row for row in got.readings if down * 1000 <= row[3] < up * 1000]
    for check in ("tick", "dead"):
        mine = [row for row in during if row[2] == check]
        assert len(mine) >= OUTAGE_S - 2, (check, len(mine))
        assert {row[4] for row in mine} == {"down"}
    log = agent.log_text()
    assert log.count("event=ship-failed") == 1 and "event=watchdog-reachable" in log  # once per outage, no spam


# --- 2 and 3. kill -9 of either daemon while a backlog is shipped ---------------------------------

BACKLOG = 6000


@pytest.mark.parametrize("victim", ["agent", "watchdog"])
def test_kill_9_mid_ingest_loses_and_repeats_nothing(tmp_path: Path, procs: Processes, victim: str) -> None:
    port = free_port()
    config = write_config(tmp_path, port=port)
    database, spool = tmp_path / "watchdog.db", tmp_path / "spool.db"
    seed = new_spool(spool, backlog=BACKLOG)  # 60 batches of 100 to ship
    daemon = watchdog(config, port, procs)
    agent = Agent(agent_config(tmp_path, port, {"tick": port}, batch_size=100), procs).start()
    wait_for(lambda: stored_count(database) >= 1000, 30, "the first batches of the backlog", every=0.01)
    if victim == "agent":
        agent.kill()
    else:
        daemon.process.kill()
        daemon.process.wait(10)
    at_kill, state = held(database), spool_state(spool)
    assert len(at_kill.seqs) < BACKLOG and state.depth > 0, "killed after the backlog was through"
    # Whatever left the agent's spool was acknowledged: all of it is stored, from the first seq on.
    # (The batch in flight may be stored too and not acknowledged yet: the agent resends it.)
    assert set(range(seed + 1, state.first)) <= set(at_kill.seqs)
    if victim == "agent":
        agent.start()
    else:
        daemon = watchdog(config, port, procs)
    wait_for(stored_up_to(database, spool_state(spool).last), 30, "the rest of the backlog")
    assert agent.stop() == 0
    final = spool_state(spool)
    assert final.depth == 0
    got = assert_each_once(database, seed, final.last)
    assert set(at_kill.seqs) <= set(got.seqs) and got.dropped == []
    if victim == "watchdog":
        log = agent.log_text()
        assert "event=ship-failed" in log and "event=watchdog-reachable" in log  # the agent's retries filled in
    assert stop(daemon.process) == 0
    evidence_verifies(config)


# --- 4. the notification receiver down, then up -----------------------------------------------------

ALERT_CONTRACT = """\
[contract]
id = "shop-2026"
client = "Example Corp"
provider = "Acme Hosting"
timezone = "UTC"
[client]
notify = ["json://127.0.0.1:{port}/client"]
events = ["outage", "recovery"]
[provider]
notify = ["json://127.0.0.1:{port}/provider"]
events = ["outage", "recovery"]
[[service]]
id = "shop"
name = "Web shop"
checks = ["web"]
quorum = 1
min_outage = "2s"
objectives = [{{ kind = "availability", target = 99.9 }}]
"""


@contextmanager
def listening(port: int) -> Iterator[None]:
    """A TCP port that accepts connections (the `web` check is up while it listens)."""
    server = socket.create_server(("127.0.0.1", port))
    server.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                server.accept()[0].close()
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(5)
        server.close()


def test_receiver_down_then_up_every_alert_once(tmp_path: Path, procs: Processes) -> None:
    hook_port, port, web_port = free_port(), free_port(), free_port()
    config = write_config(tmp_path, port=port, contracts={"shop.toml": ALERT_CONTRACT.format(port=hook_port)})
    database = tmp_path / "watchdog.db"
    daemon = watchdog(config, port, procs)
    agent = Agent(agent_config(tmp_path, port, {"web": web_port}), procs).start()

    def pending(event: str, tried: bool = False) -> bool:
        """Both parties' messages of `event` wait (tried and failed, when `tried`)."""
        with Reader(database) as reader:
            rows = [m for m in reader.outbox() if m.event == event]
        return len(rows) == 2 and all(m.status == "pending" and (m.attempts >= 1 or not tried) for m in rows)

    # Each party's first message (the day's anchor) is tried and fails; the others queue behind it,
    # to go in the order they were decided once the receiver is back.
    wait_for(lambda: pending("anchor", tried=True) and pending("outage"), 20, "the outage, while the receiver is down")
    with listening(web_port):
        wait_for(lambda: pending("recovery"), 20, "the recovery, while the receiver is down")
        with receiver(hook_port) as hooks:
            for path in ("/client", "/provider"):
                hooks.wait_for(path, 2, seconds=30)
                hooks.wait_for("/anchor" + path, 1, seconds=30)

            def all_sent() -> bool:
                with Reader(database) as reader:
                    return not reader.outbox("pending")

            wait_for(all_sent, 10, "the outbox to empty")
            time.sleep(1.5)  # a second delivery of anything would have arrived by now
            got = {path: [m["title"] for m in messages] for path, messages in hooks.got.items()}
        assert agent.stop() == 0
    assert stop(daemon.process) == 0
    assert got["/client"] == ["Outage: Web shop (Acme Hosting)", "Recovered: Web shop (Acme Hosting)"]  # in order
    provider = got["/provider"]
    assert len(provider) == 2 and provider[0].startswith("[shop-2026] DOWN: shop (web)")
    assert provider[1].startswith("[shop-2026] RECOVERED: shop after")
    assert len(got["/anchor/client"]) == len(got["/anchor/provider"]) == 1
    assert set(got) == {"/client", "/provider", "/anchor/client", "/anchor/provider"}
    with Reader(database) as reader:
        outbox = reader.outbox()
    assert sorted((m.event, m.party, m.status) for m in outbox) == [
        (event, party, "sent") for event in ("anchor", "outage", "recovery") for party in ("client", "provider")]
    assert all(m.attempts >= 2 for m in outbox if m.event == "anchor")  # failed at least once, then delivered once
    assert "event=alert-failed" in daemon.log_text()


# --- 5. the agent's spool disk full -------------------------------------------------------------------

FULL_BACKLOG, FULL_BATCH = 2000, 100


def test_spool_disk_full_drops_the_oldest_reports_them_and_takes_every_new_reading(
        tmp_path: Path, procs: Processes) -> None:
    """The agent on a 12 MB tmpfs in a private mount namespace (root, as `make test` runs): a backlog
    while the watchdog is away, the disk filled to 128 kB, then the agent polls 8 checks."""
    port = free_port()
    config = write_config(tmp_path, port=port)
    database, mount = tmp_path / "watchdog.db", tmp_path / "mnt"
    mount.mkdir()
    agent_toml = agent_config(tmp_path, port, {f"c{i}": port for i in range(8)}, spool=str(mount / "spool.db"),
                              batch_size=FULL_BATCH)
    script = Path(__file__).with_name("drill_full_disk.py")
    log, out = tmp_path / "agent.log", tmp_path / "prep.json"
    prepare_and_run = shlex.join([sys.executable, str(script), str(mount), str(agent_toml), AGENT, str(FULL_BACKLOG),
                                  str(128 * 1024), AGENT_BIN])
    command = f"mount -t tmpfs -o size=12m tmpfs {shlex.quote(str(mount))} && exec {prepare_and_run}"
    with log.open("wb") as stderr, out.open("wb") as stdout:  # unshare, sh and python exec: the agent keeps this pid
        process = subprocess.Popen(["unshare", "-m", "sh", "-c", command], stdout=stdout, stderr=stderr)
    procs.append(process)
    wait_for(lambda: "event=spool-dropped" in log.read_text() or process.poll() is not None, 30, "the disk to fill")
    assert process.poll() is None, log.read_text()[-3000:]
    prep = json.loads(out.read_text().splitlines()[0])
    assert prep["reserve"] and prep["free"] <= 128 * 1024
    seed = prep["seed"]
    daemon = watchdog(config, port, procs)
    wait_for(stored_up_to(database, seed + FULL_BACKLOG + 20), 30, "the backlog and new readings")
    assert stop(process) == 0
    text = log.read_text()
    assert "event=stopped spool_depth=0" in text
    for event in ("event=spool-full", "event=spool-reserve-released", "event=spool-dropped"):
        assert event in text
    assert "event=readings-lost" not in text and "event=spool-write-failed" not in text
    got = held(database)
    stored = set(got.seqs)
    lost = {seq for first, last in got.dropped for seq in range(first, last + 1)}
    assert got.dropped and got.dropped[0][0] == seed + FULL_BATCH + 1  # the oldest but the batch in flight
    assert not stored & lost and got.duplicates == 0
    assert stored | lost == set(range(seed + 1, max(stored) + 1))  # every seq stored or reported dropped
    assert set(range(seed + FULL_BACKLOG + 1, max(stored) + 1)) <= stored  # every new reading was taken
    assert stop(daemon.process) == 0


# --- 6. the agent's clock off by more than max_clock_skew --------------------------------------------

@dataclass
class Skewed:
    config: Path
    daemon: Daemon
    agent: Agent
    database: Path
    spool: Path
    seed: int
    state: Any  # the spool when the agent was stopped


def run_skewed(tmp_path: Path, procs: Processes, offset: str) -> Skewed:
    """The agent runs with its clock `offset` (libfaketime) until refused, then is stopped: refused as
    stale on both sides, nothing shipped, nothing lost."""
    assert FAKETIME.exists(), "libfaketime is missing: run `bash .ci/system-deps` (Debian package faketime)"
    port = free_port()
    config = write_config(tmp_path, port=port)
    database, spool = tmp_path / "watchdog.db", tmp_path / "spool.db"
    seed = new_spool(spool)
    daemon = watchdog(config, port, procs)
    agent = Agent(agent_config(tmp_path, port, {"tick": port}), procs)
    agent.start(env={"LD_PRELOAD": str(FAKETIME), "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    wait_for(lambda: "event=ship-refused" in agent.log_text(), 15, "the agent's refusal")
    wait_for(lambda: spool_state(spool).last >= seed + 4, 10, "readings taken meanwhile")
    assert agent.stop() == 0
    state = spool_state(spool)
    assert state.depth == state.last - seed  # nothing shipped, nothing lost: every reading waits
    refused = next(line for line in agent.log_text().splitlines() if "event=ship-refused" in line)
    assert "status=401" in refused and '"code": "stale"' in refused
    assert re.search(r"send time is (599|60[01])s off the watchdog\\'s clock \(limit 300s\): "
                     r"stale request or a wrong clock on the agent", refused), refused
    assert re.search(r"event=ingest-refused status=401 code=stale agent='ams-probe' reason=\"send time is "
                     r"(599|60[01])s off the watchdog's clock \(limit 300s\)", daemon.log_text()), daemon.log_text()
    assert held(database).seqs == []
    return Skewed(config, daemon, agent, database, spool, seed, state)


def test_agent_clock_skewed_is_refused_then_ships_everything(tmp_path: Path, procs: Processes) -> None:
    run = run_skewed(tmp_path, procs, "-10m")
    daemon, agent, database, spool, seed, skewed = run.daemon, run.agent, run.database, run.spool, run.seed, run.state
    agent.start()  # its clock is right again
    wait_for(stored_up_to(database, skewed.last), 15, "what waited in the spool")
    assert agent.stop() == 0
    final = spool_state(spool)
    assert final.depth == 0
    got = assert_each_once(database, seed, final.last)
    # the readings keep the time the agent's clock showed when it took them (that is what it signed)
    assert max(row[3] for row in got.readings if row[1] <= skewed.last) < (time.time() - 9 * 60) * 1000
    assert stop(daemon.process) == 0


def test_agent_clock_ahead_is_refused_then_reports_the_future_readings_dropped(
        tmp_path: Path, procs: Processes) -> None:
    run = run_skewed(tmp_path, procs, "+10m")
    config, daemon, agent, database, spool = run.config, run.daemon, run.agent, run.database, run.spool
    seed, ahead = run.seed, run.state

    agent.start()  # its clock is right again
    restarted = time.monotonic()
    wait_for(stored_up_to(database, ahead.last + 3), 15, "readings taken after the restart")
    assert time.monotonic() - restarted < 10  # at once, not after real time caught up (nor a 5-minute retry)
    assert agent.stop() == 0
    final = spool_state(spool)
    assert final.depth == 0
    got = held(database)
    # every seq from the seed on: stamped ahead, reported dropped as one range; taken since, stored once
    assert got.dropped == [(seed + 1, ahead.last)]
    assert got.seqs == list(range(ahead.last + 1, final.last + 1)) and got.duplicates == 0
    assert max(row[3] for row in got.readings) < time.time() * 1000  # nothing stamped in the future got in
    log = agent.log_text()
    assert re.search(r"event=ingest-refused status=422 code=invalid-body agent='ams-probe' reason='readings\[0\]: "
                     r"taken after the batch was sent", daemon.log_text()), daemon.log_text()
    assert "event=batch-refused status=422 batch=" in log and "action=rebatch" in log
    dropped = re.search(rf"ERROR slawatch.agent.spool event=spool-dropped first_seq={seed + 1} "
                        rf"last_seq={ahead.last} count={ahead.depth} ahead_s=(\d+) reason='stamped up to (\d+) s "
                        r"in the future: the clock was set back'", log)
    assert dropped and dropped[1] == dropped[2] and 540 < int(dropped[1]) <= 600, log
    assert re.search(rf"WARNING slawatch.watchdog.server event=agent-dropped agent=ams-probe batch=\w+ ranges=1 "
                     rf"readings={ahead.depth} first_seq={seed + 1} last_seq={ahead.last}$",
                     daemon.log_text(), re.MULTILINE), daemon.log_text()
    assert stop(daemon.process) == 0
    evidence_verifies(config)


# --- 7. a damaged spool file ---------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["garbage", "pages"])
def test_damaged_spool_refuses_to_start_and_keeps_the_file(tmp_path: Path, damage: str) -> None:
    spool = tmp_path / "spool.db"
    noise = random.Random(7).randbytes(16 * 1024)
    if damage == "garbage":  # not a database at all
        spool.write_bytes(noise * 4)
    else:  # a spool with 3000 readings waiting, four of its pages overwritten
        new_spool(spool, backlog=3000)
        with spool.open("r+b") as handle:
            handle.seek(4 * 4096)
            handle.write(noise)
    before = spool.read_bytes()
    config = agent_config(tmp_path, free_port(), {"tick": free_port()})
    started = time.monotonic()
    result = subprocess.run([AGENT_BIN, "run", "-c", str(config)], capture_output=True, text=True, timeout=30,
                            check=False)
    assert time.monotonic() - started < 10
    assert result.returncode == 1, result.stderr
    assert "event=spool-damaged action=refuse-to-start" in result.stderr
    assert f"spool {spool} is damaged (" in result.stderr
    assert "move it aside" in result.stderr and "then start the agent again" in result.stderr
    assert "Traceback" not in result.stderr and "event=started" not in result.stderr
    assert spool.read_bytes() == before
