"""Alert latency: from the ingest of the reading that completes min_outage to the provider's webhook.

    make bench     (or: cd bench && ../.venv/bin/python alerts.py [--quick])

The real watchdog daemon on loopback with 100 services (one check each, min_outage 2 s); for each
service in turn a signed batch of down readings whose last one completes min_outage is posted,
and the clock runs until the provider's Apprise json:// webhook (an aiohttp receiver in this
process) has the outage message. Beside it, the peer: Apprise itself notifying the same receiver
directly (the floor any Apprise-based alert pays). Target: median <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import apprise
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peers import free_port, result, wait_http  # noqa: E402

from slawatch.agent.protocol import INGEST_PATH, batch_body, new_batch_id, sign  # noqa: E402
from slawatch.collectors.reading import Reading  # noqa: E402
from slawatch.config.keys import load_private_key, public_key_line  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KEY = load_private_key((ROOT / "config" / "examples" / "secrets" / "agent.key").read_bytes())


def config(folder: Path, port: int, hook: int, services: int) -> Path:
    (folder / "contracts").mkdir()
    lines = ['[contract]\nid = "bench"\nclient = "Client"\nprovider = "Provider"\ntimezone = "UTC"\n'
             f'[client]\nnotify = ["json://127.0.0.1:{hook}/client"]\nevents = ["recovery"]\n'
             f'[provider]\nnotify = ["json://127.0.0.1:{hook}/provider"]\n']
    for i in range(services):
        lines.append(f'[[service]]\nid = "svc-{i}"\nchecks = ["web-{i}"]\nmin_outage = "2s"\n')
    (folder / "contracts" / "bench.toml").write_text("".join(lines))
    path = folder / "watchdog.toml"
    path.write_text(f'[watchdog]\nlisten = "127.0.0.1:{port}"\ndatabase = "watchdog.db"\ncontracts = "contracts"\n'
                    f'[[agent]]\nid = "bench"\npublic_key = "{public_key_line(KEY)}"\n')
    return path


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 outages instead of 100")
    args = parser.parse_args()
    outages = 20 if args.quick else 100
    arrived: dict[str, float] = {}
    direct: list[float] = []

    async def hook(request: web.Request) -> web.Response:
        message = await request.json()
        arrived.setdefault(message["title"], time.perf_counter())
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/{name}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    latencies = []
    with tempfile.TemporaryDirectory() as name:
        port = free_port()
        process = subprocess.Popen([str(Path(sys.executable).parent / "slawatch-watchdog"), "run", "-c",
                                    str(config(Path(name), port, hook_port, outages))],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/healthz")
            await asyncio.sleep(1.0)  # the first periodic round (the day's evidence anchor) is out of the way
            import aiohttp
            async with aiohttp.ClientSession() as session:
                seq = 0
                for i in range(outages):
                    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
                    readings = []
                    for ago in (2, 1, 0):
                        seq += 1
                        readings.append(Reading(agent="bench", check=f"web-{i}", seq=seq,
                                                ts=now - dt.timedelta(seconds=ago), status="down", interval_s=1.0,
                                                error="HTTP 503"))
                    body = batch_body("bench", readings)
                    started = time.perf_counter()
                    async with session.post(f"http://127.0.0.1:{port}{INGEST_PATH}", data=body,
                                            headers=sign(KEY, "bench", new_batch_id(), INGEST_PATH, body)) as answer:
                        assert answer.status == 200, await answer.text()
                    title = f"[bench] DOWN: svc-{i} (web-{i})"
                    deadline = time.perf_counter() + 30
                    while title not in arrived and time.perf_counter() < deadline:
                        await asyncio.sleep(0.002)
                    assert title in arrived, f"no provider message for svc-{i} within 30 s"
                    latencies.append(arrived[title] - started)
            # the peer: Apprise notifying the same receiver directly, from a thread as the watchdog does
            notifier = apprise.Apprise()
            notifier.add(f"json://127.0.0.1:{hook_port}/peer")
            for i in range(outages):
                started = time.perf_counter()
                await asyncio.to_thread(notifier.notify, title=f"peer {i}", body="down")
                while f"peer {i}" not in arrived:
                    await asyncio.sleep(0.002)
                direct.append(arrived[f"peer {i}"] - started)
        finally:
            process.terminate()
            process.wait(30)
            await runner.cleanup()
    median, worst = statistics.median(latencies), max(latencies)
    peer = statistics.median(direct)
    print(f"alert latency, ingest of the reading completing min_outage -> provider's webhook, {outages} outages:")
    print(f"  median {median * 1000:7.1f} ms   max {worst * 1000:7.1f} ms   (target: median <= 1000 ms)")
    print(f"  peer: Apprise notifying the same webhook directly: median {peer * 1000:.1f} ms   "
          f"ratio {median / peer:.1f}x")
    print(result("alert latency median", median * 1000, "ms", "<= 1000", "Apprise direct", peer * 1000))
    print(result("alert latency max", worst * 1000, "ms", "", "Apprise direct", max(direct) * 1000))


if __name__ == "__main__":
    asyncio.run(main())
