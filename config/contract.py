"""contracts/*.toml: the service levels a provider promised, and who hears about them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .errors import Problem
from .document import Context, Document, Field, Invalid, Reported, os_reason, show, unknown_key_message
from .values import (
    Secret, apprise_url, boolean, duration, identifier, integer, list_of, local_datetime, local_time,
    number, one_of, raw_table, raw_tables, rrule, string, table, timezone,
)

EVENTS = ("outage", "recovery", "budget", "breach", "agent-silent", "agent-back", "tls-expiring")
DEFAULT_EVENTS = {
    "client": ("outage", "recovery", "breach", "agent-silent", "agent-back"),  # told it is blind, and when it sees again
    "provider": ("outage", "recovery", "budget", "breach", "tls-expiring"),
}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Party:
    """One side of the contract as a recipient of alerts and reports."""

    notify: tuple[Secret, ...]
    events: tuple[str, ...]
    repeat: float


@dataclass(frozen=True)
class BusinessHours:
    """The local weekly hours that count; days are 0 (Monday) to 6 (Sunday)."""

    days: tuple[int, ...]
    start: dt.time
    end: dt.time


@dataclass(frozen=True)
class Objective:
    """An availability target (percent) or a latency percentile bound (milliseconds)."""

    kind: str
    target: float | None = None
    percentile: float | None = None
    max_ms: float | None = None


@dataclass(frozen=True)
class CreditTier:
    """Availability strictly below `below` earns `percent` of the fee."""

    below: float
    percent: float


@dataclass(frozen=True)
class Service:
    """A service of the contract, made of checks, with its objectives."""

    id: str
    name: str
    checks: tuple[str, ...]
    quorum: int
    min_outage: float
    objectives: tuple[Objective, ...]
    credit: tuple[CreditTier, ...] | None


@dataclass(frozen=True)
class Maintenance:
    """An agreed window: recurring (rrule + duration) or one-off (start, end), local time."""

    services: tuple[str, ...]
    rrule: str | None
    duration: float | None
    start: dt.datetime | None
    end: dt.datetime | None
    note: str


@dataclass(frozen=True)
class Contract:
    """A validated contract file."""

    file: str
    id: str
    client_name: str
    provider_name: str
    timezone: str
    period: str
    fee: float
    currency: str
    unknown: str
    grace: float
    client: Party
    provider: Party
    business_hours: BusinessHours | None
    services: tuple[Service, ...]
    maintenance: tuple[Maintenance, ...]
    credit: tuple[CreditTier, ...]
    public: bool = False

    def credit_tiers(self, service: Service) -> tuple[CreditTier, ...]:
        """The tiers that apply to a service: its own, else the contract's."""
        return service.credit if service.credit is not None else self.credit


def currency(value: Any, ctx: Context) -> str:
    if isinstance(value, str) and len(value) == 3 and value.isalpha() and value.isupper():
        return value
    raise Invalid(f'expected an ISO 4217 currency code like "EUR", found {show(value)}')


CREDIT = [
    Field("below", number(0, 100, low_open=True), help="availability percent strictly below which the tier applies"),
    Field("percent", number(0, 100, low_open=True), help="percent of the period's fee credited"),
]


def _credit(values: dict[str, Any], ctx: Context) -> CreditTier:
    return CreditTier(**values)


credit_tiers = list_of(table(CREDIT, _credit))


OBJECTIVE_KINDS = {
    "availability": [
        Field("kind", string(), help='"availability"'),
        Field("target", number(0, 100, low_open=True), help="percent of counted time up"),
    ],
    "latency": [
        Field("kind", string(), help='"latency"'),
        Field("percentile", number(0, 100, low_open=True), help="e.g. 95"),
        Field("max", duration(minimum=0.001), help='e.g. "800ms"'),
    ],
}


