"""Real SNMP agents on loopback for the SNMP collector's tests: Debian snmpd and snmpsim.

Each runs on a free 127.0.0.1 UDP port with its configuration and state in a given folder, and
is stopped when its `with` block ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

RECORDINGS = Path(__file__).resolve().parent / "data" / "snmpsim"
AUTH_KEY = "authpass-8c1e"
PRIV_KEY = "privpass-5d2f"
SHARED_USER = "monitor"  # on both agents, with different protocols and keys
SHARED_AUTH_KEY = "monitor-auth-on-snmpd"
SHARED_PRIV_KEY = "monitor-priv-on-snmpd"
SIM_USER = SHARED_USER
SIM_AUTH_KEY = "simauth-sha256"
SIM_PRIV_KEY = "simpriv-aes256"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"


# (config auth, config priv, net-snmp auth, net-snmp priv): one SNMPv3 user per row. slawatch's
# AES192/AES256 are the Reeder key extension ("AES-192-C" in net-snmp, Cisco's variant).
PROTOCOLS = [
    ("MD5", "DES", "MD5", "DES"),
    ("SHA", None, "SHA", None),
    ("SHA", "AES", "SHA", "AES"),
    ("SHA", "AES192", "SHA", "AES-192-C"),
    ("SHA224", "AES256", "SHA-224", "AES-256-C"),
    ("SHA256", None, "SHA-256", None),
    ("SHA384", "AES", "SHA-384", "AES"),
    ("SHA512", "AES256", "SHA-512", "AES-256-C"),
]


@dataclass(frozen=True)
class Snmpd:
    """A net-snmp agent: community "public" (v1, v2c), one SNMPv3 user per PROTOCOLS row with
    AUTH_KEY / PRIV_KEY, and SHARED_USER (SHA + AES with SHARED_AUTH_KEY / SHARED_PRIV_KEY)."""

    port: int
    suffix: str  # makes the user names unique to this run

    def user(self, auth: str, priv: str | None = None) -> str:
        return f"{auth}{priv or ''}-{self.suffix}".lower()

    @property
    def auth_user(self) -> str:
        return self.user("SHA")

    @property
    def priv_user(self) -> str:
        return self.user("SHA", "AES")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_agent(process: subprocess.Popen[bytes], port: int, community: str, log: Path,
                   env: dict[str, str] | None = None, within_s: float = 15.0) -> None:
    """Poll with snmpget until the agent answers; fail with its log if it exits or never does."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"agent exited with {process.returncode}: {log.read_text()[-2000:]}")
        probe = subprocess.run(check=False, args=["snmpget", "-v2c", "-c", community, "-t", "0.3", "-r", "0",
                                f"127.0.0.1:{port}", SYS_UPTIME], capture_output=True, env=env)
        if probe.returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"agent on 127.0.0.1:{port} did not answer within {within_s}s: {log.read_text()[-2000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def snmpd_conf(agent: Snmpd, persistent: Path) -> str:
    lines = [f"[snmp] persistentDir {persistent}", "rocommunity public 127.0.0.1",
             f'createUser {SHARED_USER} SHA "{SHARED_AUTH_KEY}" AES "{SHARED_PRIV_KEY}"',
             f"rouser {SHARED_USER} priv"]
    for auth, priv, netsnmp_auth, netsnmp_priv in PROTOCOLS:
        user = agent.user(auth, priv)
        privacy = f' {netsnmp_priv} "{PRIV_KEY}"' if netsnmp_priv else ""
        lines += [f'createUser {user} {netsnmp_auth} "{AUTH_KEY}"{privacy}',
                  f"rouser {user} {'priv' if priv else 'auth'}"]
    return "\n".join(lines) + "\n"


def snmpd_path() -> str:
    """Debian's snmpd, in /usr/sbin: not on a user's PATH but root's."""
    found = shutil.which("snmpd", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if found is None:
        pytest.fail("snmpd is not installed: `make test` installs it (apt-get install snmpd snmp)")
    return found


@contextmanager
def running_snmpd(folder: Path) -> Iterator[Snmpd]:
    """Debian snmpd with a generated config and a private persistent dir (users are per run)."""
    snmpd = snmpd_path()
    agent = Snmpd(port=free_udp_port(), suffix=uuid.uuid4().hex[:8])
    persistent = folder / "persist"
    persistent.mkdir()
    conf = folder / "snmpd.conf"
    conf.write_text(snmpd_conf(agent, persistent))
    env = os.environ | {"SNMP_PERSISTENT_DIR": str(persistent)}  # keeps snmpget out of /var/lib/snmp
    log = folder / "snmpd.log"
    with log.open("wb") as out:
        # -C: this config only; -M /dev/null: no MIB loading; -I -smux: no TCP port 199
        process = subprocess.Popen([snmpd, "-f", "-Lo", "-C", "-c", str(conf), "-M", "/dev/null",
                                    "-I", "-smux", f"udp:127.0.0.1:{agent.port}"],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_agent(process, agent.port, "public", log, env)
        yield agent
    finally:
        stop(process)


@contextmanager
def running_snmpsim(folder: Path, recordings: Path = RECORDINGS, probe: str = "router-t0") -> Iterator[int]:
    """snmpsim serving `recordings` (tests/data/snmpsim): community = recording name (v1/v2c), or
    SNMPv3 user SIM_USER (SHA-256 + AES-256) with the recording name as context. Ready once the
    `probe` recording answers; yields its port."""
    responder = Path(sys.executable).parent / "snmpsim-command-responder"
    if not responder.exists():
        pytest.skip("snmpsim is not installed in this environment")
    port = free_udp_port()
    log = folder / "snmpsim.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(responder), f"--data-dir={recordings}", f"--cache-dir={folder / 'cache'}",
             f"--agent-udpv4-endpoint=127.0.0.1:{port}", "--log-level=error",
             f"--v3-user={SIM_USER}", f"--v3-auth-key={SIM_AUTH_KEY}", "--v3-auth-proto=SHA256",
             f"--v3-priv-key={SIM_PRIV_KEY}", "--v3-priv-proto=AES256"],
            stdout=out, stderr=subprocess.STDOUT, env=os.environ | {"SNMPSIM_ALLOW_ROOT": "true"})
    try:
        wait_for_agent(process, port, probe, log)
        yield port
    finally:
        stop(process)
