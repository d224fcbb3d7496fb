"""`make demo` runs: the real daemons on loopback, readings from both agents, a verified chain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_and_verifies(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "slawatch.watchdog.demo", "--dir", str(tmp_path / "demo"),
                             "--seconds", "20", "--port-offset", "31"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    status = [line for line in result.stdout.splitlines() if line.startswith("  ")]
    for agent in ("ams-probe", "fra-probe"):
        assert any(line.split()[0] == agent and "reporting" in line and "api=up" in line for line in status), status
    assert "evidence verify: OK" in result.stdout
    assert "dashboard on http://127.0.0.1:8501 (client manager: client / client-password" in result.stdout
    for party in ("client", "provider"):  # the day's evidence anchor, through Apprise to the demo's receiver
        assert f"alert to the {party}: [slawatch] Evidence chain head for" in result.stdout
    assert (tmp_path / "demo" / "watchdog.db").exists()


def test_ctrl_c_stops_the_demo_cleanly(tmp_path: Path) -> None:
    """Ctrl-C in a terminal signals the whole foreground group: the demo alone takes it and stops
    the agents, then the watchdog, each with SIGTERM, every one exiting 0."""
    demo = subprocess.Popen([sys.executable, "-m", "slawatch.watchdog.demo", "--dir", str(tmp_path / "demo"),
                             "--port-offset", "41"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            if line.startswith("demo: dashboard on"):
                break
        time.sleep(3)  # the agents are running
        os.killpg(demo.pid, signal.SIGINT)
        out, _ = demo.communicate(timeout=90)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    assert demo.returncode == 0, out
    assert "demo stopped (exit codes [0, 0, 0]); evidence verify: OK" in out
