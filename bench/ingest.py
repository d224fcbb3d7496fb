"""Watchdog ingest: signed batches over loopback HTTP into `slawatch-watchdog run`, and the store's size.

    make bench     (or: cd bench && ../.venv/bin/python ingest.py [--quick])

1. readings/s for batches of 100 and 1,000 readings, 16 requests in flight, through the real
   daemon (signature check, dedup, evidence chain, intervals and rollups, WAL with
   synchronous=FULL, acknowledged only after commit). "Per core" divides by the CPU seconds the
   watchdog process used. Two shapes of traffic (see Shape): the stress shape, where every reading
   of a transaction is another check's; and a backlog drain, where agents with 50 checks each
   send what they spooled while the watchdog was away, several readings of a check per batch.
   Beside it, in the same run, the peers: bare SQLite inserting the same rows (executemany into
   one plain table, same durability) -- the floor any SQLite store pays; SQLite alone writing the
   rows this store's design writes (see design_floor); and the signed HTTP endpoint alone
   (signed_target.py: aiohttp and the Ed25519 check, nothing stored). The last two added up
   (`ceiling`) are the most this design can reach in this stack. And the leanest store these
   semantics allow (`leanest`: parse, runs, buckets, one key per table, nothing else), timed part by
   part: with the signed endpoint, the most any store that keeps them reaches in this stack. Beside
   it, the watchdog's own store in the same process, timed part by part alike (`in_process`): where
   the daemon's CPU goes, bar HTTP, and how far each part is from the leanest store's.
   The stress shape runs twice more on an aged store (see `age`; --aged-hours, --aged-days): what a
   watchdog that has run for a while takes, where a store keyed by series first slows down as its
   history grows.
2. DB bytes per reading after that run, per table.
3. Bytes per check-month of intervals + rollups: a month of readings (60 s) of checks with a
   short outage every day, written through the store.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import marshal
import math
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peers import cpu_seconds, free_port, remove_database, result, wait_http  # noqa: E402
from peers import start as start_process  # noqa: E402

from slawatch.agent.protocol import INGEST_PATH, Envelope, batch_body, new_batch_id, sign  # noqa: E402
from slawatch.collectors.reading import Reading  # noqa: E402
from slawatch.config.keys import load_private_key, public_key_line  # noqa: E402
from slawatch.watchdog.ingest import rows, rows_of_body, to_row  # noqa: E402
from slawatch.watchdog.sketch import GAMMA  # noqa: E402
from slawatch.watchdog.store import (  # noqa: E402
    BUCKET_MS, DAY_MS, WRITE_ROLLUP, Incoming, Reader, Store, add_metrics, connect, migrate)

ROOT = Path(__file__).resolve().parent.parent
KEY = load_private_key((ROOT / "config" / "examples" / "secrets" / "agent.key").read_bytes())
IN_FLIGHT = 16


@dataclass(frozen=True)
class Shape:
    """Who sends: `agents` agents of `checks` checks each (every 60 s), each with IN_FLIGHT / agents
    batches in flight. A store transaction holds the batches in flight at most, so `checks` decides
    how many readings of one check it holds: what the per-check work (a run, a rollup row) is
    shared by."""

    name: str
    title: str
    agents: int
    checks: int


# 8 agents x 1,000 checks: a batch of 100 is 100 checks; a transaction, 1,600 of them, one reading each.
STRESS = Shape("", "8 agents x 1,000 checks, 2 batches in flight each", 8, 1000)
# An agent sends its spool one batch at a time, oldest first: 20 readings of each check in a batch of 1,000.
DRAIN = Shape("backlog drain, ", "backlog drain: 16 agents x 50 checks, one batch in flight each", 16, 50)
CONTRACT = """[contract]
id = "bench"
client = "Client"
provider = "Provider"
timezone = "UTC"
[client]
notify = ["json://127.0.0.1:9/c"]
[provider]
notify = ["json://127.0.0.1:9/p"]
[[service]]
id = "web"
checks = ["web-0"]
objectives = [{ kind = "availability", target = 99.9 }]
"""


def config(folder: Path, port: int, shape: Shape) -> Path:
    (folder / "contracts").mkdir()
    (folder / "contracts" / "bench.toml").write_text(CONTRACT)
    agents = "".join(f'[[agent]]\nid = "bench-{i}"\npublic_key = "{public_key_line(KEY)}"\n' for i in range(shape.agents))
    path = folder / "watchdog.toml"
    path.write_text(f'[watchdog]\nlisten = "127.0.0.1:{port}"\ndatabase = "watchdog.db"\ncontracts = "contracts"\n'
                    f'agent_rate = 100000\nmax_batch_size = "64MiB"\n{agents}')
    return path


def readings(agent: str, first: int, count: int, start: dt.datetime, checks: int) -> list[Reading]:
    """An agent's readings in seq order: `checks` checks every 60 s, a few metrics each."""
    made = []
    for i in range(first, first + count):
        check, round_ = i % checks, i // checks
        down = (check + round_) % 500 == 0
        made.append(Reading(agent=agent, check=f"web-{check}", seq=i + 1,
                            ts=start + dt.timedelta(seconds=60 * round_ + check * 0.06), status="down" if down else "up",
                            interval_s=60.0, latency_ms=None if down else round(random.lognormvariate(3, 0.5), 3),
                            metrics={"http.status": 503 if down else 200, "http.bytes": 5120, "tls.days_left": 61},
                            error="HTTP 503" if down else None))
    return made


