"""The watchdog under hostile or unlucky conditions: odd headers and values, a full disk, a changed
key, a reload, a restart. Each test states what must hold."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import http.client
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from slawatch.agent.protocol import (
    HEADER_SENT, HEADER_SIGNATURE, INGEST_PATH, MANIFEST_PATH, batch_body, canonical_json, new_batch_id, sign,
)
from slawatch.config.keys import public_key_line
from slawatch.watchdog import sketch
from slawatch.watchdog.evidence import verify_chain
from slawatch.watchdog.server import Settings
from slawatch.watchdog.store import Incoming, Reader, Row, Store, Stored, migrate, now_ms
from slawatch.config import load_watchdog

from .watchdog_peers import (
    AGENT, KEY, PUBLIC, WATCHDOG_BIN, Client, Served, reading, serving, stalled_upload, write_config,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(write_config(tmp_path_factory.mktemp("hardening"))) as s:
        yield s


def counts(database: Path) -> dict[str, int]:
    with Reader(database) as reader:
        return {t: reader.count(t) for t in ("evidence", "readings", "intervals", "agents", "series")}


def body_of(items: list[dict]) -> bytes:
    return canonical_json({"agent": AGENT, "readings": items, "dropped": []})


def raw_post(base: str, path: str, body: bytes, headers: list[tuple[str, str]]) -> tuple[int, bytes]:
    """POST with headers as a list, so a name may repeat (urllib cannot)."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    try:
        conn.putrequest("POST", path)
        for name, value in headers + [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]:
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --- 5xx from client input ---------------------------------------------------------------------

def test_unsigned_request_with_an_out_of_range_send_time_is_a_400_not_a_500(served: Served) -> None:
    """A send time that overflows the calendar with its offset is a malformed header (400), before any signature."""
    status, text = raw_post(served.client.base, INGEST_PATH, b"{}", [
        ("Slawatch-Agent", AGENT), ("Slawatch-Batch", "abcdefgh12"),
        ("Slawatch-Sent", "9999-12-31T23:59:59-23:59"),
        ("Slawatch-Signature", base64.b64encode(b"x" * 64).decode())])
    assert status == 400, text


def test_signed_reading_with_an_out_of_range_ts_is_a_422(served: Served) -> None:
    """A reading time out of the calendar's range is a bad reading (422), not a store failure."""
    before = counts(served.database)
    item = reading(9001).to_json() | {"ts": "0001-01-01T00:00:00+01:00"}
    answer = served.client.send(body=body_of([item]))
    assert answer.status == 422, answer
    assert counts(served.database) == before


def test_signed_reading_with_a_huge_interval_is_a_422_not_a_503(served: Served) -> None:
    """An interval_s no store can hold (1e300) is a bad reading (422): the agent is told, not kept retrying."""
    before = counts(served.database)
    answer = served.client.send(body=body_of([reading(9002, interval_s=1e300).to_json()]))
    assert answer.status == 422, answer
    assert counts(served.database) == before


def test_signed_reading_with_a_latency_no_histogram_can_answer_is_a_422(served: Served) -> None:
    """A finite latency too large for its histogram bucket's value (1.7e308 ms) would fail every
    report whose percentile landed on it: it is a bad reading; 1e19 ms is not."""
    before = counts(served.database)
    item = reading(9003, latency_ms=1.0).to_json() | {"latency_ms": 1.7e308}
    answer = served.client.send(body=body_of([item]))
    assert answer.status == 422 and "'latency_ms' must be a number from 0 to 1e+19" in answer.body["error"], answer
    assert counts(served.database) == before
    assert served.client.send(body=body_of([item | {"latency_ms": 1e19}])).status == 200
    assert sketch.representative(sketch.bucket(1e19)) < 1.01e19


def test_raw_utf8_surrogate_bytes_in_a_body_are_a_4xx_not_a_503(served: Served) -> None:
    """Surrogates encoded as raw UTF-8 bytes are not UTF-8: the body is refused (400), nothing stored."""
    before = counts(served.database)
    body = body_of([reading(9003).to_json()]).replace(b'"check":"web"', b'"check":"w\xed\xa0\x80b"')
    answer = served.client.send(body=body)
    assert (answer.status, answer.body["code"]) == (400, "not-json"), answer
    assert counts(served.database) == before


