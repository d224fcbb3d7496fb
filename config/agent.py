"""agent.toml: the vantage point's identity, where it ships readings, and its checks."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checks import CHECK_TYPES, CheckConfig, common_fields
from .document import Context, Document, Field, show
from .keys import private_key_file
from .values import (
    duration, identifier, integer, list_of, path_value, raw_table, raw_tables, readable_file, size,
    url,
)

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 10.0
SELF_CHECK = "agent.self"        # the agent's own readings (its health), every SELF_INTERVAL_S
SELF_INTERVAL_S = 60.0


@dataclass(frozen=True)
class AgentConfig:
    """A validated agent.toml."""

    file: str
    id: str
    spool: str
    key_file: str
    canaries: tuple[str, ...]
    spool_max_age: float
    spool_max_size: int
    concurrency: int
    watchdog_url: str
    watchdog_ca_file: str | None
    batch_size: int
    batch_wait: float
    checks: tuple[CheckConfig, ...]


TOP = [
    Field("agent", raw_table, help="[agent]: this vantage point"),
    Field("watchdog", raw_table, help="[watchdog]: where readings are shipped"),
    Field("defaults", raw_table, {}, "[defaults]: interval and timeout of checks that set none"),
    Field("check", raw_tables, [], "[[check]]: one table per check"),
]
AGENT = [
    Field("id", identifier, help="the vantage point's name in every report"),
    Field("spool", path_value, help="SQLite file that keeps readings until the watchdog has them"),
    Field("key_file", private_key_file, help="Ed25519 private key from `slawatch-agent keygen`"),
    Field("canaries", list_of(identifier, unique=True), (),
          "checks of the agent's own network; while all are down other readings are unknown"),
    Field("spool_max_age", duration(minimum=3600.0), 7 * 86400.0,
          "readings the watchdog has not acknowledged are kept this long"),
    Field("spool_max_size", size(minimum=10 * 2**20), 2 * 2**30, "largest spool file"),
    Field("concurrency", integer(1, 10000), 64, "most checks running at the same time"),
]
WATCHDOG = [
    Field("url", url(["http", "https"]), help="the watchdog's base URL"),
    Field("ca_file", readable_file, None, "CA bundle to verify the watchdog's certificate"),
    Field("batch_size", integer(1, 100000), 1000, "most readings in one batch"),
    Field("batch_wait", duration(minimum=0.0, maximum=SELF_INTERVAL_S), 2.0,
          "longest a reading waits for its batch to fill"),
]
DEFAULTS = [
    Field("interval", duration(minimum=1.0), DEFAULT_INTERVAL, "interval of checks that set none"),
    Field("timeout", duration(minimum=0.001), DEFAULT_TIMEOUT, "timeout of checks that set none"),
]


def load_agent(path: Path | str) -> AgentConfig:
    """Read and validate an agent.toml; raise ConfigError with every problem found."""
    doc = Document.read(path)
    doc.raise_if_problems()
    top = doc.table(doc.data, TOP, (), partial=True) or {}
    agent = doc.table(top["agent"], AGENT, ("agent",)) if "agent" in top else None
    watchdog = doc.table(top["watchdog"], WATCHDOG, ("watchdog",)) if "watchdog" in top else None
    defaults = doc.table(top.get("defaults", {}), DEFAULTS, ("defaults",))
    defaults = defaults or {"interval": DEFAULT_INTERVAL, "timeout": DEFAULT_TIMEOUT}
    if defaults["timeout"] > defaults["interval"]:
        doc.error(("defaults", "timeout"), f"expected at most the default interval ({defaults['interval']:g}s), "
                                           f"found {defaults['timeout']:g}s")
    checks = read_checks(doc, top.get("check", []), defaults)
    if watchdog is not None and checks is not None:
        quickest = min([c.interval for c in checks] + [SELF_INTERVAL_S])
        if watchdog["batch_wait"] > 2 * quickest:
            doc.error(("watchdog", "batch_wait"), f"expected at most twice the quickest check's interval "
                      f"({2 * quickest:g}s), found {watchdog['batch_wait']:g}s: the watchdog calls an agent "
                      "silent that sends no batch for 3 of those intervals")
    canaries = top.get("agent", {}).get("canaries") if isinstance(top.get("agent"), dict) else None
    if isinstance(canaries, list) and all(isinstance(c, str) for c in canaries):
        check_canaries(doc, tuple(canaries), top.get("check", []))
    doc.raise_if_problems()
    assert agent is not None and watchdog is not None and checks is not None
    return AgentConfig(
        file=doc.name,
        id=agent["id"],
        spool=agent["spool"],
        key_file=agent["key_file"],
        canaries=agent["canaries"],
        spool_max_age=agent["spool_max_age"],
        spool_max_size=agent["spool_max_size"],
        concurrency=agent["concurrency"],
        watchdog_url=watchdog["url"].rstrip("/"),
        watchdog_ca_file=watchdog["ca_file"],
        batch_size=watchdog["batch_size"],
        batch_wait=watchdog["batch_wait"],
        checks=tuple(checks),
    )


def read_checks(doc: Document, tables: list[Any], defaults: dict[str, float]) -> list[CheckConfig]:
    """Validate every [[check]]; problems are recorded, valid checks returned."""
    checks: list[CheckConfig] = []
    seen: dict[str, int] = {}
    for i, table in enumerate(tables):
        check = read_check(doc, table, i, defaults)
        if isinstance(table, dict) and isinstance(table.get("id"), str):
            check_id = table["id"]
            if check_id == SELF_CHECK:
                doc.error(("check", i, "id"), f'"{SELF_CHECK}" is the agent\'s own readings\' id: choose another')
            elif check_id in seen:
                doc.error(("check", i, "id"), f'duplicate check id "{check_id}" (also check[{seen[check_id]}])')
            else:
                seen[check_id] = i
        if check is not None:
            checks.append(check)
    return checks


def read_check(doc: Document, table: Any, i: int, defaults: dict[str, float]) -> CheckConfig | None:
    path = ("check", i)
    if not isinstance(table, dict):
        doc.error(path, f"expected a table, found {show(table)}")
        return None
    kind = table.get("type")
    if kind is None:
        doc.error(path + ("type",), f"required key is missing (one of {', '.join(CHECK_TYPES)})")
        return None
    if not isinstance(kind, str):
        doc.error(path + ("type",), f"expected one of {', '.join(CHECK_TYPES)}, found {show(kind)}")
        return None
    if kind not in CHECK_TYPES:
        close = difflib.get_close_matches(str(kind), list(CHECK_TYPES), n=1, cutoff=0.6)
        hint = f'did you mean "{close[0]}"?' if close else f"known types: {', '.join(CHECK_TYPES)}"
        doc.error(path + ("type",), f"unknown check type {show(kind)}; {hint}")
        return None
    check_type = CHECK_TYPES[kind]
    fields = common_fields(defaults["interval"], defaults["timeout"]) + list(check_type.fields)
    before = len(doc.problems)
    values = doc.table(table, fields, path, partial=True)
    assert values is not None  # a table, checked above
    ctx = Context(doc, path)
    check_type.validate(values, ctx)
    _timeout_within_interval(values, table, ctx)
    if len(doc.problems) > before:
        return None
    return check_type.build(values, ctx)


def _timeout_within_interval(values: dict[str, Any], table: dict[str, Any], ctx: Context) -> None:
    """A run may not outlast the interval; said where the check sets one of them (defaults: once)."""
    if "timeout" not in values or "interval" not in values or values["timeout"] <= values["interval"]:
        return
    if "timeout" in table or "interval" in table:
        ctx.at("timeout" if "timeout" in table else "interval").error(
            f"expected a timeout of at most the check's interval ({values['interval']:g}s), "
            f"found {values['timeout']:g}s"
        )


def check_canaries(doc: Document, canaries: tuple[str, ...], tables: list[Any]) -> None:
    ids = [t.get("id") for t in tables if isinstance(t, dict) and isinstance(t.get("id"), str)]  # others: named there
    for k, name in enumerate(canaries):
        if name not in ids:
            doc.error(("agent", "canaries", k), f'expected the id of a [[check]] in this file, found "{name}"')
    if canaries and ids and set(ids) <= set(canaries):
        doc.error(("agent", "canaries"), "every check is a canary; canaries guard other checks")