async def signed_http(shape: Shape, batch_size: int, per_agent: int, start: dt.datetime) -> float:
    """The third peer: the ingest endpoint with nothing behind it (signed_target.py: aiohttp and the
    watchdog's own envelope and Ed25519 checks), flooded alike; readings per CPU second of it. The
    HTTP and signature layer's cost alone, before a byte is parsed or stored."""
    port = free_port()
    count, _, cpu = await flooded([sys.executable, str(Path(__file__).resolve().parent / "signed_target.py"),
                                   str(port), str(shape.agents)], port, shape, batch_size, per_agent, start)
    return count / cpu


async def flooded(argv: list[str], port: int, shape: Shape, batch_size: int, per_agent: int,
                  start: dt.datetime) -> tuple[int, float, float]:
    """Start the server `argv` (listening on `port`), flood it, stop it: (readings acknowledged, wall
    seconds, CPU seconds of the server)."""
    process = start_process(*argv)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 60)
        cpu_before = cpu_seconds(process.pid)
        count, seconds = await flood(f"http://127.0.0.1:{port}", shape, batch_size, per_agent, start)
        return count, seconds, cpu_seconds(process.pid) - cpu_before
    finally:
        process.terminate()
        process.wait(30)


async def flood(url: str, shape: Shape, batch_size: int, per_agent: int, start: dt.datetime) -> tuple[int, float]:
    """Every agent ships `per_agent` readings in batches; (readings acknowledged, wall seconds)."""
    plans = []
    for a in range(shape.agents):
        agent = f"bench-{a}"
        bodies = [batch_body(agent, readings(agent, first, batch_size, start, shape.checks))
                  for first in range(0, per_agent, batch_size)]
        plans.append((agent, bodies))
    acknowledged = 0

    async def ship(session: aiohttp.ClientSession, agent: str, bodies: list[bytes], lane: int, lanes: int) -> None:
        nonlocal acknowledged
        for body in bodies[lane::lanes]:
            batch = new_batch_id()
            headers = sign(KEY, agent, batch, INGEST_PATH, body)
            async with session.post(url + INGEST_PATH, data=body, headers=headers) as response:
                answer = await response.json()
                assert response.status == 200, answer
                acknowledged += answer["stored"]

    lanes = max(1, IN_FLIGHT // shape.agents)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(ship(session, agent, bodies, lane, lanes)
                               for agent, bodies in plans for lane in range(lanes)))
        return acknowledged, time.perf_counter() - started


