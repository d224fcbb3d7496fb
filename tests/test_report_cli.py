"""`slawatch-watchdog report` on a fixture imported with `slawatch-watchdog import`: JSON, CSV, HTML,
a running period, freezing and --recompute."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import subprocess
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from slawatch.watchdog.periods import period_at
from slawatch.watchdog.store import Reader, Row, Store, now_ms

from .conftest import free_port
from .test_store import incoming

from .watchdog_peers import WATCHDOG_BIN, write_config

AMS = ZoneInfo("Europe/Amsterdam")
P0 = dt.datetime(2026, 10, 1, tzinfo=AMS)            # 2026-09-30T22:00Z
P1 = dt.datetime(2026, 11, 1, tzinfo=AMS)            # 2026-10-31T23:00Z: 745 hours later (DST ends 25 Oct)
STEP = dt.timedelta(minutes=5)

CONTRACT = """\
[contract]
id = "shop-2026"
client = "Example Corp"
provider = "Acme Hosting"
timezone = "Europe/Amsterdam"
fee = 1000.0
currency = "EUR"

[client]
notify = ["json://127.0.0.1:9/client"]
[provider]
notify = ["json://127.0.0.1:9/provider"]

[[service]]
id = "shop"
name = "Web shop"
checks = ["web"]
min_outage = "10m"
objectives = [
  { kind = "availability", target = 99.9 },
  { kind = "latency", percentile = 95, max = "800ms" },
]

[[maintenance]]
start = "2026-10-10T02:00"
end = "2026-10-10T04:00"
note = "agreed"

