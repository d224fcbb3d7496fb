"""`slawatch-watchdog import` and `evidence verify|export` as the CLI runs them."""

from __future__ import annotations

import datetime as dt
import base64
import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from slawatch.watchdog.store import Reader, chain_hash

from .watchdog_peers import AGENT, WATCHDOG_BIN, Served, reading, serving, write_config


def watchdog(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WATCHDOG_BIN, *args], capture_output=True, text=True, timeout=60)


def jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def history(count: int, first_seq: int = 1) -> list[str]:
    return [json.dumps(reading(first_seq + i, at_s=60 * i, interval_s=60, latency_ms=10.0 + i).to_json()) for i in range(count)]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path)


def test_import_then_reimport_is_idempotent(config: Path, tmp_path: Path) -> None:
    file = jsonl(tmp_path / "history.jsonl", history(2500))
    first = watchdog("import", "-c", str(config), str(file))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"imported 2500 readings from {file} (0 already stored)"
    again = watchdog("import", "-c", str(config), str(file))
    assert again.returncode == 0, again.stderr
    assert "imported 0 readings" in again.stdout and "(2500 already stored)" in again.stdout
    with Reader(tmp_path / "watchdog.db") as reader:
        assert reader.count("readings") == 2500
        assert reader.count("evidence") == 3  # 1,000 readings per evidence record
        rows = list(reader.evidence())
        runs = reader.intervals(AGENT, "web")
        agent = next(a for a in reader.agents() if a.name == AGENT)
    assert {row.kind for row in rows} == {"import"} and all(row.signature is None for row in rows)
    assert [r.status for r in runs] == ["up"]  # 2,500 minutes, every 60 s: one run
    assert agent.last_seen is None  # history says nothing about the agent being alive now
    verified = watchdog("evidence", "verify", "-c", str(config))
    assert verified.returncode == 0
    assert verified.stdout.startswith("OK 0 signed and 3 imported batches verify, with the 2500 stored readings")


def test_an_import_stores_what_its_evidence_record_says(config: Path, tmp_path: Path) -> None:
    """A line finer than the wire form (latency to 0.1 us, time to the us): the record holds the
    wire form, so the stored reading does too, and verify finds them the same."""
    line = reading(1, at_s=0, interval_s=60, latency_ms=1.0).to_json()
    line["latency_ms"], line["ts"] = 182.4567, line["ts"].replace("Z", ".123456Z")
    imported = watchdog("import", "-c", str(config), str(jsonl(tmp_path / "fine.jsonl", [json.dumps(line)])))
    assert imported.returncode == 0, imported.stderr
    with Reader(tmp_path / "watchdog.db") as reader:
        (stored,) = list(reader.readings())
        (record,) = list(reader.evidence())
    sent = json.loads(record.body)["readings"][0]
    assert (sent["latency_ms"], sent["ts"]) == (182.457, line["ts"].replace(".123456Z", ".123Z"))
    assert 182.457 in stored and 182.4567 not in stored
    verified = watchdog("evidence", "verify", "-c", str(config))
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_bad_lines_are_named_and_nothing_is_imported(config: Path, tmp_path: Path) -> None:
    good = history(3)
    file = jsonl(tmp_path / "mixed.jsonl", [
        good[0], "{not json", good[1],
        json.dumps(json.loads(good[2]) | {"status": "sideways"}),
        "", json.dumps(json.loads(good[0]) | {"check": "other"}),
    ])
    result = watchdog("import", "-c", str(config), str(file))
    assert result.returncode == 2
    assert f"{file}:2: not JSON" in result.stderr
    assert f"{file}:4: 'status' must be one of up, down, unknown, not 'sideways'" in result.stderr
    assert f"{file}:6: agent {AGENT} seq 1 already on line 1" in result.stderr
    assert "3 bad lines; nothing imported" in result.stderr
    assert not (tmp_path / "watchdog.db").exists() or Reader(tmp_path / "watchdog.db").count("readings") == 0
    skipped = watchdog("import", "-c", str(config), "--skip-bad", str(file))
    assert skipped.returncode == 0, skipped.stderr
    assert "imported 2 readings" in skipped.stdout and "3 bad lines skipped" in skipped.stdout


