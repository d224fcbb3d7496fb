"""The two command-line tools, run as the installed console scripts."""

from __future__ import annotations

import importlib.metadata
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from slawatch.config.keys import load_private_key, public_key_line
from slawatch.watchdog.passwords import verify_password

from .conftest import EXAMPLES

BIN = Path(sys.executable).parent


def run(tool: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, input=stdin, timeout=60)


def test_agent_check_prints_ok_and_a_summary() -> None:
    result = run("slawatch-agent", "check", "-c", str(EXAMPLES / "agent.toml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK ")
    assert "agent ams-probe, 8 checks (1 host, 3 http, 2 snmp, 2 tcp), canaries: gateway" in result.stdout


def test_watchdog_check_prints_ok_and_a_summary() -> None:
    result = run("slawatch-watchdog", "check", "-c", str(EXAMPLES / "watchdog.toml"),
                 "--agent-config", str(EXAMPLES / "agent.toml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].endswith("1 agent, 2 users, 1 contract, 2 services, 3 objectives")
    # no database yet, so no agent's manifest: every contract check is a blind spot
    assert all(line.startswith("blind spot: contract ") for line in result.stdout.splitlines()[1:])


def test_agent_check_warns_of_a_key_file_others_may_read(tmp_path: Path) -> None:
    import shutil

    shutil.copy(EXAMPLES / "agent.toml", tmp_path / "agent.toml")
    shutil.copytree(EXAMPLES / "secrets", tmp_path / "secrets")
    key = tmp_path / "secrets" / "agent.key"
    key.chmod(0o644)
    result = run("slawatch-agent", "check", "-c", str(tmp_path / "agent.toml"))
    assert result.returncode == 0 and result.stdout.startswith("OK ")
    assert f"warning: {key} may be read by other users (mode 0644)" in result.stderr
    key.chmod(0o600)
    assert "warning" not in run("slawatch-agent", "check", "-c", str(tmp_path / "agent.toml")).stderr


def test_watchdog_check_names_two_agent_configs_of_one_id(tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "agent-copy.toml"
    shutil.copy(EXAMPLES / "agent.toml", copy)
    shutil.copytree(EXAMPLES / "secrets", tmp_path / "secrets")
    result = run("slawatch-watchdog", "check", "-c", str(EXAMPLES / "watchdog.toml"),
                 "--agent-config", str(EXAMPLES / "agent.toml"), "--agent-config", str(copy))
    assert result.returncode == 2
    assert f'{copy}: agent.id: agent id "ams-probe" is also the id of {EXAMPLES / "agent.toml"}' in result.stderr


def test_three_mistakes_are_all_reported_with_file_and_place(confdir: Path) -> None:
    config = confdir / "agent.toml"
    config.write_text(
        '[agent]\nid = "probe"\nspool = "s.db"\nkey_file = "agent.key"\n'
        '[watchdog]\nurl = "http://127.0.0.1:1"\n'
        '[[check]]\nid = "web"\ntype = "http"\nurl = "http://127.0.0.1:2/"\ninterval = "5 min"\n'
        '[[check]]\nid = "web"\ntype = "tcp"\nhost = "127.0.0.1"\nport = 25\nbanner = "220"\n'
    )
    result = run("slawatch-agent", "check", "-c", str(config))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f'{config}:11: check[0].interval: expected a duration like "30s", "5m", "2h", "1d" or "800ms", found "5 min"',
        f'{config}:13: check[1].id: duplicate check id "web" (also check[0])',
        f'{config}:17: check[1].banner: unknown key "banner"; did you mean "expect_banner"?',
        "3 problems found; nothing was started.",
    ]


def test_syntax_error_exits_2_without_traceback(confdir: Path) -> None:
    config = confdir / "watchdog.toml"
    config.write_text("[watchdog\n")
    result = run("slawatch-watchdog", "check", "-c", str(config))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{config}:1:10: TOML syntax error: ")


def test_missing_default_config_is_a_clear_error(tmp_path: Path) -> None:
    result = run("slawatch-agent", "check", "-c", str(tmp_path / "agent.toml"))
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == f"{tmp_path / 'agent.toml'}: cannot read the file: No such file or directory"


def test_default_config_paths_are_the_designed_ones() -> None:
    def help_text(tool: str, command: str) -> str:
        return " ".join(run(tool, command, "--help").stdout.split())

    assert "default: /etc/slawatch/agent.toml" in help_text("slawatch-agent", "check")
    assert "default: /etc/slawatch/watchdog.toml" in help_text("slawatch-watchdog", "report")


@pytest.mark.parametrize("command", [["run"], ["import", "x.jsonl"], ["evidence", "verify"], ["alerts"],
                                     ["alerts", "retry", "1"], ["report", "--contract", "x"],
                                     ["test-notify", "--contract", "x", "--party", "client"]])
def test_watchdog_commands_refuse_a_bad_config_with_status_2(command: list[str]) -> None:
    result = run("slawatch-watchdog", *command, "-c", str(EXAMPLES / "agent.toml"))
    assert result.returncode == 2
    assert "agent.toml" in result.stderr and "nothing was started" in result.stderr


@pytest.mark.parametrize("tool", ["slawatch-agent", "slawatch-watchdog"])
def test_version(tool: str) -> None:
    result = run(tool, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"{tool} {importlib.metadata.version('slawatch')}"


def test_no_subcommand_prints_help_and_exits_2() -> None:
    result = run("slawatch-agent")
    assert result.returncode == 2
    assert "keygen" in result.stderr


def test_keygen_writes_a_private_key_and_prints_its_public_key(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "agent.key"
    result = run("slawatch-agent", "keygen", str(key_file))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    key = load_private_key(key_file.read_bytes())
    assert result.stdout.strip() == f'public_key = "{public_key_line(key)}"'
    again = run("slawatch-agent", "keygen", str(key_file))
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert load_private_key(key_file.read_bytes()).private_bytes_raw() == key.private_bytes_raw()


def test_hash_password_reads_stdin_and_verifies() -> None:
    result = run("slawatch-watchdog", "hash-password", stdin="correct horse\n")
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith('password_hash = "scrypt:')
    stored = line.split('"')[1]
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong horse", stored)


def test_hash_password_refuses_short_passwords() -> None:
    result = run("slawatch-watchdog", "hash-password", stdin="short\n")
    assert result.returncode == 2
    assert result.stdout == ""
