"""Tamperings `evidence verify` names beyond the chain itself (what a batch is, which key signed it,
which readings the store holds), exports of a time range that stay whole chain segments, and
imports that stay idempotent on (agent, seq) whatever the file is called."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slawatch.watchdog.store import EvidenceRow, Reader

from .test_watchdog_evidence import history, jsonl, received, tamper, watchdog  # noqa: F401
from .watchdog_peers import AGENT, Served, reading, write_config


def _row(database: Path, batch: str) -> EvidenceRow:
    with Reader(database) as reader:
        return next(r for r in reader.evidence() if r.batch == batch)


def _named(config: Path, batch: str, reason: str) -> None:
    result = watchdog("evidence", "verify", "-c", str(config))
    assert result.returncode == 1, result.stdout
    assert f"BAD batch {batch} of agent {AGENT}" in result.stderr and reason in result.stderr, result.stderr


@pytest.mark.parametrize("edit,reason", [
    # kind is in neither the hash nor the signature: it must match the signed path
    ("UPDATE evidence SET kind = 'manifest' WHERE id = :id", "its kind (manifest) is not the one of the path"),
    # the key the database names must be a listed one, and the one that verifies
    ("UPDATE evidence SET public_key = x'0101010101010101010101010101010101010101010101010101010101010101' "
     "WHERE id = :id", "signed with a key watchdog.toml does not list"),
    ("UPDATE evidence SET public_key = NULL WHERE id = :id", "signed with a key watchdog.toml does not list"),
    # a reading of the body deleted from the store
    ("DELETE FROM readings WHERE evidence_id = :id AND seq = (SELECT MAX(seq) FROM readings WHERE evidence_id = :id)",
     "of its body is not stored (1 readings deleted from the store)"),
    # a reading no body holds, added under the batch beyond its seqs
    ("INSERT INTO readings SELECT agent_id, 1000, series_id, ts + 1, 'down', interval_s, latency_ms, error, "
     "evidence_id FROM readings WHERE evidence_id = :id LIMIT 1", "1 readings under it outside its body's seqs"),
])
def test_edits_outside_the_chain_hash_are_named(received: tuple[Served, Path], edit: str, reason: str) -> None:
    served, config = received
    row = _row(served.database, "batch-number-2")
    tamper(served.database, "UPDATE readings SET status = status WHERE evidence_id = ?", row.id)
    assert watchdog("evidence", "verify", "-c", str(config)).returncode == 0
    tamper(served.database, edit.replace(":id", str(row.id)))
    _named(config, "batch-number-2", reason)


def test_edited_readings_moved_to_a_batch_the_chain_does_not_hold_are_found(received: tuple[Served, Path]) -> None:
    served, config = received
    row = _row(served.database, "batch-number-2")
    tamper(served.database, "UPDATE readings SET status = 'down', evidence_id = 999 WHERE evidence_id = ?", row.id)
    result = watchdog("evidence", "verify", "-c", str(config))
    assert result.returncode == 1
    assert "10 readings under batches the chain does not hold (first: evidence #999)" in result.stderr, result.stderr


def test_verify_and_export_agree_on_an_unlisted_key(received: tuple[Served, Path], tmp_path: Path) -> None:
    served, config = received
    row = _row(served.database, "batch-number-2")
    tamper(served.database, "UPDATE evidence SET public_key = ? WHERE id = ?", b"\x01" * 32, row.id)
    assert watchdog("evidence", "verify", "-c", str(config)).returncode == 1
    assert watchdog("evidence", "export", "-c", str(config), "--to", str(tmp_path / "out")).returncode == 1


def test_an_export_of_a_time_range_is_a_whole_chain_segment(received: tuple[Served, Path], tmp_path: Path) -> None:
    """Receive times come from the watchdog's clock, in no hash: one stepped back 1 s must not make
    the export leave a batch out of the middle (the README's check would fail on a sound chain)."""
    served, config = received
    two, three = _row(served.database, "batch-number-2"), _row(served.database, "batch-number-3")
    tamper(served.database, "UPDATE evidence SET received_at = ? WHERE id = ?", two.received_at - 1000, three.id)
    assert watchdog("evidence", "verify", "-c", str(config)).returncode == 0
    since = dt.datetime.fromtimestamp(two.received_at / 1000, dt.timezone.utc).isoformat(timespec="milliseconds")
    out = tmp_path / "later"
    result = watchdog("evidence", "export", "-c", str(config), "--from", since, "--to", str(out))
    assert result.returncode == 0, result.stderr
    with Reader(served.database) as reader:
        chain = [r.batch for r in reader.evidence() if r.id >= two.id]
    assert "batch-number-3" in chain
    assert [json.loads(line)["batch"] for line in (out / "batches.jsonl").read_text().splitlines()] == chain
    snippet = re.search(r"```python\n(.*?)```", (out / "README.md").read_text(), re.S)
    assert snippet is not None
    checked = subprocess.run([sys.executable, "-c", snippet.group(1)], cwd=out, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_a_renamed_copy_imports_nothing_again(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    file = jsonl(tmp_path / "history.jsonl", history(10))
    assert watchdog("import", "-c", str(config), str(file)).returncode == 0
    copy = tmp_path / "history-copy.jsonl"
    shutil.copy(file, copy)
    again = watchdog("import", "-c", str(config), str(copy))
    assert again.returncode == 0, again.stderr
    assert "imported 0 readings" in again.stdout and "(10 already stored)" in again.stdout
    assert watchdog("evidence", "verify", "-c", str(config)).returncode == 0


def test_a_line_skipped_once_imports_alone_later(tmp_path: Path) -> None:
    """A line --skip-bad left out (taken in the future) is good later: importing the file again
    stores it, and only it."""
    soon = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=100)).replace(microsecond=0)
    line2 = json.dumps(reading(2).to_json() | {"ts": soon.isoformat().replace("+00:00", "Z")})
    file = jsonl(tmp_path / "history.jsonl", [json.dumps(reading(1).to_json()), line2])
    config = write_config(tmp_path, settings='max_clock_skew = "10s"')
    first = watchdog("import", "-c", str(config), "--skip-bad", str(file))
    assert first.returncode == 0 and "imported 1 reading" in first.stdout, first.stderr
    config = write_config(tmp_path, settings='max_clock_skew = "300s"')  # as if 100 s later
    again = watchdog("import", "-c", str(config), str(file))
    assert again.returncode == 0, again.stderr
    assert "imported 1 reading" in again.stdout and "(1 already stored)" in again.stdout
    assert watchdog("evidence", "verify", "-c", str(config)).returncode == 0


OTHER = "(SELECT id FROM agents WHERE name = 'other-probe')"


def _another_agents_check(database: Path) -> None:
    tamper(database, "INSERT INTO agents (name, first_seen) VALUES ('other-probe', 0)")
    tamper(database, f"INSERT INTO series (agent_id, check_id) SELECT {OTHER}, 'web'")


def test_readings_filed_under_another_agents_check_are_named(received: tuple[Served, Path]) -> None:
    """The check a reading is filed under is no part of the chain: one of another agent, of the same
    name, would move the reading's time to that agent's figures."""
    served, config = received
    row = _row(served.database, "batch-number-2")
    _another_agents_check(served.database)
    tamper(served.database, f"UPDATE readings SET series_id = (SELECT id FROM series WHERE agent_id = {OTHER}) "
                            "WHERE evidence_id = ?", row.id)
    _named(config, "batch-number-2", "differs from the one its agent sent (the store was edited)")


def test_an_import_filed_under_another_agent_is_named(tmp_path: Path) -> None:
    """An import is signed by nobody, and its record names its agent outside the chain: its body's
    agent must be the one it is filed under."""
    config = write_config(tmp_path)
    assert watchdog("import", "-c", str(config), str(jsonl(tmp_path / "h.jsonl", history(5)))).returncode == 0
    database = tmp_path / "watchdog.db"
    _another_agents_check(database)
    tamper(database, f"UPDATE readings SET agent_id = {OTHER}, series_id = (SELECT id FROM series WHERE agent_id = {OTHER})")
    tamper(database, f"UPDATE evidence SET agent_id = {OTHER}")
    result = watchdog("evidence", "verify", "-c", str(config))
    assert result.returncode == 1, result.stdout
    assert f"its body is agent {AGENT}'s, not the agent it is filed under (it was moved)" in result.stderr


def test_readings_deleted_behind_a_moved_retention_mark_are_warned_of(received: tuple[Served, Path]) -> None:
    """Which readings retention deleted is the database's word (a mark outside the chain): a mark
    later than readings_retention allows is said so, beside the OK of what does verify."""
    served, config = received
    clean = watchdog("evidence", "verify", "-c", str(config))
    assert clean.returncode == 0 and "WARNING" not in clean.stderr
    tamper(served.database, "DELETE FROM readings WHERE evidence_id = ?", _row(served.database, "batch-number-2").id)
    tamper(served.database, "INSERT OR REPLACE INTO meta VALUES ('readings_purged_before', ?)",
           str(int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)))
    result = watchdog("evidence", "verify", "-c", str(config))
    assert result.returncode == 0 and "deleted by retention)" in result.stdout, result.stdout + result.stderr
    assert "WARNING raw readings taken before" in result.stderr and "readings were deleted early" in result.stderr


def test_intervals_edited_apart_from_their_readings_are_named(received: tuple[Served, Path]) -> None:
    """Every report is computed from the intervals, which no hash covers: folded again from the raw
    readings, an edited run is named."""
    served, config = received
    clean = watchdog("evidence", "verify", "-c", str(config))
    assert clean.returncode == 0 and "the intervals of 1 check agree with their raw readings" in clean.stdout
    tamper(served.database, "UPDATE intervals SET status = 'down' WHERE start = (SELECT MIN(start) FROM intervals)")
    result = watchdog("evidence", "verify", "-c", str(config))
    assert result.returncode == 1, result.stdout
    assert re.search(f"BAD intervals: the intervals of agent {AGENT} check web differ from its raw readings: stored "
                     "down from .* where they fold into up from .* \\(the intervals were edited\\)", result.stderr)