def age(database: Path, shape: Shape, start: dt.datetime, hours: int, days: int) -> None:
    """A store as a watchdog that has run for a while holds it, made straight in SQL before the
    daemon starts: the shape's checks' readings of the `hours` before `start` (one a minute; seqs
    below any an agent sends), a run each, and `days` days of 15-minute rollups, with the compaction
    watermark where the daemon's would be by then (the merged rows, which ingest never reads, are
    left out)."""
    migrate(database)
    conn = connect(database)
    start_ms = int(start.timestamp() * 1000)
    first = start_ms - hours * 3_600_000
    series = range(1, shape.agents * shape.checks + 1)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO agents (id, name, first_seen) VALUES (?, ?, ?)",
                     [(a + 1, f"bench-{a}", first) for a in range(shape.agents)])
    conn.executemany("INSERT INTO series (id, agent_id, check_id) VALUES (?, ?, ?)",
                     [(a * shape.checks + c + 1, a + 1, f"web-{c}") for a in range(shape.agents) for c in range(shape.checks)])
    minutes = range(first, start_ms, 60_000)
    for a in range(shape.agents):
        conn.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, 'up', 60.0, ?, NULL, 0)",
                         [(a + 1, n - 2**40, a * shape.checks + c + 1, at + c * 60, 20.0 + c % 7)
                          for n, (at, c) in enumerate((at, c) for at in minutes for c in range(shape.checks))])
    conn.executemany("INSERT INTO intervals VALUES (?, ?, ?, 'up', ?)",
                     [(s, first, minutes[-1] + 90_000, minutes[-1]) for s in series])
    stats = '{"http.status":[15,200,200,3000],"http.bytes":[15,5120,5120,76800],"tls.days_left":[15,61,61,915]}'
    buckets = range(start_ms - start_ms % BUCKET_MS - days * DAY_MS, start_ms - start_ms % BUCKET_MS, BUCKET_MS)
    for bucket in buckets:
        conn.executemany("INSERT INTO rollups VALUES (?, ?, 15, ?, ?)", [(s, bucket, bytes(range(24)), stats) for s in series])
    compacted = (time.time_ns() // 1_000_000 - 3_600_000) // DAY_MS * DAY_MS
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('rollups_compacted_before', ?)", (str(compacted),))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def bare_sqlite(folder: Path, shape: Shape, batch_size: int, per_agent: int, start: dt.datetime) -> float:
    """The peer: the same rows into one plain table (WAL, synchronous=FULL), a commit per batch."""
    database = folder / f"bare-{shape.checks}-{batch_size}.db"
    remove_database(database)  # the aged run measures it again
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE readings (agent TEXT, seq INTEGER, check_id TEXT, ts TEXT, status TEXT, "
                 "interval_s REAL, latency_ms REAL, metrics TEXT, error TEXT, PRIMARY KEY (agent, seq))")
    batches = []
    for a in range(shape.agents):
        agent = f"bench-{a}"
        for first in range(0, per_agent, batch_size):
            batches.append([(r.agent, r.seq, r.check, r.ts.isoformat(), r.status, r.interval_s, r.latency_ms,
                             str(r.metrics), r.error) for r in readings(agent, first, batch_size, start, shape.checks)])
    count, started = 0, time.perf_counter()
    for batch in batches:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", batch)
        conn.execute("COMMIT")
        count += len(batch)
    seconds = time.perf_counter() - started
    conn.close()
    return count / seconds


def design_floor(folder: Path, shape: Shape, batch_size: int, per_agent: int, start: dt.datetime,
                 aged: Path | None = None) -> float:
    """The second peer: SQLite alone writing the rows our store writes, in the store's own schema and
    transactions (a group of IN_FLIGHT batches each): per batch its evidence row and its readings;
    per group each touched series' interval run and 15-minute rollup row, rewritten. Every value is
    prepared before the clock starts: no parsing, no HTTP, no signature, no Python logic. What is
    left is what this design costs SQLite, so it bounds what any Python on top of it can reach."""
    database = folder / f"floor-{shape.checks}-{batch_size}{'-aged' if aged else ''}.db"
    if aged is not None:
        shutil.copy(aged, database)
    migrate(database)
    conn = connect(database)
    groups = []
    evidence_id = 0
    plans = [[(a, batch_body(f"bench-{a}", made), [to_row(r) for r in made])
              for first in range(0, per_agent, batch_size)
              for made in [readings(f"bench-{a}", first, batch_size, start, shape.checks)]]
             for a in range(shape.agents)]
    order = [plan for lane in zip(*plans) for plan in lane]  # the agents' batches interleaved, as they arrive
    for g in range(0, len(order), IN_FLIGHT):
        evidence, values, derived = [], [], {}
        for agent_id, body, made in order[g:g + IN_FLIGHT]:
            evidence_id += 1
            evidence.append((evidence_id, agent_id + 1, f"batch-{evidence_id}", "readings", INGEST_PATH,
                             "2026-11-26T00:00:00Z", 0, zlib.compress(body, 1), bytes(32), bytes(64), bytes(32),
                             bytes(32), '{"stored":1000}'))
            for row in made:
                series_id = agent_id * shape.checks + int(row.check.removeprefix("web-")) + 1  # as `age` numbers them
                values.append((agent_id + 1, row.seq, series_id, row.ts, row.status, row.interval_s, row.latency_ms,
                               row.error, evidence_id))
                derived[series_id] = row.ts
        intervals = [(sid, ts - 600_000, ts + 90_000, "up", ts) for sid, ts in derived.items()]
        rollups = [(sid, ts - ts % 900_000, 15, bytes(range(24)), '{"http.status":[15,200,200,3000],'
                    '"http.bytes":[15,5120,5120,76800],"tls.days_left":[15,61,61,915]}') for sid, ts in derived.items()]
        groups.append((evidence, values, intervals, rollups))
    count, started = 0, time.process_time()
    for evidence, values, intervals, rollups in groups:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO evidence VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", evidence)
        conn.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
        conn.executemany("INSERT OR REPLACE INTO intervals VALUES (?, ?, ?, ?, ?)", intervals)
        conn.executemany(WRITE_ROLLUP, rollups)
        conn.execute("COMMIT")
        count += len(values)
    seconds = time.process_time() - started
    conn.close()
    if aged is not None:
        remove_database(database)
    return count / seconds


@dataclass(frozen=True)
class Lean:
    """CPU microseconds per reading of the leanest store these semantics allow (see `leanest`)."""

    parse: float
    state: float
    serialize: float
    sql: float

    @property
    def total(self) -> float:
        return self.parse + self.state + self.serialize + self.sql


def arrivals(shape: Shape, batch_size: int, per_agent: int, start: dt.datetime) -> list[tuple[int, str, bytes]]:
    """Every agent's batch bodies as (agent number, agent, body), the agents' batches interleaved as
    they arrive: what the in-process stores (`leanest`, `in_process`) take, in the same order."""
    plans = [[(a, f"bench-{a}", batch_body(f"bench-{a}", readings(f"bench-{a}", first, batch_size, start, shape.checks)))
              for first in range(0, per_agent, batch_size)] for a in range(shape.agents)]
    return [plan for lane in zip(*plans) for plan in lane]


def leanest(folder: Path, shape: Shape, batch_size: int, per_agent: int, start: dt.datetime) -> Lean:
    """The fourth peer: the least work, in this stack, that the issue's store semantics ask of every
    reading, timed part by part, one process, no HTTP, a transaction (IN_FLIGHT batches) at a time.
    Parse the bodies (the watchdog's own fast reader). In one loop, per reading: extend the check's
    current run or close it and start one, and add the reading to its current 15-minute bucket
    (latency histogram, metric count/min/max/sum) or close that and start one. Serialize the touched
    buckets with marshal, the cheapest serializer Python has. Write, in one transaction (WAL,
    synchronous=FULL, 16 KiB pages, 64 MiB of cache): the bodies; the readings keyed by (agent,
    seq) alone; one "hot" row per touched check holding its current run and bucket; and the runs and
    buckets that closed. It leaves out what the watchdog also does (resends, reused seqs, gaps, late
    readings, unknown runs, the evidence chain, agents' rows, compression, every index a reader
    goes through): a lower bound on the watchdog's CPU per reading, not a design to ship."""
    order = arrivals(shape, batch_size, per_agent, start)
    database = folder / f"lean-{shape.checks}-{batch_size}.db"
    remove_database(database)
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("PRAGMA page_size = 16384")
    conn.execute("PRAGMA cache_size = -65536")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE bodies (id INTEGER PRIMARY KEY, agent_id INTEGER, body BLOB)")
    conn.execute("CREATE TABLE readings (agent_id INTEGER, seq INTEGER, series_id INTEGER, ts INTEGER, status TEXT, "
                 "interval_s REAL, latency_ms REAL, error TEXT, body_id INTEGER, PRIMARY KEY (agent_id, seq)) "
                 "WITHOUT ROWID")
    conn.execute("CREATE TABLE hot (series_id INTEGER PRIMARY KEY, start INTEGER, end INTEGER, status TEXT, "
                 "last_ts INTEGER, bucket INTEGER, packed BLOB)")
    conn.execute("CREATE TABLE runs (series_id INTEGER, start INTEGER, end INTEGER, status TEXT, last_ts INTEGER, "
                 "PRIMARY KEY (series_id, start)) WITHOUT ROWID")
    conn.execute("CREATE TABLE buckets (series_id INTEGER, bucket INTEGER, packed BLOB, PRIMARY KEY (bucket, series_id)) "
                 "WITHOUT ROWID")
    # per check: [series id, run start, run end, run status, last reading, bucket, latency count, histogram, stats]
    series: dict[tuple[int, str], list[Any]] = {}
    log, ceil, log_gamma, dumps, clock = math.log, math.ceil, math.log(GAMMA), marshal.dumps, time.process_time
    parse = state = serialize = sql = 0.0
    count = body_id = 0
    for g in range(0, len(order), IN_FLIGHT):
        began = clock()
        parsed = [(agent_id, body, rows_of_body(Envelope(agent, "b", start), body)[0])
                  for agent_id, agent, body in order[g:g + IN_FLIGHT]]
        parsed_at = clock()
        bodies, values, touched, runs, buckets = [], [], {}, [], []
        for agent_id, body, made in parsed:
            body_id += 1
            bodies.append((body_id, agent_id, body))
            for seq, check, ts, status, interval_s, latency, metrics, error in made:
                at = ts - ts % BUCKET_MS
                hot = series.get((agent_id, check))
                if hot is None:
                    hot = series[agent_id, check] = [len(series) + 1, ts, ts, status, ts, at, 0, {}, {}]
                elif hot[3] != status or ts > hot[2]:
                    runs.append((hot[0], hot[1], hot[2], hot[3], hot[4]))
                    hot[1], hot[3] = ts, status
                if hot[5] != at:
                    buckets.append((hot[0], hot[5], dumps((hot[6], hot[7], hot[8]))))
                    hot[5], hot[6], hot[7], hot[8] = at, 0, {}, {}
                hot[2], hot[4] = ts + round(interval_s * 1500), ts
                values.append((agent_id, seq, hot[0], ts, status, interval_s, latency, error, body_id))
                touched[hot[0]] = hot
                if latency is not None and status == "up":
                    hot[6] += 1
                    histogram, key = hot[7], ceil(log(latency) / log_gamma) if latency > 0 else 0
                    histogram[key] = histogram.get(key, 0) + 1
                if metrics:
                    add_metrics(hot[8], metrics)  # the watchdog's own
        folded_at = clock()
        hot_rows = [(*hot[:6], dumps((hot[6], hot[7], hot[8]))) for hot in touched.values()]
        serialized_at = clock()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO bodies VALUES (?, ?, ?)", bodies)
        conn.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
        conn.executemany("INSERT OR REPLACE INTO hot VALUES (?, ?, ?, ?, ?, ?, ?)", hot_rows)
        conn.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?)", runs)
        conn.executemany("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)", buckets)
        conn.execute("COMMIT")
        committed_at = clock()
        parse += parsed_at - began
        state += folded_at - parsed_at
        serialize += serialized_at - folded_at
        sql += committed_at - serialized_at
        count += len(values)
    conn.close()
    remove_database(database)
    return Lean(*(part / count * 1e6 for part in (parse, state, serialize, sql)))


