"""Configuration at its edges: what `check` used to accept and a daemon or a command then crashed
on or quietly misread is refused with the file, the key and what to do (exit 2): a canary list
beside a check id that is no string, a database in a folder that does not exist, a maintenance
window starting in a DST gap, an RRULE with its own DTSTART or more often than hourly, an interval
no reading can carry; and `evidence export` to a file is an error, not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slawatch.config import ConfigError, load_contract
from slawatch.config.keys import pem_private_key, public_key_line, load_private_key

from .test_cli import run as cli

SEED = bytes(range(32))


def agent_files(folder: Path, extra_agent: str = "", checks: str = "") -> Path:
    (folder / "agent.key").write_bytes(pem_private_key(SEED))
    (folder / "agent.toml").write_text(
        '[agent]\nid = "probe"\nspool = "spool.db"\nkey_file = "agent.key"\n' + extra_agent +
        '[watchdog]\nurl = "http://127.0.0.1:8470"\n' + checks)
    return folder / "agent.toml"


CONTRACT = """\
[contract]
id = "c1"
client = "C"
provider = "P"
timezone = "Europe/Amsterdam"

[[service]]
id = "web"
checks = ["web"]
"""


def watchdog_files(folder: Path, database: str = "w.db", contract: str = CONTRACT) -> Path:
    (folder / "contracts").mkdir()
    (folder / "contracts" / "c1.toml").write_text(contract)
    key = public_key_line(load_private_key(pem_private_key(SEED)))
    (folder / "watchdog.toml").write_text(
        f'[watchdog]\ndatabase = "{database}"\ncontracts = "contracts"\n\n'
        f'[[agent]]\nid = "probe"\npublic_key = "{key}"\n')
    return folder / "watchdog.toml"


def test_canaries_with_non_string_check_id_is_a_config_error(tmp_path: Path) -> None:
    config = agent_files(tmp_path, 'canaries = ["a"]\n',
                         '[[check]]\nid = ["x"]\ntype = "tcp"\nhost = "127.0.0.1"\nport = 1\n')
    result = cli("slawatch-agent", "check", "-c", str(config))
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2
    assert "check[0].id" in result.stderr


def test_a_database_in_a_missing_folder_is_made_or_refused_with_a_reason(tmp_path: Path) -> None:
    """check accepts a database whose folder is missing (systemd's StateDirectory makes it at start):
    import (and run) make the folder; one that cannot be made is refused, naming the setting."""
    readings = tmp_path / "r.jsonl"
    readings.write_text(json.dumps({"agent": "probe", "check": "web", "seq": 1, "ts": "2026-10-01T00:00:00Z",
                                    "status": "up", "interval_s": 300, "latency_ms": 5.0, "metrics": {},
                                    "error": None}) + "\n")
    made = tmp_path / "made"
    made.mkdir()
    config = watchdog_files(made, database="missing-dir/w.db")
    assert cli("slawatch-watchdog", "check", "-c", str(config)).returncode == 0
    result = cli("slawatch-watchdog", "import", "-c", str(config), str(readings))
    assert result.returncode == 0 and (made / "missing-dir" / "w.db").exists(), result.stderr
    refused = tmp_path / "refused"
    refused.mkdir()
    (refused / "a-file").write_text("not a folder\n")
    config = watchdog_files(refused, database="a-file/w.db")
    result = cli("slawatch-watchdog", "import", "-c", str(config), str(readings))
    assert "Traceback" not in result.stderr and result.returncode == 2, result.stderr
    assert "cannot open the database" in result.stderr and "watchdog.database" in result.stderr
    assert (refused / "a-file").read_text() == "not a folder\n"


def test_a_maintenance_window_starting_in_a_dst_gap_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text(CONTRACT + '\n[[maintenance]]\nstart = "2026-03-29T02:30"\nend = "2026-03-29T03:15"\n')
    with pytest.raises(ConfigError, match=r"maintenance\[0\]\.start.*does not exist in Europe/Amsterdam"):
        load_contract(file)


def test_an_rrule_with_its_own_dtstart_is_refused(tmp_path: Path) -> None:
    contract = CONTRACT + ('\n[[maintenance]]\nrrule = "DTSTART:20260101T020000Z\\nRRULE:FREQ=WEEKLY"\n'
                           'duration = "1h"\n')
    config = watchdog_files(tmp_path, contract=contract)
    check = cli("slawatch-watchdog", "check", "-c", str(config))
    assert check.returncode == 2 and "maintenance[0].rrule" in check.stderr and "DTSTART" in check.stderr, check.stderr


def test_maintenance_more_often_than_hourly_is_refused(tmp_path: Path) -> None:
    contract = CONTRACT + '\n[[maintenance]]\nrrule = "FREQ=SECONDLY;INTERVAL=30"\nduration = "1s"\n'
    config = watchdog_files(tmp_path, contract=contract)
    check = cli("slawatch-watchdog", "check", "-c", str(config))
    assert check.returncode == 2 and "maintenance[0].rrule" in check.stderr and "hourly" in check.stderr, check.stderr


def test_interval_beyond_what_a_reading_can_carry_is_a_config_error(tmp_path: Path) -> None:
    config = agent_files(tmp_path, checks='[[check]]\nid = "t"\ntype = "tcp"\nhost = "127.0.0.1"\nport = 1\n'
                                          'interval = "20000d"\ntimeout = "10s"\n')
    result = cli("slawatch-agent", "check", "-c", str(config))
    assert result.returncode == 2, result.stdout
    assert "check[0].interval" in result.stderr


def test_evidence_export_to_a_file_is_a_clear_error(tmp_path: Path) -> None:
    from slawatch.watchdog.store import migrate

    config = watchdog_files(tmp_path)
    migrate(tmp_path / "w.db")
    target = tmp_path / "not-a-folder"
    target.write_text("keep me\n")
    result = cli("slawatch-watchdog", "evidence", "export", "-c", str(config), "--to", str(target))
    assert "Traceback" not in result.stderr, result.stderr[-300:]
    assert result.returncode in (1, 2)
    assert target.read_text() == "keep me\n"


def test_secret_files_are_read_from_the_units_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under systemd the dynamic user cannot read the root-only files agent.toml names; the unit hands
    them over as credentials of the same names (LoadCredential=), and those are read."""
    import os

    from slawatch.config import load_agent

    handed = tmp_path / "credentials"
    handed.mkdir()
    (handed / "agent.key").write_bytes(pem_private_key(os.urandom(32)))
    (handed / "web.token").write_text("s3cret-token\n")
    (tmp_path / "agent.toml").write_text(
        '[agent]\nid = "probe"\nspool = "spool.db"\nkey_file = "/etc/slawatch-absent/agent.key"\n'
        '[watchdog]\nurl = "http://127.0.0.1:8470"\n'
        '[[check]]\nid = "web"\ntype = "http"\nurl = "http://127.0.0.1:1/"\ntoken_file = "/etc/slawatch-absent/web.token"\n')
    with pytest.raises(ConfigError):
        load_agent(tmp_path / "agent.toml")  # not under systemd: the files named are read, and are absent
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(handed))
    config = load_agent(tmp_path / "agent.toml")
    assert config.key_file == str(handed / "agent.key")
    assert config.checks[0].token == "s3cret-token"  # type: ignore[attr-defined]
