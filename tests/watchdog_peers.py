"""The watchdog for tests: config files, an in-thread server on loopback, the daemon as a subprocess,
and a signing client."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from slawatch.agent.protocol import INGEST_PATH, Signer, batch_body, new_batch_id, sign
from slawatch.collectors.reading import Reading
from slawatch.config import load_watchdog
from slawatch.config.keys import load_private_key, public_key_line
from slawatch.watchdog.server import Settings, Watchdog

from .conftest import EXAMPLES, ROOT, free_port

AGENT = "ams-probe"
KEY = load_private_key((EXAMPLES / "secrets" / "agent.key").read_bytes())
PUBLIC = public_key_line(KEY)
# recent enough that no retention purges it, whole seconds so interval bounds are round
T0 = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)).replace(microsecond=0)
WATCHDOG_BIN = str(Path(sys.executable).parent / "slawatch-watchdog")


CONTRACT = """\
[contract]
id = "shop-2026"
client = "Example Corp"
provider = "Acme Hosting"
timezone = "Europe/Amsterdam"

[client]
notify = ["json://127.0.0.1:9/client"]

[provider]
notify = ["json://127.0.0.1:9/provider"]

[[service]]
id = "shop"
checks = ["web"]
quorum = {quorum}
objectives = [{{ kind = "availability", target = 99.9 }}]
"""


def write_config(folder: Path, *, agents: Sequence[tuple[str, str]] = ((AGENT, PUBLIC),), port: int = 8470,
                 settings: str = "", contracts: dict[str, str] | None = None) -> Path:
    """A watchdog.toml (and contracts folder) in `folder`; the database beside it."""
    (folder / "contracts").mkdir(exist_ok=True)
    for name, text in (contracts or {"shop.toml": CONTRACT.format(quorum=1)}).items():
        (folder / "contracts" / name).write_text(text)
    lines = [f'[watchdog]\nlisten = "127.0.0.1:{port}"\ndatabase = "watchdog.db"\ncontracts = "contracts"\n'
             f"{settings}\n"]
    for agent, key in agents:
        lines.append(f'[[agent]]\nid = "{agent}"\npublic_key = "{key}"\n')
    path = folder / "watchdog.toml"
    path.write_text("".join(lines))
    return path


def reading(seq: int, check: str = "web", at_s: float = 0.0, status: str = "up", interval_s: float = 30.0,
            agent: str = AGENT, **fields: Any) -> Reading:
    return Reading(agent=agent, check=check, seq=seq, ts=T0 + dt.timedelta(seconds=at_s), status=status,
                   interval_s=interval_s, **fields)


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Client:
    """Signs and posts like an agent would, with urllib: nothing shared with the server's loop."""

    base: str
    key: Signer = KEY
    agent: str = AGENT

    def send(self, readings: Sequence[Reading] = (), *, batch: str | None = None, body: bytes | None = None,
             dropped: Sequence[tuple[int, int]] = (), path: str = INGEST_PATH, now: dt.datetime | None = None,
             headers: dict[str, str] | None = None) -> Answer:
        body = batch_body(self.agent, readings, dropped) if body is None else body
        signed = sign(self.key, self.agent, batch or new_batch_id(), path, body,
                      now=now or dt.datetime.now(dt.timezone.utc))
        return self.post(path, body, signed | (headers or {}))

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        request = urllib.request.Request(self.base + path, data=body, method="POST",
                                         headers=headers | {"Content-Type": "application/json"})
        return _open(request)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()


def _open(request: urllib.request.Request) -> Answer:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Answer(response.status, json.loads(response.read()), dict(response.headers))
    except urllib.error.HTTPError as err:
        text = err.read()
        try:
            body = json.loads(text)
        except ValueError:
            body = {"raw": text.decode(errors="replace")}
        return Answer(err.code, body, dict(err.headers))


def stalled_upload(base: str, path: str = INGEST_PATH, agent: str = AGENT,
                   announced: int = 100_000) -> http.client.HTTPConnection:
    """An upload naming `agent` (signed by nobody's key: the signature is checked once the body is
    in) that sends one byte of the `announced` and stops; the caller reads the answer and closes."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    conn.putrequest("POST", path)
    for name, value in sign(Ed25519PrivateKey.generate(), agent, new_batch_id(), path, b"{}").items():
        conn.putheader(name, value)
    conn.putheader("Content-Length", str(announced))
    conn.endheaders(b"{")
    return conn


@dataclass
class Served:
    watchdog: Watchdog
    client: Client
    database: Path
    loop: asyncio.AbstractEventLoop


@contextmanager
def serving(config_path: Path) -> Iterator[Served]:
    """The watchdog app on a loopback port, its loop in a thread of this process."""
    from slawatch.watchdog.store import migrate

    config = load_watchdog(config_path)
    migrate(config.database)
    watchdog = Watchdog(str(config_path), Settings.of(config))
    loop = asyncio.new_event_loop()
    port = free_port()
    runner = web.AppRunner(watchdog.app(), access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield Served(watchdog, Client(f"http://127.0.0.1:{port}"), Path(config.database), loop)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    client: Client
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_daemon(config_path: Path, port: int, env: dict[str, str] | None = None) -> Daemon:
    """`slawatch-watchdog run` as a subprocess; returns once /healthz answers."""
    log = config_path.parent / f"watchdog-{time.monotonic_ns()}.log"
    process = subprocess.Popen([WATCHDOG_BIN, "run", "-c", str(config_path)], stdout=log.open("wb"),
                               stderr=subprocess.STDOUT, env=os.environ | (env or {}), cwd=ROOT)
    daemon = Daemon(process, Client(f"http://127.0.0.1:{port}"), log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"watchdog exited {process.returncode}: {daemon.log_text()}")
        try:
            status = daemon.client.get("/healthz")[0]
        except OSError:
            status = 0  # not listening yet
        if status == 200:
            return daemon
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"watchdog did not answer /healthz: {daemon.log_text()}")


def copy_examples_secrets(folder: Path) -> None:
    shutil.copytree(EXAMPLES / "secrets", folder / "secrets", dirs_exist_ok=True)
