"""`slawatch-watchdog`: run, check, import, report, evidence, alerts, test-notify and hash-password."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import logging
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from slawatch.agent.daemon import configure_logging
from slawatch.config import ConfigError, WatchdogConfig, load_agent, load_watchdog
from slawatch.config.contract import Contract
from slawatch.config.errors import Problem
from slawatch.config.cli import (
    EXIT_CONFIG, EXIT_FAILED, EXIT_OK, add_commands, parser, run,
)

from .evidence import FileChanged, export, import_readings, scan_jsonl, verify_chain, verify_intervals
from .outbox import deliver, message_status, shown
from .passwords import hash_password
from .periods import parse_period, period_at
from .render import to_csv, to_html, to_json
from .report import parse_now
from .report import report as build_report
from .server import BlindSpot, blind_spots, serve
from .store import Reader, Store, migrate, now_ms

log = logging.getLogger("slawatch.watchdog")

DEFAULT_CONFIG = "/etc/slawatch/watchdog.toml"


def check(args: argparse.Namespace) -> int:
    """Validate watchdog.toml and every contract; with --agent-config, cross-check the checks."""
    agent_checks: dict[str, set[str]] | None = None
    problems = []
    if args.agent_config:
        agent_checks, files = {}, dict[str, str]()
        for file in args.agent_config:
            try:
                agent = load_agent(file)
            except ConfigError as err:
                problems += err.problems
                agent_checks = None  # an agent's checks are unknown: don't call contracts' checks unknown
                continue
            if agent.id in files:
                problems.append(Problem(agent.file, f'agent id "{agent.id}" is also the id of {files[agent.id]}: '
                                                    "each agent needs an id of its own", "agent.id"))
                agent_checks = None
                continue
            files[agent.id] = agent.file
            if agent_checks is not None:
                agent_checks[agent.id] = {c.id for c in agent.checks}
    try:
        config = load_watchdog(args.config, agent_checks)
    except ConfigError as err:
        raise ConfigError(problems + err.problems) from None
    if problems:
        raise ConfigError(problems)
    spots = _blind_spots(config)
    services = sum(len(c.services) for c in config.contracts)
    objectives = sum(len(s.objectives) for c in config.contracts for s in c.services)
    print(f"OK {config.file}: {_n(len(config.agents), 'agent')}, {_n(len(config.users), 'user')}, "
          f"{_n(len(config.contracts), 'contract')}, {_n(services, 'service')}, "
          f"{_n(objectives, 'objective')}")
    for spot in spots:
        print(f"blind spot: contract {spot.contract}, service {spot.service}: check {spot.check} is reported by "
              f"{_n(spot.agents, 'agent')}, quorum {spot.quorum} (per the agents' manifests in {config.database})")
    return EXIT_OK


def _blind_spots(config: WatchdogConfig) -> list[BlindSpot]:
    """Blind spots per the manifests stored so far (every check is one before the database exists)."""
    if not Path(config.database).exists():
        return blind_spots(config, {})
    with Reader(config.database) as reader:
        return blind_spots(config, {a.name: a for a in reader.agents()})


def run_command(args: argparse.Namespace) -> int:
    """The daemon: ingest, liveness, /metrics; exits 0 after SIGTERM."""
    configure_logging()
    config = load_watchdog(args.config)
    if not _database_opens(config.database):
        return EXIT_CONFIG
    return asyncio.run(serve(args.config, config))


def _database_opens(database: str) -> bool:
    """Make or upgrade the database (and its folder); else say why, naming the setting to fix."""
    try:
        migrate(database)
    except (OSError, sqlite3.Error) as exc:
        print(f"{database}: cannot open the database ({exc}); check watchdog.database, and that its folder can "
              "be made and written by this user", file=sys.stderr)
        return False
    return True


def import_command(args: argparse.Namespace) -> int:
    """Load readings from a JSON-lines file through the ingest path (signature aside)."""
    config = load_watchdog(args.config)
    path = Path(args.file)
    agents = {agent.id for agent in config.agents}
    latest = now_ms() + int(config.max_clock_skew * 1000)
    try:
        if Path(config.database).exists():  # lines must not contradict what it holds
            with Reader(config.database) as reader:
                scan = scan_jsonl(path, agents, latest, reader)
        else:
            scan = scan_jsonl(path, agents, latest)
    except OSError as exc:
        print(f"{path}: cannot read it: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CONFIG
    for line in scan.bad[:50]:
        print(f"{path}:{line.line}: {line.reason}", file=sys.stderr)
    if len(scan.bad) > 50:
        print(f"{path}: ... and {len(scan.bad) - 50} more bad lines", file=sys.stderr)
    if scan.bad and not args.skip_bad:
        print(f"{path}: {_n(len(scan.bad), 'bad line')}; nothing imported (fix them, or pass --skip-bad "
              "to import the good lines)", file=sys.stderr)
        return EXIT_CONFIG
    if not _database_opens(config.database):
        return EXIT_CONFIG
    store = Store(config.database)
    try:
        stored, duplicates = import_readings(store, path, scan, agents, latest)
    except FileChanged as exc:
        print(f"{path}: {exc}; nothing imported", file=sys.stderr)
        return EXIT_FAILED
    except (sqlite3.Error, OSError, ValueError) as exc:
        print(f"{path}: the store failed ({exc}); nothing imported", file=sys.stderr)
        return EXIT_FAILED
    finally:
        store.close()
    skipped = f", {_n(len(scan.bad), 'bad line')} skipped" if scan.bad else ""
    print(f"imported {_n(stored, 'reading')} from {path} ({duplicates} already stored{skipped})")
    return EXIT_OK


def evidence_command(args: argparse.Namespace) -> int:
    config = load_watchdog(args.config)
    if not Path(config.database).exists():
        print(f"{config.database}: no database yet (start `slawatch-watchdog run` first)", file=sys.stderr)
        return EXIT_FAILED
    with Reader(config.database) as reader:
        keys = {a.id: [a.public_key, *a.previous_keys] for a in config.agents}
        if args.action == "verify":
            result = verify_chain(reader, keys)
            checked = f"{result.signed} signed and {result.imported} imported batches"
            if result.finding is not None:
                finding = result.finding
                print(f"BAD batch {finding.batch} of agent {finding.agent} (evidence #{finding.evidence_id}): "
                      f"{finding.reason}; {result.signed + result.imported} batches before it verify",
                      file=sys.stderr)
                return EXIT_FAILED
            folded, problem = verify_intervals(reader, now_ms() - int(config.history_retention * 1000))
            if problem is not None:
                print(f"BAD intervals: {problem}; {checked} verify, and the intervals of {_n(folded, 'check')} "
                      "before it agree with their raw readings", file=sys.stderr)
                return EXIT_FAILED
            head_id, head = reader.head()
            purged = result.purged_before
            print(f"OK {checked} verify, with the {result.readings} stored readings they brought"
                  f"{'' if purged is None else f' (those taken before {_utc(purged)} deleted by retention)'}, "
                  f"and the intervals of {_n(folded, 'check')} agree with their raw readings; "
                  f"chain head #{head_id} {head.hex()}")
            kept_from = now_ms() - int(config.readings_retention * 1000)
            if purged is not None and purged > kept_from:
                # The mark is the database's word, outside the chain: readings deleted early would hide behind it.
                print(f"WARNING raw readings taken before {_utc(purged)} count as deleted by retention, yet "
                      f"readings_retention keeps those from {_utc(kept_from)}: readings_retention was raised since "
                      "that purge, or readings were deleted early (the deletion mark moved on)", file=sys.stderr)
            return EXIT_OK
        if args.to_dir is None:
            print("evidence export needs --to DIR", file=sys.stderr)
            return EXIT_CONFIG
        try:
            start, end = _day(args.start, "--from"), _day(args.end, "--until")
            if start >= end:
                raise ValueError(f"--until ({args.end}) must come after --from ({args.start})")
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return EXIT_CONFIG
        try:
            count = export(reader, keys, start, end, Path(args.to_dir))
        except ValueError as exc:
            print(f"evidence export: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except OSError as exc:  # --to names a file, or a folder that cannot be made
            print(f"evidence export: cannot write to {args.to_dir}: {exc.strerror or exc}; name a folder "
                  "that exists or can be made", file=sys.stderr)
            return EXIT_FAILED
        print(f"exported {count} batch{'' if count == 1 else 'es'} to {args.to_dir} (see its README.md to verify them)")
        return EXIT_OK


def _contract(config: WatchdogConfig, contract_id: str, command: str) -> Contract | None:
    """The contract with this id; else None, having said which ones there are."""
    contract = next((c for c in config.contracts if c.id == contract_id), None)
    if contract is None:
        known = ", ".join(c.id for c in config.contracts) or "none"
        print(f"{command}: no contract {contract_id!r} in {config.contracts_dir} (known: {known})", file=sys.stderr)
    return contract


def report_command(args: argparse.Namespace) -> int:
    """Print a contract's figures for a period (frozen ones once the period is closed)."""
    config = load_watchdog(args.config)
    contract = _contract(config, args.contract, "report")
    if contract is None:
        return EXIT_CONFIG
    try:
        now = parse_now(args.now)
        period = (parse_period(args.period, contract.timezone, contract.period) if args.period
                  else period_at(contract.period, contract.timezone, now if now is not None else now_ms()))
    except ValueError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if period.kind != contract.period:
        print(f"report: note: contract {contract.id} is settled per {contract.period}; "
              f"this is a {period.kind} report", file=sys.stderr)
    if not Path(config.database).exists():
        print(f"{config.database}: no database yet (start `slawatch-watchdog run` or import readings first)",
              file=sys.stderr)
        return EXIT_FAILED
    outcome = build_report(contract, period, config.database, recompute=args.recompute or args.exact_latency,
                           now=now, exact_latency=args.exact_latency)
    for difference in outcome.differences:
        print(f"differs from the frozen figures: {difference['path']}: frozen {difference['frozen']!r}, "
              f"recomputed {difference['recomputed']!r}", file=sys.stderr)
    if args.recompute:
        print("report: recomputed; " + ("no figures frozen for this period yet" if not outcome.compared else
              f"{len(outcome.differences)} figures differ from the frozen ones" if outcome.differences else
              "the figures equal the frozen ones"), file=sys.stderr)
    render = {"json": to_json, "csv": to_csv, "html": to_html}[args.format]
    report = outcome.report | ({"differences": outcome.differences} if args.recompute else {})
    sys.stdout.write(render(report))
    return EXIT_OK


