"""The agent's shipping at its edges: only the watchdog's own acknowledgement of a batch lets its
readings leave the spool; a spool row that cannot be read back is shipped as a dropped range rather
than holding back every reading after it; and readings under seqs the watchdog already held for
other readings (a spool put back from a snapshot) are numbered anew and sent again."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
import sqlite3
from pathlib import Path

import pytest
from aiohttp import web

from slawatch.agent.protocol import public_key_from_line
from slawatch.agent.shipper import Shipper, SpoolAccess
from slawatch.agent.spool import Spool
from slawatch.collectors.reading import Reading
from slawatch.config.keys import load_private_key, public_key_line
from slawatch.watchdog.store import Reader

from .conftest import EXAMPLES
from .http_peers import serve
from .ingest_peer import Receiver
from .watchdog_peers import AGENT, serving, write_config

KEY = load_private_key((EXAMPLES / "secrets" / "agent.key").read_bytes())


def recent(count: int) -> list[Reading]:
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    return [Reading(agent="probe", check="web", ts=start + dt.timedelta(seconds=30 * i), status="up",
                    interval_s=30.0, latency_ms=10.0) for i in range(count)]


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
    server = serve(app)
    url = await server.__anext__()
    spool = Spool(tmp_path / "spool.db", "probe")
    spool.append(recent(5))
    try:
        for base in (url, url + "/other"):
            shipper = await ship_for(spool, base, 1.0)
            assert (spool.depth(), shipper.delivery.readings) == (5, 0)
            assert "not the watchdog's acknowledgement" in shipper.delivery.last_error or "HTTP 302" in (
                shipper.delivery.last_error or "")
    finally:
        await server.aclose()
    assert "/api/v1/ingest" in posts and "/other/api/v1/ingest" in posts and "/login" not in posts


async def test_an_unreadable_spool_row_is_shipped_as_dropped_and_the_rest_as_readings(tmp_path: Path) -> None:
    """Rows damaged on disk (the file still passes SQLite's check: cut short, and text that is not
    UTF-8, as a flipped high bit makes) and one holding what a reading may not (a non-finite metric):
    each becomes a dropped range; every other reading ships."""
    peer = receiver()
    server = serve(peer.app())
    url = await server.__anext__()
    spool = Spool(tmp_path / "spool.db", "probe")
    first, second, third, *rest = recent(8)
    infinite = Reading(**{**second.__dict__, "metrics": {"x": float("inf")}})
    seqs = [r.seq for r in spool.append([first, infinite, third, *rest])]
    spool.close()
    with sqlite3.connect(tmp_path / "spool.db") as db:
        db.execute("UPDATE reading SET body = ? WHERE seq = ?", ('{"agent":"probe","check":"web"', seqs[0]))
        db.execute("UPDATE reading SET body = ? WHERE seq = ?", ("[1, 2]", seqs[4]))
        db.execute("UPDATE reading SET body = CAST(x'7b22ff22' AS TEXT) WHERE seq = ?", (seqs[6],))
    spool = Spool(tmp_path / "spool.db", "probe")
    try:
        await ship_for(spool, url, 1.0)
    finally:
        await server.aclose()
    assert peer.seqs() == [seqs[2], seqs[3], seqs[5], seqs[7]]
    assert sorted(peer.dropped) == [(seqs[0], seqs[1]), (seqs[4], seqs[4]), (seqs[6], seqs[6])]
    assert spool.depth() == 0


def test_a_spool_put_back_from_a_snapshot_numbers_its_readings_anew(tmp_path: Path) -> None:
    """Against the real watchdog: the spool is put back from a copy (a VM snapshot) after its later
    readings were stored; the next readings take seqs the watchdog holds for those. It names them in
    its acknowledgement, and the agent numbers them anew: the outage they saw is stored."""
    def taken(count: int, minutes_ago: float, status: str) -> list[Reading]:
        start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes_ago)
        return [Reading(agent=AGENT, check="web", ts=start + dt.timedelta(seconds=30 * i), status=status,
                        interval_s=30.0) for i in range(count)]

    def ship(url: str) -> Shipper:
        spool = Spool(tmp_path / "spool.db", AGENT)
        access = SpoolAccess(spool)

        async def run() -> Shipper:
            shipper = Shipper(AGENT, url, KEY, access, batch_wait=0.0)
            stopping = asyncio.Event()
            task = asyncio.create_task(shipper.run(stopping))
            await asyncio.sleep(1.5)
            stopping.set()
            await task
            return shipper

        try:
            return asyncio.run(run())
        finally:
            access.close()

    with serving(write_config(tmp_path)) as served:
        spool = Spool(tmp_path / "spool.db", AGENT)
        spool.append(taken(2, 10, "up"))
        spool.close()
        shutil.copy(tmp_path / "spool.db", tmp_path / "snapshot.db")
        spool = Spool(tmp_path / "spool.db", AGENT)
        later = [r.seq for r in spool.append(taken(2, 9, "up"))]
        spool.close()
        ship(served.client.base)
        for name in ("spool.db", "spool.db-wal", "spool.db-shm"):
            (tmp_path / name).unlink(missing_ok=True)
        shutil.copy(tmp_path / "snapshot.db", tmp_path / "spool.db")  # put back
        spool = Spool(tmp_path / "spool.db", AGENT)
        outage = spool.append(taken(2, 5, "down"))
        spool.close()
        assert [r.seq for r in outage] == later  # the seqs came back
        shipper = ship(served.client.base)
        with Reader(served.database) as reader:
            stored = {row[1]: row[4] for row in reader.readings(AGENT)}
    assert sorted(stored.values()) == ["down", "down", "up", "up", "up", "up"]
    assert all(stored[seq] == "up" for seq in later)  # the readings first stored under them stay
    assert shipper.delivery.readings == 4  # the snapshot's 2 (stored before: duplicates), the outage's 2, anew
    spool = Spool(tmp_path / "spool.db", AGENT)
    assert spool.depth() == 0
    spool.close()


async def test_the_watchdog_urls_password_is_not_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from .conftest import free_port

    spool = Spool(tmp_path / "spool.db", "probe")
    spool.append(recent(1))
    with caplog.at_level(logging.INFO, logger="slawatch.agent.shipper"):
        await ship_for(spool, f"http://probe:Hunter2secret@127.0.0.1:{free_port()}", 0.5)
    assert "event=ship-failed url=http://***@127.0.0.1:" in caplog.text
    assert "Hunter2secret" not in caplog.text


def test_an_http_checks_manifest_target_holds_no_credentials() -> None:
    from slawatch.config import HttpCheck

    check = HttpCheck(id="w", type="http", interval=30.0, timeout=5.0,
                      url="https://monitor:S3cretPw@shop.example.com/health?token=abc")
    assert check.target() == "GET https://shop.example.com/health"
