"""`make demo`: the real daemons on loopback, watching a small provider that misbehaves on schedule.

    python -m slawatch.watchdog.demo [--dir .demo] [--seconds N]

A "provider" (in this process) serves a web shop that answers 503 for 40 s every 3 minutes, an
API with a little latency and an SMTP greeting. Two agents (`slawatch-agent run`, with keys made
by `slawatch-agent keygen`) poll it every 10 s and ship to `slawatch-watchdog run` on
127.0.0.1:8470. Every 15 s the demo prints what the watchdog holds; Ctrl-C (or --seconds) stops
everything and verifies the evidence chain.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from aiohttp import web

from slawatch.config.keys import load_private_key, public_key_line

from .passwords import hash_password
from .store import Reader

BIN = Path(sys.executable).parent
PORTS = {"watchdog": 8470, "provider": 8480, "smtp": 8425}
AGENTS = ("ams-probe", "fra-probe")
DEMO_USER, DEMO_PASSWORD = "demo", "demo-password"        # admin; a loopback demo, never a real deployment's
VIEWER_USER, VIEWER_PASSWORD = "client", "client-password"  # a client manager: the demo contract only
OUTAGE_EVERY_S, OUTAGE_FOR_S = 180, 40
SLOW_EVERY_S, SLOW_FOR_S = 300, 60

CONTRACT = """\
[contract]
id = "demo-hosting"
client = "Demo Client"
provider = "Demo Provider"
timezone = "Europe/Amsterdam"
fee = 1000.0
public = true                           # the status page (no money figures) needs no login

[client]
notify = ["json://127.0.0.1:{provider}/notify/client"]

[provider]
notify = ["json://127.0.0.1:{provider}/notify/provider"]
repeat = "5m"

[[service]]
id = "shop"
name = "Web shop"
checks = ["shop-web"]
quorum = 2                              # both vantage points must see it down
min_outage = "20s"
objectives = [{ kind = "availability", target = 99.9 }]

[[service]]
id = "backend"
name = "API and mail"
checks = ["api", "smtp-relay"]
min_outage = "20s"
objectives = [{ kind = "availability", target = 99.5 }, { kind = "latency", percentile = 95, max = "500ms" }]

[[service]]
id = "watch"
name = "The watchdog and this host"
checks = ["watchdog-health", "demo-host"]
objectives = [{ kind = "availability", target = 99.0 }]

[[maintenance]]                         # every hour at :30 for 3 minutes, so it shows in a demo
services = ["shop"]
rrule = "FREQ=HOURLY;BYMINUTE=30"
duration = "3m"
note = "hourly deploy window"
"""

AGENT = """\
[agent]
id = "{agent}"
spool = "{agent}.spool.db"
key_file = "{agent}.key"

[watchdog]
url = "http://127.0.0.1:{watchdog}"
batch_wait = "2s"

[defaults]
interval = "10s"
timeout = "5s"

[[check]]
id = "shop-web"
type = "http"
url = "http://127.0.0.1:{provider}/shop"
expect_body = "OK"

[[check]]
id = "api"
type = "http"
url = "http://127.0.0.1:{provider}/api"
expect_json = {{ "status" = "ok" }}

[[check]]
id = "smtp-relay"
type = "tcp"
host = "127.0.0.1"
port = {smtp}
expect_banner = "^220 "

[[check]]
id = "watchdog-health"
type = "http"
url = "http://127.0.0.1:{watchdog}/healthz"

