"""Shared fixtures: example paths and small config files written to a temporary folder."""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from slawatch.collectors.vantage import Vantage

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "config" / "examples"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (connecting to it is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def confdir(tmp_path: Path) -> Path:
    """A folder holding a valid agent key and SNMP secret files, as configs refer to them."""
    shutil.copy(EXAMPLES / "secrets" / "agent.key", tmp_path / "agent.key")
    (tmp_path / "auth.txt").write_text("authpass123\n")
    (tmp_path / "contracts").mkdir()
    return tmp_path


@pytest.fixture
async def vantage() -> AsyncIterator[Vantage]:
    """The agent's shared clients, closed after the test."""
    async with Vantage("probe") as v:
        yield v