@dataclass(frozen=True)
class Parts:
    """CPU microseconds per reading of the watchdog's own store, in process (see `in_process`)."""

    parse: float
    python: float
    sql: float

    @property
    def total(self) -> float:
        return self.parse + self.python + self.sql


class _TimedConnection:
    """An SQLite connection that adds up the CPU time its statements take."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn, self.seconds = conn, 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    def execute(self, *args: Any) -> sqlite3.Cursor:
        return self._timed(self.conn.execute, args)

    def executemany(self, *args: Any) -> sqlite3.Cursor:
        return self._timed(self.conn.executemany, args)

    def _timed(self, statement: Any, args: tuple[Any, ...]) -> sqlite3.Cursor:
        began = time.process_time()
        try:
            return statement(*args)  # type: ignore[no-any-return]
        finally:
            self.seconds += time.process_time() - began


def in_process(folder: Path, shape: Shape, batch_size: int, per_agent: int, start: dt.datetime) -> Parts:
    """The watchdog's own store beside the leanest one: the same batches, in the same transactions
    (IN_FLIGHT batches a group) and this process, no HTTP, timed part by part as `leanest` is: the
    parse (the same call), the store's Python (`Store.store` less its statements) and SQLite (its
    statements, commits included). Where the daemon's CPU goes, bar the HTTP and signature layer."""
    order = arrivals(shape, batch_size, per_agent, start)
    database = folder / f"parts-{shape.checks}-{batch_size}.db"
    remove_database(database)
    store = Store(database)
    timed = _TimedConnection(store.conn)
    store.conn = timed  # type: ignore[assignment]
    clock = time.process_time
    parse = storing = 0.0
    count = 0
    try:
        for g in range(0, len(order), IN_FLIGHT):
            began = clock()
            group = []
            for _, agent, body in order[g:g + IN_FLIGHT]:
                batch = new_batch_id()
                made, dropped = rows_of_body(Envelope(agent, batch, start), body)
                group.append(Incoming(agent=agent, batch=batch, kind="readings", path=INGEST_PATH, sent="", body=body,
                                      signature=bytes(64), public_key=bytes(32), rows=made, dropped=dropped))
            parsed_at = clock()
            stored = store.store(group)
            storing += clock() - parsed_at
            parse += parsed_at - began
            count += sum(outcome.ack["stored"] for outcome in stored if not isinstance(outcome, Exception))
    finally:
        store.close()
        remove_database(database)
    return Parts(parse / count * 1e6, (storing - timed.seconds) / count * 1e6, timed.seconds / count * 1e6)


