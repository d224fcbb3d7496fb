"""The watchdog's store: the one place that speaks SQL (DESIGN.md "Scale path").

SQLite in WAL mode. One writer (the `Writer` thread, or a CLI command while it holds the write
lock); readers use their own connections and never block it. Every accepted batch is, in one
transaction: its evidence row (body, signature, chain hash), its readings (unique on agent + seq),
and the state intervals and 15-minute rollups they change.

Times are integer milliseconds since the epoch (UTC) throughout.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import sqlite3
import time
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import sqlite_utils

from slawatch.agent.protocol import canonical_json
from slawatch.collectors.reading import MAX_INTERVAL_S
from slawatch.config.agent import SELF_CHECK as SELF_CHECK  # the agent's own readings

from . import sketch
from .intervals import UNKNOWN, Run, fold, hold_ms

log = logging.getLogger(__name__)

BUCKET_MS = 15 * 60 * 1000       # rollup width: every real timezone offset is a multiple of 15 minutes
DAY_MS = 24 * 3600 * 1000        # compacted rollups: a UTC day of a series' buckets in one row
HOUR_MS = 3600 * 1000            # ... and each hour of it
GENESIS = bytes(32)              # the hash before the first batch
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
    error TEXT,
    evidence_id INTEGER NOT NULL, -- the batch that brought it; its metrics are in that body only

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
CREATE TABLE rollups (
    series_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,      -- start of the 15-minute bucket
    latency_count INTEGER NOT NULL,
    histogram BLOB NOT NULL,      -- latency of up readings, sketch.pack: log buckets, <= 0.9 % relative error
    stats TEXT NOT NULL,          -- metrics: {"name": [count, min, max, sum], ...}
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
    ("0002-frozen-reports", """
CREATE TABLE frozen_reports (
    contract TEXT NOT NULL,
    period TEXT NOT NULL,         -- its label, e.g. 2026-10
    rules_version TEXT NOT NULL,
    evidence_id INTEGER NOT NULL, -- the chain head's position when the figures were frozen
    chain_head TEXT NOT NULL,
    figures TEXT NOT NULL,        -- the report (JSON), exactly as first frozen
    frozen_at INTEGER NOT NULL,
    PRIMARY KEY (contract, period)
);
"""),
    ("0003-daily-rollups", """
CREATE TABLE daily_rollups (      -- a UTC day of a series' rollups merged: reports over months read these
    series_id INTEGER NOT NULL,
    day INTEGER NOT NULL,
    latency_count INTEGER NOT NULL,
    histogram BLOB NOT NULL,
    stats TEXT NOT NULL,
    PRIMARY KEY (series_id, day)
) WITHOUT ROWID;
CREATE TABLE monthly_rollups (    -- a UTC calendar month of a series' daily rollups merged
    series_id INTEGER NOT NULL,
    month INTEGER NOT NULL,
    latency_count INTEGER NOT NULL,
    histogram BLOB NOT NULL,
    stats TEXT NOT NULL,
    PRIMARY KEY (series_id, month)
) WITHOUT ROWID;
CREATE TABLE stale_days (         -- compacted days (and so months) a late reading changed: to compact again
    series_id INTEGER NOT NULL,
    day INTEGER NOT NULL,
    PRIMARY KEY (series_id, day)
) WITHOUT ROWID;
"""),
    ("0004-alerting", """