def test_a_line_that_contradicts_a_stored_reading_is_a_bad_line(config: Path, tmp_path: Path) -> None:
    """An import adds readings and never changes one: a line of a stored (agent, seq) saying
    something else is named, and with --skip-bad left out of the store and of the evidence."""
    assert watchdog("import", "-c", str(config), str(jsonl(tmp_path / "first.jsonl", history(3)))).returncode == 0
    again = history(5)
    again[1] = json.dumps(json.loads(again[1]) | {"status": "down", "latency_ms": None, "error": "HTTP 503"})
    file = jsonl(tmp_path / "second.jsonl", again)
    result = watchdog("import", "-c", str(config), str(file))
    assert result.returncode == 2
    assert f"{file}:2: agent {AGENT} seq 2 is stored as another reading (check web, up at " in result.stderr
    assert "1 bad line; nothing imported" in result.stderr
    skipped = watchdog("import", "-c", str(config), "--skip-bad", str(file))
    assert skipped.returncode == 0, skipped.stderr
    assert "imported 2 readings" in skipped.stdout and "(2 already stored, 1 bad line skipped)" in skipped.stdout
    with Reader(tmp_path / "watchdog.db") as reader:
        assert [r[4] for r in reader.readings()] == ["up"] * 5
        bodies = [json.loads(row.body) for row in reader.evidence()]
    assert [r["seq"] for r in bodies[-1]["readings"]] == [1, 3, 4, 5]
    assert watchdog("evidence", "verify", "-c", str(config)).returncode == 0


def test_import_of_a_missing_file_says_so(config: Path, tmp_path: Path) -> None:
    result = watchdog("import", "-c", str(config), str(tmp_path / "nope.jsonl"))
    assert result.returncode == 2
    assert "nope.jsonl: cannot read it: No such file or directory" in result.stderr


