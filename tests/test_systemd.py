"""The unit files are valid for systemd and keep the hardening the design asks for."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

UNITS = ["slawatch-agent.service", "slawatch-watchdog.service"]
REQUIRED = {
    "Type": "notify", "DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
    "ProtectHome": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": "",
    "SystemCallFilter": "@system-service",
}


def service_section(unit: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(ROOT / "systemd" / unit)
    return parser["Service"]


@pytest.mark.parametrize("unit", UNITS)
def test_unit_is_hardened(unit: str) -> None:
    service = service_section(unit)
    assert {k: service.get(k) for k in REQUIRED} == REQUIRED
    for key in ("WatchdogSec", "StateDirectory", "ConfigurationDirectory", "RestrictAddressFamilies"):
        assert service.get(key), key
    assert "AF_INET" in service["RestrictAddressFamilies"].split()
    assert "AF_UNIX" in service["RestrictAddressFamilies"].split()  # sd_notify's socket


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify_is_silent(unit: str, tmp_path: Path) -> None:
    # The unit names /usr/local/bin; point it at this environment's script so verify can find it.
    tool = unit.removesuffix(".service")
    text = (ROOT / "systemd" / unit).read_text()
    (tmp_path / unit).write_text(text.replace(f"/usr/local/bin/{tool}", str(Path(sys.executable).parent / tool)))
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / unit)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" and result.stdout.strip() == ""