CREATE TABLE alert_state (        -- what alerting last decided, per subject (a service's outage, a rule, ...)
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,          -- JSON
    updated_at INTEGER NOT NULL
);
CREATE TABLE outbox (             -- one row per (decision, party, URL); written with the state change
    id INTEGER PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,          -- outage | recovery | budget | breach | agent-silent | agent-back | ...
    contract TEXT NOT NULL,
    party TEXT NOT NULL,          -- client | provider
    url_hash TEXT NOT NULL,       -- sha256 of the Apprise URL: the URL itself (a secret) stays in the config
    url_shown TEXT NOT NULL,      -- the URL as Apprise shows it with privacy=True
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    body_format TEXT NOT NULL,    -- text | html
    attachments TEXT,             -- JSON [{"name", "mime", "content" (base64)}] or NULL
    created_at INTEGER NOT NULL,
    queued_at INTEGER NOT NULL,   -- when it was (last) queued: created, or retried from dead
    status TEXT NOT NULL,         -- pending | sent | dead
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    sent_at INTEGER
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE TABLE outbox_attempts (
    outbox_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT
);
"""),
    ("0005-hourly-rollups", """
CREATE TABLE hourly_rollups (     -- a UTC hour of a series' rollups merged, made with its day's row
    series_id INTEGER NOT NULL,
    hour INTEGER NOT NULL,
    latency_count INTEGER NOT NULL,
    histogram BLOB NOT NULL,
    stats TEXT NOT NULL,
    PRIMARY KEY (series_id, hour)
) WITHOUT ROWID;
CREATE INDEX rollups_by_bucket ON rollups (bucket);  -- compaction reads a day (an hour) of every series
"""),
    ("0006-hours-of-days-compacted-before-0005", """
-- Days compacted before 0005 have a daily row and no hourly ones, yet reports take their hours from
-- hourly_rollups: such days are stale, so reports read their 15-minute rows until the next compaction
-- merges them again, hours included.
INSERT OR IGNORE INTO stale_days
SELECT d.series_id, d.day FROM daily_rollups d
WHERE NOT EXISTS (SELECT 1 FROM hourly_rollups h WHERE h.series_id = d.series_id AND h.hour >= d.day
                  AND h.hour < d.day + 86400000);
"""),
    ("0007-dropped-cut", """
-- Where a dropped range cuts its agent's coverage: the time of the reading recorded just before it
-- (NULL: none was known; and for ranges stored before this migration, which cut nothing).
ALTER TABLE dropped ADD COLUMN cut_at INTEGER;
"""),
    ("0008-time-first-keys", """
-- Rollups and the raw readings' index keyed by time first. Keyed by series first, every series'
-- newest entries lay on a page of their own, so a group of readings of many checks rewrote a page
-- per check, and ever more of them missed the cache as history grew: a store holding three hours
-- of readings of 8,000 checks took readings in at half the rate of an empty one. Now a group's
-- entries lie side by side in the newest pages. A series' rollups are found through
-- rollups_by_series; its raw readings of a span chunk by chunk (15-minute chunks, see CHUNKS),
-- its down readings through readings_down.
CREATE TABLE rollups_by_time (
    series_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    latency_count INTEGER NOT NULL,
    histogram BLOB NOT NULL,
    stats TEXT NOT NULL,
    PRIMARY KEY (bucket, series_id)
) WITHOUT ROWID;
INSERT INTO rollups_by_time SELECT series_id, bucket, latency_count, histogram, stats FROM rollups
ORDER BY bucket, series_id;
DROP TABLE rollups;
ALTER TABLE rollups_by_time RENAME TO rollups;
CREATE INDEX rollups_by_series ON rollups (series_id, bucket);
DROP INDEX readings_by_series;
CREATE INDEX readings_by_time ON readings (ts / 900000, series_id, ts);
CREATE INDEX readings_down ON readings (series_id, ts) WHERE status = 'down';
"""),
]


class Conflict(Exception):
    """A batch id already stored with another body (HTTP 409)."""

    @classmethod
    def of(cls, batch: str) -> Conflict:
        return cls(f"batch {batch} was already stored with another body")


class _BatchFailed(Exception):
    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index, error)
        self.index, self.error = index, error


class Row(NamedTuple):
    """One reading ready for the store (ts in ms)."""

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
    # Parses the body into `rows` and `dropped` on the writer thread (raising Refused), so the
    # event loop stays free for requests while a large batch is read.
    parse: Callable[[], tuple[Sequence[Row], Sequence[tuple[int, int]]]] | None = None

    def __post_init__(self) -> None:
        self.body_sha256 = self.body_sha256 or hashlib.sha256(self.body).digest()
        self.received_at = self.received_at or now_ms()


@dataclass(frozen=True)
class Stored:
    """What became of a batch: its acknowledgement, and whether it was a resend."""

    ack: dict[str, Any]
    resend: bool


@dataclass(frozen=True)
class StoredBatch:
    body_sha256: bytes
    answer: Stored        # what a resend of it is answered


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


@dataclass
class LatencyFound:
    """Latency of eligible up readings: the merged histogram, and how it was found."""

    histogram: dict[int, int]
    buckets: int        # rollup buckets merged
    unseen_ms: int      # edge time whose raw readings were purged (left out)


@dataclass(frozen=True)
class Message:
    """A decision for one party's one Apprise URL, on its way into the outbox."""

    key: str                  # idempotency key: the same decision is never queued twice
    event: str
    contract: str
    party: str
    url_hash: str
    url_shown: str
    title: str
    body: str
    body_format: str = "text"
    attachments: str | None = None


OUTBOX_COLUMNS = ("id, idempotency_key, event, contract, party, url_hash, url_shown, title, body, body_format, "
                  "attachments, created_at, queued_at, status, attempts, next_attempt_at, last_error, sent_at")


@dataclass(frozen=True)
class OutboxRow:
    id: int
    key: str
    event: str
    contract: str
    party: str
    url_hash: str
    url_shown: str
    title: str
    body: str
    body_format: str
    attachments: str | None
    created_at: int
    queued_at: int
    status: str
    attempts: int
    next_attempt_at: int
    last_error: str | None
    sent_at: int | None


@dataclass(frozen=True)
class FrozenReport:
    rules_version: str
    evidence_id: int
    chain_head: str
    figures: dict[str, Any]
    frozen_at: int


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


_compact = json.JSONEncoder(separators=(",", ":")).encode
# A rollup row, updated in place when it exists: a REPLACE would delete and insert the row, and its
# entry in rollups_by_series.
WRITE_ROLLUP = ("INSERT INTO rollups VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET latency_count = "
                "excluded.latency_count, histogram = excluded.histogram, stats = excluded.stats")


@dataclass
class _Writes:
    """A group's changes to intervals and rollups, written with one statement per table."""

    intervals: dict[tuple[int, int], tuple[int, int, int, str, int]] = field(default_factory=dict)
    removed: list[tuple[int, int]] = field(default_factory=list)
    rollups: dict[tuple[int, int], _Bucket] = field(default_factory=dict)
    compacted_before: int | None = None  # days before it have daily rollups, which these buckets outdate

    def flush(self, conn: sqlite3.Connection) -> None:
        compacted_before = self.compacted_before
        if compacted_before is not None:
            stale = {(series_id, bucket - bucket % DAY_MS) for series_id, bucket in self.rollups
                     if bucket < compacted_before}
            if stale:  # a late reading: the day's (and month's) merged rollups are rebuilt later
                months = {day: month_start(day) for day in {day for _, day in stale}}
                conn.executemany("DELETE FROM daily_rollups WHERE series_id = ? AND day = ?", stale)
                conn.executemany("DELETE FROM hourly_rollups WHERE series_id = ? AND hour >= ? AND hour < ?",
                                 [(series_id, day, day + DAY_MS) for series_id, day in stale])
                conn.executemany("DELETE FROM monthly_rollups WHERE series_id = ? AND month = ?",
                                 {(series_id, months[day]) for series_id, day in stale})
                conn.executemany("INSERT OR IGNORE INTO stale_days VALUES (?, ?)", stale)
        if self.removed:
            conn.executemany("DELETE FROM intervals WHERE series_id = ? AND start = ?", self.removed)
        conn.executemany("INSERT OR REPLACE INTO intervals VALUES (?, ?, ?, ?, ?)", self.intervals.values())
        pack, encode = self._pack, self._encode
        rollups = []
        for b in self.rollups.values():
            stats = encode(b.stats)  # an infinite or NaN sum comes out as null: json.dumps writes it
            rollups.append((b.series_id, b.bucket, b.count, pack(b.histogram),
                            _compact(b.stats) if b"null" in stats else stats.decode()))
        conn.executemany(WRITE_ROLLUP, rollups)
        self.removed.clear()
        self.intervals.clear()
        self.rollups.clear()

    # A group rewrites each rollup row it touched, so these run about once per reading.
    _VARINTS = [bytes([n]) if n < 0x80 else bytes([n & 0x7F | 0x80, n >> 7]) for n in range(1 << 12)]
    _encode = msgspec.json.Encoder().encode

    @staticmethod
    def _pack(histogram: dict[int, int]) -> bytes:
        """sketch.pack, byte for byte, with the varints of small numbers looked up."""
        varints = _Writes._VARINTS
        out = []
        previous = 0
        try:
            for key in sorted(histogram):
                delta = key - previous
                previous = key
                out.append(varints[(delta << 1) ^ (delta >> 63)] + varints[histogram[key]])  # zigzag, count
        except IndexError:  # a number beyond the table
            return sketch.pack(histogram)
        return b"".join(out)


_TIME_ORDER = itemgetter(2, 0)  # a Row's (ts, seq)


def _ranges(seqs: Sequence[int]) -> list[list[int]]:
    """Sorted seqs as [first, last] ranges of consecutive ones."""
    ranges: list[list[int]] = []
    for seq in seqs:
        if ranges and ranges[-1][1] == seq - 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    return ranges


def _cut(at: int) -> Row:
    """Where a dropped range cuts a check's coverage (see Store._store_dropped): an unknown reading
    that holds for no time, before the readings of its instant (seq 0: theirs are 1 and up)."""
    return Row(0, "", at, UNKNOWN, 0.0, None, {}, None)


# Raw readings are indexed by (ts / CHUNK_MS, series_id, ts), readings_by_time (see migration 0008):
# a series' readings of a span are found with a seek per chunk, the chunks joined as `ts / 900000 IN
# chunk` (the index's own expression: SQLite uses the index for nothing else) from this table of them.
CHUNK_MS = BUCKET_MS
CHUNKS = "WITH RECURSIVE chunk(n) AS (SELECT ? UNION ALL SELECT n + 1 FROM chunk WHERE n < ?) "


def chunk_of(ts: int) -> int:
    """ts / CHUNK_MS as SQLite computes it: an integer division that truncates towards zero."""
    quotient = abs(ts) // CHUNK_MS
    return quotient if ts >= 0 else -quotient


def chunks(conn: sqlite3.Connection, start: int, end: int) -> tuple[int, int] | None:
    """The first and last chunk holding readings of [start, end), among those holding any readings
    (for CHUNKS); None when no chunk can."""
    if end <= start:
        return None
    first = conn.execute("SELECT MIN(ts / 900000) FROM readings").fetchone()[0]
    if first is None:
        return None
    last = conn.execute("SELECT MAX(ts / 900000) FROM readings").fetchone()[0]
    low, high = max(chunk_of(start), first), min(chunk_of(end - 1), last)
    return (low, high) if low <= high else None


def add_metrics(stats: dict[str, list[float | int]], metrics: Mapping[str, float | int]) -> None:
    """Add a reading's metrics to a rollup's stats: {"name": [count, min, max, sum], ...}."""
    for name, value in metrics.items():
        stat = stats.get(name)
        if stat is None:
            stats[name] = [1, value, value, value]
        else:
            stat[0] += 1
            if value < stat[1]:
                stat[1] = value
            if value > stat[2]:
                stat[2] = value
            stat[3] += value


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def chain_hash(previous: bytes, body_sha256: bytes, signature: bytes | None) -> bytes:
    """DESIGN.md "Evidence": sha256(prev_hash || body_sha256 || signature)."""
    return hashlib.sha256(previous + body_sha256 + (signature or b"")).digest()


def connect(path: str | Path, readonly: bool = False) -> sqlite3.Connection:
    """A connection with the store's settings: WAL, FULL sync, explicit transactions."""
    if readonly:
        conn = sqlite3.connect(Path(path).absolute().as_uri() + "?mode=ro", uri=True, isolation_level=None,
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
    """Bring the database at `path` up to date; each migration in its own transaction. Its folder
    is made when missing, as the agent makes its spool's (systemd's StateDirectory may not have)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
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
    histogram: dict[int, int] = field(default_factory=dict)
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
        self._rollups: dict[int, _Bucket] = {}  # each series' newest rollup bucket
        self._newest: dict[int, int] = {}  # the newest rollup bucket stored, per series
        self.late_beyond_retention = 0  # late readings whose neighbours were purged: intervals untouched
        self._late_in_group = self._reused_in_group = 0
        self.reused_seqs = 0  # readings refused because their seq was stored for another reading

    def close(self) -> None:
        self.conn.close()

    # --- writing ------------------------------------------------------------------------------

    def store(self, batches: Sequence[Incoming]) -> list[Stored | Exception]:
        """Store a group of batches in one transaction, intervals and rollups included.

        A batch that fails leaves no trace: the group is stored again without it (the group's
        interval and rollup changes are gathered in memory and written once, at the end).
        """
        failed: dict[int, Exception] = {}
        while True:
            self._late_in_group = self._reused_in_group = 0
            try:
                with self._transaction():
                    results = self._store_group(batches, failed)
            except _BatchFailed as bad:
                batch = batches[bad.index]
                log.error("event=store-batch-failed agent=%s batch=%s error=%r", batch.agent, batch.batch,
                          str(bad.error))
                failed[bad.index] = bad.error
                continue
            # A database failure (disk full, I/O error) fails the whole group: it propagates.
            self.late_beyond_retention += self._late_in_group  # counted once the group is in
            self.reused_seqs += self._reused_in_group
            return results

    def store_atomically(self, groups: Iterable[Sequence[tuple[Incoming, int]]]) -> list[tuple[Stored, int]]:
        """Store every group in ONE transaction (an import): any failure rolls all of it back and
        raises. Each batch comes with a number the caller wants back beside its result."""
        results: list[tuple[Stored, int]] = []
        try:
            with self._transaction():
                for group in groups:
                    for (_, extra), result in zip(group, self._store_group([batch for batch, _ in group], {})):
                        if isinstance(result, Exception):
                            raise result
                        results.append((result, extra))
        except _BatchFailed as bad:
            raise bad.error from None
        return results

    def _abandon(self) -> None:
        """Roll back what is left of the transaction and forget every cached id, tail and bucket:
        ids handed out inside it may be handed out again."""
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        finally:
            self._forget()

    def _store_group(self, batches: Sequence[Incoming], failed: dict[int, Exception]) -> list[Stored | Exception]:
        head = self._head()
        writes = _Writes(compacted_before=self._meta_int("rollups_compacted_before"))
        results: list[Stored | Exception] = []
        for number, batch in enumerate(batches):
            if number in failed:
                results.append(failed[number])
                continue
            try:
                stored, head = self._store_one(batch, head, writes)
            except Conflict as conflict:  # found before anything of the batch was written
                results.append(conflict)
                continue
            except sqlite3.IntegrityError as exc:
                raise _BatchFailed(number, exc) from exc
            except sqlite3.DatabaseError:
                raise  # the database itself failed: no batch of the group is to blame
            except Exception as exc:
                raise _BatchFailed(number, exc) from exc
            results.append(stored)
        writes.flush(self.conn)
        return results

    def _store_one(self, batch: Incoming, head: bytes, writes: _Writes) -> tuple[Stored, bytes]:
        conn = self.conn
        existing = self.stored_batch(batch.agent, batch.batch)
        if existing is not None:
            if existing.body_sha256 != batch.body_sha256:
                raise Conflict.of(batch.batch)
            return existing.answer, head
        if not all(0 < row.interval_s <= MAX_INTERVAL_S for row in batch.rows):
            raise ValueError(f"an interval_s outside (0, {MAX_INTERVAL_S:g}] seconds")  # fails this batch only
        agent_id = self._agent_id(batch.agent, batch.received_at)
        rows, reused = self._new_rows(agent_id, batch.rows)
        digest = chain_hash(head, batch.body_sha256, batch.signature)
        evidence_id = (conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM evidence").fetchone()[0])
        ack = {"batch": batch.batch, "evidence": evidence_id, "chain": digest.hex(),
               "stored": len(rows), "duplicates": len(batch.rows) - len(rows) - len(reused),
               "reused_seqs": len(reused), "dropped_ranges": len(batch.dropped)}
        if reused:  # which: the agent numbers those readings anew and sends them again
            ack["reused"] = _ranges(reused)
        conn.execute(
            "INSERT INTO evidence (id, agent_id, batch, kind, path, sent, received_at, body, body_sha256, "
            "signature, public_key, hash, ack) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (evidence_id, agent_id, batch.batch, batch.kind, batch.path, batch.sent, batch.received_at,
             zlib.compress(batch.body, 1), batch.body_sha256, batch.signature, batch.public_key, digest,
             json.dumps(ack, separators=(",", ":"))))
        cuts = self._store_dropped(agent_id, evidence_id, batch.dropped, rows) if batch.dropped else []
        if rows or cuts:
            self._insert_readings(agent_id, evidence_id, rows, writes, cuts)
        self._update_agent(agent_id, batch, rows)
        return Stored(ack, resend=False), digest

    def _store_dropped(self, agent_id: int, evidence_id: int, dropped: Sequence[tuple[int, int]],
                       rows: Sequence[Row]) -> list[Row]:
        """Keep the ranges of seqs the agent dropped, and return the cuts of the new ones. The readings
        of a range were taken after the reading recorded just before it (seq first - 1), at times and
        of checks nobody knows: from that reading's time, no earlier reading of the agent holds, and
        each of its checks is unknown until its next reading (that reading, and any other of its
        instant, holds as usual)."""
        cuts = []
        for first, last in dropped:
            before = [(row.seq, row.ts) for row in rows if row.seq < first]
            stored = self.conn.execute("SELECT seq, ts FROM readings WHERE agent_id = ? AND seq < ? ORDER BY seq DESC "
                                       "LIMIT 1", (agent_id, first)).fetchone()
            if stored is not None:
                before.append(tuple(stored))
            cut_at = max(before)[1] if before else None
            if self.conn.execute("INSERT OR IGNORE INTO dropped VALUES (?, ?, ?, ?, ?)",
                                 (agent_id, first, last, evidence_id, cut_at)).rowcount and cut_at is not None:
                cuts.append(_cut(cut_at))
        return cuts

    def stored_batch(self, agent: str, batch: str) -> StoredBatch | None:
        """The body SHA-256 and acknowledgement of a stored batch id, if any."""
        row = self.conn.execute("SELECT e.body_sha256, e.ack FROM evidence e JOIN agents a ON a.id = e.agent_id "
                                "WHERE a.name = ? AND e.batch = ?", (agent, batch)).fetchone()
        return None if row is None else StoredBatch(bytes(row[0]), Stored(json.loads(row[1]), resend=True))

    def _new_rows(self, agent_id: int, rows: Sequence[Row]) -> tuple[list[Row], list[int]]:
        """The rows whose (agent, seq) is not stored yet (resent readings count once), and the seqs
        that came back with another reading than the stored one."""
        if not rows:
            return [], []
        seqs = [row.seq for row in rows]
        if len(set(seqs)) != len(seqs):
            raise ValueError("a batch holds the same seq twice")
        known = {seq: (check, ts) for seq, check, ts in self.conn.execute(
            "SELECT r.seq, s.check_id, r.ts FROM readings r JOIN series s ON s.id = r.series_id "
            "WHERE r.agent_id = ? AND r.seq BETWEEN ? AND ?", (agent_id, min(seqs), max(seqs)))}
        if not known:
            return list(rows), []
        reused = sorted(row.seq for row in rows if row.seq in known and known[row.seq] != (row.check, row.ts))
        if reused:
            # Not a resend: the agent numbered other readings with seqs already stored (its spool put
            # back from a snapshot?). The stored ones stay; the acknowledgement names the others, for
            # the agent to number anew.
            self._reused_in_group += len(reused)
            log.warning("event=seq-reused agent_id=%d seqs=%d first=%d", agent_id, len(reused), reused[0])
        return [row for row in rows if row.seq not in known], reused

    def _insert_readings(self, agent_id: int, evidence_id: int, rows: list[Row], writes: _Writes,
                         cuts: Sequence[Row] = ()) -> None:
        known = self._series
        while True:
            by_series: dict[int, list[Row]] = {}
            values: list[tuple[Any, ...]] = []
            append = values.append
            for row in rows:
                seq, check, ts, status, interval_s, latency_ms, _, error = row
                series_id = known.get((agent_id, check))
                if series_id is None:
                    break
                same = by_series.get(series_id)
                if same is None:
                    by_series[series_id] = [row]
                else:
                    same.append(row)
                append((agent_id, seq, series_id, ts, status, interval_s, latency_ms, error, evidence_id))
            else:
                break
            # Checks whose series are not cached (new checks, or the first batches since the start): their
            # ids, last runs and newest rollup buckets in a few statements, not three for each check.
            conn = self.conn
            checks = list(dict.fromkeys(row.check for row in rows if (agent_id, row.check) not in known))
            found: dict[str, int] = {}
            for inserted in (False, True):
                for names in (checks[i:i + 500] for i in range(0, len(checks), 500)):
                    found.update(conn.execute(f"SELECT check_id, id FROM series WHERE agent_id = ? AND check_id "
                                              f"IN ({', '.join('?' * len(names))})", (agent_id, *names)))
                if inserted or len(found) == len(checks):
                    break
                conn.executemany("INSERT INTO series (agent_id, check_id) VALUES (?, ?)",  # numbered in order
                                 [(agent_id, check) for check in checks if check not in found])
            for check in checks:
                known[(agent_id, check)] = found[check]
            ids = [found[check] for check in checks]
            tails, newest = self._tails, self._newest
            for part in (ids[i:i + 500] for i in range(0, len(ids), 500)):
                marks = ", ".join("?" * len(part))
                untailed = {sid for sid in part if sid not in tails}
                if untailed:
                    # with one max(), SQLite takes the other columns from the row that has it: the last run
                    for last in conn.execute(f"SELECT series_id, MAX(start), end, status, last_ts FROM intervals "
                                             f"WHERE series_id IN ({marks}) GROUP BY series_id", part):
                        if last[0] in untailed:
                            tails[last[0]] = Run(*last[1:])
                    for sid in untailed:
                        tails.setdefault(sid, None)
                if any(sid not in newest for sid in part):
                    stored = dict(conn.execute(f"SELECT series_id, MAX(bucket) FROM rollups WHERE series_id IN "
                                               f"({marks}) GROUP BY series_id", part))
                    for sid in part:
                        newest.setdefault(sid, stored.get(sid, -1))
        self.conn.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
        if cuts:  # every check of the agent with a run is cut where it has coverage to cut
            for (series_id,) in self.conn.execute("SELECT id FROM series WHERE agent_id = ?", (agent_id,)).fetchall():
                if self._tail(series_id) is not None:
                    by_series.setdefault(series_id, []).extend(cuts)
        self._apply(agent_id, by_series, writes)

    # --- intervals and rollups -----------------------------------------------------------------

    def _apply(self, agent_id: int, by_series: dict[int, list[Row]], writes: _Writes) -> None:
        """Fold each series' new rows, in (ts, seq) order, into its runs, then add them to its rollups.

        Nearly every row goes on with its series' tail, within the previous one's coverage, and falls
        in the series' newest bucket: all that folding does then is move the tail's end (and last
        reading), and the bucket is the cached one (`_bucket`). That is done here, in a loop per
        series; the rest goes to `_fold_rows` (and, for late rows, `_fold_late`).
        """
        intervals, bucket_of = writes.intervals, sketch.bucket
        for series_id, rows in by_series.items():
            if len(rows) > 1:
                rows.sort(key=_TIME_ORDER)
            tail = self._tail(series_id)
            if tail is None:
                cuts = self._cuts_since(agent_id, rows[0][2])
                if cuts:
                    rows += cuts
                    rows.sort(key=_TIME_ORDER)
                self._fold_rows(series_id, None, rows, writes)
            elif rows[0][2] <= tail.last_ts:
                self._fold_late(series_id, rows, tail, writes)
            else:
                status, end, last_ts = tail.status, tail.end, tail.last_ts
                done = 0
                for row in rows:
                    ts = row[2]
                    if row[3] != status or ts > end:
                        break
                    end, last_ts = ts + hold_ms(row[4]), ts
                    done += 1
                if done:
                    tail.end, tail.last_ts = end, last_ts
                    intervals[(series_id, tail.start)] = (series_id, tail.start, end, status, last_ts)
                if done < len(rows):
                    self._fold_rows(series_id, tail, rows[done:], writes)
            bucket: _Bucket | None = None
            for _, _, ts, status, _, latency, metrics, _ in rows:
                timed = latency is not None and status == "up"
                if not (timed or metrics):
                    continue
                if bucket is None or not 0 <= ts - bucket.bucket < BUCKET_MS:
                    bucket = self._bucket(series_id, ts - ts % BUCKET_MS, writes)
                if timed:
                    bucket.count += 1
                    histogram, key = bucket.histogram, bucket_of(latency)  # type: ignore[arg-type]
                    histogram[key] = histogram.get(key, 0) + 1
                if metrics:
                    add_metrics(bucket.stats, metrics)

    def _cuts_since(self, agent_id: int, ts: int) -> list[Row]:
        """The cuts of the agent's dropped ranges from `ts` on, for a check's first readings (it has
        no run yet): those of this batch, and of earlier ones too, as a slow check's first reading
        can be numbered after a range and come in a later batch. The cuts `_rebuild` replays."""
        return [_cut(at) for (at,) in self.conn.execute("SELECT cut_at FROM dropped WHERE agent_id = ? AND cut_at >= ?",
                                                        (agent_id, ts))]

    def _fold_late(self, series_id: int, rows: list[Row], tail: Run, writes: _Writes) -> None:
        """Rows of a series from its tail's last reading back: refold it from the first of them
        (those older than the purge are left out)."""
        rows = self._within_retention(series_id, rows, tail.last_ts)
        if not rows:
            return
        if rows[0].ts <= tail.last_ts:
            self._rebuild(series_id, rows[0].ts, writes)
        else:
            self._fold_rows(series_id, tail, rows, writes)

    def _fold_rows(self, series_id: int, tail: Run | None, rows: Sequence[Row], writes: _Writes) -> None:
        self._write_fold(series_id, tail, [(r.ts, r.status, hold_ms(r.interval_s)) for r in rows], writes)

    def _within_retention(self, series_id: int, rows: list[Row], last_ts: int) -> list[Row]:
        """The rows that can be folded: late ones older than the purge are left out of the intervals."""
        purged = self._meta_int("readings_purged_before")
        if purged is None:
            return rows
        kept = [row for row in rows if row.ts >= purged or row.ts > last_ts]
        if len(kept) < len(rows):
            # The readings that shaped the runs around them are gone: refolding would lose those runs.
            self._late_in_group += len(rows) - len(kept)
            log.warning("event=late-reading-beyond-retention series=%d readings=%d", series_id, len(rows) - len(kept))
        return kept

    def _write_fold(self, series_id: int, tail: Run | None, readings: Any, writes: _Writes) -> None:
        result = fold(tail, readings)
        for start in result.removed:
            writes.removed.append((series_id, start))
        for run in result.written:
            writes.intervals[(series_id, run.start)] = (series_id, run.start, run.end, run.status, run.last_ts)
        self._tails[series_id] = result.tail

    def _rebuild(self, series_id: int, since: int, writes: _Writes) -> None:
        """A late reading: refold the series from the reading before it, out of the raw readings."""
        conn = self.conn
        writes.flush(conn)  # the database must hold the group's runs so far before they are refolded
        purged = self._meta_int("readings_purged_before")  # `since` is not older (see _within_retention)
        # A late reading stored from before the purge is no anchor: the runs after it came from readings
        # that are gone.
        previous = self._previous_ts(series_id, since, -2**62 if purged is None else purged)
        anchor = since if previous is None else previous
        conn.execute("DELETE FROM intervals WHERE series_id = ? AND start >= ?", (series_id, anchor))
        tail = self._last_run(series_id)
        if tail is not None and tail.end > anchor:
            tail.end, tail.last_ts = anchor, min(tail.last_ts, anchor)
        replay = conn.execute(
            CHUNKS + "SELECT ts, seq, status, interval_s FROM readings WHERE ts / 900000 IN chunk AND series_id = ? "
            "AND ts >= ? UNION ALL SELECT d.cut_at, 0, 'unknown', 0.0 FROM dropped d JOIN series s "
            "ON s.agent_id = d.agent_id WHERE s.id = ? AND d.cut_at >= ? ORDER BY 1, 2",
            # (no chunk holds readings from `anchor` on: chunk 0 alone, which holds none either)
            (*(chunks(conn, anchor, 2**62) or (0, -1)), series_id, anchor, series_id, anchor)).fetchall()
        self._write_fold(series_id, tail, [(ts, status, hold_ms(interval)) for ts, _, status, interval in replay],
                         writes)

    def _previous_ts(self, series_id: int, before: int, floor: int) -> int | None:
        """The time of the series' newest reading before `before` and not before `floor`."""
        span = chunks(self.conn, floor, before)
        if span is None:
            return None
        low, high = span
        while high >= low:  # a day of chunks a query, newest first
            start = max(low, high - DAY_MS // CHUNK_MS + 1)
            found = self.conn.execute(CHUNKS + "SELECT MAX(ts) FROM readings WHERE ts / 900000 IN chunk AND series_id = ? "
                                      "AND ts < ? AND ts >= ?", (start, high, series_id, before, floor)).fetchone()[0]
            if found is not None:
                return int(found)
            high = start - 1
        return None

    def _tail(self, series_id: int) -> Run | None:
        if series_id not in self._tails:
            self._tails[series_id] = self._last_run(series_id)
        return self._tails[series_id]

    def _last_run(self, series_id: int) -> Run | None:
        row = self.conn.execute("SELECT start, end, status, last_ts FROM intervals WHERE series_id = ? "
                                "ORDER BY start DESC LIMIT 1", (series_id,)).fetchone()
        return None if row is None else Run(*row)

    def _bucket(self, series_id: int, bucket: int, writes: _Writes) -> _Bucket:
        """The rollup bucket: the group's, the series' newest (cached), a new one, or the stored one."""
        cached = self._rollups.get(series_id)
        if cached is not None and cached.bucket == bucket:
            writes.rollups[(series_id, bucket)] = cached
            return cached
        found = writes.rollups.get((series_id, bucket))
        if found is not None:
            return found
        newest = self._newest.get(series_id)
        if newest is None:
            newest = self.conn.execute("SELECT COALESCE(MAX(bucket), -1) FROM rollups WHERE series_id = ?",
                                       (series_id,)).fetchone()[0]
        found = _Bucket(series_id, bucket)
        if bucket > newest:
            self._newest[series_id] = bucket  # later than anything stored: a fresh bucket
        else:
            self._newest[series_id] = newest
            row = self.conn.execute("SELECT latency_count, histogram, stats FROM rollups WHERE series_id = ? "
                                    "AND bucket = ?", (series_id, bucket)).fetchone()
            if row is not None:
                found.count, found.histogram, found.stats = row[0], sketch.unpack(row[1]), json.loads(row[2])
        if cached is None or bucket >= cached.bucket:
            self._rollups[series_id] = found
        writes.rollups[(series_id, bucket)] = found
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

    def freeze(self, contract: str, period: str, rules_version: str, evidence_id: int, chain_head: str,
               figures: str) -> bool:
        """Keep a closed period's figures; the first freeze stands (False when one already did)."""
        with self._transaction():
            return bool(self.conn.execute(
                "INSERT OR IGNORE INTO frozen_reports VALUES (?, ?, ?, ?, ?, ?, ?)",
                (contract, period, rules_version, evidence_id, chain_head, figures, now_ms())).rowcount)

    def compact(self, before: int, max_days: int | None = None) -> int:
        """Merge each whole UTC day before `before` of every series' rollups into one daily row, and
        each UTC month whose days are all merged into one monthly row; days a late reading made
        stale are merged again (with their month). At most `max_days` new days a call. Return the
        days and stale series-days done (0: nothing left to do)."""
        done_count = 0
        with self._transaction():
            done = self._meta_int("rollups_compacted_before")
            if done is None:
                oldest = self.conn.execute("SELECT MIN(bucket) FROM rollups").fetchone()[0]
                done = before - before % DAY_MS if oldest is None else oldest - oldest % DAY_MS
            days = range(done, before - before % DAY_MS, DAY_MS)[:max_days]
            for day in days:
                self._merge_hours(day, None)
                self._merge(day, None, "rollups", "bucket", "daily_rollups", DAY_MS)
                if month_start(day + DAY_MS) == day + DAY_MS:  # the month's last day: the month is whole
                    first = month_start(day)
                    self._merge(first, None, "daily_rollups", "day", "monthly_rollups", day + DAY_MS - first)
                done_count += 1
            watermark = days[-1] + DAY_MS if days else done
            stale = self.conn.execute("SELECT series_id, day FROM stale_days").fetchall()
            for series_id, day in stale:
                self._merge_hours(day, series_id)
                self._merge(day, series_id, "rollups", "bucket", "daily_rollups", DAY_MS)
                done_count += 1
            for series_id, first in {(series_id, month_start(day)) for series_id, day in stale}:
                following = month_start(first + 32 * DAY_MS)
                if following <= watermark:
                    self._merge(first, series_id, "daily_rollups", "day", "monthly_rollups", following - first)
            self.conn.execute("DELETE FROM stale_days")
            self._set_meta("rollups_compacted_before", watermark)
        return done_count

    def _merge_hours(self, day: int, series_id: int | None) -> None:
        for hour in range(day, day + DAY_MS, HOUR_MS):
            self._merge(hour, series_id, "rollups", "bucket", "hourly_rollups", HOUR_MS)

    def _merge(self, start: int, series_id: int | None, source: str, column: str, target: str, width: int) -> None:
        """One row in `target` per series for `[start, start + width)` of `source` (one series or all)."""
        merged: dict[int, tuple[int, dict[int, int], dict[str, list[float | int]]]] = {}
        only, args = ("AND series_id = ?", (series_id,)) if series_id is not None else ("", ())
        for series, count, blob, stats in self.conn.execute(
                f"SELECT series_id, latency_count, histogram, stats FROM {source} WHERE {column} >= ? "
                f"AND {column} < ? {only}", (start, start + width, *args)):
            total, histogram, metrics = merged.get(series, (0, {}, {}))
            for key, n in sketch.unpack(blob).items():
                histogram[key] = histogram.get(key, 0) + n
            merged[series] = (total + count, histogram, merge_stats(metrics, json.loads(stats)))
        self.conn.executemany(f"INSERT OR REPLACE INTO {target} VALUES (?, ?, ?, ?, ?)",
                              [(series, start, count, sketch.pack(histogram), _compact(metrics))
                               for series, (count, histogram, metrics) in merged.items()])

    # --- alerting: decided state and the outbox ------------------------------------------------

    def record_decisions(self, states: Mapping[str, Any], messages: Sequence[Message], now: int,
                         silent: tuple[str, int | None] | None = None) -> list[int]:
        """In one transaction: the new alert states (None deletes one), an agent's silence (name,
        since or None) when given, and the messages they cause (a message whose idempotency key is
        already in the outbox is not added again). Return the ids of the messages added."""
        added = []
        with self._transaction():
            if silent is not None:
                self.conn.execute("UPDATE agents SET silent_since = ? WHERE name = ?", (silent[1], silent[0]))
            for key, value in states.items():
                if value is None:
                    self.conn.execute("DELETE FROM alert_state WHERE key = ?", (key,))
                else:
                    self.conn.execute("INSERT OR REPLACE INTO alert_state VALUES (?, ?, ?)",
                                      (key, json.dumps(value, sort_keys=True), now))
            for m in messages:
                cursor = self.conn.execute(
                    "INSERT OR IGNORE INTO outbox (idempotency_key, event, contract, party, url_hash, url_shown, title, "
                    "body, body_format, attachments, created_at, queued_at, status, next_attempt_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                    (m.key, m.event, m.contract, m.party, m.url_hash, m.url_shown, m.title, m.body, m.body_format,
                     m.attachments, now, now, now))
                if cursor.rowcount:
                    assert cursor.lastrowid is not None
                    added.append(cursor.lastrowid)
        return added

    def record_attempt(self, message_id: int, now: int, error: str | None, next_attempt_at: int | None) -> None:
        """A delivery attempt: sent when `error` is None; else retried at `next_attempt_at`, or dead
        when that is None. A message already sent stays sent."""
        with self._transaction():
            self.conn.execute("INSERT INTO outbox_attempts VALUES (?, ?, ?, ?)",
                              (message_id, now, int(error is None), error))
            if error is None:
                self.conn.execute("UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1, "
                                  "last_error = NULL WHERE id = ? AND status != 'sent'", (now, message_id))
            else:
                self.conn.execute(
                    "UPDATE outbox SET status = ?, attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
                    "WHERE id = ? AND status = 'pending'",
                    ("pending" if next_attempt_at is not None else "dead", error,
                     next_attempt_at if next_attempt_at is not None else now, message_id))

    def retry(self, message_id: int, now: int) -> bool:
        """Queue a dead message again (its attempts start over); False when there is no such dead one."""
        with self._transaction():
            return bool(self.conn.execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, queued_at = ?, next_attempt_at = ? "
                "WHERE id = ? AND status = 'dead'", (now, now, message_id)).rowcount)

    def set_silent(self, name: str, since: int | None) -> None:
        with self._transaction():
            self.conn.execute("UPDATE agents SET silent_since = ? WHERE name = ?", (since, name))

    def purge(self, readings_before: int, history_before: int, limit: int = 20_000) -> int:
        """Delete raw readings and history past retention, a bounded slice at a time; return rows deleted."""
        deleted = 0
        with self._transaction():
            # Set first, and even for a slice cut short: readings before it may be gone from now on, so
            # late readings before it must leave intervals alone. It never moves back.
            purged = self._meta_int("readings_purged_before")
            self._set_meta("readings_purged_before", readings_before if purged is None else max(purged, readings_before))
            # History goes by what it covers: a run that ends by the cutoff. Rollups go a whole UTC month
            # at a time, every level of it: a merged row answers for the time after the cutoff only less
            # its parts before it, which must be there to take away (and a late reading in a kept month
            # must find its day's stale mark there, for compaction to merge the month again).
            month = month_start(history_before)
            ends = [("intervals", "end", history_before), ("rollups", "bucket", month), ("hourly_rollups", "hour", month),
                    ("daily_rollups", "day", month), ("stale_days", "day", month), ("monthly_rollups", "month", month)]
            deleted += self.conn.execute(
                "DELETE FROM readings WHERE (agent_id, seq) IN (SELECT agent_id, seq FROM readings "
                "WHERE ts / 900000 <= ? AND ts < ? LIMIT ?)", (chunk_of(readings_before), readings_before, limit)).rowcount
            for (series_id,) in self.conn.execute("SELECT id FROM series").fetchall():
                if deleted >= limit:
                    break
                for table, column, before in ends:
                    deleted += self.conn.execute(f"DELETE FROM {table} WHERE series_id = ? AND {column} < ?",
                                                 (series_id, before)).rowcount
        with self._transaction():  # delivered alerts past history retention (pending and dead ones stay)
            self.conn.execute("DELETE FROM outbox_attempts WHERE outbox_id IN (SELECT id FROM outbox WHERE "
                              "status = 'sent' AND sent_at < ? LIMIT ?)", (history_before, limit))
            deleted += self.conn.execute("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status = 'sent' "
                                         "AND sent_at < ? LIMIT ?)", (history_before, limit)).rowcount
        if deleted:
            self._forget()  # cached tails and buckets may be among what was deleted
        return deleted

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE .. COMMIT; on any failure `_abandon`. No data_version read after the commit:
        another writer may commit right after us, and our own commits never change it, so the value
        `_check_foreign_writes` read inside the transaction stays right."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self._check_foreign_writes()
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            self._abandon()
            raise

    def _meta_int(self, key: str) -> int | None:
        return _meta_int(self.conn, key)

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
        self._rollups.clear()
        self._newest.clear()


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

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """One read transaction: every statement inside sees the same committed state, whatever the
        writer commits meanwhile (WAL)."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

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

    def replayed(self, since: int) -> Iterator[tuple[str, str, list[tuple[int, str, float]]]]:
        """Each check's raw readings taken from `since` on, with the cuts of its agent's dropped
        ranges among them, as (agent, check, [(ts, status, interval_s), ...]) in (ts, seq) order:
        what its intervals are folded from (a cut is an unknown reading that holds for no time)."""
        names = {series_id: (agent, check) for series_id, agent, check in self.conn.execute(
            "SELECT s.id, a.name, s.check_id FROM series s JOIN agents a ON a.id = s.agent_id")}
        cuts: dict[int, list[int]] = {}
        for agent_id, at in self.conn.execute("SELECT agent_id, cut_at FROM dropped WHERE cut_at >= ?", (since,)):
            cuts.setdefault(agent_id, []).append(at)
        series_id, agent_id = None, None
        rows: list[tuple[int, str, float]] = []
        for sid, aid, ts, status, interval_s in self.conn.execute(
                "SELECT series_id, agent_id, ts, status, interval_s FROM readings WHERE ts >= ? "
                "ORDER BY series_id, ts, seq", (since,)):
            if sid != series_id:
                if series_id is not None:
                    yield self._with_cuts(names[series_id], rows, cuts.get(agent_id, []))
                series_id, agent_id, rows = sid, aid, []
            rows.append((ts, status, interval_s))
        if series_id is not None:
            yield self._with_cuts(names[series_id], rows, cuts.get(agent_id, []))

    @staticmethod
    def _with_cuts(name: tuple[str, str], rows: list[tuple[int, str, float]],
                   cuts: list[int]) -> tuple[str, str, list[tuple[int, str, float]]]:
        agent, check = name
        first = rows[0][0]
        # a cut goes before the readings of its instant (its seq is 0), and a sort keeps equal keys in order
        merged = sorted([(at, UNKNOWN, 0.0) for at in cuts if at >= first] + rows, key=lambda r: r[0])
        return agent, check, merged

    def readings(self, agent: str | None = None) -> Iterator[tuple[Any, ...]]:
        """(agent, seq, check, ts, status, interval_s, latency_ms, metrics, error) in (agent, seq) order;
        the metrics (JSON text, or None) come from the evidence body each reading arrived in."""
        where, args = ("WHERE a.name = ?", (agent,)) if agent else ("", ())
        bodies: dict[int, dict[int, Any]] = {}
        for row in self.conn.execute(
                "SELECT a.name, r.seq, s.check_id, r.ts, r.status, r.interval_s, r.latency_ms, r.error, "
                "r.evidence_id FROM readings r JOIN series s ON s.id = r.series_id "
                f"JOIN agents a ON a.id = r.agent_id {where} ORDER BY a.name, r.seq", args):
            evidence_id = row[8]
            if evidence_id not in bodies:
                if len(bodies) > 64:
                    bodies.clear()
                bodies[evidence_id] = self._metrics_of(evidence_id)
            metrics = bodies[evidence_id].get(row[1])
            yield (*row[:7], canonical_json(metrics).decode() if metrics else None, row[7])

    def readings_of(self, agent: str, first: int, last: int, evidence_id: int) -> list[tuple[Any, ...]]:
        """(seq, check's agent, check, ts, status, interval_s, latency_ms, error) of the readings a
        batch brought, its seqs being within [first, last]."""
        return self.conn.execute(
            "SELECT r.seq, o.name, s.check_id, r.ts, r.status, r.interval_s, r.latency_ms, r.error FROM readings r "
            "JOIN series s ON s.id = r.series_id JOIN agents a ON a.id = r.agent_id JOIN agents o ON o.id = s.agent_id "
            "WHERE a.name = ? AND r.seq BETWEEN ? AND ? AND r.evidence_id = ? ORDER BY r.seq",
            (agent, first, last, evidence_id)).fetchall()

    def readings_per_batch(self) -> dict[int, int]:
        """How many stored readings each evidence id holds (every stored reading names one)."""
        return dict(self.conn.execute("SELECT evidence_id, COUNT(*) FROM readings GROUP BY evidence_id"))

    def stored_seqs(self, agent: str, seqs: Sequence[int]) -> set[int]:
        """Which of these seqs of the agent are stored, under whichever batch."""
        return set(self.stored_readings(agent, seqs))

    def stored_readings(self, agent: str, seqs: Sequence[int]) -> dict[int, tuple[Any, ...]]:
        """The stored readings of these seqs of the agent: seq -> (check, ts, status, interval_s,
        latency_ms, error)."""
        found: dict[int, tuple[Any, ...]] = {}
        for part in (seqs[i:i + 500] for i in range(0, len(seqs), 500)):
            for seq, *reading in self.conn.execute(
                    f"SELECT r.seq, s.check_id, r.ts, r.status, r.interval_s, r.latency_ms, r.error FROM readings r "
                    f"JOIN agents a ON a.id = r.agent_id JOIN series s ON s.id = r.series_id WHERE a.name = ? "
                    f"AND r.seq IN ({', '.join('?' * len(part))})", (agent, *part)):
                found[seq] = tuple(reading)
        return found

    def readings_purged_before(self) -> int | None:
        """Raw readings taken before this instant may have been deleted (retention)."""
        return self._meta_int("readings_purged_before")

    def _metrics_of(self, evidence_id: int) -> dict[int, Any]:
        body = self.conn.execute("SELECT body FROM evidence WHERE id = ?", (evidence_id,)).fetchone()[0]
        return {item["seq"]: item.get("metrics") for item in json.loads(zlib.decompress(body))["readings"]}

    def latency(self, agent: str, check: str, start: int, end: int) -> tuple[int, dict[int, int]]:
        rows = self._rollups(agent, check, start, end, "latency_count, histogram")
        return sum(r[0] for r in rows), sketch.merge(sketch.unpack(r[1]) for r in rows)

    def metric_stats(self, agent: str, check: str, start: int, end: int) -> dict[str, list[float | int]]:
        total: dict[str, list[float | int]] = {}
        for (text,) in self._rollups(agent, check, start, end, "stats"):
            merge_stats(total, json.loads(text))
        return total

    def _rollups(self, agent: str, check: str, start: int, end: int, columns: str) -> list[tuple[Any, ...]]:
        """`columns` of the check's rollup buckets starting in [start, end)."""
        return self.conn.execute(
            f"SELECT {columns} FROM rollups r JOIN series s ON s.id = r.series_id "
            "JOIN agents a ON a.id = s.agent_id WHERE a.name = ? AND s.check_id = ? AND r.bucket >= ? "
            "AND r.bucket < ?", (agent, check, start, end)).fetchall()

    def alert_states(self, prefix: str = "") -> dict[str, Any]:
        return {key: json.loads(value) for key, value in self.conn.execute(
            "SELECT key, value FROM alert_state WHERE key >= ? AND key < ? ORDER BY key", (prefix, prefix + "\uffff"))}

    def outbox(self, status: str | None = None, limit: int = 1000) -> list[OutboxRow]:
        """Outbox messages, newest first; only those in `status` when given."""
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        return [OutboxRow(*row) for row in self.conn.execute(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox {where} ORDER BY id DESC LIMIT ?", (*args, limit))]

    def message(self, message_id: int) -> OutboxRow | None:
        row = self.conn.execute(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?", (message_id,)).fetchone()
        return None if row is None else OutboxRow(*row)

    def due(self, now: int, limit: int = 100, skip: Sequence[str] = ()) -> list[OutboxRow]:
        """Pending messages whose next attempt is due, oldest first, but those to the URL hashes in
        `skip`, and those decided after a message to the same URL that waits for its retry: a URL
        gets its messages in the order they were decided (an outage before its recovery)."""
        return [OutboxRow(*row) for row in self.conn.execute(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox o WHERE status = 'pending' AND next_attempt_at <= ? "
            f"AND url_hash NOT IN ({','.join('?' * len(skip))}) AND NOT EXISTS (SELECT 1 FROM outbox p "
            "WHERE p.url_hash = o.url_hash AND p.status = 'pending' AND p.id < o.id AND p.next_attempt_at > ?) "
            "ORDER BY next_attempt_at, id LIMIT ?", (now, *skip, now, limit))]

    def next_due(self, skip: Sequence[str] = ()) -> int | None:
        """When the next message may go: its URL's oldest pending message's next attempt (the others
        to that URL follow it), the earliest over the URLs not in `skip`."""
        row = self.conn.execute(
            "SELECT MIN(next_attempt_at) FROM outbox o WHERE status = 'pending' "
            f"AND url_hash NOT IN ({','.join('?' * len(skip))}) AND NOT EXISTS (SELECT 1 FROM outbox p "
            "WHERE p.url_hash = o.url_hash AND p.status = 'pending' AND p.id < o.id)", tuple(skip)).fetchone()
        return None if row[0] is None else int(row[0])

    def outbox_counts(self) -> dict[str, int]:
        return {status: n for status, n in self.conn.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status")}

    def attempts(self, message_id: int) -> list[tuple[int, bool, str | None]]:
        return [(at, bool(ok), error) for at, ok, error in self.conn.execute(
            "SELECT at, ok, error FROM outbox_attempts WHERE outbox_id = ? ORDER BY at", (message_id,))]

    def last_errors(self, checks: Sequence[str]) -> list[tuple[str, str, int, str | None]]:
        """(agent, check, ts, error) of each series' newest down reading among these checks."""
        found = []
        for series_id, agent, check in self.conn.execute(
                "SELECT s.id, a.name, s.check_id FROM series s JOIN agents a ON a.id = s.agent_id "
                f"WHERE s.check_id IN ({', '.join('?' * len(checks))})", tuple(checks)).fetchall():
            row = self.conn.execute("SELECT ts, error FROM readings WHERE series_id = ? AND status = 'down' "
                                    "ORDER BY ts DESC LIMIT 1", (series_id,)).fetchone()
            if row is not None:
                found.append((agent, check, row[0], row[1]))
        return sorted(found, key=lambda f: -f[2])

    def recent_errors(self, checks: Sequence[str], limit: int = 20) -> list[tuple[str, str, int, str | None]]:
        """(agent, check, ts, error) of the newest down readings of these checks, newest first."""
        return [(agent, check, ts, error) for agent, check, ts, error in self.conn.execute(
            "SELECT a.name, s.check_id, r.ts, r.error FROM readings r JOIN series s ON s.id = r.series_id "
            f"JOIN agents a ON a.id = s.agent_id WHERE s.check_id IN ({', '.join('?' * len(checks))}) "
            "AND r.status = 'down' ORDER BY r.ts DESC LIMIT ?", (*checks, limit))]

    def latest_stats(self, checks: Sequence[str]) -> list[tuple[str, str, dict[str, list[float | int]]]]:
        """(agent, check, metric stats) of each series' newest rollup bucket among these checks."""
        return [(agent, check, json.loads(stats)) for agent, check, stats in self.conn.execute(
            "SELECT a.name, s.check_id, r.stats FROM series s JOIN agents a ON a.id = s.agent_id "
            "JOIN rollups r ON r.series_id = s.id AND r.bucket = (SELECT MAX(bucket) FROM rollups WHERE series_id = s.id) "
            f"WHERE s.check_id IN ({', '.join('?' * len(checks))})", tuple(checks))]

    def runs_for(self, checks: Sequence[str], start: int, end: int) -> dict[tuple[str, str], list[Run]]:
        """Every agent's runs of these checks that overlap `[start, end)`, keyed (agent, check)."""
        found: dict[tuple[str, str], list[Run]] = {}
        marks = ", ".join("?" * len(checks))
        for agent, check, run_start, run_end, status, last_ts in self.conn.execute(
                "SELECT a.name, s.check_id, i.start, i.end, i.status, i.last_ts FROM series s "
                "JOIN agents a ON a.id = s.agent_id JOIN intervals i ON i.series_id = s.id "
                f"WHERE s.check_id IN ({marks}) AND i.end > ? AND i.start < ? ORDER BY i.series_id, i.start",
                (*checks, start, end)):
            found.setdefault((agent, check), []).append(Run(run_start, run_end, status, last_ts))
        return found

    def latency_in(self, checks: Sequence[str], spans: Sequence[tuple[int, int]]) -> LatencyFound:
        """Latency of the up readings of these checks (all agents) whose time lies in `spans`
        (sorted, disjoint), exactly as the raw readings would give it: merged monthly and daily
        rows, 15-minute rows, and raw readings where a span cuts a bucket, while they are kept
        (`unseen_ms`: such edge time whose readings are purged)."""
        with self._snapshot():  # the merged rows and the raw readings they are cut with, of one state
            return self._latency_in(checks, spans)

    def _latency_in(self, checks: Sequence[str], spans: Sequence[tuple[int, int]]) -> LatencyFound:
        series = self._series_of(checks)
        found = LatencyFound({}, 0, 0)
        if not series or not spans:
            return found
        marks = ", ".join("?" * len(series))
        compacted = self._meta_int("rollups_compacted_before")
        stale = {day for (day,) in self.conn.execute(
            f"SELECT DISTINCT day FROM stale_days WHERE series_id IN ({marks})", series)}
        purged = self._meta_int("readings_purged_before")
        plan = plan_latency(spans, -2**62 if compacted is None else compacted, stale,
                            -2**62 if purged is None else purged)
        for rows, sign in ((plan.add, 1), (plan.subtract, -1)):
            for table, lo, hi in rows:
                column = LEVEL_COLUMN[table]
                self._add(found, f"SELECT histogram FROM {table} WHERE series_id IN ({marks}) AND {column} >= ? "
                          f"AND {column} < ? AND latency_count > 0", (*series, lo, hi), sign)
        for pieces, sign in ((plan.raw, 1), (plan.raw_subtract, -1)):
            for lo, hi in pieces:
                values, unseen = self._raw_latencies(series, lo, hi, purged)
                found.unseen_ms += unseen
                for value in values:
                    key = sketch.bucket(value)
                    found.histogram[key] = found.histogram.get(key, 0) + sign
        if any(n < 0 for n in found.histogram.values()):
            raise RuntimeError("merged rollups disagree with their 15-minute buckets; run a compaction")
        found.histogram = {key: n for key, n in found.histogram.items() if n}
        return found

    def latency_values(self, checks: Sequence[str], spans: Sequence[tuple[int, int]]) -> tuple[list[float], int]:
        """The raw latencies of the up readings of these checks in `spans`, and how much of the spans
        is before the purge (no raw readings left there)."""
        with self._snapshot():
            return self._latency_values(checks, spans)

    def _latency_values(self, checks: Sequence[str], spans: Sequence[tuple[int, int]]) -> tuple[list[float], int]:
        series = self._series_of(checks)
        purged = self._meta_int("readings_purged_before")
        values: list[float] = []
        unseen = 0
        for lo, hi in spans:
            found, unseen_here = self._raw_latencies(series, lo, hi, purged)
            values += found
            unseen += unseen_here
        return values, unseen

    def _series_of(self, checks: Sequence[str]) -> list[int]:
        """The series ids of these checks, every agent's."""
        return [row[0] for row in self.conn.execute(
            f"SELECT id FROM series WHERE check_id IN ({', '.join('?' * len(checks))})", tuple(checks))]

    def _raw_latencies(self, series: Sequence[int], start: int, end: int, purged: int | None) -> tuple[list[float], int]:
        """The latencies of these series' up readings in [start, end), and how much of it lies before
        the purge `purged` (its readings are gone)."""
        unseen = 0
        if purged is not None and start < purged:
            unseen, start = min(end, purged) - start, max(start, purged)
        span = chunks(self.conn, start, end)
        if not series or span is None:
            return [], unseen
        return [value for (value,) in self.conn.execute(
            CHUNKS + f"SELECT latency_ms FROM readings WHERE ts / 900000 IN chunk AND series_id IN "
            f"({', '.join('?' * len(series))}) AND ts >= ? AND ts < ? AND status = 'up' AND latency_ms IS NOT NULL",
            (*span, *series, start, end))], unseen

    def _add(self, found: LatencyFound, query: str, args: tuple[Any, ...], sign: int) -> None:
        histogram = found.histogram
        for (blob,) in self.conn.execute(query, args):
            found.buckets += 1
            for key, n in sketch.unpack(blob).items():
                histogram[key] = histogram.get(key, 0) + sign * n

    def first_received(self) -> int | None:
        """When the first batch of the chain was received."""
        row = self.conn.execute("SELECT received_at FROM evidence ORDER BY id LIMIT 1").fetchone()
        return None if row is None else int(row[0])

    def frozen(self, contract: str, period: str) -> FrozenReport | None:
        row = self.conn.execute("SELECT rules_version, evidence_id, chain_head, figures, frozen_at "
                                "FROM frozen_reports WHERE contract = ? AND period = ?", (contract, period)).fetchone()
        return None if row is None else FrozenReport(row[0], row[1], row[2], json.loads(row[3]), row[4])

    def _meta_int(self, key: str) -> int | None:
        return _meta_int(self.conn, key)

    def dropped(self, agent: str) -> list[tuple[int, int]]:
        return [(first, last) for first, last in self.conn.execute(
            "SELECT d.first_seq, d.last_seq FROM dropped d JOIN agents a ON a.id = d.agent_id WHERE a.name = ? "
            "ORDER BY d.first_seq", (agent,))]

    def evidence(self, first_id: int = -2**62, last_id: int = 2**62) -> Iterator[EvidenceRow]:
        """Stored batches in chain order, from position `first_id` to `last_id` (see evidence_span)."""
        rows = self.conn.execute(
            "SELECT e.id, a.name, e.batch, e.kind, e.path, e.sent, e.received_at, e.body, e.body_sha256, "
            "e.signature, e.public_key, e.hash FROM evidence e JOIN agents a ON a.id = e.agent_id "
            "WHERE e.id >= ? AND e.id <= ? ORDER BY e.id", (first_id, last_id))
        for row in rows:
            yield EvidenceRow(row[0], row[1], row[2], row[3], row[4], row[5], row[6], zlib.decompress(row[7]),
                              bytes(row[8]), None if row[9] is None else bytes(row[9]),
                              None if row[10] is None else bytes(row[10]), bytes(row[11]))

    def evidence_span(self, start: int, end: int) -> tuple[int, int] | None:
        """The chain positions of the first and last batch received in [start, end), if any."""
        first, last = self.conn.execute("SELECT MIN(id), MAX(id) FROM evidence WHERE received_at >= ? "
                                        "AND received_at < ?", (start, end)).fetchone()
        return None if first is None else (int(first), int(last))

    def evidence_span_of_readings(self, start: int, end: int) -> tuple[int, int] | None:
        """The chain positions of the first and last batch that brought a reading taken in
        [start, end), among the raw readings kept."""
        first, last = self.conn.execute(
            "SELECT MIN(evidence_id), MAX(evidence_id) FROM readings WHERE ts / 900000 >= ? AND ts / 900000 <= ? "
            "AND ts >= ? AND ts < ?", (start // 900000, (end - 1) // 900000, start, end)).fetchone()
        return None if first is None else (int(first), int(last))

    def head_before(self, instant: int) -> bytes:
        """The chain hash after the last batch received before `instant` (GENESIS before any)."""
        row = self.conn.execute("SELECT hash FROM evidence WHERE received_at < ? ORDER BY id DESC LIMIT 1",
                                (instant,)).fetchone()
        return GENESIS if row is None else bytes(row[0])

    def previous_hash(self, evidence_id: int) -> bytes:
        row = self.conn.execute("SELECT hash FROM evidence WHERE id < ? ORDER BY id DESC LIMIT 1",
                                (evidence_id,)).fetchone()
        return GENESIS if row is None else bytes(row[0])

    def count(self, table: str) -> int:
        assert table in {"readings", "evidence", "intervals", "agents", "series", "rollups", "dropped"}
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def head(self) -> tuple[int, bytes]:
        row = self.conn.execute("SELECT id, hash FROM evidence ORDER BY id DESC LIMIT 1").fetchone()
        return (0, GENESIS) if row is None else (row[0], bytes(row[1]))


def month_start(instant: int) -> int:
    """The start of the UTC calendar month holding `instant` (ms)."""
    day = dt.datetime.fromtimestamp(instant // 1000, dt.timezone.utc)
    return int(dt.datetime(day.year, day.month, 1, tzinfo=dt.timezone.utc).timestamp()) * 1000


MONTH, DAY, HOUR, BUCKET = "monthly_rollups", "daily_rollups", "hourly_rollups", "rollups"
LEVEL_COLUMN = {MONTH: "month", DAY: "day", HOUR: "hour", BUCKET: "bucket"}


@dataclass
class LatencyPlan:
    """Where the latency of some spans comes from: `(table, lo, hi)` row ranges to add and to take
    away, and raw reading time `(lo, hi)` to add and to take away (ms)."""

    add: list[tuple[str, int, int]] = field(default_factory=list)
    subtract: list[tuple[str, int, int]] = field(default_factory=list)
    raw: list[tuple[int, int]] = field(default_factory=list)
    raw_subtract: list[tuple[int, int]] = field(default_factory=list)


def plan_latency(spans: Sequence[tuple[int, int]], compacted_before: int, stale: Collection[int],
                 raw_from: int = -2**62) -> LatencyPlan:
    """Read as few rows as possible. A month or day mostly inside `spans` is its merged row (when it
    has a current one) less what of it is outside them; one mostly outside is its parts inside;
    15-minute buckets cut by a span's edge are raw readings. Merged rows exist for days before
    `compacted_before` that are not `stale` (and months all of whose days are such). Raw readings
    are kept from `raw_from` on: a merged row is taken only when the raw readings to take away from
    it are there (else what is outside the spans would count)."""
    plan = LatencyPlan()
    spans = list(spans)
    if not spans:
        return plan
    month = month_start(spans[0][0])
    while month < spans[-1][1]:
        following = month_start(month + 32 * DAY_MS)
        _cover(plan, MONTH, month, following, spans, 1, compacted_before, stale, raw_from)
        month = following
    plan.add, plan.subtract = _joined_rows(plan.add), _joined_rows(plan.subtract)
    plan.raw, plan.raw_subtract = _joined(plan.raw), _joined(plan.raw_subtract)
    return plan


def _cover(plan: LatencyPlan, level: str, lo: int, hi: int, spans: Sequence[tuple[int, int]], sign: int,
           compacted_before: int, stale: Collection[int], raw_from: int) -> None:
    inside = [(max(a, lo), min(b, hi)) for a, b in spans if a < hi and b > lo]
    covered = sum(b - a for a, b in inside)
    if covered == 0:
        return
    if level == BUCKET:
        _buckets(plan, inside, sign)
        return
    # an hour's row is as current as its day's: the day's start decides whether it is stale
    merged = hi <= compacted_before and not any(lo - lo % DAY_MS <= day < hi for day in stale)
    outside = _complement(inside, lo, hi)
    if merged and covered * 2 > hi - lo and _raw_kept(outside, raw_from):
        (plan.add if sign > 0 else plan.subtract).append((level, lo, hi))
        if not outside:
            return
        inside, sign = outside, -sign  # take away what is outside the spans
    if level == HOUR:
        _buckets(plan, inside, sign)
        return
    child, width = (DAY, DAY_MS) if level == MONTH else (HOUR, HOUR_MS)
    for start in range(lo, hi, width):
        _cover(plan, child, start, start + width, inside, sign, compacted_before, stale, raw_from)


def _raw_kept(spans: list[tuple[int, int]], raw_from: int) -> bool:
    """Whether the raw readings of the 15-minute buckets the spans' edges cut are kept."""
    return all(edge % BUCKET_MS == 0 or edge - edge % BUCKET_MS >= raw_from for span in spans for edge in span)


def _buckets(plan: LatencyPlan, inside: list[tuple[int, int]], sign: int) -> None:
    rows, raw = (plan.add, plan.raw) if sign > 0 else (plan.subtract, plan.raw_subtract)
    for lo, hi in inside:
        first, last = -(-lo // BUCKET_MS) * BUCKET_MS, hi - hi % BUCKET_MS
        if first < last:
            rows.append((BUCKET, first, last))
            raw += [(a, b) for a, b in ((lo, first), (last, hi)) if a < b]
        else:
            raw.append((lo, hi))


def _complement(spans: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    result, cursor = [], start
    for lo, hi in sorted(spans):
        if lo > cursor:
            result.append((cursor, lo))
        cursor = max(cursor, hi)
    if cursor < end:
        result.append((cursor, end))
    return result


def _joined(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    joined: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if joined and lo <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(hi, joined[-1][1]))
        else:
            joined.append((lo, hi))
    return joined


def _joined_rows(ranges: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    return [(table, lo, hi) for table in (MONTH, DAY, HOUR, BUCKET)
            for lo, hi in _joined([(lo, hi) for t, lo, hi in ranges if t == table])]


def merge_stats(total: dict[str, list[float | int]], stats: dict[str, list[float | int]]) -> dict[str, list[float | int]]:
    """Add metric stats `{name: [count, min, max, sum]}` into `total`; return it."""
    for name, (count, low, high, sum_) in stats.items():
        have = total.setdefault(name, [0, low, high, 0])
        have[0] += count
        have[1], have[2] = min(have[1], low), max(have[2], high)
        have[3] += sum_
    return total


def _meta_int(conn: sqlite3.Connection, key: str) -> int | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else int(row[0])


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)