[[check]]
id = "demo-host"
type = "host"
disks = ["/"]
max = {{ "disk./.percent" = 99 }}
"""


def shop_is_down(now: float | None = None) -> bool:
    return (now if now is not None else time.time()) % OUTAGE_EVERY_S < OUTAGE_FOR_S


async def provider() -> tuple[web.AppRunner, asyncio.AbstractServer]:
    async def shop(request: web.Request) -> web.Response:
        if shop_is_down():
            return web.Response(status=503, text="maintenance gone wrong")
        return web.Response(text="OK")

    async def api(request: web.Request) -> web.Response:
        slow = time.time() % SLOW_EVERY_S < SLOW_FOR_S  # a slow spell: the latency objective feels it
        await asyncio.sleep(random.uniform(0.4, 0.9) if slow else random.uniform(0.005, 0.06))
        return web.json_response({"status": "ok"})

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 demo.example ESMTP\r\n")
        await writer.drain()
        writer.close()

    async def notify(request: web.Request) -> web.Response:
        message = await request.json()
        clock = dt.datetime.now().strftime("%H:%M:%S")
        print(f"[{clock}] alert to the {request.match_info['party']}: {message.get('title')}", flush=True)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/shop", shop)
    app.router.add_get("/api", api)
    app.router.add_post("/notify/{party}", notify)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", PORTS["provider"]).start()
    smtp = await asyncio.start_server(greet, "127.0.0.1", PORTS["smtp"])
    return runner, smtp


def prepare(folder: Path) -> Path:
    """Configs and keys in `folder` (kept between runs: the history grows)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "contracts").mkdir(exist_ok=True)
    (folder / "contracts" / "demo.toml").write_text(CONTRACT.replace("{provider}", str(PORTS["provider"])))
    entries = []
    for agent in AGENTS:
        key = folder / f"{agent}.key"
        if not key.exists():
            subprocess.run([str(BIN / "slawatch-agent"), "keygen", str(key)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        line = public_key_line(load_private_key(key.read_bytes()))
        entries.append(f'[[agent]]\nid = "{agent}"\npublic_key = "{line}"\n')
        (folder / f"{agent}.toml").write_text(AGENT.format(agent=agent, **PORTS))
    config = folder / "watchdog.toml"
    users = (f'[[user]]\nname = "{DEMO_USER}"\npassword_hash = "{hash_password(DEMO_PASSWORD)}"\nrole = "admin"\n'
             f'[[user]]\nname = "{VIEWER_USER}"\npassword_hash = "{hash_password(VIEWER_PASSWORD)}"\n'
             'role = "viewer"\ncontracts = ["demo-hosting"]\n')
    config.write_text(f'[watchdog]\nlisten = "127.0.0.1:{PORTS["watchdog"]}"\ndatabase = "watchdog.db"\n'
                      f'contracts = "contracts"\npublic_url = "http://127.0.0.1:{PORTS["watchdog"]}"\n\n'
                      + "\n".join(entries) + "\n" + users)
    return config


def report(database: Path, started: float) -> None:
    """What the watchdog holds now, as a client manager would want it at a glance."""
    now_ms = time.time_ns() // 1_000_000
    with Reader(database) as reader:
        agents = reader.agents()
        readings, batches = reader.count("readings"), reader.count("evidence")
        head_id, head = reader.head()
        lines = []
        for agent in agents:
            seen = "never" if agent.last_seen is None else f"{(now_ms - agent.last_seen) / 1000:.0f}s ago"
            state = "SILENT" if agent.silent_since else "reporting"
            checks = []
            for check in ("shop-web", "api", "smtp-relay"):
                runs = reader.intervals(agent.name, check)
                current = runs[-1].status if runs and runs[-1].end > now_ms else "unknown"
                down_s = sum(min(r.end, now_ms) - r.start for r in runs if r.status == "down") / 1000
                checks.append(f"{check}={current}" + (f" (down {down_s:.0f}s so far)" if down_s else ""))
            lines.append(f"  {agent.name:<10} {state:<9} last batch {seen:<9} " + "  ".join(checks))
    clock = dt.datetime.now().strftime("%H:%M:%S")
    shop = "DOWN (provider answers 503)" if shop_is_down() else "up"
    print(f"[{clock}] +{time.monotonic() - started:.0f}s  provider's shop is {shop}; watchdog holds "
          f"{readings} readings in {batches} signed batches, chain head #{head_id} {head.hex()[:16]}...")
    print("\n".join(lines) or "  (no agent has reported yet)", flush=True)


async def run(folder: Path, seconds: float | None) -> int:
    config = prepare(folder)
    runner, smtp = await provider()
    logs = (folder / "logs")
    logs.mkdir(exist_ok=True)
    # Each daemon in a session of its own: Ctrl-C reaches the demo only, which stops them in order.
    processes = [subprocess.Popen([str(BIN / "slawatch-watchdog"), "run", "-c", str(config)],
                                  stdout=subprocess.DEVNULL, stderr=(logs / "watchdog.log").open("ab"),
                                  start_new_session=True)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    try:
        await _wait_healthy(processes[0])
        for agent in AGENTS:
            processes.append(subprocess.Popen([str(BIN / "slawatch-agent"), "run", "-c", str(folder / f"{agent}.toml")],
                                              stdout=subprocess.DEVNULL, stderr=(logs / f"{agent}.log").open("ab"),
                                              start_new_session=True))
        print(f"demo: dashboard on http://127.0.0.1:{PORTS['watchdog']} (client manager: {VIEWER_USER} / "
              f"{VIEWER_PASSWORD}; admin: {DEMO_USER} / {DEMO_PASSWORD}); "
              f"provider on 127.0.0.1:{PORTS['provider']} (its shop fails {OUTAGE_FOR_S} s every "
              f"{OUTAGE_EVERY_S} s), agents {', '.join(AGENTS)}; alerts to both parties are printed here; "
              f"logs and database in {folder}/. Ctrl-C stops.", flush=True)
        started = time.monotonic()
        deadline = None if seconds is None else started + seconds
        while not stop.is_set():
            wait = 15.0 if deadline is None else max(0.0, min(15.0, deadline - time.monotonic()))
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except TimeoutError:
                report(folder / "watchdog.db", started)
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        codes = []
        for process in reversed(processes):  # agents first (they flush to the watchdog), the watchdog last
            process.send_signal(signal.SIGTERM)
            codes.append(process.wait(30))
        smtp.close()
        await runner.cleanup()
    verified = subprocess.run([str(BIN / "slawatch-watchdog"), "evidence", "verify", "-c", str(config)],
                              capture_output=True, text=True)
    print(f"demo stopped (exit codes {codes}); evidence verify: "
          f"{(verified.stdout or verified.stderr).strip()}", flush=True)
    return 0 if verified.returncode == 0 and not any(codes) else 1


async def _wait_healthy(process: subprocess.Popen[bytes]) -> None:
    url = f"http://127.0.0.1:{PORTS['watchdog']}/healthz"
    for _ in range(200):
        if process.poll() is not None:
            raise SystemExit(f"demo: the watchdog exited ({process.returncode}); is port {PORTS['watchdog']} "
                             "taken? (see logs/watchdog.log)")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            await asyncio.sleep(0.1)
    raise SystemExit("demo: the watchdog did not come up")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=".demo", help="working folder (default .demo)")
    parser.add_argument("--seconds", type=float, help="stop after this long (default: run until Ctrl-C)")
    parser.add_argument("--fresh", action="store_true", help="start from an empty folder")
    parser.add_argument("--port-offset", type=int, default=0, help="shift every port by this much")
    args = parser.parse_args()
    for name in PORTS:
        PORTS[name] += args.port_offset
    folder = Path(args.dir).resolve()
    if args.fresh and folder.exists():
        shutil.rmtree(folder)
    return asyncio.run(run(folder, args.seconds))


if __name__ == "__main__":
    sys.exit(main())
