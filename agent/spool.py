"""The agent's durable spool: every reading is committed here, with its seq, before it counts as taken.

SQLite in WAL mode with synchronous=FULL: a reading acknowledged by `append` survives a crash or
power loss. Readings leave only when the watchdog acknowledged the batch holding them, when a
bound forces the oldest out, or when a clock since set back stamped them in the future (the
watchdog would refuse them) — and then the dropped seq range is recorded and shipped, so the
watchdog reports that time as unknown instead of never hearing of it.

Blocking: call it from one thread (the agent runs it through a single-worker executor).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from slawatch.collectors.reading import Reading, format_ts, parse_ts

from .protocol import batch_body, new_batch_id

log = logging.getLogger(__name__)

RESERVE_BYTES = 4 * 2**20
CONVERT_MAX_BYTES = 64 * 2**20  # an older spool is converted at start up to this size (a few seconds)
# A reading stamped more than this after the agent's own clock was stamped by a clock that has since
# been set back. The watchdog refuses it until real time catches up (it takes nothing taken after the
# send time plus its max_clock_skew, 300 s by default), and stamping it anew would forge evidence: it is
# dropped and reported. Well under that skew, so a reading kept is taken; well over a check's run time.
FUTURE_MARGIN_S = 60.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS reading (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: a seq is never reused, even after deletes
    ts TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dropped (
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL,
    batch TEXT
);
CREATE TABLE IF NOT EXISTS batch (
    id TEXT PRIMARY KEY,
    first_seq INTEGER,
    last_seq INTEGER,
    body BLOB NOT NULL,
    created REAL NOT NULL
);
"""


class SpoolDamaged(Exception):
    """The spool file exists but SQLite cannot read it as a sound database. It was left untouched."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path, self.problems = path.absolute(), problems
        super().__init__(
            f"spool {self.path} is damaged ({'; '.join(problems)}); the agent will not start on it and has left "
            "it as it was. It may hold readings not shipped yet: move it aside (with its -wal and -shm files, if "
            f"any) and keep it for inspection (`sqlite3 {self.path} .recover` may save them), then start the "
            "agent again: it makes a new spool, whose seqs start ahead of the old one's.")


def check_spool(path: Path) -> None:
    """Raise SpoolDamaged unless the file at `path` (if any) is a sound SQLite database.

    Read-only: a damaged spool is never written to, not even by a checkpoint of its WAL on close.
    Other failures (permissions, locks) raise sqlite3.OperationalError as they are.
    """
    if not path.exists() or path.stat().st_size == 0:
        return  # a new spool
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            problems = [str(row[0]) for row in db.execute("PRAGMA quick_check(5)")]
        finally:
            db.close()
    except sqlite3.OperationalError:
        raise
    except sqlite3.DatabaseError as exc:  # not a database (SQLITE_NOTADB), malformed (SQLITE_CORRUPT)
        problems = [str(exc)]
    if problems != ["ok"]:
        raise SpoolDamaged(path, problems)


@dataclass(frozen=True)
class PendingBatch:
    """A batch formed from the spool, waiting for the watchdog's acknowledgement."""

    id: str
    body: bytes
    count: int
    first_seq: int | None
    last_seq: int | None