def alerts_command(args: argparse.Namespace) -> int:
    """List the outbox newest first (--pending, --dead), or queue a dead message again (retry ID)."""
    config = load_watchdog(args.config)
    if args.action == "retry" and args.id is None:
        print("alerts retry: which message? give its ID (the first column of `alerts --dead`)", file=sys.stderr)
        return EXIT_CONFIG
    if not Path(config.database).exists():
        print(f"{config.database}: no database yet (start `slawatch-watchdog run` first)", file=sys.stderr)
        return EXIT_FAILED
    if args.action == "retry":
        return _retry(config.database, args.id)
    status = "pending" if args.pending else "dead" if args.dead else None
    try:
        with Reader(config.database) as reader:
            rows = reader.outbox(status, limit=args.limit)
    except sqlite3.Error as exc:
        print(f"{config.database}: cannot read the outbox ({exc}); has the watchdog run since its upgrade?",
              file=sys.stderr)
        return EXIT_FAILED
    if not rows:
        print(f"no {status + ' ' if status else ''}messages in the outbox")
        return EXIT_OK
    table = [("ID", "CREATED", "EVENT", "CONTRACT", "PARTY", "URL", "STATUS", "ATTEMPTS", "LAST ERROR")]
    table += [(str(r.id), _utc(r.created_at), r.event, r.contract, r.party, r.url_shown, r.status, str(r.attempts),
               r.last_error or "") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return EXIT_OK


def _retry(database: str, message_id: int) -> int:
    store = Store(database)
    try:
        queued = store.retry(message_id, now_ms())
    finally:
        store.close()
    if queued:
        print(f"message {message_id} queued again; the running watchdog sends it within a minute")
        return EXIT_OK
    with Reader(database) as reader:
        status = message_status(reader, message_id)
    print(f"alerts retry: no message {message_id} in the outbox" if status is None else
          f"alerts retry: message {message_id} is {status}, not dead; only dead messages are retried", file=sys.stderr)
    return EXIT_FAILED


def notify_test_command(args: argparse.Namespace) -> int:
    """Send a test message to each of a party's URLs now (not through the outbox)."""
    config = load_watchdog(args.config)
    contract = _contract(config, args.contract, "test-notify")
    if contract is None:
        return EXIT_CONFIG
    party = contract.client if args.party == "client" else contract.provider
    if not party.notify:
        print(f"test-notify: contract {contract.id} has no notify URLs for the {args.party}; nothing sent",
              file=sys.stderr)
        return EXIT_FAILED
    name = contract.client_name if args.party == "client" else contract.provider_name
    title = f"slawatch test message: {contract.id}, {args.party}"
    body = (f"A test message from slawatch-watchdog for contract {contract.id} ({contract.client_name} / "
            f"{contract.provider_name}). Alerts for {name} as the {args.party} "
            f"({', '.join(party.events) or 'no events'}) are sent to this address.")
    failed = 0
    for url in party.notify:
        error = deliver(url, title, body)
        print(f"OK      {shown(url)}" if error is None else f"FAILED  {shown(url)}: {error}")
        failed += error is not None
    return EXIT_OK if not failed else EXIT_FAILED


def _utc(instant_ms: int) -> str:
    return dt.datetime.fromtimestamp(instant_ms / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(text: str | None, option: str) -> int:
    if text is None:
        return -2**62 if option == "--from" else 2**62
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{option}: expected a date or time like 2026-10-01, found {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp() * 1000)


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
        "run": ("run the watchdog daemon", run_command),
        "check": ("validate watchdog.toml and every contract", check),
        "import": ("load readings from a JSON-lines file", import_command),
        "report": ("print a contract's figures for a period", report_command),
        "evidence": ("verify or export the evidence chain", evidence_command),
        "alerts": ("list or retry queued alerts", alerts_command),
        "test-notify": ("send a test message to a contract party's notify URLs", notify_test_command),
        "hash-password": ("hash a user's password for watchdog.toml", hash_password_command),
    }, DEFAULT_CONFIG)
    commands["check"].add_argument("--agent-config", action="append", metavar="AGENT_TOML",
                                   help="an agent.toml whose checks contracts may use (repeatable); "
                                        "with it, unknown checks in contracts are errors")
    commands["import"].add_argument("file", metavar="FILE.jsonl", help="readings, one JSON object per line")
    commands["import"].add_argument("--skip-bad", action="store_true",
                                    help="import the good lines even when some are bad")
    commands["evidence"].add_argument("action", choices=["verify", "export"])
    commands["evidence"].add_argument("--from", dest="start", metavar="DATE", help="export: first day (UTC)")
    commands["evidence"].add_argument("--until", dest="end", metavar="DATE",
                                      help="export: the day after the last (UTC)")
    commands["evidence"].add_argument("--to", dest="to_dir", metavar="DIR", help="export: folder to write")
    alerts = commands["alerts"]
    alerts.add_argument("action", nargs="?", choices=["retry"], help="retry ID: queue a dead message again")
    alerts.add_argument("id", nargs="?", type=int, metavar="ID", help="the message's id (first column of the list)")
    only = alerts.add_mutually_exclusive_group()
    only.add_argument("--pending", action="store_true", help="only messages still to be delivered")
    only.add_argument("--dead", action="store_true", help="only messages whose retries ran out")
    alerts.add_argument("--limit", type=int, default=1000, metavar="N", help="newest N messages (default 1000)")
    test_notify = commands["test-notify"]
    test_notify.add_argument("--contract", required=True, metavar="ID", help="the contract's id")
    test_notify.add_argument("--party", required=True, choices=["client", "provider"])
    report = commands["report"]
    report.add_argument("--contract", required=True, metavar="ID", help="the contract's id")
    report.add_argument("--period", metavar="P", help="2026-10, 2026-Q4 or 2026-W44 (default: the current one)")
    report.add_argument("--format", choices=["json", "csv", "html"], default="json")
    report.add_argument("--recompute", action="store_true",
                        help="compute a frozen period again and list what differs from the frozen figures")
    report.add_argument("--exact-latency", action="store_true",
                        help="latency percentiles from the raw readings (exact nearest rank; needs them kept), "
                             "not the histograms; never frozen")
    report.add_argument("--now", metavar="TIME",
                        help="report as of this time, ISO 8601 with offset (default: now)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
