"""The wheel users install: only the `slawatch` namespace, living beside PyPI's `watchdog`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT

SKIP = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__",
                              ".pytest_cache", ".mypy_cache", ".hypothesis")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("src") / "slawatch"
    shutil.copytree(ROOT, source, ignore=SKIP)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
                   check=True, capture_output=True, timeout=300)
    (built,) = out.glob("slawatch-*.whl")
    return built


def test_wheel_installs_nothing_outside_the_slawatch_namespace(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert top == {"slawatch", next(t for t in top if t.endswith(".dist-info"))}
    assert "slawatch/__init__.py" not in names  # an implicit namespace package
    for package in ("agent", "collectors", "watchdog", "config", "config/checks"):
        assert f"slawatch/{package}/__init__.py" in names
    assert "slawatch/config/examples/agent.toml" in names


def test_wheel_holds_the_api_description_and_the_login_page(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "slawatch/watchdog/openapi.json" in names
    assert {"slawatch/watchdog/templates/ui/base.html", "slawatch/watchdog/templates/ui/login.html"} <= set(names)


@pytest.mark.slow
def test_wheel_and_pypi_watchdog_work_side_by_side(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "watchdog>=4", str(wheel)],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr
    probe = (
        "import watchdog.observers, watchdog.events\n"
        "import slawatch.agent.cli, slawatch.watchdog.cli, slawatch.collectors, slawatch.config\n"
        "import importlib.util\n"
        "for name in ('agent', 'collectors', 'config'):\n"
        "    assert importlib.util.find_spec(name) is None, name\n"
        "print(watchdog.observers.Observer.__module__, slawatch.watchdog.cli.__name__)\n"
    )
    result = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1] == "slawatch.watchdog.cli"
    assert result.stdout.split()[0].startswith("watchdog.observers")
    examples = next((venv / "lib").glob("python3*/site-packages/slawatch/config/examples"))
    check = subprocess.run([str(venv / "bin" / "slawatch-agent"), "check", "-c", str(examples / "agent.toml")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("OK ")
