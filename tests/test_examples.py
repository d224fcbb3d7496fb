"""The commented examples are the reference documentation: they load, and they show every key."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from slawatch.config import agent as agent_schema
from slawatch.config import contract as contract_schema
from slawatch.config import load_agent, load_contract, load_watchdog
from slawatch.config import watchdog as watchdog_schema
from slawatch.config.checks import CHECK_TYPES, common_fields
from slawatch.config.document import Field

from .conftest import EXAMPLES

AGENT = EXAMPLES / "agent.toml"
WATCHDOG = EXAMPLES / "watchdog.toml"
CONTRACT = EXAMPLES / "contracts" / "example.toml"


def test_agent_example_loads() -> None:
    config = load_agent(AGENT)
    assert config.id == "ams-probe"
    assert {c.type for c in config.checks} == set(CHECK_TYPES)
    assert config.canaries == ("gateway",)


def test_watchdog_example_loads_with_its_contract() -> None:
    config = load_watchdog(WATCHDOG, agent_checks={"ams-probe": {c.id for c in load_agent(AGENT).checks}})
    assert [c.id for c in config.contracts] == ["acme-hosting-2026"]
    assert [a.id for a in config.agents] == ["ams-probe"]


def test_contract_example_matches_design() -> None:
    contract = load_contract(CONTRACT)
    assert contract is not None
    web = contract.services[0]
    assert (web.quorum, web.min_outage) == (2, 120.0)
    assert [(o.kind, o.target, o.percentile, o.max_ms) for o in web.objectives] == [
        ("availability", 99.9, None, None), ("latency", None, 95.0, 800.0)]
    assert [(t.below, t.percent) for t in contract.credit] == [(99.9, 10.0), (99.0, 25.0)]
    assert contract.maintenance[0].duration == 7200.0
    assert len(contract.provider.notify) == 2  # one inline, one from notify_file


def _keys(tables: Iterable[Any]) -> set[str]:
    keys: set[str] = set()
    for t in tables:
        if isinstance(t, dict):
            keys |= set(t)
    return keys


def _commented(text: str) -> set[str]:
    """Keys shown in comments as alternatives, like `# or auth_key = "..."`."""
    keys: set[str] = set()
    for line in text.splitlines():
        if "#" in line:
            keys |= set(re.findall(r"\b([A-Za-z_]+) = ", line.split("#", 1)[1]))
    return keys


def _missing(fields: Sequence[Field], present: set[str], text: str, where: str) -> list[str]:
    return [f"{where}.{f.name}" for f in fields if f.name not in present and f.name not in _commented(text)]


def test_agent_example_shows_every_accepted_key() -> None:
    text = AGENT.read_text()
    data = tomllib.loads(text)
    missing = _missing(agent_schema.TOP, set(data), text, "")
    missing += _missing(agent_schema.AGENT, set(data["agent"]), text, "agent")
    missing += _missing(agent_schema.WATCHDOG, set(data["watchdog"]), text, "watchdog")
    missing += _missing(agent_schema.DEFAULTS, set(data["defaults"]), text, "defaults")
    missing += _missing(common_fields(30, 10), _keys(data["check"]), text, "check")
    for kind, check_type in CHECK_TYPES.items():
        checks = [c for c in data["check"] if c["type"] == kind]
        assert checks, f"the example has no {kind} check"
        missing += _missing(check_type.fields, _keys(checks), text, f"check({kind})")
    assert missing == []


def test_watchdog_example_shows_every_accepted_key() -> None:
    text = WATCHDOG.read_text()
    data = tomllib.loads(text)
    missing = _missing(watchdog_schema.TOP, set(data), text, "")
    missing += _missing(watchdog_schema.WATCHDOG, set(data["watchdog"]), text, "watchdog")
    missing += _missing(watchdog_schema.AGENT, _keys(data["agent"]), text, "agent")
    missing += _missing(watchdog_schema.USER, _keys(data["user"]), text, "user")
    assert missing == []


def test_contract_example_shows_every_accepted_key() -> None:
    text = CONTRACT.read_text()
    data = tomllib.loads(text)
    services = data["service"]
    missing = _missing(contract_schema.TOP, set(data), text, "")
    missing += _missing(contract_schema.CONTRACT, set(data["contract"]), text, "contract")
    parties = _keys([data["client"], data["provider"]])
    missing += _missing(contract_schema._party("client"), parties, text, "client/provider")
    missing += _missing(contract_schema.BUSINESS_HOURS, set(data["business_hours"]), text, "business_hours")
    missing += _missing(contract_schema.SERVICE, _keys(services), text, "service")
    for kind, fields in contract_schema.OBJECTIVE_KINDS.items():
        objectives = [o for s in services for o in s.get("objectives", []) if o["kind"] == kind]
        missing += _missing(fields, _keys(objectives), text, f"objective({kind})")
    missing += _missing(contract_schema.CREDIT, _keys(t for s in services for t in s.get("credit", [])),
                        text, "service.credit")
    missing += _missing(contract_schema.MAINTENANCE, _keys(data["maintenance"]), text, "maintenance")
    missing += _missing(contract_schema.CREDIT, _keys(data["credit"]), text, "credit")
    assert missing == []


@pytest.mark.parametrize("fields", [
    agent_schema.AGENT, agent_schema.WATCHDOG, agent_schema.DEFAULTS, watchdog_schema.WATCHDOG,
    watchdog_schema.AGENT, watchdog_schema.USER, contract_schema.CONTRACT, contract_schema.SERVICE,
    contract_schema.MAINTENANCE, contract_schema.CREDIT, contract_schema.BUSINESS_HOURS,
    *[t.fields for t in CHECK_TYPES.values()],
])
def test_every_setting_has_help_text(fields: Sequence[Field]) -> None:
    assert [f.name for f in fields if not f.help] == []