def _objective(value: Any, ctx: Context) -> Objective:
    kinds = OBJECTIVE_KINDS
    if not isinstance(value, dict):
        raise Invalid(f"expected an inline table like {{ kind = \"availability\", target = 99.9 }}, found {show(value)}")
    kind = value.get("kind")
    if not isinstance(kind, str) or kind not in kinds:
        raise Invalid(f'expected "kind" to be "availability" or "latency", found {show(kind) if kind is not None else "none"}')
    values = ctx.doc.table(value, kinds[kind], ctx.path)
    if values is None:
        raise Reported
    if kind == "latency":
        return Objective("latency", percentile=values["percentile"], max_ms=values["max"] * 1000)
    return Objective("availability", target=values["target"])


SERVICE = [
    Field("id", identifier, help="the service's id"),
    Field("name", string(), None, "the service's name in reports (default: its id)"),
    Field("checks", list_of(identifier, nonempty=True, unique=True),
          help="check ids; the service is down when any of them is down"),
    Field("quorum", integer(1, 100), 1, "agents that must see a check down"),
    Field("min_outage", duration(maximum=86400.0), 0.0, "shorter down runs count as up"),
    Field("objectives", list_of(_objective), (), "availability and latency objectives"),
    Field("credit", credit_tiers, None, "[[service.credit]]: tiers replacing the contract's for this service"),
]


def _service(values: dict[str, Any], ctx: Context) -> Service:
    # One availability objective, one latency objective per percentile: the error budget, burn rates
    # and breach alerts are those of the service's availability, and a breach is one per objective.
    seen: dict[tuple[str, float | None], int] = {}
    for i, objective in enumerate(values["objectives"]):
        same = (objective.kind, objective.percentile if objective.kind == "latency" else None)
        if same in seen:
            what = "an availability objective" if same[1] is None else f"a p{same[1]:g} latency objective"
            ctx.at("objectives", i).error(f"{what} is already given (objectives[{seen[same]}]): keep one, with "
                                          "the contract's figure")
        seen.setdefault(same, i)
    return Service(**values | {"name": values["name"] or values["id"]})


MAINTENANCE = [
    Field("services", list_of(identifier, unique=True), (), "services it applies to (default: all)"),
    Field("rrule", rrule, None, "recurrence (RFC 5545 RRULE) in the contract's timezone"),
    Field("duration", duration(minimum=1.0, maximum=92 * 86400.0), None, "length of each recurring window"),
    Field("start", local_datetime, None, "one-off window start, local time"),
    Field("end", local_datetime, None, "one-off window end, local time"),
    Field("note", string(nonempty=False), "", "what the window is for"),
]


def _check_maintenance(values: dict[str, Any], ctx: Context) -> None:
    failed = ctx.doc.failed_keys(ctx.path)
    given = {k for k in ("rrule", "duration", "start", "end") if values.get(k) is not None} | (
        failed & {"rrule", "duration", "start", "end"})
    recurring, one_off = given & {"rrule", "duration"}, given & {"start", "end"}
    if recurring and one_off:
        ctx.error('give either "rrule" and "duration" (recurring) or "start" and "end" (one-off), not both')
        return
    if not given:
        ctx.at("start").error('required key is missing (give "rrule" and "duration", or "start" and "end")')
        return
    pair = ("rrule", "duration") if recurring else ("start", "end")
    for name, other in (pair, pair[::-1]):
        if name not in given:
            ctx.at(name).error(f'required key is missing ("{other}" needs "{name}")')
    if one_off and values.get("start") and values.get("end") and values["end"] <= values["start"]:
        ctx.at("end").error(f"expected a time after start ({values['start'].isoformat()}), "
                            f"found {values['end'].isoformat()}")


def _maintenance(values: dict[str, Any], ctx: Context) -> Maintenance:
    return Maintenance(**values)


def _party(name: str) -> list[Field]:
    return [
        Field("notify", list_of(apprise_url, secret=True), (), "Apprise URLs"),
        Field("notify_file", string(), None, "file with one Apprise URL per line (keeps secrets out of the contract)"),
        Field("events", list_of(one_of(EVENTS), unique=True), DEFAULT_EVENTS[name], "events this party receives"),
        Field("repeat", duration(minimum=60.0), 4 * 3600.0, "repeat an ongoing outage this often"),
    ]