def ceiling(http: float, floor: float) -> float:
    """Readings per CPU second of the signed HTTP endpoint and the store's SQL run one after the
    other, each alone: their CPU per reading adds up. No Python between them, no parsing, no intervals
    or rollups worked out: what this design reaches in this stack at the very most."""
    return 1 / (1 / http + 1 / floor)


def table_bytes(database: Path) -> dict[str, int]:
    conn = sqlite3.connect(database)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    sizes: dict[str, int] = {}
    for name, size in conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
        table = "readings" if name.startswith(("readings", "sqlite_autoindex_readings")) else name
        table = "evidence" if table.startswith("sqlite_autoindex_evidence") else table
        sizes[table] = sizes.get(table, 0) + size
    conn.close()
    return sizes


def check_month(folder: Path, checks: int) -> dict[str, float]:
    """A month of 60 s readings of `checks` checks (5-minute outage a day) through the store."""
    database = folder / "month.db"
    store = Store(database)
    start = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
    per_check = 31 * 24 * 60
    seq = 0
    group: list[Incoming] = []
    for minute in range(0, per_check, 60):  # an hour of every check per batch
        batch = []
        for m in range(minute, min(minute + 60, per_check)):
            for c in range(checks):
                seq += 1
                down = (m + 7 * c) % 1440 < 5
                batch.append(Reading(agent="bench", check=f"web-{c}", seq=seq,
                                     ts=start + dt.timedelta(minutes=m, seconds=c), status="down" if down else "up",
                                     interval_s=60.0,
                                     latency_ms=None if down else round(random.lognormvariate(3, 0.5), 3),
                                     metrics={"http.status": 200, "http.bytes": 5120 + m % 7, "tls.days_left": 61}))
        group.append(Incoming(agent="bench", batch=f"month-{minute:08d}", kind="import", path="bench",
                              sent="bench", body=b"{}" + str(minute).encode(), signature=None, public_key=None,
                              rows=rows(batch)))
        if len(group) == 24:
            store.store(group)
            group = []
    if group:
        store.store(group)
    store.close()
    sizes = table_bytes(database)
    with Reader(database) as reader:
        interval_rows, rollup_rows = reader.count("intervals"), reader.count("rollups")
    return {"intervals_bytes": sizes.get("intervals", 0) / checks, "rollups_bytes": sizes.get("rollups", 0) / checks,
            "interval_rows": interval_rows / checks, "rollup_rows": rollup_rows / checks}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer readings (smoke)")
    parser.add_argument("--aged-hours", type=int, default=6, help="hours of readings in the aged store (default 6)")
    parser.add_argument("--aged-days", type=int, default=2, help="days of rollups in the aged store (default 2)")
    args = parser.parse_args()
    if args.aged_hours < 1 or args.aged_days < 0:
        parser.error("--aged-hours must be at least 1 and --aged-days at least 0")
    readings_per_run = 80_000 if args.quick else 400_000
    runs = [(STRESS, False), (DRAIN, False), (STRESS, True)]
    results = {}
    signed: dict[tuple[Shape, int], float] = {}
    lean: dict[tuple[Shape, int], Lean] = {}
    own: dict[tuple[Shape, int], Parts] = {}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for shape, aged in runs:
            per_agent = readings_per_run // shape.agents
            # Readings as a live watchdog gets them: ending just before now (older ones would be late
            # readings into days the daemon has already compacted, a slower path that is not the steady state).
            span_s = 60 * (per_agent // shape.checks + 1)
            start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(seconds=span_s + 60)
            template = None
            if aged:
                template = folder / "aged.db"
                age(template, shape, start, args.aged_hours, args.aged_days)
            for batch_size in (100, 1000):
                run = folder / f"run-{shape.checks}-{batch_size}{'-aged' if aged else ''}"
                run.mkdir()
                if template is not None:
                    shutil.copy(template, run / "watchdog.db")
                port = free_port()
                count, seconds, cpu = await flooded([str(Path(sys.executable).parent / "slawatch-watchdog"), "run",
                                                     "-c", str(config(run, port, shape))],
                                                    port, shape, batch_size, per_agent, start)
                sizes = {} if aged else table_bytes(run / "watchdog.db")
                if aged:
                    shutil.rmtree(run)  # a copy of the aged store: hundreds of MB
                bare = bare_sqlite(folder, shape, batch_size, per_agent, start)
                floor = design_floor(folder, shape, batch_size, per_agent, start, template)
                if not aged:  # nothing is stored behind them: the aged runs take the same figures (for the
                    # leanest store, an empty one: still a bound on the aged store's cost)
                    signed[shape, batch_size] = await signed_http(shape, batch_size, per_agent, start)
                    lean[shape, batch_size] = leanest(folder, shape, batch_size, per_agent, start)
                    own[shape, batch_size] = in_process(folder, shape, batch_size, per_agent, start)
                results[shape, aged, batch_size] = (count, seconds, cpu, sizes, bare, floor)
        month = check_month(folder, 3 if args.quick else 10)
    for shape, aged in runs:
        title = (f"the same on a store already holding {args.aged_hours} h of these checks' readings and "
                 f"{args.aged_days} days of their rollups" if aged else
                 f"watchdog ingest, {shape.title} ({IN_FLIGHT} requests in flight), WAL + synchronous=FULL, "
                 "acknowledged after commit")
        print(title + ":")
        for batch_size in (100, 1000):
            count, seconds, cpu, sizes, bare, floor = results[shape, aged, batch_size]
            per_core = count / cpu
            print(f"  batches of {batch_size:>5}: {count / seconds:>9,.0f} readings/s wall, {per_core:>9,.0f} per CPU "
                  f"second of the watchdog ({count:,} readings, {cpu:.1f} CPU s)   target >= 100,000 per core")
            print(f"  {'':17}  bare SQLite insert of the same rows: {bare:>9,.0f} rows/s   ratio {per_core / bare:.2f}x")
            print(f"  {'':17}  SQLite alone writing the store's rows (evidence, readings, intervals, rollups): "
                  f"{floor:>9,.0f} readings per CPU second   ratio {per_core / floor:.2f}x")
            http = signed[shape, batch_size]
            most = ceiling(http, floor)
            print(f"  {'':17}  the signed HTTP endpoint alone (aiohttp + Ed25519, nothing stored): {http:>9,.0f} "
                  f"readings per CPU second")
            print(f"  {'':17}  both alone, one after the other (the most this design reaches in this stack): "
                  f"{most:>9,.0f} readings per CPU second   ratio {per_core / most:.2f}x")
            least = lean[shape, batch_size]
            bound = ceiling(http, 1e6 / least.total)
            print(f"  {'':17}  the leanest store these semantics allow, per reading: parse {least.parse:.1f} + runs and "
                  f"buckets {least.state:.1f} + serialize {least.serialize:.1f} + SQLite {least.sql:.1f} = "
                  f"{least.total:.1f} us of CPU")
            print(f"  {'':17}  it and the signed HTTP endpoint (the most any store of these semantics reaches in this "
                  f"stack): {bound:>9,.0f} readings per CPU second   ratio {per_core / bound:.2f}x")
            parts = own[shape, batch_size]
            print(f"  {'':17}  the watchdog's own store in process, per reading: parse {parts.parse:.1f} + the store's "
                  f"Python {parts.python:.1f} + SQLite {parts.sql:.1f} = {parts.total:.1f} us of CPU   "
                  f"ratio to the leanest {parts.total / least.total:.2f}x")
    count, _, _, sizes, _, _ = results[STRESS, False, 1000]
    total = sum(sizes.values())
    parts = ", ".join(f"{name} {size / count:.0f}" for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])
                      if size / count >= 1)
    print(f"  DB bytes per reading: {total / count:.0f} ({parts})")
    print(f"  per check-month (60 s readings, a 5-minute outage a day): intervals {month['intervals_bytes']:,.0f} B "
          f"({month['interval_rows']:.0f} rows) + rollups {month['rollups_bytes']:,.0f} B ({month['rollup_rows']:.0f} "
          f"rows) = {(month['intervals_bytes'] + month['rollups_bytes']) / 1024:,.0f} KiB")
    raw = 31 * 24 * 60 * total / count
    print(f"  (raw readings and evidence of a check-month: {raw / 1024:,.0f} KiB, kept 35 days; intervals and rollups "
          "are what years of history cost)")
    for (shape, aged, batch_size), (stored, _, cpu, _, bare, floor) in results.items():
        figure = f"ingest readings per CPU-s, {shape.name}{'aged store, ' if aged else ''}batches of {batch_size:,}"
        print(result(figure, stored / cpu, "readings/s", ">= 100000", "bare SQLite", bare))
        print(result(figure, stored / cpu, "readings/s", ">= 100000", "SQLite alone, the store's rows", floor))
        print(result(figure, stored / cpu, "readings/s", ">= 100000", "signed HTTP alone + the store's rows alone",
                     ceiling(signed[shape, batch_size], floor)))
        print(result(figure, stored / cpu, "readings/s", ">= 100000", "signed HTTP + the leanest store",
                     ceiling(signed[shape, batch_size], 1e6 / lean[shape, batch_size].total)))
    for (shape, batch_size), parts in own.items():
        least = lean[shape, batch_size]
        for figure, value, lean_part in (("", parts.total, least.total),
                                         (", the store's Python", parts.python, least.state + least.serialize),
                                         (", SQLite", parts.sql, least.sql)):
            print(result(f"ingest CPU per reading in process{figure}, {shape.name}batches of {batch_size:,}",
                         value, "us", "", "the leanest store", lean_part))
    print(result("ingest DB bytes per reading", total / count, "B"))
    print(result("history per check-month (intervals + rollups)",
                 (month["intervals_bytes"] + month["rollups_bytes"]) / 1024, "KiB"))


if __name__ == "__main__":
    asyncio.run(main())