def test_manifest_with_a_lone_surrogate_is_a_422_not_a_503(served: Served) -> None:
    manifest = (b'{"agent":"%s","canaries":[],"checks":[],"version":"1\\ud800"}' % AGENT.encode())
    answer = served.client.send(body=manifest, path=MANIFEST_PATH)
    assert answer.status == 422, answer


# --- duplicated headers: verify() checks the last one, the evidence stores the first -----------

def _signed(readings_: list, batch: str) -> tuple[bytes, dict[str, str]]:
    body = batch_body(AGENT, readings_)
    return body, sign(KEY, AGENT, batch, INGEST_PATH, body)


def _chain_ok(served: Served) -> object:
    keys = {a.id: [a.public_key, *a.previous_keys] for a in served.watchdog.config.agents}
    with Reader(served.database) as reader:
        return verify_chain(reader, keys).finding


def test_a_repeated_signature_header_cannot_make_the_chain_unverifiable(tmp_path: Path) -> None:
    """A repeated Slawatch-Signature header is refused (400): the evidence keeps exactly what was verified."""
    with serving(write_config(tmp_path)) as served:
        body, headers = _signed([reading(9101)], new_batch_id())
        listed = [(k, v) for k, v in headers.items() if k != HEADER_SIGNATURE]
        status, text = raw_post(served.client.base, INGEST_PATH, body,
                                listed + [(HEADER_SIGNATURE, "!!!"), (HEADER_SIGNATURE, headers[HEADER_SIGNATURE])])
        first = (status, text, _chain_ok(served))
        body, headers = _signed([reading(9102)], new_batch_id())
        listed = [(k, v) for k, v in headers.items() if k != HEADER_SIGNATURE]
        status, text = raw_post(served.client.base, INGEST_PATH, body,
                                listed + [(HEADER_SIGNATURE, "QQ"), (HEADER_SIGNATURE, headers[HEADER_SIGNATURE])])
        assert first[0] < 500 and first[2] is None, first
        assert status < 500, text


def test_a_repeated_sent_header_cannot_make_the_chain_unverifiable(tmp_path: Path) -> None:
    with serving(write_config(tmp_path)) as served:
        body, headers = _signed([reading(9103)], new_batch_id())
        other = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        listed = [(k, v) for k, v in headers.items() if k != HEADER_SENT]
        status, text = raw_post(served.client.base, INGEST_PATH, body,
                                listed + [(HEADER_SENT, other), (HEADER_SENT, headers[HEADER_SENT])])
        assert _chain_ok(served) is None, (status, text)


# --- import -------------------------------------------------------------------------------------