@pytest.fixture
def received(tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    """Five signed batches received over HTTP."""
    config = write_config(tmp_path)
    with serving(config) as served:
        for batch in range(5):
            answer = served.client.send([reading(batch * 10 + i + 1, at_s=batch * 300 + i * 30) for i in range(10)],
                                        batch=f"batch-number-{batch}")
            assert answer.status == 200
        yield served, config


def tamper(database: Path, sql: str, *args: object) -> None:
    with sqlite3.connect(database) as conn:
        conn.execute(sql, args)


@pytest.mark.parametrize("what,reason", [
    ("body", "its body does not match its recorded SHA-256"),
    ("body and its hash", "its chain hash does not follow"),
    ("signature", "its chain hash does not follow"),
    ("signature, chain rewritten after it", "its signature does not verify"),
])
def test_tampering_is_named(received: tuple[Served, Path], what: str, reason: str) -> None:
    served, config = received
    assert watchdog("evidence", "verify", "-c", str(config)).returncode == 0
    with Reader(served.database) as reader:
        row = next(r for r in reader.evidence() if r.batch == "batch-number-2")
    altered = row.body.replace(b'"status":"up"', b'"status":"down"', 1)
    assert altered != row.body
    if what == "body":
        tamper(served.database, "UPDATE evidence SET body = ? WHERE id = ?", zlib.compress(altered), row.id)
    elif what == "body and its hash":
        tamper(served.database, "UPDATE evidence SET body = ?, body_sha256 = ? WHERE id = ?",
               zlib.compress(altered), hashlib.sha256(altered).digest(), row.id)
    else:
        assert row.signature is not None
        forged = bytes([row.signature[0] ^ 1]) + row.signature[1:]
        tamper(served.database, "UPDATE evidence SET signature = ? WHERE id = ?", forged, row.id)
        if what.endswith("rewritten after it"):  # a writer covering its tracks re-chains every later batch
            with Reader(served.database) as reader:
                rows = list(reader.evidence())
            previous = rows[row.id - 2].hash
            for later in rows[row.id - 1:]:
                previous = chain_hash(previous, later.body_sha256, later.signature)
                tamper(served.database, "UPDATE evidence SET hash = ? WHERE id = ?", previous, later.id)
    result = watchdog("evidence", "verify", "-c", str(config))
    assert result.returncode == 1
    assert f"BAD batch batch-number-2 of agent {AGENT} (evidence #{row.id}): {reason}" in result.stderr
    assert "2 batches before it verify" in result.stderr


def test_export_verifies_with_the_readme_snippet(received: tuple[Served, Path], tmp_path: Path) -> None:
    served, config = received
    out = tmp_path / "export"
    result = watchdog("evidence", "export", "-c", str(config), "--to", str(out))
    assert result.returncode == 0, result.stderr
    assert "exported 5 batches" in result.stdout
    readme = (out / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", readme, re.S)
    assert snippet is not None
    checked = subprocess.run([sys.executable, "-c", snippet.group(1)], cwd=out, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    with Reader(served.database) as reader:
        head = reader.head()[1].hex()
    assert checked.stdout.strip() == f"all 5 batches verify (0 imported, unsigned); chain head {head}"
    # a batch that drops its signature (re-chained) fails it, also with asserts off (python -O)
    lines = (out / "batches.jsonl").read_text().splitlines()
    unsigned = [json.loads(line) for line in lines]
    previous = bytes.fromhex((out / "previous_hash.txt").read_text().strip())
    for entry in unsigned:
        entry["signature"] = None
        previous = hashlib.sha256(previous + bytes.fromhex(entry["body_sha256"])).digest()
        entry["hash"] = previous.hex()
    forged = tmp_path / "forged"
    forged.mkdir()
    for name in ("public_keys.json", "previous_hash.txt"):
        (forged / name).write_bytes((out / name).read_bytes())
    (forged / "batches.jsonl").write_text("".join(json.dumps(e) + "\n" for e in unsigned))
    refused = subprocess.run([sys.executable, "-O", "-c", snippet.group(1)], cwd=forged, capture_output=True, text=True)
    assert refused.returncode != 0 and "a received batch without a signature" in refused.stderr
    # an altered export fails the same snippet
    entry = json.loads(lines[1])
    entry["sent"] = entry["sent"].replace("Z", "+00:00")
    lines[1] = json.dumps(entry)
    (out / "batches.jsonl").write_text("\n".join(lines) + "\n")
    failed = subprocess.run([sys.executable, "-c", snippet.group(1)], cwd=out, capture_output=True, text=True)
    assert failed.returncode != 0 and "InvalidSignature" in failed.stderr
    # an export into that folder again is refused and leaves it as it was
    before = (out / "batches.jsonl").read_text()
    again = watchdog("evidence", "export", "-c", str(config), "--to", str(out))
    assert again.returncode == 1 and "is not empty" in again.stderr
    assert (out / "batches.jsonl").read_text() == before


def test_export_of_a_period_with_no_batch_continues_the_chain(received: tuple[Served, Path], tmp_path: Path) -> None:
    served, config = received
    later = watchdog("evidence", "export", "-c", str(config), "--from", "2099-01-01", "--to", str(tmp_path / "e"))
    assert later.returncode == 0 and "exported 0 batches" in later.stdout
    with Reader(served.database) as reader:
        assert (tmp_path / "e" / "previous_hash.txt").read_text().strip() == reader.head()[1].hex()
    backwards = watchdog("evidence", "export", "-c", str(config), "--from", "2026-11-02", "--until", "2026-11-01",
                         "--to", str(tmp_path / "f"))
    assert backwards.returncode == 2 and "--until (2026-11-01) must come after --from (2026-11-02)" in backwards.stderr


def test_export_of_a_time_range_starts_from_the_previous_hash(received: tuple[Served, Path],
                                                             tmp_path: Path) -> None:
    served, config = received
    with Reader(served.database) as reader:
        third = next(r for r in reader.evidence() if r.batch == "batch-number-3")
    since = dt.datetime.fromtimestamp(third.received_at / 1000, dt.timezone.utc).isoformat(timespec="milliseconds")
    out = tmp_path / "later"
    result = watchdog("evidence", "export", "-c", str(config), "--from", since, "--to", str(out))
    assert result.returncode == 0 and "exported 2 batches" in result.stdout, result.stderr
    assert [json.loads(line)["batch"] for line in (out / "batches.jsonl").read_text().splitlines()] == [
        "batch-number-3", "batch-number-4"]
    snippet = re.search(r"```python\n(.*?)```", (out / "README.md").read_text(), re.S)
    assert snippet is not None
    checked = subprocess.run([sys.executable, "-c", snippet.group(1)], cwd=out, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    bad = watchdog("evidence", "export", "-c", str(config), "--from", "yesterday", "--to", str(out))
    assert bad.returncode == 2 and "--from: expected a date" in bad.stderr


def test_export_of_a_period_takes_the_batches_of_its_readings_however_late_they_came(tmp_path: Path) -> None:
    """A backlog of a day's readings arrives three days later: the day's export holds it (and every
    batch between), not only the batches received that day."""
    from slawatch.watchdog.evidence import export
    from slawatch.watchdog.store import DAY_MS, Store

    from .test_store import AGENT as STORE_AGENT
    from .test_store import PUBLIC_KEY, T0, incoming, regular, stored

    store = Store(tmp_path / "w.db")
    stored(store, incoming(regular(1, 10), received_at=T0 + 60_000))                  # on the day
    stored(store, incoming(regular(100, 10, start=DAY_MS), received_at=T0 + DAY_MS))  # the next day's
    stored(store, incoming(regular(11, 10, start=3600_000), received_at=T0 + 3 * DAY_MS))  # the day's backlog
    store.close()
    keys = {STORE_AGENT: ("ed25519:" + base64.b64encode(PUBLIC_KEY).decode(),)}
    with Reader(tmp_path / "w.db") as reader:
        count = export(reader, keys, T0, T0 + DAY_MS, tmp_path / "out")
    assert count == 3
    assert [json.loads(line)["evidence"] for line in (tmp_path / "out" / "batches.jsonl").read_text().splitlines()] \
        == [1, 2, 3]


def test_an_import_file_that_starts_with_a_bom_imports_its_first_line(config: Path, tmp_path: Path) -> None:
    file = tmp_path / "history.jsonl"
    file.write_bytes(b"\xef\xbb\xbf" + "".join(line + "\n" for line in history(3)).encode())
    result = watchdog("import", "-c", str(config), str(file))
    assert result.returncode == 0, result.stderr
    assert "imported 3 readings" in result.stdout


def test_an_import_file_written_to_between_its_two_passes_imports_nothing(config: Path, tmp_path: Path) -> None:
    """The first pass checks the lines, the second stores them: a file still being written (a line
    completed, one appended) must not slip lines past the check."""
    from slawatch.config import load_watchdog
    from slawatch.watchdog.evidence import import_readings, scan_jsonl
    from slawatch.watchdog.store import Store, migrate, now_ms

    loaded = load_watchdog(config)
    migrate(loaded.database)
    lines = history(4)
    file = tmp_path / "history.jsonl"
    file.write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])  # the last line half written
    agents, latest = {AGENT}, now_ms() + 300_000
    scan = scan_jsonl(file, agents, latest)
    assert (scan.good, [bad.line for bad in scan.bad]) == (2, [3])
    file.write_text("\n".join(lines) + "\n")  # completed meanwhile, and one more
    store = Store(loaded.database)
    try:
        with pytest.raises(ValueError, match="the file changed since its lines were checked"):
            import_readings(store, file, scan, agents, latest)
    finally:
        store.close()
    with Reader(loaded.database) as reader:
        assert reader.count("readings") == 0 and reader.count("evidence") == 0
