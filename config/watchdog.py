"""watchdog.toml: where the watchdog listens and stores, which agents and users it knows."""

from __future__ import annotations

import base64
import re
import ssl
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .contract import Contract, load_contract
from .document import Context, Document, Field, Invalid, Reported, credential, os_reason, show
from .errors import ConfigError, Problem
from .values import (
    duration, format_duration, identifier, list_of, number, one_of, path_value, public_key, raw_table, raw_tables, size, string,
    table, url,
)

MAX_SCRYPT_MEMORY = 256 * 1024 * 1024  # what verify_password lets scrypt use
PASSWORD_HASH = re.compile(r"scrypt:\d+:\d+:\d+:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+")


@dataclass(frozen=True)
class AgentKey:
    """An agent the watchdog accepts readings from, and the key its batches are signed with."""

    id: str
    public_key: str
    previous_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class User:
    """Someone who may read the web UI and API."""

    name: str
    password_hash: str
    role: str
    contracts: tuple[str, ...]


@dataclass(frozen=True)
class WatchdogConfig:
    """A validated watchdog.toml with the contracts of its contracts directory."""

    file: str
    listen_host: str
    listen_port: int
    database: str
    contracts_dir: str
    public_url: str | None
    readings_retention: float
    history_retention: float
    max_clock_skew: float
    max_batch_size: int
    body_timeout: float
    agent_rate: float
    agents: tuple[AgentKey, ...]
    users: tuple[User, ...]
    contracts: tuple[Contract, ...]
    templates: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None


def listen_address(value: Any, ctx: Context) -> tuple[str, int]:
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})", value) if isinstance(value, str) else None
    if not match or not 1 <= int(match.group(2)) <= 65535:
        raise Invalid(f'expected "host:port" like "127.0.0.1:8470" or "[::1]:8470", found {show(value)}')
    return match.group(1).strip("[]"), int(match.group(2))


def password_hash(value: Any, ctx: Context) -> str:
    """A hash `slawatch-watchdog hash-password` printed, with parameters scrypt can run."""
    wrong = Invalid('expected a hash printed by `slawatch-watchdog hash-password` ("scrypt:..."), '
                    f"found {show(value) if not isinstance(value, str) else 'a string of another form (not shown)'}")
    if not isinstance(value, str) or not PASSWORD_HASH.fullmatch(value):
        raise wrong
    _, n, r, p, salt, digest = value.split(":")
    n_, r_, p_ = int(n), int(r), int(p)
    if n_ < 2 or n_ & (n_ - 1) or not 1 <= r_ <= 64 or not 1 <= p_ <= 16 or 128 * n_ * r_ * p_ > MAX_SCRYPT_MEMORY:
        raise wrong
    try:
        base64.b64decode(salt, validate=True)
        if len(base64.b64decode(digest, validate=True)) < 16:
            raise wrong
    except ValueError:
        raise wrong from None
    return value


def contracts_dir(value: Any, ctx: Context) -> str:
    path = ctx.resolve(string()(value, ctx))
    try:
        is_dir = path.is_dir()
    except (OSError, ValueError) as exc:
        raise Invalid(f"cannot look at {show(str(path))}: {os_reason(exc)}") from None
    if not is_dir:
        raise Invalid(f'"{path}" is not a directory; create it and put the contract files (*.toml) in it')
    return str(path)


