"""The watchdog's store: the one place that speaks SQL (DESIGN.md "Scale path").

SQLite in WAL mode. One writer (the `Writer` thread, or a CLI command while it holds the write
lock); readers use their own connections and never block it. Every accepted batch is, in one
transaction: its evidence row (body, signature, chain hash), its readings (unique on agent + seq),
and the state intervals and 15-minute rollups they change.

Times are integer milliseconds since the epoch (UTC) throughout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from slawatch.agent.protocol import canonical_json

from . import sketch
from .intervals import UNKNOWN, Run, fold, hold_ms

log = logging.getLogger(__name__)

BUCKET_MS = 15 * 60 * 1000       # rollup width: every real timezone offset is a multiple of 15 minutes
GENESIS = bytes(32)              # the hash before the first batch
SELF_CHECK = "agent.self"
BUSY_TIMEOUT_MS = 30_000

MIGRATIONS: list[tuple[str, str]] = [
    ("0001-initial", """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE agents (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER,            -- when its last batch (or manifest) was accepted
    last_seq INTEGER,             -- the highest seq stored
    last_reading_ts INTEGER,
    self_metrics TEXT,            -- the metrics of its newest agent.self reading
    self_ts INTEGER,
    manifest TEXT,                -- its newest signed manifest (JSON)
    manifest_at INTEGER,
    silent_since INTEGER          -- set while it sends nothing for 3 x its shortest interval
);
CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    agent_id INTEGER NOT NULL REFERENCES agents(id),
    check_id TEXT NOT NULL,
    UNIQUE (agent_id, check_id)
);
CREATE TABLE evidence (
    id INTEGER PRIMARY KEY,       -- the position in the chain
    agent_id INTEGER NOT NULL REFERENCES agents(id),
    batch TEXT NOT NULL,
    kind TEXT NOT NULL,           -- readings | manifest | import
    path TEXT NOT NULL,           -- the signed request path (the import's file for imports)
    sent TEXT NOT NULL,           -- the signed Slawatch-Sent header, exactly as received
    received_at INTEGER NOT NULL,
    body BLOB NOT NULL,           -- zlib of the exact body
    body_sha256 BLOB NOT NULL,
    signature BLOB,               -- NULL for imports
    public_key BLOB,              -- the key the signature was checked with
    hash BLOB NOT NULL,           -- sha256(previous hash || body_sha256 || signature)
    ack TEXT NOT NULL,            -- the acknowledgement sent, repeated for a resend
    UNIQUE (agent_id, batch)
);
CREATE TABLE readings (
    agent_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    status TEXT NOT NULL,
    interval_s REAL NOT NULL,
    latency_ms REAL,
    metrics TEXT,
    error TEXT,
    evidence_id INTEGER NOT NULL,
    PRIMARY KEY (agent_id, seq)
) WITHOUT ROWID;
CREATE INDEX readings_by_series ON readings (series_id, ts);
CREATE TABLE intervals (
    series_id INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    status TEXT NOT NULL,
    last_ts INTEGER NOT NULL,     -- the newest reading folded into this run
    PRIMARY KEY (series_id, start)
) WITHOUT ROWID;
CREATE TABLE latency_rollups (
    series_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,      -- start of the 15-minute bucket
    count INTEGER NOT NULL,
    histogram TEXT NOT NULL,      -- sketch.py: log buckets, <= 0.9 % relative error
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;
CREATE TABLE metric_rollups (
    series_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    stats TEXT NOT NULL,          -- {"metric": [count, min, max, sum], ...}
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;
CREATE TABLE dropped (
    agent_id INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    evidence_id INTEGER NOT NULL,
    PRIMARY KEY (agent_id, first_seq, last_seq)
) WITHOUT ROWID;
"""),
]


class Conflict(Exception):
    """A batch id already stored with another body (HTTP 409)."""


@dataclass(frozen=True)
class Row:
    """One reading ready for the store."""

    seq: int
    check: str
    ts: int
    status: str
    interval_s: float
    latency_ms: float | None
    metrics: dict[str, float | int]
    error: str | None


@dataclass
class Incoming:
    """An authenticated batch (readings, manifest or import) on its way into the store."""

    agent: str
    batch: str
    kind: str
    path: str
    sent: str
    body: bytes
    signature: bytes | None
    public_key: bytes | None
    rows: Sequence[Row] = ()
    dropped: Sequence[tuple[int, int]] = ()
    manifest: dict[str, Any] | None = None
    received_at: int = 0
    body_sha256: bytes = b""

    def __post_init__(self) -> None:
        self.body_sha256 = self.body_sha256 or hashlib.sha256(self.body).digest()
        self.received_at = self.received_at or now_ms()


@dataclass(frozen=True)
class Stored:
    """What became of a batch: its acknowledgement, and whether it was a resend."""

    ack: dict[str, Any]
    resend: bool


@dataclass(frozen=True)
class AgentState:
    name: str
    first_seen: int
    last_seen: int | None
    last_seq: int | None
    last_reading_ts: int | None
    self_metrics: dict[str, Any] | None
    manifest: dict[str, Any] | None
    manifest_at: int | None
    silent_since: int | None


@dataclass(frozen=True)
class EvidenceRow:
    id: int
    agent: str
    batch: str
    kind: str
    path: str
    sent: str
    received_at: int
    body: bytes
    body_sha256: bytes
    signature: bytes | None
    public_key: bytes | None
    hash: bytes


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def chain_hash(previous: bytes, body_sha256: bytes, signature: bytes | None) -> bytes:
    """DESIGN.md "Evidence": sha256(prev_hash || body_sha256 || signature)."""
    return hashlib.sha256(previous + body_sha256 + (signature or b"")).digest()


def connect(path: str | Path, readonly: bool = False) -> sqlite3.Connection:
    """A connection with the store's settings: WAL, FULL sync, explicit transactions."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                               check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: an acknowledged batch leaves the agent's spool, so the acknowledgement must
        # survive a power cut, not only a crash; group commit pays one fsync per group.
        conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA cache_size = -32768")  # 32 MiB
    return conn


def migrate(path: str | Path) -> list[str]:
    """Bring the database at `path` up to date; each migration in its own transaction."""
    db = sqlite_utils.Database(connect(path))
    conn = db.conn
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)")
        applied = {row[0] for row in conn.execute("SELECT name FROM migrations")}
        done = []
        for name, script in MIGRATIONS:
            if name in applied:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone() is None:
                    for statement in _statements(script):
                        conn.execute(statement)
                    conn.execute("INSERT INTO migrations VALUES (?, ?)", (name, now_ms()))
                    done.append(name)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        known = {name for name, _ in MIGRATIONS}
        newer = {row[0] for row in conn.execute("SELECT name FROM migrations")} - known
        if newer:
            raise RuntimeError(f"{path} was written by a newer slawatch (migrations {sorted(newer)}); "
                               "upgrade slawatch before using it")
        return done
    finally:
        conn.close()


def _statements(script: str) -> list[str]:
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


@dataclass
class _Bucket:
    series_id: int
    bucket: int
    count: int = 0
    histogram: dict[str, int] = field(default_factory=dict)
    stats: dict[str, list[float | int]] = field(default_factory=dict)


class Store:
    """The writer's side of the database: batches in, one transaction per group of batches.

    Only one thread may use a Store. Caches (series ids, interval tails, open rollup buckets)
    are trusted only while no other process wrote: `PRAGMA data_version` tells.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        migrate(path)
        self.conn = connect(path)
        self._data_version = -1
        self._agents: dict[str, int] = {}
        self._series: dict[tuple[int, str], int] = {}
        self._tails: dict[int, Run | None] = {}
        self._latency: dict[int, _Bucket] = {}
        self._metrics: dict[int, _Bucket] = {}
        self.late_beyond_retention = 0  # late readings whose neighbours were purged: intervals untouched

    def close(self) -> None:
        self.conn.close()

    # --- writing ------------------------------------------------------------------------------

    def store(self, batches: Sequence[Incoming]) -> list[Stored | Exception]:
        """Store a group of batches in one transaction; a batch that fails leaves no trace."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        results: list[Stored | Exception] = []
        try:
            self._check_foreign_writes()
            head = self._head()
            for number, batch in enumerate(batches):
                conn.execute(f"SAVEPOINT b{number}")
                try:
                    stored, head = self._store_one(batch, head)
                except Exception as exc:  # this batch only: the others of the group go on
                    conn.execute(f"ROLLBACK TO b{number}")
                    conn.execute(f"RELEASE b{number}")
                    self._forget()
                    head = self._head()
                    if not isinstance(exc, Conflict):
                        log.exception("event=store-batch-failed agent=%s batch=%s", batch.agent, batch.batch)
                    results.append(exc)
                    continue
                conn.execute(f"RELEASE b{number}")
                results.append(stored)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._forget()
            raise
        self._data_version = self._read_data_version()
        return results

    def _store_one(self, batch: Incoming, head: bytes) -> tuple[Stored, bytes]:
        conn = self.conn
        agent_id = self._agent_id(batch.agent, batch.received_at)
        existing = conn.execute("SELECT body_sha256, ack FROM evidence WHERE agent_id = ? AND batch = ?",
                                (agent_id, batch.batch)).fetchone()
        if existing is not None:
            if existing[0] != batch.body_sha256:
                raise Conflict(f"batch {batch.batch} was already stored with another body")
            return Stored(json.loads(existing[1]), resend=True), head
        rows = self._new_rows(agent_id, batch.rows)
        digest = chain_hash(head, batch.body_sha256, batch.signature)
        evidence_id = (conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM evidence").fetchone()[0])
        ack = {"batch": batch.batch, "evidence": evidence_id, "chain": digest.hex(),
               "stored": len(rows), "duplicates": len(batch.rows) - len(rows),
               "dropped_ranges": len(batch.dropped)}
        conn.execute(
            "INSERT INTO evidence (id, agent_id, batch, kind, path, sent, received_at, body, body_sha256, "
            "signature, public_key, hash, ack) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (evidence_id, agent_id, batch.batch, batch.kind, batch.path, batch.sent, batch.received_at,
             zlib.compress(batch.body, 1), batch.body_sha256, batch.signature, batch.public_key, digest,
             json.dumps(ack, separators=(",", ":"))))
        if rows:
            self._insert_readings(agent_id, evidence_id, rows)
        if batch.dropped:
            conn.executemany("INSERT OR IGNORE INTO dropped VALUES (?, ?, ?, ?)",
                             [(agent_id, first, last, evidence_id) for first, last in batch.dropped])
        self._update_agent(agent_id, batch, rows)
        return Stored(ack, resend=False), digest

    def _new_rows(self, agent_id: int, rows: Sequence[Row]) -> list[Row]:
        """The rows whose (agent, seq) is not stored yet: resent readings count once."""
        if not rows:
            return []
        seqs = [row.seq for row in rows]
        if len(set(seqs)) != len(seqs):
            raise ValueError("a batch holds the same seq twice")
        known = {seq for (seq,) in self.conn.execute(
            "SELECT seq FROM readings WHERE agent_id = ? AND seq BETWEEN ? AND ?",
            (agent_id, min(seqs), max(seqs)))}
        return [row for row in rows if row.seq not in known]

    def _insert_readings(self, agent_id: int, evidence_id: int, rows: list[Row]) -> None:
        by_series: dict[int, list[Row]] = {}
        values = []
        for row in rows:
            series_id = self._series_id(agent_id, row.check)
            by_series.setdefault(series_id, []).append(row)
            values.append((agent_id, row.seq, series_id, row.ts, row.status, row.interval_s, row.latency_ms,
                           canonical_json(row.metrics).decode() if row.metrics else None, row.error,
                           evidence_id))
        self.conn.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
        for series_id, series_rows in by_series.items():
            series_rows.sort(key=lambda r: (r.ts, r.seq))
            self._fold(series_id, series_rows)
            self._roll_up(series_id, series_rows)

    # --- intervals ----------------------------------------------------------------------------

    def _fold(self, series_id: int, rows: list[Row]) -> None:
        tail = self._tail(series_id)
        if tail is not None and rows[0].ts <= tail.last_ts:
            self._rebuild(series_id, rows[0].ts)
            return
        self._write_fold(series_id, tail, ((r.ts, r.status, hold_ms(r.interval_s)) for r in rows))

    def _write_fold(self, series_id: int, tail: Run | None, readings: Any) -> None:
        result = fold(tail, readings)
        if result.removed:
            self.conn.executemany("DELETE FROM intervals WHERE series_id = ? AND start = ?",
                                  [(series_id, start) for start in result.removed])
        self.conn.executemany("INSERT OR REPLACE INTO intervals VALUES (?, ?, ?, ?, ?)",
                              [(series_id, r.start, r.end, r.status, r.last_ts) for r in result.written])
        self._tails[series_id] = result.tail

    def _rebuild(self, series_id: int, since: int) -> None:
        """A late reading: refold the series from the reading before it, out of the raw readings."""
        conn = self.conn
        previous = conn.execute("SELECT MAX(ts) FROM readings WHERE series_id = ? AND ts < ?",
                                (series_id, since)).fetchone()[0]
        anchor = since if previous is None else previous
        purged = self._meta_int("readings_purged_before")
        if purged is not None and anchor < purged:
            # The readings that shaped the runs after `anchor` are gone: refolding would lose them.
            self.late_beyond_retention += 1
            log.warning("event=late-reading-beyond-retention series=%d ts=%d", series_id, since)
            return
        conn.execute("DELETE FROM intervals WHERE series_id = ? AND start >= ?", (series_id, anchor))
        last = conn.execute("SELECT start, end, status, last_ts FROM intervals WHERE series_id = ? "
                            "ORDER BY start DESC LIMIT 1", (series_id,)).fetchone()
        tail = None if last is None else Run(*last)
        if tail is not None and tail.end > anchor:
            tail.end, tail.last_ts = anchor, min(tail.last_ts, anchor)
        replay = conn.execute("SELECT ts, status, interval_s FROM readings WHERE series_id = ? AND ts >= ? "
                              "ORDER BY ts, seq", (series_id, anchor))
        self._write_fold(series_id, tail, ((ts, status, hold_ms(interval)) for ts, status, interval in replay))

    def _tail(self, series_id: int) -> Run | None:
        if series_id not in self._tails:
            row = self.conn.execute("SELECT start, end, status, last_ts FROM intervals WHERE series_id = ? "
                                    "ORDER BY start DESC LIMIT 1", (series_id,)).fetchone()
            self._tails[series_id] = None if row is None else Run(*row)
        return self._tails[series_id]

    # --- rollups ------------------------------------------------------------------------------

    def _roll_up(self, series_id: int, rows: list[Row]) -> None:
        touched_latency: dict[int, _Bucket] = {}
        touched_metrics: dict[int, _Bucket] = {}
        for row in rows:
            bucket = row.ts - row.ts % BUCKET_MS
            if row.status == "up" and row.latency_ms is not None:
                latency = self._bucket(self._latency, series_id, bucket, "latency")
                latency.count += 1
                sketch.add(latency.histogram, row.latency_ms)
                touched_latency[bucket] = latency
            if row.metrics:
                metrics = self._bucket(self._metrics, series_id, bucket, "metrics")
                for name, value in row.metrics.items():
                    stat = metrics.stats.get(name)
                    if stat is None:
                        metrics.stats[name] = [1, value, value, value]
                    else:
                        stat[0] += 1
                        stat[1] = min(stat[1], value)
                        stat[2] = max(stat[2], value)
                        stat[3] += value
                touched_metrics[bucket] = metrics
        if touched_latency:
            self.conn.executemany("INSERT OR REPLACE INTO latency_rollups VALUES (?, ?, ?, ?)",
                                  [(series_id, b.bucket, b.count, sketch.dumps(b.histogram))
                                   for b in touched_latency.values()])
        if touched_metrics:
            self.conn.executemany("INSERT OR REPLACE INTO metric_rollups VALUES (?, ?, ?)",
                                  [(series_id, b.bucket, json.dumps(b.stats, separators=(",", ":")))
                                   for b in touched_metrics.values()])

    def _bucket(self, cache: dict[int, _Bucket], series_id: int, bucket: int, kind: str) -> _Bucket:
        """The rollup bucket, from the cache (the series' newest bucket) or the database."""
        cached = cache.get(series_id)
        if cached is not None and cached.bucket == bucket:
            return cached
        found = _Bucket(series_id, bucket)
        if kind == "latency":
            row = self.conn.execute("SELECT count, histogram FROM latency_rollups WHERE series_id = ? AND bucket = ?",
                                    (series_id, bucket)).fetchone()
            if row is not None:
                found.count, found.histogram = row[0], sketch.loads(row[1])
        else:
            row = self.conn.execute("SELECT stats FROM metric_rollups WHERE series_id = ? AND bucket = ?",
                                    (series_id, bucket)).fetchone()
            if row is not None:
                found.stats = json.loads(row[0])
        if cached is None or bucket >= cached.bucket:
            cache[series_id] = found
        return found

    # --- agents, series, bookkeeping ----------------------------------------------------------

    def _agent_id(self, name: str, seen: int) -> int:
        agent_id = self._agents.get(name)
        if agent_id is None:
            row = self.conn.execute("SELECT id FROM agents WHERE name = ?", (name,)).fetchone()
            if row is None:
                agent_id = self.conn.execute("INSERT INTO agents (name, first_seen) VALUES (?, ?)",
                                             (name, seen)).lastrowid
            else:
                agent_id = row[0]
            assert agent_id is not None
            self._agents[name] = agent_id
        return agent_id

    def _series_id(self, agent_id: int, check: str) -> int:
        key = (agent_id, check)
        series_id = self._series.get(key)
        if series_id is None:
            row = self.conn.execute("SELECT id FROM series WHERE agent_id = ? AND check_id = ?", key).fetchone()
            if row is None:
                series_id = self.conn.execute("INSERT INTO series (agent_id, check_id) VALUES (?, ?)", key).lastrowid
            else:
                series_id = row[0]
            assert series_id is not None
            self._series[key] = series_id
        return series_id

    def _update_agent(self, agent_id: int, batch: Incoming, rows: list[Row]) -> None:
        conn = self.conn
        if batch.kind == "import":
            return  # history says nothing about the agent being alive now
        if batch.manifest is not None:
            conn.execute("UPDATE agents SET manifest = ?, manifest_at = ?, last_seen = ? WHERE id = ?",
                         (canonical_json(batch.manifest).decode(), batch.received_at, batch.received_at,
                          agent_id))
            return
        conn.execute("UPDATE agents SET last_seen = ?, last_seq = MAX(COALESCE(last_seq, 0), ?), "
                     "last_reading_ts = MAX(COALESCE(last_reading_ts, 0), ?) WHERE id = ?",
                     (batch.received_at, max((r.seq for r in rows), default=0),
                      max((r.ts for r in rows), default=0), agent_id))
        own = [r for r in rows if r.check == SELF_CHECK]
        if own:
            newest = max(own, key=lambda r: r.ts)
            conn.execute("UPDATE agents SET self_metrics = ?, self_ts = ? WHERE id = ? "
                         "AND COALESCE(self_ts, 0) <= ?",
                         (json.dumps(newest.metrics), newest.ts, agent_id, newest.ts))

    def set_silent(self, name: str, since: int | None) -> None:
        with self._transaction():
            self.conn.execute("UPDATE agents SET silent_since = ? WHERE name = ?", (since, name))

    def purge(self, readings_before: int, history_before: int, limit: int = 20_000) -> int:
        """Delete raw readings and history past retention, a bounded slice at a time; return rows deleted."""
        deleted = 0
        with self._transaction():
            for (series_id,) in self.conn.execute("SELECT id FROM series").fetchall():
                deleted += self.conn.execute(
                    "DELETE FROM readings WHERE series_id = ? AND ts < ? AND seq IN (SELECT seq FROM readings "
                    "WHERE series_id = ? AND ts < ? LIMIT ?)",
                    (series_id, readings_before, series_id, readings_before, limit)).rowcount
                for table, column in (("intervals", "end"), ("latency_rollups", "bucket"),
                                      ("metric_rollups", "bucket")):
                    deleted += self.conn.execute(f"DELETE FROM {table} WHERE series_id = ? AND {column} < ?",
                                                 (series_id, history_before)).rowcount
                if deleted >= limit:
                    break
            else:
                self._set_meta("readings_purged_before", readings_before)
        return deleted

    def _transaction(self) -> Any:
        store = self

        class _Tx:
            def __enter__(self) -> None:
                store.conn.execute("BEGIN IMMEDIATE")
                store._check_foreign_writes()

            def __exit__(self, kind: Any, *rest: Any) -> None:
                if kind is None:
                    store.conn.execute("COMMIT")
                    store._data_version = store._read_data_version()
                else:
                    store.conn.execute("ROLLBACK")
                    store._forget()

        return _Tx()

    def _meta_int(self, key: str) -> int | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def _set_meta(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))

    def _head(self) -> bytes:
        row = self.conn.execute("SELECT hash FROM evidence ORDER BY id DESC LIMIT 1").fetchone()
        return GENESIS if row is None else bytes(row[0])

    def _read_data_version(self) -> int:
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def _check_foreign_writes(self) -> None:
        """Drop the caches when another process (an import) committed since our last transaction."""
        version = self._read_data_version()
        if version != self._data_version:
            self._forget()
            self._data_version = version

    def _forget(self) -> None:
        self._agents.clear()
        self._series.clear()
        self._tails.clear()
        self._latency.clear()
        self._metrics.clear()


class Reader:
    """Read-only queries, on a connection of their own (never blocking the writer)."""

    def __init__(self, path: str | Path) -> None:
        self.conn = connect(path, readonly=True)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def agents(self) -> list[AgentState]:
        rows = self.conn.execute(
            "SELECT name, first_seen, last_seen, last_seq, last_reading_ts, self_metrics, manifest, manifest_at, "
            "silent_since FROM agents ORDER BY name").fetchall()
        return [AgentState(name, first, seen, seq, reading_ts, _json(self_metrics), _json(manifest), manifest_at,
                           silent) for name, first, seen, seq, reading_ts, self_metrics, manifest, manifest_at, silent
                in rows]

    def intervals(self, agent: str, check: str, start: int | None = None, end: int | None = None) -> list[Run]:
        rows = self.conn.execute(
            "SELECT i.start, i.end, i.status, i.last_ts FROM intervals i JOIN series s ON s.id = i.series_id "
            "JOIN agents a ON a.id = s.agent_id WHERE a.name = ? AND s.check_id = ? "
            "AND i.end > ? AND i.start < ? ORDER BY i.start",
            (agent, check, start if start is not None else -2**62, end if end is not None else 2**62)).fetchall()
        return [Run(*row) for row in rows]

    def readings(self, agent: str | None = None) -> Iterator[tuple[Any, ...]]:
        """(agent, seq, check, ts, status, interval_s, latency_ms, metrics, error) in (agent, seq) order."""
        where, args = ("WHERE a.name = ?", (agent,)) if agent else ("", ())
        yield from self.conn.execute(
            "SELECT a.name, r.seq, s.check_id, r.ts, r.status, r.interval_s, r.latency_ms, r.metrics, r.error "
            f"FROM readings r JOIN series s ON s.id = r.series_id JOIN agents a ON a.id = r.agent_id {where} "
            "ORDER BY a.name, r.seq", args)

    def latency(self, agent: str, check: str, start: int, end: int) -> tuple[int, dict[str, int]]:
        rows = self.conn.execute(
            "SELECT l.count, l.histogram FROM latency_rollups l JOIN series s ON s.id = l.series_id "
            "JOIN agents a ON a.id = s.agent_id WHERE a.name = ? AND s.check_id = ? AND l.bucket >= ? "
            "AND l.bucket < ?", (agent, check, start, end)).fetchall()
        return sum(r[0] for r in rows), sketch.merge(sketch.loads(r[1]) for r in rows)

    def metric_stats(self, agent: str, check: str, start: int, end: int) -> dict[str, list[float | int]]:
        total: dict[str, list[float | int]] = {}
        for (text,) in self.conn.execute(
                "SELECT m.stats FROM metric_rollups m JOIN series s ON s.id = m.series_id "
                "JOIN agents a ON a.id = s.agent_id WHERE a.name = ? AND s.check_id = ? AND m.bucket >= ? "
                "AND m.bucket < ?", (agent, check, start, end)):
            for name, (count, low, high, sum_) in json.loads(text).items():
                have = total.setdefault(name, [0, low, high, 0])
                have[0] += count
                have[1], have[2] = min(have[1], low), max(have[2], high)
                have[3] += sum_
        return total

    def dropped(self, agent: str) -> list[tuple[int, int]]:
        return [(first, last) for first, last in self.conn.execute(
            "SELECT d.first_seq, d.last_seq FROM dropped d JOIN agents a ON a.id = d.agent_id WHERE a.name = ? "
            "ORDER BY d.first_seq", (agent,))]

    def evidence(self, start: int | None = None, end: int | None = None) -> Iterator[EvidenceRow]:
        """Stored batches in chain order; `start`/`end` bound their receive time."""
        rows = self.conn.execute(
            "SELECT e.id, a.name, e.batch, e.kind, e.path, e.sent, e.received_at, e.body, e.body_sha256, "
            "e.signature, e.public_key, e.hash FROM evidence e JOIN agents a ON a.id = e.agent_id "
            "WHERE e.received_at >= ? AND e.received_at < ? ORDER BY e.id",
            (start if start is not None else -2**62, end if end is not None else 2**62))
        for row in rows:
            yield EvidenceRow(row[0], row[1], row[2], row[3], row[4], row[5], row[6], zlib.decompress(row[7]),
                              bytes(row[8]), None if row[9] is None else bytes(row[9]),
                              None if row[10] is None else bytes(row[10]), bytes(row[11]))

    def previous_hash(self, evidence_id: int) -> bytes:
        row = self.conn.execute("SELECT hash FROM evidence WHERE id < ? ORDER BY id DESC LIMIT 1",
                                (evidence_id,)).fetchone()
        return GENESIS if row is None else bytes(row[0])

    def count(self, table: str) -> int:
        assert table in {"readings", "evidence", "intervals", "agents", "series", "latency_rollups",
                         "metric_rollups", "dropped"}
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def size_bytes(self) -> int:
        page_count = self.conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        return int(page_count * page_size)

    def head(self) -> tuple[int, bytes]:
        row = self.conn.execute("SELECT id, hash FROM evidence ORDER BY id DESC LIMIT 1").fetchone()
        return (0, GENESIS) if row is None else (row[0], bytes(row[1]))


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)