[[credit]]
below = 99.9
percent = 10
[[credit]]
below = 99.0
percent = 25
"""

OUTAGE = (dt.datetime(2026, 10, 5, 12, 0, tzinfo=AMS), dt.datetime(2026, 10, 5, 13, 0, tzinfo=AMS))
BLIP = dt.datetime(2026, 10, 6, 9, 0, tzinfo=AMS)          # one down reading: 5 min < min_outage
IN_MAINTENANCE = dt.datetime(2026, 10, 10, 3, 0, tzinfo=AMS)  # down, inside the maintenance window


def watchdog(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WATCHDOG_BIN, *args], capture_output=True, text=True, timeout=120)


def utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def month_of_readings(agent: str = "ams-probe", first_seq: int = 1) -> list[str]:
    """Every 5 minutes of elapsed time across October: one 1-hour outage, a blip, maintenance downtime."""
    lines, at, seq = [], P0.astimezone(dt.timezone.utc), first_seq
    while at < P1:
        down = (OUTAGE[0] <= at < OUTAGE[1] or at == BLIP
                or IN_MAINTENANCE <= at < IN_MAINTENANCE + dt.timedelta(minutes=15))
        lines.append(json.dumps({"agent": agent, "check": "web", "seq": seq, "ts": utc(at),
                                 "status": "down" if down else "up", "interval_s": 300,
                                 "latency_ms": None if down else 120.0 + seq % 3, "metrics": {},
                                 "error": "HTTP 503" if down else None}))
        at, seq = at + STEP, seq + 1
    return lines


@pytest.fixture
def imported(tmp_path: Path) -> Path:
    config = write_config(tmp_path, agents=[("ams-probe", _key()), ("fra-probe", _key())],
                          contracts={"shop.toml": CONTRACT})
    file = tmp_path / "october.jsonl"
    file.write_text("\n".join(month_of_readings()) + "\n")
    done = watchdog("import", "-c", str(config), str(file))
    assert done.returncode == 0, done.stderr
    assert "imported 8940 readings" in done.stdout  # 745 h x 12
    return config


def _key() -> str:
    from .watchdog_peers import PUBLIC
    return PUBLIC


ELIGIBLE = 745 * 3600 - 2 * 3600   # the month minus the 2-hour maintenance window
DOWN = 3600                        # the outage; the blip is under min_outage, maintenance is not counted


def expected_service() -> dict[str, object]:
    up = ELIGIBLE - DOWN
    return {
        "id": "shop", "name": "Web shop", "eligible_s": float(ELIGIBLE), "maintenance_s": 7200.0,
        "up_s": float(up), "down_s": float(DOWN), "unknown_s": 0.0, "coverage_percent": 100.0,
        "availability_percent": round(100 * up / (up + DOWN), 3),          # 99.865
        "credit_percent": 10.0,
        "budget": {"allowed_s": round(0.001 * ELIGIBLE, 3), "spent_s": float(DOWN),
                   "remaining_s": round(0.001 * ELIGIBLE - DOWN, 3)},
        "incidents": [{"start": "2026-10-05T12:00:00+02:00", "end": "2026-10-05T13:00:00+02:00",
                       "duration_s": 3600.0, "checks": ["web"], "agents": ["ams-probe"]}],
    }


def test_report_json_of_an_imported_month(imported: Path, tmp_path: Path) -> None:
    done = watchdog("report", "-c", str(imported), "--contract", "shop-2026", "--period", "2026-10",
                    "--recompute")  # nothing frozen yet: computed (and, October being due, frozen)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    with Reader(tmp_path / "watchdog.db") as reader:
        batches, head = reader.head()
    assert {k: report[k] for k in ("contract", "period", "timezone", "start", "end", "rules_version", "currency",
                                   "credit_percent", "credit", "partial")} == {
        "contract": "shop-2026", "period": "2026-10", "timezone": "Europe/Amsterdam",
        "start": "2026-10-01T00:00:00+02:00", "end": "2026-11-01T00:00:00+01:00", "rules_version": "1",
        "currency": "EUR", "credit_percent": 10.0, "credit": 100.0, "partial": False}
    assert report["evidence"] == {"batches": batches, "head": head.hex()}
    [service] = report["services"]
    objectives = service.pop("objectives")
    assert service == expected_service()
    availability, latency = objectives
    assert availability == {"kind": "availability", "target": 99.9, "measured": 99.865, "met": False}
    assert latency["kind"] == "latency" and latency["percentile"] == 95.0 and latency["max_ms"] == 800.0
    assert latency["met"] is True and abs(latency["measured"] - 122.0) <= 0.01 * 122.0


def test_exact_latency_reads_the_raw_readings(imported: Path) -> None:
    done = watchdog("report", "-c", str(imported), "--contract", "shop-2026", "--period", "2026-10",
                    "--exact-latency")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    latency = report["services"][0]["objectives"][1]
    assert latency["measured"] == 122.0 and latency["met"] is True  # 120, 121, 122 ms in turn: p95 is 122
    assert report["latency_source"] == "raw readings (exact)" and report["frozen_at"] is None


def test_running_period_is_partial_and_budget_counts_the_whole_month(imported: Path) -> None:
    done = watchdog("report", "-c", str(imported), "--contract", "shop-2026", "--period", "2026-10",
                    "--now", "2026-10-05T12:30:00+02:00")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["partial"] is True and report["end"] == "2026-10-05T12:30:00+02:00"
    assert report["frozen_at"] is None
    [service] = report["services"]
    elapsed = 4 * 86400 + 12.5 * 3600
    assert service["eligible_s"] == elapsed and service["down_s"] == 1800.0 and service["unknown_s"] == 0.0
    assert service["budget"]["allowed_s"] == round(0.001 * ELIGIBLE, 3)
    assert service["incidents"][0]["end"] == "2026-10-05T12:30:00+02:00"


def test_csv_has_a_row_per_service_and_the_incidents(imported: Path) -> None:
    done = watchdog("report", "-c", str(imported), "--contract", "shop-2026", "--period", "2026-10",
                    "--format", "csv", "--recompute")
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    header = rows[1]
    service = dict(zip(header, rows[2]))
    assert service["id"] == "shop" and float(service["down_s"]) == DOWN and service["objectives_met"] == "false"
    assert float(service["availability_percent"]) == 99.865
    at = rows.index(["incidents"])
    assert rows[at + 2] == ["shop", "2026-10-05T12:00:00+02:00", "2026-10-05T13:00:00+02:00", "3600.0", "web",
                            "ams-probe"]


def test_html_is_a_printable_page_with_figures_and_chain_head(imported: Path, tmp_path: Path) -> None:
    done = watchdog("report", "-c", str(imported), "--contract", "shop-2026", "--period", "2026-10",
                    "--format", "html", "--recompute")
    assert done.returncode == 0, done.stderr
    page = done.stdout
    with Reader(tmp_path / "watchdog.db") as reader:
        _, head = reader.head()
    assert page.startswith("<!doctype html>") and head.hex() in page
    assert "100.00 EUR" in page and "99.865 %" in page and "missed" in page
    assert "excluded from both sides" in page and "Rules version 1" in page
    assert "2026-10-05T12:00:00+02:00" in page


def test_closed_period_is_frozen_and_recompute_shows_late_changes(imported: Path, tmp_path: Path) -> None:
    first = watchdog("report", "-c", str(imported), "--contract", "shop-2026", "--period", "2026-10")
    assert first.returncode == 0, first.stderr
    frozen = json.loads(first.stdout)
    assert frozen["frozen_at"] is not None  # October closed more than a day (the grace) ago
    # Late readings arrive: a second agent saw the shop down for two more hours.
    late = [line for line in month_of_readings("fra-probe", 1)]
    file = tmp_path / "late.jsonl"
    file.write_text("\n".join(_down_between(late, dt.datetime(2026, 10, 20, 8, 0, tzinfo=AMS),
                                            dt.datetime(2026, 10, 20, 10, 0, tzinfo=AMS))) + "\n")
    assert watchdog("import", "-c", str(imported), str(file)).returncode == 0
    again = json.loads(watchdog("report", "-c", str(imported), "--contract", "shop-2026", "--period",
                                "2026-10").stdout)
    assert again == frozen  # frozen figures do not move
    recomputed = watchdog("report", "-c", str(imported), "--contract", "shop-2026", "--period", "2026-10",
                          "--recompute")
    assert recomputed.returncode == 0
    result = json.loads(recomputed.stdout)
    assert result["services"][0]["down_s"] == DOWN + 7200
    paths = {d["path"] for d in result["differences"]}
    assert "services[0].down_s" in paths and "services[0].availability_percent" in paths
    assert "differs from the frozen figures: services[0].down_s: frozen 3600.0, recomputed 10800.0" in recomputed.stderr


def _down_between(lines: list[str], start: dt.datetime, end: dt.datetime) -> list[str]:
    out = []
    for line in lines:
        data = json.loads(line)
        at = dt.datetime.fromisoformat(data["ts"].replace("Z", "+00:00"))
        if start <= at < end:
            data.update(status="down", latency_ms=None, error="timeout")
        out.append(json.dumps(data))
    return out


def test_unknown_contract_and_bad_period_are_config_errors(imported: Path) -> None:
    missing = watchdog("report", "-c", str(imported), "--contract", "nope", "--period", "2026-10")
    assert missing.returncode == 2 and "no contract 'nope'" in missing.stderr and "shop-2026" in missing.stderr
    bad = watchdog("report", "-c", str(imported), "--contract", "shop-2026", "--period", "2026-13")
    assert bad.returncode == 2 and "expected a month like 2026-10" in bad.stderr



def test_the_daemon_freezes_the_last_closed_period(tmp_path: Path) -> None:
    """Batches received live during last month: once its grace is over, `run` freezes that month and
    sends its report (HTML, CSV attached) to both parties."""
    from .test_alerting import receiver

    port = free_port()
    hooks_context = receiver()
    hooks = hooks_context.__enter__()
    contract = CONTRACT.replace('currency = "EUR"', 'currency = "EUR"\ngrace = "1h"').replace(
        "127.0.0.1:9/", f"127.0.0.1:{hooks.port}/")
    config = write_config(tmp_path, port=port, contracts={"shop.toml": contract})
    month = period_at("month", "Europe/Amsterdam", now_ms()).preceding()
    if now_ms() < month.end + 3600_000:
        month = month.preceding()  # in the first hour of a month, last month's grace is still running
    store = Store(tmp_path / "watchdog.db")
    rows = [Row(i + 1, "web", ts, "up", 300.0, 50.0, {}, None)
            for i, ts in enumerate(range(month.start, month.end, 300_000))]
    store.store([incoming(rows, agent="ams-probe", received_at=month.start + 3600_000)])  # received live
    store.close()
    process = subprocess.Popen([WATCHDOG_BIN, "run", "-c", str(config)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        frozen = None
        deadline = time.monotonic() + 30
        while frozen is None and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
            with Reader(tmp_path / "watchdog.db") as reader:
                frozen = reader.frozen("shop-2026", month.label)
        sent = {party: hooks.wait_for(f"/{party}", 1) for party in ("client", "provider")}
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
        hooks_context.__exit__(None, None, None)
    assert frozen is not None, output
    assert f"event=period-frozen contract=shop-2026 period={month.label}" in output
    [service] = frozen.figures["services"]
    assert service["up_s"] == service["eligible_s"] and service["down_s"] == 0.0
    assert frozen.figures["evidence"]["batches"] == 1
    report = json.loads(watchdog("report", "-c", str(config), "--contract", "shop-2026", "--period",
                                 month.label).stdout)
    assert report["frozen_at"] is not None and report["services"] == frozen.figures["services"]
    for party, [message] in sent.items():
        assert message["title"] == f"SLA report shop-2026 {month.label}: credit 0.00 EUR", party
        assert frozen.chain_head in message["message"] and "<table" in message["message"]
        [attached] = message["attachments"]
        assert attached["filename"] == f"shop-2026-{month.label}.csv"
        assert base64.b64decode(attached["base64"]).decode().startswith("contract,shop-2026,period," + month.label)