TOP = [
    Field("watchdog", raw_table, help="[watchdog]"),
    Field("agent", raw_tables, [], "[[agent]]: one table per agent"),
    Field("user", raw_tables, [], "[[user]]: one table per user of the web UI and API"),
]
WATCHDOG = [
    Field("listen", listen_address, ("127.0.0.1", 8470), 'address of the HTTP server, "host:port"'),
    Field("database", path_value, help="SQLite database file"),
    Field("contracts", contracts_dir, help="directory of contract files; every *.toml in it is a contract"),
    Field("public_url", url(["http", "https"]), None, "the watchdog's address as users reach it (links in alerts)"),
    Field("templates", path_value, None, "directory of alert templates replacing the built-in ones of the same name"),
    Field("readings_retention", duration(86400), 35 * 86400.0,
          "how long raw readings are kept (intervals, rollups and the evidence outlive them)"),
    Field("history_retention", duration(86400), 400 * 86400.0,
          "how long state intervals and latency/metric rollups are kept"),
    Field("max_clock_skew", duration(1), 300.0,
          "how far an agent's signed send time may be off the watchdog's clock"),
    Field("max_batch_size", size(4096), 16 * 1024 * 1024, "largest ingest request body accepted (413 above)"),
    Field("body_timeout", duration(1), 60.0,
          "how long an ingest request body may take to arrive (408 after; the agent sends it again)"),
    Field("agent_rate", number(0.1), 50.0,
          "requests per second each agent may send (bursts of 10 s worth; 429 above)"),
    Field("tls_cert_file", path_value, None,
          "PEM certificate chain: with tls_key_file, the listener speaks HTTPS (session cookies get Secure)"),
    Field("tls_key_file", path_value, None, "PEM private key of tls_cert_file"),
]
AGENT = [
    Field("id", identifier, help="the agent's id, as in its agent.toml"),
    Field("public_key", public_key, help="printed by `slawatch-agent keygen`"),
    Field("previous_keys", list_of(public_key, unique=True), (),
          "keys the agent signed with before a key change: its older evidence still verifies"),
]
USER = [
    Field("name", identifier, help="login name"),
    Field("password_hash", password_hash, help="from `slawatch-watchdog hash-password`"),
    Field("role", one_of(["viewer", "admin"]), "viewer", "viewer reads its contracts; admin reads and manages all"),
    Field("contracts", list_of(identifier, unique=True), (), "contract ids a viewer may read"),
]


def load_watchdog(path: Path | str, agent_checks: Mapping[str, Collection[str]] | None = None) -> WatchdogConfig:
    """Validate watchdog.toml and every contract it points to; raise ConfigError with all problems.

    `agent_checks` maps agent ids to their check ids (from their agent.toml); with it, contracts
    must refer only to checks some agent runs, and the agents must be listed here.
    """
    doc = Document.read(path)
    doc.raise_if_problems()
    top = doc.table(doc.data, TOP, (), partial=True) or {}
    head = doc.table(top["watchdog"], WATCHDOG, ("watchdog",), partial=True) if "watchdog" in top else None
    if head is not None:
        for name in ("tls_cert_file", "tls_key_file"):
            if head.get(name) is not None:
                head[name] = str(credential(Path(head[name])))
        _check_tls(doc, head)
    agents = _unique_list(doc, top.get("agent", []), "agent", AGENT, lambda v, c: AgentKey(**v))
    users = _unique_list(doc, top.get("user", []), "user", USER, _user)
    if agent_checks is not None and agents is not None:
        listed = {a.id for a in agents}
        for agent_id in agent_checks:
            if agent_id not in listed:
                doc.error(("agent",), f'agent "{agent_id}" has a config but no [[agent]] entry here; '
                                      "add its id and public key")
    contracts: list[Contract] = []
    if head is not None and "contracts" in head:
        known = set().union(*agent_checks.values()) if agent_checks is not None else None
        contracts = _contracts(doc, Path(head["contracts"]), known)
    if users is not None and head is not None and "contracts" in head:
        _check_user_contracts(doc, users, top.get("user", []), {c.id for c in contracts})
    if head is not None and "history_retention" in head and contracts:
        _check_history(doc, head["history_retention"], contracts)
    doc.raise_if_problems()
    assert head is not None and agents is not None and users is not None
    return WatchdogConfig(
        file=doc.name, listen_host=head["listen"][0], listen_port=head["listen"][1],
        database=head["database"], contracts_dir=head["contracts"], public_url=head["public_url"],
        readings_retention=head["readings_retention"], history_retention=head["history_retention"],
        max_clock_skew=head["max_clock_skew"], max_batch_size=head["max_batch_size"], agent_rate=head["agent_rate"],
        body_timeout=head["body_timeout"],
        agents=tuple(agents), users=tuple(users), contracts=tuple(contracts), templates=head["templates"],
        tls_cert_file=head["tls_cert_file"], tls_key_file=head["tls_key_file"],
    )