class Spool:
    """The spool file of one agent."""

    def __init__(self, path: str | Path, agent: str, max_age_s: float = 7 * 86400.0,
                 max_bytes: int = 2 * 1024**3, reserve_bytes: int = RESERVE_BYTES) -> None:
        self.agent, self.max_age_s, self.max_bytes = agent, max_age_s, max_bytes
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        check_spool(Path(path))
        # On a full disk even a DELETE needs room (WAL frames): this file is given up to make it.
        self._reserve, self._reserve_bytes = Path(f"{path}.reserve"), reserve_bytes
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        # Pages freed by dropping go back to the disk (see _give_back), so that a full disk makes room
        # for the reserve again; on a new file it takes effect at once, an older one is converted.
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        # The WAL is folded back every ~1 MB and then shrunk, so it never holds more than the
        # reserve below can make room for on a full disk.
        self._db.execute("PRAGMA wal_autocheckpoint=256")
        self._db.execute("PRAGMA journal_size_limit=1048576")
        self._db.executescript(SCHEMA)
        self._make_shrinkable()
        self._keep_reserve()
        if self._db.execute("SELECT 1 FROM sqlite_sequence WHERE name = 'reading'").fetchone() is None:
            with self._transaction():
                self._move_seqs_up()

    def _move_seqs_up(self) -> None:
        """Move the next seq up to epoch milliseconds × 1000 (in a transaction): a new spool starts
        there, not at 1.

        The watchdog keeps (agent, seq) unique: seqs used again would be thrown away there. A spool
        file lost and made anew would number its readings with seqs already sent; from the clock,
        it starts ahead of them (that would take 1,000 readings a millisecond). A spool put back
        from a backup or a VM snapshot is only found out when the watchdog names seqs it held for
        other readings: then it is moved up too (see acknowledge). Otherwise seqs go on one by one
        across restarts, so that a gap is always a loss."""
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'reading'").fetchone()
        seed = int(time.time() * 1000) * 1000
        if row is None:
            self._db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('reading', ?)", (seed,))
        elif row[0] < seed:
            self._db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'reading'", (seed,))

    def close(self) -> None:
        self._db.close()

    def append(self, readings: list[Reading]) -> list[Reading]:
        """Store readings in one transaction; return them with their seq. Raises if it cannot."""
        while True:
            try:
                return self._insert(readings)
            except sqlite3.OperationalError as exc:
                if "full" not in str(exc):
                    raise
                log.error("event=spool-full error=%s action=drop-oldest", exc)
                # Room first (the reserve, then the WAL folded back), so that dropping can be written;
                # whole pages must come free for new rows: drop a tenth, and never fewer than 100.
                self._release_reserve()
                self._checkpoint()
                if self._drop_oldest(max(len(readings), self.depth() // 10, 100), "spool disk full") == 0:
                    raise
                self._checkpoint()
                # The dropped pages go back to the disk, and the reserve is made again from them when
                # that leaves a quarter of it to work in: the next full disk needs it, or dropping could
                # not be written then. With less, the room is left to work in (shipping frees more).
                self._give_back()
                self._keep_reserve(room=1.25)

    def _insert(self, readings: list[Reading]) -> list[Reading]:
        stored = []
        with self._transaction():
            for reading in readings:
                # The body is stored without its seq (the row's key is the seq) to take one write.
                body = json.dumps(reading.to_json(), separators=(",", ":"))
                seq = self._db.execute("INSERT INTO reading (ts, body) VALUES (?, ?)",
                                       (format_ts(reading.ts), body)).lastrowid
                assert seq is not None
                stored.append(reading.with_seq(seq))
        return stored

    def next_batch(self, limit: int, now: dt.datetime | None = None) -> PendingBatch | None:
        """The batch to send: the one still awaiting acknowledgement, else a new one of the oldest."""
        row = self._db.execute("SELECT id, body, first_seq, last_seq FROM batch LIMIT 1").fetchone()
        if row is not None:
            count = self._db.execute("SELECT count(*) FROM reading WHERE seq BETWEEN ? AND ?",
                                     (row[2], row[3])).fetchone()[0] if row[2] is not None else 0
            return PendingBatch(row[0], row[1], count, row[2], row[3])
        self._drop_stamped_ahead(limit, now or dt.datetime.now(dt.timezone.utc))
        # As bytes: a body damaged into text that is not UTF-8 would fail the whole query, here.
        rows = self._db.execute("SELECT seq, CAST(body AS BLOB) FROM reading ORDER BY seq LIMIT ?", (limit,)).fetchall()
        readings, rows = self._readable(rows)
        dropped = self._db.execute("SELECT first_seq, last_seq FROM dropped WHERE batch IS NULL "
                                   "ORDER BY first_seq").fetchall()
        if not rows and not dropped:
            return None
        batch = PendingBatch(new_batch_id(), batch_body(self.agent, readings, dropped), len(rows),
                             rows[0][0] if rows else None, rows[-1][0] if rows else None)
        with self._transaction():
            self._db.execute("INSERT INTO batch VALUES (?, ?, ?, ?, ?)",
                             (batch.id, batch.first_seq, batch.last_seq, batch.body, time.time()))
            self._db.execute("UPDATE dropped SET batch = ? WHERE batch IS NULL", (batch.id,))
        return batch

    def acknowledge(self, batch: PendingBatch, reused: Sequence[Sequence[int]] = ()) -> int:
        """The watchdog has the batch: its readings and dropped ranges leave the spool. Those under
        `reused` seqs (ranges the watchdog held for other readings: this spool was put back from a
        snapshot) stay, numbered anew after the seqs are moved up. Return how many were."""
        renumbered = 0
        with self._transaction():
            if reused and batch.first_seq is not None and batch.last_seq is not None:
                self._move_seqs_up()  # new seqs come after the batch's: the delete below leaves them
                for first, last in reused:
                    renumbered += self._db.execute(
                        "INSERT INTO reading (ts, body) SELECT ts, body FROM reading WHERE seq BETWEEN ? AND ? "
                        "ORDER BY seq", (max(first, batch.first_seq), min(last, batch.last_seq))).rowcount
            if batch.first_seq is not None:
                self._db.execute("DELETE FROM reading WHERE seq BETWEEN ? AND ?", (batch.first_seq, batch.last_seq))
            self._db.execute("DELETE FROM dropped WHERE batch = ?", (batch.id,))
            self._db.execute("DELETE FROM batch WHERE id = ?", (batch.id,))
        return renumbered

    def abandon(self, batch: PendingBatch) -> None:
        """Forget a batch id the watchdog will never accept; its readings stay for a new batch."""
        with self._transaction():
            self._db.execute("UPDATE dropped SET batch = NULL WHERE batch = ?", (batch.id,))
            self._db.execute("DELETE FROM batch WHERE id = ?", (batch.id,))

    def abandon_if_stamped_ahead(self, batch: PendingBatch, now: dt.datetime | None = None) -> int:
        """After the watchdog refused `batch` (422): when it holds readings stamped ahead of the clock
        (see FUTURE_MARGIN_S), abandon it, so that the next batch drops them and takes the rest.
        Return how many it holds; with none, the batch stays as it was.

        A batch is protected while it awaits acknowledgement because it may have been stored; one
        the watchdog refused was not, and resending it could not succeed before real time caught up.
        """
        if batch.first_seq is None:
            return 0
        cutoff = _cutoff(now or dt.datetime.now(dt.timezone.utc))
        ahead = int(self._db.execute("SELECT count(*) FROM reading WHERE seq BETWEEN ? AND ? AND ts > ?",
                                     (batch.first_seq, batch.last_seq, cutoff)).fetchone()[0])
        if ahead:
            self.abandon(batch)
        return ahead

    def _keep_reserve(self, room: float = 2.0) -> None:
        """Have the reserve file, when the disk has room for it `room` times over."""
        if self._reserve_bytes <= 0 or self._reserve.exists():
            return
        if shutil.disk_usage(self._reserve.parent).free < room * self._reserve_bytes:
            return
        try:
            with open(self._reserve, "wb") as handle:
                os.posix_fallocate(handle.fileno(), 0, self._reserve_bytes)
        except OSError as exc:  # taken by another writer meanwhile: no reserve, tried again next time
            self._reserve.unlink(missing_ok=True)
            log.warning("event=spool-reserve-not-made error=%s", exc)

    def _make_shrinkable(self) -> None:
        """Convert a spool made before pages were given back (auto_vacuum NONE) with a VACUUM, when
        it is small (a VACUUM of a big backlog would outlast systemd's start timeout) and the disk has
        room for the copy that takes; else say so and go on as before (a later start converts it)."""
        if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
            return
        size = self.size_bytes()
        if size > CONVERT_MAX_BYTES or shutil.disk_usage(self._reserve.parent).free < 3 * size + 2 * self._reserve_bytes:
            log.warning("event=spool-not-shrinkable bytes=%d reason=%r", size, "too big to convert at start, or no "
                        "room on the disk for it: pages freed by dropping stay in the file until a later start")
            return
        self._db.execute("VACUUM")
        log.info("event=spool-converted bytes=%d", size)

    def _give_back(self) -> None:
        """Return the file's free pages to the disk, a chunk at a time, each folded back from the WAL
        before the next: the WAL never needs more room than the reserve gives it."""
        if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            return
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        while free > 0:
            try:
                self._db.execute("PRAGMA incremental_vacuum(256)").fetchall()
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError as exc:
                log.warning("event=spool-give-back-failed free_pages=%d error=%s", free, exc)
                return
            free, was = self._db.execute("PRAGMA freelist_count").fetchone()[0], free
            if free >= was:
                log.warning("event=spool-give-back-failed free_pages=%d error=%r", free, "no page came free")
                return

    def _release_reserve(self) -> None:
        if self._reserve.exists():
            self._reserve.unlink()
            log.warning("event=spool-reserve-released bytes=%d", self._reserve_bytes)

    def _checkpoint(self) -> None:
        """Fold the WAL back into the file and shrink it; on a full disk it may not fit yet."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError as exc:
            log.warning("event=spool-checkpoint-failed error=%s", exc)

    def enforce_bounds(self, now: dt.datetime | None = None) -> int:
        """Drop readings older than the age bound, then the oldest while over the size bound."""
        now = now or dt.datetime.now(dt.timezone.utc)
        cutoff = format_ts(now - dt.timedelta(seconds=self.max_age_s))
        dropped = self._drop_older(cutoff)
        # The readings held, not the file: pages that could not go back to the disk yet hold nothing.
        while self.data_bytes() > self.max_bytes and self.depth() > 0:
            count = self._drop_oldest(max(1, self.depth() // 10), "spool size bound reached")
            if count == 0:
                break
            dropped += count
        if dropped:
            self._checkpoint()
            self._give_back()
        self._keep_reserve()
        return dropped

    def _drop_older(self, cutoff: str) -> int:
        """Drop the readings stamped before `cutoff` (those of the batch awaiting acknowledgement
        excepted), one range per run of them in seq order: a clock set back may have stamped later
        readings earlier, and only those stamps decide. Read as a stream: a week's backlog may be old."""
        reason = f"older than {self.max_age_s / 86400:g} days"
        old = self._db.execute("SELECT seq FROM reading WHERE seq > ? AND ts < ? ORDER BY seq",
                               (self._protected_seq(), cutoff))
        runs: list[list[int]] = []  # [first seq, last seq, count]
        for (seq,) in old:
            if runs and (seq == runs[-1][1] + 1 or self._db.execute(
                    "SELECT 1 FROM reading WHERE seq > ? AND seq < ? LIMIT 1", (runs[-1][1], seq)).fetchone() is None):
                runs[-1][1:] = [seq, runs[-1][2] + 1]  # no reading kept between: the same range
            else:
                runs.append([seq, seq, 1])
        if not runs:
            return 0
        self._drop_ranges([(first, last, reason) for first, last, _ in runs])
        for first, last, count in runs:
            log.warning("event=spool-dropped first_seq=%d last_seq=%d count=%d reason=%r", first, last, count, reason)
        return sum(run[2] for run in runs)

    def _protected_seq(self) -> int:
        """Readings of the batch awaiting acknowledgement are never dropped: it may be delivered."""
        row = self._db.execute("SELECT max(last_seq) FROM batch").fetchone()
        return row[0] or 0

    def _drop_oldest(self, count: int, reason: str) -> int:
        protected = self._protected_seq()
        rows = self._db.execute("SELECT seq FROM reading WHERE seq > ? ORDER BY seq LIMIT ?",
                                (protected, count)).fetchall()
        if not rows:
            return 0
        first, last = rows[0][0], rows[-1][0]
        self._drop_ranges([(first, last, reason)])
        log.warning("event=spool-dropped first_seq=%d last_seq=%d count=%d reason=%r", first, last, len(rows), reason)
        return len(rows)

    def _drop_stamped_ahead(self, limit: int, now: dt.datetime) -> int:
        """Drop the readings, among the next `limit` to ship, stamped more than FUTURE_MARGIN_S after
        `now`: one dropped range per run of them in seq order. One bounded query when there are none."""
        # n numbers the rows in seq order: readings with consecutive n are neighbours in the spool, with
        # no reading kept between them, so a range of them covers nothing but dropped seqs.
        ahead = self._db.execute(
            "SELECT seq, ts, n FROM (SELECT seq, ts, row_number() OVER (ORDER BY seq) AS n FROM "
            "(SELECT seq, ts FROM reading WHERE seq > ? ORDER BY seq LIMIT ?)) WHERE ts > ? ORDER BY seq",
            (self._protected_seq(), limit, _cutoff(now))).fetchall()
        if not ahead:
            return 0
        runs = _runs(ahead, now)
        self._drop_ranges([(first, last, _stamped_ahead(seconds)) for first, last, _, seconds in runs])
        for first, last, count, seconds in runs:
            log.error("event=spool-dropped first_seq=%d last_seq=%d count=%d ahead_s=%.0f reason=%r",
                      first, last, count, seconds, _stamped_ahead(seconds))
        return len(ahead)

    def _readable(self, rows: list[tuple[int, bytes]]) -> tuple[list[Reading], list[tuple[int, bytes]]]:
        """The readings of these spool rows, and the rows they came from. A row that cannot be read
        back (damaged on disk, or holding what a reading may not) would stop every batch after it: it
        is dropped, one range per run of such rows in seq order, and shipped as dropped."""
        readings: list[Reading] = []
        kept: list[tuple[int, bytes]] = []
        damaged: list[tuple[int, int, str]] = []  # (first seq, last seq, why) of runs of unreadable rows
        run_open = False  # the row before this one was unreadable too: one range
        for seq, body in rows:
            try:
                readings.append(Reading.from_json(json.loads(body) | {"seq": seq}))
            except (ValueError, TypeError, RecursionError) as exc:
                if run_open:
                    damaged[-1] = (damaged[-1][0], seq, damaged[-1][2])
                else:
                    damaged.append((seq, seq, f"unreadable in the spool ({type(exc).__name__}: {str(exc)[:200]})"))
                run_open = True
                continue
            kept.append((seq, body))
            run_open = False
        if damaged:
            self._drop_ranges(damaged)
            for first, last, reason in damaged:
                log.error("event=spool-dropped first_seq=%d last_seq=%d reason=%r", first, last, reason)
        return readings, kept

    def _drop_ranges(self, ranges: Sequence[tuple[int, int, str]]) -> None:
        """Delete the readings of each (first, last, reason) range and record the range, to ship as
        dropped; all in one transaction."""
        at = format_ts(dt.datetime.now(dt.timezone.utc))
        with self._transaction():
            for first, last, reason in ranges:
                self._db.execute("DELETE FROM reading WHERE seq BETWEEN ? AND ?", (first, last))
                self._db.execute("INSERT INTO dropped (first_seq, last_seq, reason, at) VALUES (?, ?, ?, ?)",
                                 (first, last, reason, at))

    def holds_at_least(self, count: int) -> bool:
        """Whether `count` readings wait (cheap: walks at most `count` keys, unlike count(*))."""
        row = self._db.execute("SELECT 1 FROM reading ORDER BY seq LIMIT 1 OFFSET ?", (max(0, count - 1),)).fetchone()
        return row is not None

    def depth(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM reading").fetchone()[0])

    def oldest_age_s(self, now: dt.datetime | None = None) -> float:
        row = self._db.execute("SELECT ts FROM reading ORDER BY seq LIMIT 1").fetchone()
        if row is None:
            return 0.0
        now = now or dt.datetime.now(dt.timezone.utc)
        return max(0.0, (now - parse_ts(row[0])).total_seconds())

    def size_bytes(self) -> int:
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return int(pages * size)

    def data_bytes(self) -> int:
        """The file's pages in use: its size less the free pages not given back to the disk yet."""
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        return self.size_bytes() - int(free * self._db.execute("PRAGMA page_size").fetchone()[0])

    def last_seq(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'reading'").fetchone()
        return int(row[0]) if row else 0

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


def _cutoff(now: dt.datetime) -> str:
    """The latest stamp kept, as the spool's text, for `ts > cutoff` in SQL.

    In whole seconds: format_ts leaves out zero milliseconds, and only then does the text order of
    stamps follow their time order (`ts > cutoff` then means at least a second past it)."""
    return format_ts((now + dt.timedelta(seconds=FUTURE_MARGIN_S)).replace(microsecond=0))


def _runs(ahead: list[tuple[int, str, int]], now: dt.datetime) -> list[tuple[int, int, int, float]]:
    """Rows (seq, ts, row number) as runs of consecutive row numbers: (first seq, last seq, count,
    the most seconds ahead of `now`)."""
    runs: list[tuple[int, int, int, float]] = []
    for i, (seq, ts, n) in enumerate(ahead):
        seconds = (parse_ts(ts) - now).total_seconds()
        if i > 0 and n == ahead[i - 1][2] + 1:
            first, _, count, most = runs[-1]
            runs[-1] = (first, seq, count + 1, max(most, seconds))
        else:
            runs.append((seq, seq, 1, seconds))
    return runs


def _stamped_ahead(seconds: float) -> str:
    return f"stamped up to {seconds:.0f} s in the future: the clock was set back"


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if kind is None:
            self._db.execute("COMMIT")
        elif self._db.in_transaction:  # SQLite may have rolled back already (a full disk does)
            self._db.execute("ROLLBACK")
