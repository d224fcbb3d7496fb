"""The agent's shipping at its edges: only the watchdog's own acknowledgement of a batch lets its
readings leave the spool; a spool row that cannot be read back is shipped as a dropped range rather
than holding back every reading after it; and when the watchdog says it already held some seqs for
other readings (a spool put back from a snapshot), the spool's seqs move ahead."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from pathlib import Path

from aiohttp import web

from slawatch.agent.protocol import public_key_from_line
from slawatch.agent.shipper import Shipper, SpoolAccess
from slawatch.agent.spool import Spool
from slawatch.collectors.reading import Reading
from slawatch.config.keys import load_private_key, public_key_line

from .conftest import EXAMPLES, free_port
from .ingest_peer import Receiver

KEY = load_private_key((EXAMPLES / "secrets" / "agent.key").read_bytes())


def recent(count: int) -> list[Reading]:
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    return [Reading(agent="probe", check="web", ts=start + dt.timedelta(seconds=30 * i), status="up",
                    interval_s=30.0, latency_ms=10.0) for i in range(count)]


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def ship_for(spool: Spool, url: str, seconds: float) -> Shipper:
    access = SpoolAccess(spool)
    shipper = Shipper("probe", url, KEY, access, batch_wait=0.0)
    stopping = asyncio.Event()
    task = asyncio.create_task(shipper.run(stopping))
    await asyncio.sleep(seconds)
    stopping.set()
    await task
    access._thread.shutdown(wait=True)
    return shipper


def receiver() -> Receiver:
    return Receiver({"probe": public_key_from_line(public_key_line(KEY))})


async def test_a_200_that_is_not_the_acknowledgement_deletes_nothing(tmp_path: Path) -> None:
    """A login proxy in front of the watchdog: the POST is redirected to a page that answers 200
    (followed, it would pass for a delivery), or a 200 comes without this batch's acknowledgement."""
    posts: list[str] = []

    async def redirected(request: web.Request) -> web.Response:
        posts.append(request.path)
        raise web.HTTPFound("/login")

    async def page(request: web.Request) -> web.Response:
        posts.append(request.path)
        return web.Response(text="<html>please log in</html>", content_type="text/html")

    app = web.Application()
    app.router.add_post("/api/v1/ingest", redirected)
    app.router.add_route("*", "/login", page)
    app.router.add_post("/other/api/v1/ingest", page)
    runner, url = await serve(app)
    spool = Spool(tmp_path / "spool.db", "probe")
    spool.append(recent(5))
    try:
        for base in (url, url + "/other"):
            shipper = await ship_for(spool, base, 1.0)
            assert (spool.depth(), shipper.delivery.readings) == (5, 0)
            assert "not the watchdog's acknowledgement" in shipper.delivery.last_error or "HTTP 302" in (
                shipper.delivery.last_error or "")
    finally:
        await runner.cleanup()
    assert "/api/v1/ingest" in posts and "/other/api/v1/ingest" in posts and "/login" not in posts


async def test_an_unreadable_spool_row_is_shipped_as_dropped_and_the_rest_as_readings(tmp_path: Path) -> None:
    """One row damaged on disk (the file still passes SQLite's check) and one holding what a reading
    may not (a non-finite metric): each becomes a dropped range; every other reading ships."""
    peer = receiver()
    runner, url = await serve(peer.app())
    spool = Spool(tmp_path / "spool.db", "probe")
    first, second, third, *rest = recent(6)
    infinite = Reading(**{**second.__dict__, "metrics": {"x": float("inf")}})
    seqs = [r.seq for r in spool.append([first, infinite, third, *rest])]
    spool.close()
    with sqlite3.connect(tmp_path / "spool.db") as db:
        db.execute("UPDATE reading SET body = ? WHERE seq = ?", ('{"agent":"probe","check":"web"', seqs[0]))
        db.execute("UPDATE reading SET body = ? WHERE seq = ?", ("[1, 2]", seqs[4]))
    spool = Spool(tmp_path / "spool.db", "probe")
    try:
        await ship_for(spool, url, 1.0)
    finally:
        await runner.cleanup()
    assert peer.seqs() == [seqs[2], seqs[3], seqs[5]]
    assert sorted(peer.dropped) == [(seqs[0], seqs[1]), (seqs[4], seqs[4])]
    assert spool.depth() == 0


async def test_seqs_the_watchdog_held_for_other_readings_move_the_spools_seqs_ahead(tmp_path: Path) -> None:
    answers = []

    async def ingest(request: web.Request) -> web.Response:
        batch = request.headers["Slawatch-Batch"]
        readings = json.loads(await request.read())["readings"]
        answers.append(len(readings))
        return web.json_response({"batch": batch, "stored": 0, "duplicates": 0, "reused_seqs": len(readings)})

    app = web.Application()
    app.router.add_post("/api/v1/ingest", ingest)
    runner, url = await serve(app)
    spool = Spool(tmp_path / "spool.db", "probe")
    before = [r.seq for r in spool.append(recent(2))]
    try:
        await ship_for(spool, url, 1.0)
    finally:
        await runner.cleanup()
    after = [r.seq for r in spool.append(recent(1))]
    assert answers == [2] and spool.depth() == 1
    assert after[0] > before[-1] + 1_000  # moved up to the clock's seqs, past any a snapshot had used