# The longest each kind of period lasts, in days.
PERIOD_DAYS = {"week": 7, "month": 31, "quarter": 92}


def _check_history(doc: Document, retention: float, contracts: list[Contract]) -> None:
    """A period's intervals and rollups must outlive it until it is frozen (its grace after its end),
    or the report frozen then counts purged time as unknown."""
    longest = max(contracts, key=lambda c: PERIOD_DAYS[c.period] * 86400 + c.grace)
    needed = PERIOD_DAYS[longest.period] * 86400 + longest.grace + 86400  # and a day for timezones
    if retention < needed:
        doc.error(("watchdog", "history_retention"),
                  f"expected at least {format_duration(needed)}: contract {longest.id}'s {longest.period}s and their "
                  f"grace of {format_duration(longest.grace)} must be kept until the period is frozen, found "
                  f"{format_duration(retention)}")


def _check_tls(doc: Document, head: dict[str, Any]) -> None:
    """Both TLS files or neither, and a pair the ssl module can serve with."""
    cert, key = head.get("tls_cert_file"), head.get("tls_key_file")
    if (cert is None and key is None) or doc.failed_keys(("watchdog",)) & {"tls_cert_file", "tls_key_file"}:
        return
    if cert is None or key is None:
        missing, given = ("tls_cert_file", "tls_key_file") if cert is None else ("tls_key_file", "tls_cert_file")
        doc.error(("watchdog", missing), f'required key is missing ("{given}" needs "{missing}")')
        return
    try:
        # a password callback: an encrypted key must fail here, not prompt on a daemon's terminal
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key, password=lambda: b"")
    except (OSError, ssl.SSLError) as exc:
        doc.error(("watchdog", "tls_cert_file"),
                  f'cannot serve TLS with "{cert}" and key "{key}": {os_reason(exc)}; give a PEM certificate '
                  "chain and its unencrypted PEM private key")


def _user(values: dict[str, Any], ctx: Context) -> User:
    if values["role"] == "viewer" and not values["contracts"]:
        ctx.at("contracts").error("a viewer must be given the contract ids it may read")
        raise Reported
    return User(**values)


def _unique_list(doc: Document, tables: list[Any], kind: str, fields: list[Field], build: Any) -> list[Any] | None:
    """Parse an array of tables whose first field is a unique id; None when any failed."""
    id_key = fields[0].name
    try:
        items = list_of(table(fields, build))(tables, Context(doc, (kind,)))
    except (Invalid, Reported):
        items = None
    seen: dict[str, int] = {}
    for i, raw in enumerate(tables):
        if isinstance(raw, dict) and isinstance(raw.get(id_key), str):
            if raw[id_key] in seen:
                doc.error((kind, i, id_key), f'duplicate {kind} {id_key} "{raw[id_key]}" (also {kind}[{seen[raw[id_key]]}])')
                items = None
            seen.setdefault(raw[id_key], i)
    return items


def _contracts(doc: Document, directory: Path, known_checks: Collection[str] | None) -> list[Contract]:
    contracts: list[Contract] = []
    files = sorted(directory.glob("*.toml"))
    if not files:
        doc.error(("watchdog", "contracts"), f'"{directory}" holds no contract files (*.toml)')
    seen: dict[str, str] = {}
    for file in files:
        contract = load_contract(file, known_checks, doc.problems)
        if contract is None:
            continue
        if contract.id in seen:
            doc.problems.append(Problem(str(file), f'duplicate contract id "{contract.id}" (also in {seen[contract.id]})',
                                        key="contract.id"))
            continue
        seen[contract.id] = str(file)
        contracts.append(contract)
    return contracts


def _check_user_contracts(doc: Document, users: list[User], tables: list[Any], known: set[str]) -> None:
    if any(p.file != doc.name for p in doc.problems):
        return  # a contract file failed; its id may be among the missing ones
    for i, user in enumerate(users):
        for k, contract_id in enumerate(user.contracts):
            if contract_id not in known:
                doc.error(("user", i, "contracts", k),
                          f'unknown contract "{contract_id}"; the contracts directory has: {", ".join(sorted(known)) or "none"}')


__all__ = ["AgentKey", "ConfigError", "User", "WatchdogConfig", "load_watchdog"]
