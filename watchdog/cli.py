"""`slawatch-watchdog`: run, check, import, report, evidence, alerts and hash-password."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence

from slawatch.config import ConfigError, load_agent, load_watchdog
from slawatch.config.cli import (
    EXIT_CONFIG, EXIT_OK, add_commands, not_implemented, parser, run,
)

from .passwords import hash_password

DEFAULT_CONFIG = "/etc/slawatch/watchdog.toml"


def check(args: argparse.Namespace) -> int:
    """Validate watchdog.toml and every contract; with --agent-config, cross-check the checks."""
    agent_checks: dict[str, set[str]] | None = None
    problems = []
    if args.agent_config:
        agent_checks = {}
        for file in args.agent_config:
            try:
                agent = load_agent(file)
            except ConfigError as err:
                problems += err.problems
                agent_checks = None  # an agent's checks are unknown: don't call contracts' checks unknown
                continue
            if agent_checks is not None:
                agent_checks[agent.id] = {c.id for c in agent.checks}
    try:
        config = load_watchdog(args.config, agent_checks)
    except ConfigError as err:
        raise ConfigError(problems + err.problems) from None
    if problems:
        raise ConfigError(problems)
    services = sum(len(c.services) for c in config.contracts)
    objectives = sum(len(s.objectives) for c in config.contracts for s in c.services)
    print(f"OK {config.file}: {_n(len(config.agents), 'agent')}, {_n(len(config.users), 'user')}, "
          f"{_n(len(config.contracts), 'contract')}, {_n(services, 'service')}, "
          f"{_n(objectives, 'objective')}")
    return EXIT_OK


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def hash_password_command(args: argparse.Namespace) -> int:
    """Print the hash of a password read from the terminal (twice) or from stdin."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("the passwords differ; nothing printed", file=sys.stderr)
            return EXIT_CONFIG
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        print("a password needs at least 8 characters", file=sys.stderr)
        return EXIT_CONFIG
    print(f'password_hash = "{hash_password(password)}"')
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = parser("slawatch-watchdog", "Keep the evidence, score the contracts, alert both parties.")
    commands = add_commands(p, {
        "run": ("run the watchdog daemon", not_implemented("slawatch-watchdog run")),
        "check": ("validate watchdog.toml and every contract", check),
        "import": ("load readings from a JSON-lines file", not_implemented("slawatch-watchdog import")),
        "report": ("print a contract's figures for a period", not_implemented("slawatch-watchdog report")),
        "evidence": ("verify or export the evidence chain", not_implemented("slawatch-watchdog evidence")),
        "alerts": ("list or retry queued alerts", not_implemented("slawatch-watchdog alerts")),
        "hash-password": ("hash a user's password for watchdog.toml", hash_password_command),
    }, DEFAULT_CONFIG)
    commands["check"].add_argument("--agent-config", action="append", metavar="AGENT_TOML",
                                   help="an agent.toml whose checks contracts may use (repeatable); "
                                        "with it, unknown checks in contracts are errors")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
