"""`slawatch-agent`: run, check, once and keygen."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path


from slawatch.config import load_agent
from slawatch.config.cli import (
    EXIT_CONFIG, EXIT_FAILED, EXIT_OK, add_commands, count_text, parser, run,
)
from slawatch.config.keys import exposed_key, pem_private_key, public_key_line

DEFAULT_CONFIG = "/etc/slawatch/agent.toml"


def check(args: argparse.Namespace) -> int:
    """Validate agent.toml and print a one-line summary."""
    config = load_agent(args.config)
    if (exposed := exposed_key(config.key_file)) is not None:
        print(f"warning: {exposed}", file=sys.stderr)
    types = Counter(c.type for c in config.checks)
    canaries = f", canaries: {', '.join(config.canaries)}" if config.canaries else ""
    print(f"OK {config.file}: agent {config.id}, {len(config.checks)} checks "
          f"({count_text(types) or 'none'}){canaries}")
    return EXIT_OK


def run_daemon(args: argparse.Namespace) -> int:
    """The agent daemon (systemd Type=notify)."""
    from .daemon import configure_logging, run

    configure_logging()
    return run(args.config)


def once(args: argparse.Namespace) -> int:
    """Run every check once; exit 0 when all are up, 1 when any is not."""
    from .once import all_up, json_lines, table, take_readings

    config = load_agent(args.config)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    readings = asyncio.run(take_readings(config))
    sys.stdout.write(json_lines(readings) if args.json else table(config, readings))
    return EXIT_OK if all_up(readings) else EXIT_FAILED


def keygen(args: argparse.Namespace) -> int:
    """Write a new Ed25519 private key (mode 0600) and print its public key line."""
    path = Path(args.key_file)
    if path.exists() and not args.force:
        print(f"{path}: already exists; use --force to replace it (the watchdog must then get the "
              "new public key)", file=sys.stderr)
        return EXIT_FAILED
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = pem_private_key(key.private_bytes_raw())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        os.chmod(path, 0o600)
    except OSError as exc:
        print(f"{path}: cannot write the key: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"# wrote {path}; add this agent to watchdog.toml:", file=sys.stderr)
    print(f'public_key = "{public_key_line(key)}"')
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = parser("slawatch-agent", "Poll a provider's infrastructure and ship signed readings.")
    commands = add_commands(p, {
        "run": ("run the agent daemon", run_daemon),
        "check": ("validate the configuration and print a summary", check),
        "once": ("run every check once and print a table", once),
        "keygen": ("create the agent's Ed25519 signing key", keygen),
    }, DEFAULT_CONFIG)
    commands["keygen"].add_argument("key_file", nargs="?", default="/etc/slawatch/agent.key",
                                    help="where to write the private key (default: /etc/slawatch/agent.key)")
    commands["keygen"].add_argument("--force", action="store_true", help="replace an existing key file")
    commands["once"].add_argument("--json", action="store_true", help="print readings as JSON lines")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