def _check_party(values: dict[str, Any], ctx: Context) -> None:
    if values.get("notify_file") is not None:
        try:
            values["notify_file_urls"] = _read_notify_file(ctx.at("notify_file"), values["notify_file"])
        except Reported:
            values["notify_file_urls"] = []


def _build_party(values: dict[str, Any], ctx: Context) -> Party:
    urls = list(values["notify"]) + values.get("notify_file_urls", [])
    return Party(tuple(urls), values["events"], values["repeat"])


def _read_notify_file(ctx: Context, name: str) -> list[Secret]:
    path = ctx.resolve_secret(name)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError) as exc:
        ctx.error(f'cannot read "{path}": {os_reason(exc)}; create it or fix the path')
        raise Reported from None
    urls, failed = [], False
    for number_, line in enumerate(lines, 1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                urls.append(apprise_url(line.strip(), ctx))
            except Invalid as exc:
                ctx.error(f"{path}, line {number_}: {exc}")
                failed = True
    if failed:
        raise Reported
    return urls


def _days(value: Any, ctx: Context) -> int:
    if value not in DAYS:
        raise Invalid(f"expected a day ({', '.join(DAYS)}), found {show(value)}")
    return DAYS.index(value)


BUSINESS_HOURS = [
    Field("days", list_of(_days, nonempty=True, unique=True), help="days that count"),
    Field("start", local_time, help='local start, "HH:MM"'),
    Field("end", local_time, help='local end, "HH:MM" ("24:00" for midnight)'),
]


def _check_business_hours(values: dict[str, Any], ctx: Context) -> None:
    if "start" in values and "end" in values and values["end"] <= values["start"]:
        ctx.at("end").error(f"expected a time after start ({values['start']:%H:%M}); "
                            "hours across midnight are not supported, split them by day")


def _business_hours(values: dict[str, Any], ctx: Context) -> BusinessHours:
    return BusinessHours(tuple(sorted(values["days"])), values["start"], values["end"])


CONTRACT = [
    Field("id", identifier, help="the contract's id"),
    Field("client", string(), help="the client's name"),
    Field("provider", string(), help="the provider's name"),
    Field("timezone", timezone, help="IANA timezone of periods, business hours and maintenance"),
    Field("period", one_of(["month", "quarter", "week"]), "month", "reporting period"),
    Field("fee", number(0), 0.0, "fee per period, for service credits"),
    Field("currency", currency, "EUR", "currency of fee and credits"),
    Field("unknown", one_of(["exclude", "up", "down"]), "exclude", "how time without data counts"),
    Field("grace", duration(maximum=92 * 86400.0), 86400.0, "wait for late readings before a closed period is frozen"),
    Field("public", boolean, False,
          "anyone may read the contract's current status (no login; no fee, credit or other figures of money)"),
]


TOP = [
    Field("contract", raw_table, help="[contract]"),
    Field("client", raw_table, {}, "[client]"),
    Field("provider", raw_table, {}, "[provider]"),
    Field("business_hours", raw_table, None, "[business_hours]"),
    Field("service", raw_tables, help="[[service]]"),
    Field("maintenance", raw_tables, [], "[[maintenance]]"),
    Field("credit", raw_tables, [], "[[credit]]"),
]


def load_contract(path: Path | str, known_checks: Collection[str] | None = None,
                  problems: list[Problem] | None = None) -> Contract | None:
    """Validate one contract file.

    Problems are appended to `problems` when it is given (the result is then None if there were
    any); without it a ConfigError with every problem is raised.
    """
    own: list[Problem] = []
    doc = Document.read(path, own)
    contract = None if own else _contract(doc, known_checks)
    if problems is None:
        doc.raise_if_problems()
        return contract
    problems.extend(own)
    return None if own else contract


def _section(doc: Document, top: dict[str, Any], name: str, parse: Any) -> Any:
    if top.get(name) is None:
        return None
    try:
        return parse(top[name], Context(doc, (name,)))
    except Invalid as exc:
        doc.error((name,), str(exc))
    except Reported:
        return None
    return None


def _contract(doc: Document, known_checks: Collection[str] | None) -> Contract | None:
    top = doc.table(doc.data, TOP, (), partial=True) or {}
    head = doc.table(top["contract"], CONTRACT, ("contract",)) if "contract" in top else None
    parties = {name: _section(doc, top, name, table(_party(name), _build_party, _check_party))
               for name in ("client", "provider")}
    hours = _section(doc, top, "business_hours", table(BUSINESS_HOURS, _business_hours, _check_business_hours))
    services = _section(doc, top, "service", list_of(table(SERVICE, _service), nonempty=True))
    maintenance = _section(doc, top, "maintenance", list_of(table(MAINTENANCE, _maintenance, _check_maintenance)))
    credit = _section(doc, top, "credit", credit_tiers)
    _cross_check(doc, top, known_checks)
    if head is not None and maintenance is not None:
        _check_local_times(doc, head["timezone"], maintenance)
    if head is None or None in parties.values() or services is None or maintenance is None or credit is None:
        return None
    if top.get("business_hours") is not None and hours is None:
        return None
    if head["fee"] == 0 and (credit or any(s.credit for s in services)):
        doc.error(("contract", "fee"), "credits are a percent of the fee: give the fee per period (the figure "
                                       "the contract states), or no [[credit]] tiers")
        return None
    return Contract(
        file=doc.name, id=head["id"], client_name=head["client"], provider_name=head["provider"],
        timezone=head["timezone"], period=head["period"], fee=head["fee"], currency=head["currency"],
        unknown=head["unknown"], grace=head["grace"], client=parties["client"],
        provider=parties["provider"], business_hours=hours, services=services,
        maintenance=maintenance, credit=credit, public=head["public"],
    )


def _cross_check(doc: Document, top: dict[str, Any], known_checks: Collection[str] | None) -> None:
    """Ids that must be unique and references that must resolve, on the raw tables."""
    services = [s for s in top.get("service") or [] if isinstance(s, dict)]
    seen: dict[Any, int] = {}
    for i, service in enumerate(top.get("service") or []):
        if not isinstance(service, dict) or not isinstance(service.get("id"), str):
            continue
        if service["id"] in seen:
            doc.error(("service", i, "id"), f'duplicate service id "{service["id"]}" (also service[{seen[service["id"]]}])')
        seen.setdefault(service["id"], i)
        if known_checks is not None and isinstance(service.get("checks"), list):
            for k, check in enumerate(service["checks"]):
                if isinstance(check, str) and check not in known_checks:
                    doc.error(("service", i, "checks", k), _unknown("check", check, known_checks, "no agent runs it"))
    service_ids = [s.get("id") for s in services]
    for i, window in enumerate(top.get("maintenance") or []):
        if isinstance(window, dict) and isinstance(window.get("services"), list):
            for k, name in enumerate(window["services"]):
                if isinstance(name, str) and name not in service_ids:
                    doc.error(("maintenance", i, "services", k),
                              _unknown("service", name, [s for s in service_ids if isinstance(s, str)],
                                       "not a [[service]] of this contract"))


def _check_local_times(doc: Document, timezone: str, windows: Sequence[Maintenance]) -> None:
    """A one-off window's start or end that does not exist in the contract's timezone (clocks jump
    past it) would move to after the gap, and the window could vanish: it must be given as it is."""
    zone = ZoneInfo(timezone)
    for i, window in enumerate(windows):
        for name, local in (("start", window.start), ("end", window.end)):
            if local is None:
                continue
            again = local.replace(tzinfo=zone).astimezone(dt.timezone.utc).astimezone(zone).replace(tzinfo=None)
            if again != local:
                doc.error(("maintenance", i, name), f"{local.isoformat()} does not exist in {timezone} (the clocks "
                          f"jump past it); give the time as the clocks show it, e.g. {again.isoformat()}")


def _unknown(kind: str, name: str, known: Collection[str], why: str) -> str:
    hint = unknown_key_message(name, sorted(known))
    suggestion = hint.split("; ", 1)[1] if "; did you mean" in hint else ""
    return f'unknown {kind} "{name}": {why}' + (f"; {suggestion}" if suggestion else "")