def test_an_import_with_a_line_the_store_cannot_hold_imports_nothing(tmp_path: Path) -> None:
    """A repeated Slawatch-Sent header is refused (400): the stored send time is the signed one."""
    agents = [(f"probe-{i:02d}", PUBLIC) for i in range(51)]
    config = write_config(tmp_path, agents=agents)
    lines = [json.dumps(reading(1, agent=f"probe-{i:02d}").to_json()) for i in range(50)]
    lines.append(json.dumps(reading(1, agent="probe-50", interval_s=1e300).to_json()))
    (tmp_path / "h.jsonl").write_text("\n".join(lines) + "\n")
    result = subprocess.run([WATCHDOG_BIN, "import", "-c", str(config), str(tmp_path / "h.jsonl")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"{tmp_path / 'h.jsonl'}:51: 'interval_s' must be a positive number" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "watchdog.db").exists()


def test_an_import_is_one_transaction(tmp_path: Path) -> None:
    """A store failure in the middle of an import (here: the database refuses to grow) leaves
    nothing of the file behind."""
    agents = [(f"probe-{i:02d}", PUBLIC) for i in range(60)]
    config = write_config(tmp_path, agents=agents)
    lines = [json.dumps(reading(n, agent=f"probe-{i:02d}", at_s=n * 30, error="x" * 200).to_json())
             for i in range(60) for n in range(1, 200)]
    (tmp_path / "h.jsonl").write_text("\n".join(lines) + "\n")
    Store(tmp_path / "watchdog.db").close()
    with sqlite3.connect(tmp_path / "watchdog.db") as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    code = (f"import sqlite3, sys\nfrom slawatch.watchdog import store\n"
            f"original = store.connect\n"
            f"def connect(path, readonly=False):\n"
            f"    conn = original(path, readonly)\n"
            f"    conn.execute('PRAGMA max_page_count = {pages + 40}')\n"
            f"    return conn\n"
            f"store.connect = connect\n"
            f"from slawatch.watchdog.cli import main\n"
            f"sys.exit(main(['import', '-c', {str(config)!r}, {str(tmp_path / 'h.jsonl')!r}]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "nothing imported" in result.stderr and "Traceback" not in result.stderr
    with Reader(tmp_path / "watchdog.db") as reader:
        assert reader.count("readings") == 0 and reader.count("evidence") == 0


# --- liveness -----------------------------------------------------------------------------------

def test_a_restarted_watchdog_does_not_call_its_agents_silent_for_its_own_downtime(tmp_path: Path) -> None:
    """After the watchdog itself was down, its agents get 3 intervals from its start before they are silent."""
    config_path = write_config(tmp_path)
    config = load_watchdog(config_path)
    migrate(config.database)
    store = Store(config.database)
    hour_ago = now_ms() - 3_600_000
    body = batch_body(AGENT, [reading(1)])
    store.store([Incoming(agent=AGENT, batch="old-batch-1", kind="readings", path=INGEST_PATH, sent="x",
                          body=body, signature=b"s" * 64, public_key=None,
                          rows=[], received_at=hour_ago)])
    store.close()
    with serving(config_path) as served:
        time.sleep(0.5)  # the first liveness round runs at start
        assert served.watchdog.silent.get(AGENT) is None, served.watchdog.silent


def test_a_silence_whose_record_failed_is_recorded_by_a_later_round(tmp_path: Path) -> None:
    """Recording an agent silent (and queueing its alert) can fail, e.g. on a locked database: the
    next liveness round tries again, rather than holding it silent in memory only, unannounced."""
    config_path = write_config(tmp_path)
    config = load_watchdog(config_path)
    migrate(config.database)
    store = Store(config.database)
    hour_ago = now_ms() - 3_600_000
    store.store([Incoming(agent=AGENT, batch="old-batch-1", kind="readings", path=INGEST_PATH, sent="x",
                          body=batch_body(AGENT, [reading(1)]), signature=b"s" * 64, public_key=None,
                          rows=[], received_at=hour_ago)])
    store.close()
    with serving(config_path) as served:
        watchdog = served.watchdog
        alerting = watchdog._alerting()
        recorded, calls = alerting.agent_silent, []

        async def failing_once(*args: object) -> None:
            calls.append(args)
            if len(calls) == 1:
                raise sqlite3.OperationalError("database is locked")
            await recorded(*args)  # type: ignore[arg-type]

        alerting.agent_silent = failing_once  # type: ignore[method-assign]
        watchdog.started_ms = hour_ago  # as if it had run all along: the agent is silent now
        for _ in range(2):
            asyncio.run_coroutine_threadsafe(watchdog.check_liveness(), served.loop).result(30)
        assert len(calls) >= 2 and watchdog.silent.get(AGENT) is not None
        with Reader(config.database) as reader:
            assert next(a for a in reader.agents() if a.name == AGENT).silent_since is not None
            assert [m.event for m in reader.outbox()].count("agent-silent") == 1


def test_a_background_task_that_ends_makes_the_watchdog_unhealthy(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Alert delivery runs for the daemon's life: if it ever ends, /healthz says so with a 503 (and
    systemd, no longer pinged, restarts the daemon) instead of ingesting on without delivering."""
    from slawatch.watchdog.outbox import Sender

    async def broken(self: Sender) -> None:
        raise RuntimeError("delivery broke")

    monkeypatch.setattr(Sender, "run", broken)
    with serving(write_config(tmp_path)) as served:
        deadline = time.monotonic() + 10
        while not served.watchdog.ended and time.monotonic() < deadline:
            time.sleep(0.02)
        status, text = served.client.get("/healthz")
        assert (status, json.loads(text)["status"]) == (503, "sender stopped")
        assert served.client.send([reading(1)]).status == 200  # readings are still taken in


def test_check_names_every_blind_spot_before_the_database_exists(tmp_path: Path) -> None:
    """A fresh install: no agent has sent a manifest, so no contract check is covered yet."""
    config = write_config(tmp_path)
    checked = subprocess.run([WATCHDOG_BIN, "check", "-c", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "blind spot: contract shop-2026, service shop: check web is reported by 0 agents, quorum 1" in checked.stdout
    assert not (tmp_path / "watchdog.db").exists()


def test_metrics_leave_out_agents_a_reload_removed(tmp_path: Path) -> None:
    other = Ed25519PrivateKey.generate()
    config = write_config(tmp_path)
    with serving(config) as served:
        assert served.client.send([reading(1)]).status == 200
        asyncio.run_coroutine_threadsafe(asyncio.to_thread(served.watchdog.read_agents), served.loop).result(10)
        assert f'slawatch_agent_last_seen_timestamp_seconds{{agent="{AGENT}"}}' in served.client.get("/metrics")[1]
        write_config(tmp_path, agents=[("other-probe", public_key_line(other))])
        assert asyncio.run_coroutine_threadsafe(_reload(served), served.loop).result(10)
        assert f'agent="{AGENT}"' not in served.client.get("/metrics")[1]


# --- evidence -----------------------------------------------------------------------------------

def test_verify_after_a_key_change_needs_the_old_key_listed(tmp_path: Path) -> None:
    """After the agent's key changes in watchdog.toml, its earlier batches verify with the old key
    kept in previous_keys, and are named (not trusted by the key stored beside them) without it."""
    config = write_config(tmp_path)
    with serving(config) as served:
        assert served.client.send([reading(1)], batch="before-the-change").status == 200
    new_key = public_key_line(Ed25519PrivateKey.generate())
    write_config(tmp_path, agents=[(AGENT, new_key)])
    refused = subprocess.run([WATCHDOG_BIN, "evidence", "verify", "-c", str(config)],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "before-the-change" in refused.stderr and "previous_keys" in refused.stderr
    config.write_text(config.read_text().replace(f'public_key = "{new_key}"',
                                                 f'public_key = "{new_key}"\nprevious_keys = ["{PUBLIC}"]'))
    result = subprocess.run([WATCHDOG_BIN, "evidence", "verify", "-c", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_export_of_an_unlisted_agents_batches_is_refused_not_half_done(tmp_path: Path) -> None:
    """An agent removed from watchdog.toml: its batches cannot be exported with a key the third
    party can trust, so the export says so instead of writing an unverifiable folder."""
    config = write_config(tmp_path)
    with serving(config) as served:
        assert served.client.send([reading(1)]).status == 200
    write_config(tmp_path, agents=[("other-probe", public_key_line(Ed25519PrivateKey.generate()))])
    out = tmp_path / "export"
    result = subprocess.run([WATCHDOG_BIN, "evidence", "export", "-c", str(config), "--to", str(out)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"of agent {AGENT} was signed with a key watchdog.toml does not list" in result.stderr


# --- paths --------------------------------------------------------------------------------------

def test_a_database_path_with_a_hash_sign_works(tmp_path: Path) -> None:
    """A database path holding '#', '?' or '%' opens that file, for readers too."""
    folder = tmp_path / "site#1"
    folder.mkdir()
    config = write_config(folder)
    with serving(config) as served:
        assert served.client.send([reading(1)]).status == 200


# --- store: one agent's batch fails everybody's, purge vs caches -----------------------------------

def _incoming(agent: str, rows: list[Row], batch: str) -> Incoming:
    body = canonical_json({"agent": agent, "readings": [], "dropped": [], "n": batch})
    return Incoming(agent=agent, batch=batch, kind="readings", path=INGEST_PATH, sent="x", body=body,
                    signature=b"s" * 64, public_key=None, rows=rows)


def test_a_poison_batch_fails_only_itself_not_its_whole_group(tmp_path: Path) -> None:
    """A batch the store cannot hold fails alone; the other batches of its group are stored."""
    store = Store(tmp_path / "db")
    t = now_ms() - 60_000
    good = _incoming("good-probe", [Row(1, "web", t, "up", 30.0, None, {}, None)], "good-batch-1")
    poison = _incoming("bad-probe", [Row(1, "web", t, "up", 1e300, None, {}, None)], "bad-batch-1")
    try:
        results = store.store([good, poison])
    except Exception as exc:
        results = [exc, exc]
    finally:
        store.close()
    assert isinstance(results[0], Stored), results


def test_purged_history_does_not_come_back_from_the_tail_cache(tmp_path: Path) -> None:
    """History purged past retention does not come back from the writer's cached interval tails."""
    store = Store(tmp_path / "db")
    day = 86_400_000
    old = now_ms() - 500 * day
    try:
        store.store([_incoming("p", [Row(1, "web", old, "up", 30.0, None, {}, None)], "batch-old-1")])
        store.purge(readings_before=now_ms() - 35 * day, history_before=now_ms() - 400 * day)
        store.store([_incoming("p", [Row(2, "web", now_ms() - 1000, "up", 30.0, None, {}, None)], "batch-new-1")])
    finally:
        store.close()
    with Reader(tmp_path / "db") as reader:
        runs = reader.intervals("p", "web")
    assert all(run.end >= now_ms() - 400 * day for run in runs), runs


def test_a_disk_full_error_does_not_leave_stale_caches_that_mix_up_agents(tmp_path: Path) -> None:
    """A full disk (SQLITE_FULL) fails the whole group, acknowledges nothing, and leaves no cached ids that
    would file one agent's readings under another."""
    store = Store(tmp_path / "db")
    t = now_ms() - 10_000_000

    def rows(first: int, n: int, check: str = "web") -> list[Row]:
        return [Row(first + i, check, t + i * 30_000, "up", 30.0, 5.0, {}, None) for i in range(n)]

    try:
        assert isinstance(store.store([_incoming("a", rows(1, 10), "a-0001")])[0], Stored)
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        store.conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk fills up
        try:
            store.store([_incoming("x", rows(1, 3), "x-0001"), _incoming("a", rows(100, 5000), "a-0002")])
        except Exception:
            pass  # a failure is fine; what it leaves behind is not
        store.conn.execute("PRAGMA max_page_count = 1073741823")  # space freed
        results = store.store([_incoming("x", rows(1, 3), "x-0001"), _incoming("y", rows(1, 3, "mail"), "y-0001")])
    finally:
        store.close()
    assert [r.ack["stored"] for r in results if isinstance(r, Stored)] == [3, 3], results
    with Reader(tmp_path / "db") as reader:
        assert [(e.agent, e.batch) for e in reader.evidence()] == [("a", "a-0001"), ("x", "x-0001"), ("y", "y-0001")]


def test_reload_with_another_database_path_keeps_using_the_open_one(tmp_path: Path) -> None:
    """A reload naming another database keeps using the open one (until a restart), liveness included."""
    config = write_config(tmp_path)
    with serving(config) as served:
        config.write_text(config.read_text().replace('database = "watchdog.db"', 'database = "elsewhere.db"'))
        asyncio.run_coroutine_threadsafe(_reload(served), served.loop).result(10)
        manifest = {"agent": AGENT, "version": "1", "canaries": [],
                    "checks": [{"id": "web", "type": "http", "interval_s": 30, "timeout_s": 10, "target": "x"}]}
        answer = served.client.send(body=canonical_json(manifest), path=MANIFEST_PATH)
        assert answer.status == 200, answer


def test_a_body_still_coming_when_a_reload_removes_its_agent_is_refused(tmp_path: Path) -> None:
    """The agent's key is revoked (its [[agent]] removed, SIGHUP) while a batch it signed is being
    read: the batch is judged by the keys in force when it is in, not when it began."""
    config = write_config(tmp_path)
    body = batch_body(AGENT, [reading(1)])
    with serving(config) as served:
        url = urlsplit(served.client.base)
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
        try:
            conn.putrequest("POST", INGEST_PATH)
            for name, value in sign(KEY, AGENT, new_batch_id(), INGEST_PATH, body).items():
                conn.putheader(name, value)
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body[:10])
            time.sleep(0.3)  # the watchdog has the headers and waits for the rest
            write_config(tmp_path, agents=[("other-probe", public_key_line(Ed25519PrivateKey.generate()))])
            assert asyncio.run_coroutine_threadsafe(_reload(served), served.loop).result(10)
            conn.send(body[10:])
            response = conn.getresponse()
            status, answer = response.status, json.loads(response.read())
        finally:
            conn.close()
        assert (status, answer["code"]) == (403, "unknown-agent")
        assert counts(served.database)["readings"] == 0


async def _reload(served: Served) -> bool:
    return served.watchdog.reload()


def test_a_reused_seq_is_counted_and_the_stored_reading_kept(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """A seq that comes back with another reading (an agent whose spool was lost and renumbered)
    is no resend: the stored reading stays, and the acknowledgement and the log say so."""
    store = Store(tmp_path / "db")
    t = now_ms() - 60_000
    try:
        (first,) = store.store([_incoming("probe", [Row(7, "web", t, "up", 30.0, None, {}, None)], "batch-one")])
        (again,) = store.store([_incoming("probe", [Row(7, "web", t + 30_000, "down", 30.0, None, {}, "x"),
                                                    Row(8, "web", t + 60_000, "up", 30.0, None, {}, None)],
                                          "batch-two")])
        resent = store.store([_incoming("probe", [Row(7, "web", t, "up", 30.0, None, {}, None)], "batch-three")])
    finally:
        store.close()
    assert isinstance(first, Stored) and isinstance(again, Stored) and isinstance(resent[0], Stored)
    assert (again.ack["stored"], again.ack["duplicates"], again.ack["reused_seqs"]) == (1, 0, 1)
    assert again.ack["reused"] == [[7, 7]]  # which, for the agent to number them anew
    assert (resent[0].ack["duplicates"], resent[0].ack["reused_seqs"]) == (1, 0)  # a true resend
    assert "reused" not in resent[0].ack and "reused" not in first.ack
    assert "event=seq-reused" in caplog.text
    with Reader(tmp_path / "db") as reader:
        rows = list(reader.readings("probe"))
    assert [(r[1], r[4]) for r in rows] == [(7, "up"), (8, "up")]


def test_an_unknown_agent_is_refused_before_its_body_is_read(served: Served) -> None:
    """Who, which batch and when are checked from the headers alone: a stranger announcing a huge
    body is refused without the watchdog waiting for (or buffering) a byte of it."""
    url = urlsplit(served.client.base)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        conn.putrequest("POST", INGEST_PATH)
        headers = sign(KEY, "stranger", new_batch_id(), INGEST_PATH, b"x")
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(15 * 2**20))
        conn.endheaders()  # no body follows
        started = time.monotonic()
        response = conn.getresponse()
        assert response.status == 403
        assert json.loads(response.read())["code"] == "unknown-agent"
        assert time.monotonic() - started < 5
    finally:
        conn.close()


def test_reused_seqs_are_counted_once_when_a_group_is_stored_again(tmp_path: Path) -> None:
    """A failing batch makes the store store its group again; a reused seq in that group still
    counts once."""
    store = Store(tmp_path / "db")
    t = now_ms() - 60_000
    try:
        store.store([_incoming("probe", [Row(7, "web", t, "up", 30.0, None, {}, None)], "batch-one")])
        reused = _incoming("probe", [Row(7, "web", t + 30_000, "down", 30.0, None, {}, "x")], "batch-two")
        poison = _incoming("other", [Row(1, "web", t, "up", 1e300, None, {}, None)], "batch-three")
        results = store.store([reused, poison])
        assert isinstance(results[0], Stored) and isinstance(results[1], Exception)
        assert store.reused_seqs == 1
    finally:
        store.close()


def test_uploads_that_never_finish_cannot_stop_ingest(tmp_path: Path) -> None:
    """Anyone can name a listed agent and start uploads that never finish. Sixteen naming one agent
    hold 4 of the 16 places bodies are read in: the fifth on are refused at once (429), another
    agent's batch goes in meanwhile, and each stalled upload ends at body_timeout (408)."""
    other = Ed25519PrivateKey.generate()
    config = write_config(tmp_path, agents=[(AGENT, PUBLIC), ("other-probe", public_key_line(other))],
                          settings='body_timeout = "3s"')
    with serving(config) as served:
        stalled = [stalled_upload(served.client.base) for _ in range(16)]
        try:
            time.sleep(0.5)  # the first four are being read
            refused = [conn.getresponse() for conn in stalled[4:]]
            assert [r.status for r in refused] == [429] * 12
            assert json.loads(refused[0].read())["code"] == "bodies-in-progress" and refused[0].getheader("Retry-After")
            started = time.monotonic()
            answer = Client(served.client.base, other, "other-probe").send([reading(1, agent="other-probe")])
            assert answer.status == 200 and answer.body["stored"] == 1
            assert time.monotonic() - started < 2  # not held up by the stalled uploads
            timed_out = [conn.getresponse() for conn in stalled[:4]]
            assert [r.status for r in timed_out] == [408] * 4
            assert json.loads(timed_out[0].read())["code"] == "body-timeout"
            assert time.monotonic() - started < 10
        finally:
            for conn in stalled:
                conn.close()
        assert served.client.send([reading(1)]).status == 200  # the agent's own places are free again
        assert counts(served.database)["readings"] == 2
