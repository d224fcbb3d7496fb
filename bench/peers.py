"""Processes the benchmarks measure or measure against, all on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start(*argv: str, **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def remove_database(path: Path) -> None:
    """An SQLite database and its WAL files, where there are any."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children so far."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def http_target() -> tuple[subprocess.Popen[bytes], str]:
    """A loopback HTTP server answering /health with "OK" (its CPU is nobody's cost)."""
    port = free_port()
    process = start(sys.executable, str(HERE / "http_target.py"), str(port))
    url = f"http://127.0.0.1:{port}/health"
    wait_http(url)
    return process, url


def result(figure: str, value: float, unit: str, target: str = "", peer: str | None = None,
           peer_value: float | None = None) -> str:
    """One machine-readable result line for `bench/run_all.py`; print it beside the human output.

    RESULT<TAB>figure<TAB>value<TAB>unit<TAB>target<TAB>peer<TAB>peer value<TAB>ratio, where
    `target` is "<= N" or ">= N" in `unit` (or free text, or "" for none) and ratio is
    value / peer value (empty without a peer).
    """
    fields = [figure, unit, target, peer or ""]
    assert not any(c in f for f in fields for c in "\t\n"), fields
    ratio = value / peer_value if peer_value else None
    return "\t".join(["RESULT", figure, f"{value:.6g}", unit, target, peer or "",
                      "" if peer_value is None else f"{peer_value:.6g}", "" if ratio is None else f"{ratio:.4g}"])
