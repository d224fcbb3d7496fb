"""Monthly report: 1,000 checks at 60 s over 31 days, and its cost against the raw row count.

    make bench     (or: cd bench && ../.venv/bin/python report.py [--quick])

The store is filled the way ingest leaves it: raw readings (the readings table), each check's
state runs folded by `intervals.runs_of` (the store's own fold), and 15-minute rollups (latency
histograms and metric stats) compacted into daily ones by the store's compaction. Every check has a
5-minute outage a day and a 2-hour one in the month. The raw rows are written by SQLite itself (a
recursive CTE), because a month of 44.6 million readings through the HTTP ingest would take an
hour of the benchmark; the report never reads them except at the edges of partly eligible buckets.

Measured: `report.build` of October 2026 (Europe/Amsterdam, 100 services of 10 checks, weekly
maintenance, min_outage, availability and latency objectives), best of 3 runs, once with the raw
readings at 600 s (4.46 M rows) and once at 60 s (44.6 M rows: 10x the raw rows). Beside it, the
peer: Uptime Kuma v1's way, SQLite summing the month's raw rows per check (one GROUP BY).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peers import remove_database, result  # noqa: E402

from slawatch.config.contract import load_contract  # noqa: E402
from slawatch.watchdog import sketch  # noqa: E402
from slawatch.watchdog.intervals import runs_of  # noqa: E402
from slawatch.watchdog.periods import parse_period  # noqa: E402
from slawatch.watchdog.report import build  # noqa: E402
from slawatch.watchdog.store import BUCKET_MS, Reader, Store  # noqa: E402

MINUTE = 60_000
SERVICES, PER_SERVICE = 100, 10


def contract_text(services: int) -> str:
    lines = ['[contract]\nid = "bench"\nclient = "Client"\nprovider = "Provider"\ntimezone = "Europe/Amsterdam"\n'
             'fee = 10000.0\n[client]\nnotify = ["json://127.0.0.1:9/c"]\n[provider]\nnotify = ["json://127.0.0.1:9/p"]\n']
    for s in range(services):
        checks = ", ".join(f'"web-{s * PER_SERVICE + c}"' for c in range(PER_SERVICE))
        lines.append(f'[[service]]\nid = "svc-{s}"\nchecks = [{checks}]\nmin_outage = "2m"\n'
                     'objectives = [{ kind = "availability", target = 99.9 }, '
                     '{ kind = "latency", percentile = 95, max = "800ms" }]\n')
    lines.append('[[maintenance]]\nrrule = "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=0"\nduration = "2h"\n'
                 '[[credit]]\nbelow = 99.9\npercent = 10\n')
    return "".join(lines)


def fill(database: Path, checks: int, start: int, end: int, raw_step_s: int) -> dict[str, int]:
    """The month in the store: raw readings every `raw_step_s`, runs and rollups of 60 s readings."""
    store = Store(database)
    conn = store.conn
    histograms = [_histogram(v) for v in range(16)]
    minutes = (end - start) // MINUTE
    conn.execute("BEGIN")
    conn.execute("INSERT INTO agents (id, name, first_seen) VALUES (1, 'bench', 0)")
    for c in range(checks):
        series = c + 1
        conn.execute("INSERT INTO series (id, agent_id, check_id) VALUES (?, 1, ?)", (series, f"web-{c}"))
        big = (c * 37) % (minutes - 120)
        down = [(m + 7 * c) % 1440 < 5 or big <= m < big + 120 for m in range(minutes)]
        runs = runs_of((start + m * MINUTE, "down" if down[m] else "up", 60.0) for m in range(minutes))
        conn.executemany("INSERT INTO intervals VALUES (?, ?, ?, ?, ?)",
                         [(series, r.start, r.end, r.status, r.last_ts) for r in runs])
        rows = []
        for b in range(start, end, BUCKET_MS):
            first = (b - start) // MINUTE
            up = sum(1 for m in range(first, first + 15) if not down[m])
            rows.append((series, b, up, histograms[(b // BUCKET_MS + c) % 16] if up else b"",
                         json.dumps({"http.status": [15, 200, 200, 3000]})))
        conn.executemany("INSERT INTO rollups VALUES (?, ?, ?, ?, ?)", rows)
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?) "
            "INSERT INTO readings SELECT 1, ? * 10000000 + i, ?, ? + i * ?, "
            "CASE WHEN ((i * ? / 60) + 7 * ?) % 1440 < 5 THEN 'down' ELSE 'up' END, ?, 120.0, NULL, 1 FROM n",
            ((end - start) // (raw_step_s * 1000), series, series, start, raw_step_s * 1000, raw_step_s, c,
             float(raw_step_s)))
    conn.execute("COMMIT")
    compacted = store.compact(end + 86400_000)
    sizes = {"readings": _count(conn, "readings"), "intervals": _count(conn, "intervals"),
             "rollups": _count(conn, "rollups"), "daily rollups": compacted}
    store.close()
    return sizes


def _histogram(variant: int) -> bytes:
    values: sketch.Histogram = {}
    for i in range(15):
        sketch.add(values, 80 + (variant * 7 + i * 13) % 200)
    return sketch.pack(values)


def _count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def timed_report(folder: Path, database: Path, services: int) -> tuple[float, dict[str, object]]:
    (folder / "bench.toml").write_text(contract_text(services))
    contract = load_contract(folder / "bench.toml")
    assert contract is not None
    period = parse_period("2026-10", contract.timezone)
    best, result = float("inf"), {}
    for _ in range(3):
        with Reader(database) as reader:
            started = time.perf_counter()
            result = build(contract, period, reader, period.end + 2 * 86400_000)
            best = min(best, time.perf_counter() - started)
    return best, result


def peer(database: Path, start: int, end: int) -> float:
    """Uptime Kuma v1's way: sum the month's raw rows per check."""
    conn = sqlite3.connect(database)
    started = time.perf_counter()
    conn.execute("SELECT series_id, SUM(status = 'up'), COUNT(*) FROM readings WHERE ts >= ? AND ts < ? "
                 "GROUP BY series_id", (start, end)).fetchall()
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 checks instead of 1,000 (smoke)")
    args = parser.parse_args()
    services = SERVICES // 10 if args.quick else SERVICES
    checks = services * PER_SERVICE
    period = parse_period("2026-10", "Europe/Amsterdam")
    print(f"monthly report, {checks:,} checks x 60 s x 31 days (October 2026, Europe/Amsterdam, "
          f"{services} services, weekly maintenance, min_outage, availability + p95 latency objectives):")
    results: dict[int, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for step in (600, 60):
            database = folder / f"month-{step}.db"
            started = time.perf_counter()
            sizes = fill(database, checks, period.start, period.end, step)
            filled = time.perf_counter() - started
            seconds, built = timed_report(folder, database, services)
            kuma = peer(database, period.start, period.end)
            incidents = sum(len(s["incidents"]) for s in built["services"])  # type: ignore[index, union-attr]
            print(f"  raw readings every {step:>3} s ({sizes['readings']:>11,} rows): report {seconds:6.3f} s "
                  f"(target <= 1 s; {incidents:,} incidents)   peer: SQLite summing raw rows {kuma:6.3f} s   "
                  f"ratio {seconds / kuma:.2f}x   [store: {sizes['intervals']:,} runs, {sizes['rollups']:,} "
                  f"15-min rollups, {sizes['daily rollups']:,} days compacted; filled in {filled:.0f} s]")
            remove_database(database)
            results[step] = (seconds, kuma)
    for step, label in ((600, "raw readings at 600 s"), (60, "10x raw rows (60 s)")):
        seconds, kuma = results[step]
        print(result(f"monthly report, {checks:,} checks, {label}", seconds, "s", "<= 1", "SQLite summing raw rows",
                     kuma))
    print(result("monthly report time with 10x raw rows vs 1x", results[60][0] / results[600][0], "x",
                 "independent of raw rows"))


if __name__ == "__main__":
    main()
