"""Live evaluation: after each ingest, and every few seconds, re-derive the affected services' state
with the report rules, decide what to tell whom, and queue it in the outbox in the same transaction
as the new alert state. Wording comes from jinja2 templates (a `templates` directory overrides them).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol, TypeVar

import jinja2

from slawatch.agent.waiting import wait_event
from slawatch.config import WatchdogConfig
from slawatch.config.contract import Contract, Party, Service

from . import alerting, sla
from .alerting import Event, Live
from .intervals import DOWN, UP
from .outbox import messages_for
from .periods import period_at, to_local
from .render import duration as duration_text
from .render import percent as percent_text
from .report import iso, report_key
from .store import Message, Reader, Store, now_ms

log = logging.getLogger(__name__)

T = TypeVar("T")


class StoreCall(Protocol):
    """Runs a function on the store's writer thread (`Writer.call`)."""

    def __call__(self, function: Callable[[Store], T]) -> Awaitable[T]: ...

PERIODIC_S = 10.0           # time-driven changes: repeats, maintenance, budget, breach, certificates
DEBOUNCE_S = 0.02           # let the batches of one burst land before evaluating
LONGEST_LOOKBACK_MS = 35 * 86_400_000
QUICK_LOOKBACK_MS = 15 * 60_000
ALWAYS = ("anchor", "report")  # sent to both parties whatever their `events`


@dataclass
class Decisions:
    states: dict[str, Any] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    silent: tuple[str, int | None] | None = None


class Wording:
    """The two wordings (client, provider) of each event, from templates."""

    def __init__(self, directory: str | None) -> None:
        builtin = jinja2.PackageLoader("slawatch.watchdog", "templates/alerts")
        self.builtin = _environment(builtin)
        self.env = _environment(jinja2.ChoiceLoader([jinja2.FileSystemLoader(directory), builtin])) if directory \
            else self.builtin

    def render(self, kind: str, party: str, facts: dict[str, Any]) -> tuple[str, str]:
        """(title, body): the template's first line and the rest. A custom template that fails (a
        typo, an unknown name) is logged and the built-in wording sent instead: an alert decided is
        delivered, and one template must not stop the others."""
        try:
            return _render(self.env, kind, party, facts)
        except jinja2.TemplateError as exc:
            if self.env is self.builtin:
                raise
            log.error("event=alert-template-failed kind=%s party=%s error=%r action=built-in-wording", kind, party,
                      f"{type(exc).__name__}: {exc}")
            return _render(self.builtin, kind, party, facts)


def _environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    return jinja2.Environment(loader=loader, autoescape=False, undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True)


def _render(env: jinja2.Environment, kind: str, party: str, facts: dict[str, Any]) -> tuple[str, str]:
    template = env.select_template([f"{kind}.{party}.txt", f"{kind}.txt"])
    title, _, body = template.render(facts | {"party": party}).partition("\n")
    return title.strip(), body.strip() + "\n"


class Alerting:
    """Owns the decisions; `touched` after ingest, `run` as a background task."""

    def __init__(self, config: Callable[[], WatchdogConfig], call: StoreCall,
                 wake: Callable[[], None], clock: Callable[[], int] = now_ms) -> None:
        self.config, self.call, self.wake, self.clock = config, call, wake, clock
        self._touched: set[str] = set()
        self._event = asyncio.Event()
        self.evaluations = 0

    def touched(self, checks: Iterable[str]) -> None:
        """Checks that got readings: evaluate their services now."""
        self._touched.update(checks)
        self._event.set()

    async def run(self) -> None:
        next_periodic = time.monotonic()
        while True:
            if await wait_event(self._event, next_periodic - time.monotonic()):
                await asyncio.sleep(DEBOUNCE_S)  # readings came: let the rest of the burst land
            self._event.clear()
            touched, self._touched = self._touched, set()
            periodic = time.monotonic() >= next_periodic
            if periodic:
                next_periodic = time.monotonic() + PERIODIC_S
            try:
                await self.evaluate(None if periodic else touched, periodic)
            except Exception:  # a failed round is logged; the next one decides again from the stored state
                log.exception("event=alert-evaluation-failed")

    async def evaluate(self, checks: set[str] | None, periodic: bool) -> list[int]:
        """Decide for the services using `checks` (all with None) and queue the messages."""
        now = self.clock()
        decisions = await asyncio.to_thread(self.decide, checks, periodic, now)
        return await self.record(decisions, now)

    async def record(self, decisions: Decisions, now: int) -> list[int]:
        if not (decisions.states or decisions.messages or decisions.silent):
            return []
        added = await self.call(lambda s: s.record_decisions(decisions.states, decisions.messages, now,
                                                             decisions.silent))
        for message in decisions.messages:
            log.info("event=alert-queued kind=%s contract=%s party=%s to=%s", message.event, message.contract,
                     message.party, message.url_shown)
        if added:
            self.wake()
        return added

    # --- deciding (in a thread, on a reader connection) -----------------------------------------

    def decide(self, checks: set[str] | None, periodic: bool, now: int) -> Decisions:
        config = self.config()
        decisions = Decisions()
        self.evaluations += 1
        with Reader(config.database) as reader:
            states = reader.alert_states()
            for contract in config.contracts:
                for service in contract.services:
                    if checks is not None and not checks.intersection(service.checks):
                        continue
                    # Each service on its own: one that fails (logged) is decided again next round,
                    # its state unrecorded, and the others are not held up by it.
                    self._isolated(decisions, f"contract={contract.id} service={service.id}", lambda part: (
                        self._decide_service(config, reader, contract, service, states, part, periodic, now)))
                if periodic:
                    self._isolated(decisions, f"contract={contract.id} service=-", lambda part: (
                        self._decide_contract(config, reader, contract, states, part, now)))
        return decisions

    @staticmethod
    def _isolated(decisions: Decisions, subject: str, decide: Callable[[Decisions], None]) -> None:
        part = Decisions()
        try:
            decide(part)
        except Exception:  # logged; this subject's state stays as stored, so the next round decides it again
            log.exception("event=alert-decision-failed %s", subject)
            return
        decisions.states.update(part.states)
        decisions.messages += part.messages

    def _decide_contract(self, config: WatchdogConfig, reader: Reader, contract: Contract, states: dict[str, Any],
                         decisions: Decisions, now: int) -> None:
        """What time alone changes for a whole contract: certificates, the daily anchor."""
        changes, events = alerting.decide_tls(
            contract, reader.latest_stats(sorted({c for s in contract.services for c in s.checks})), states, now)
        decisions.states.update(changes)
        for event in events:
            self._queue(config, contract, None, event, {}, decisions)
        self._anchor(config, reader, contract, states, decisions, now)

    def _decide_service(self, config: WatchdogConfig, reader: Reader, contract: Contract, service: Service,
                        states: dict[str, Any], decisions: Decisions, periodic: bool, now: int) -> None:
        key = f"service|{contract.id}|{service.id}"
        open_since = (states.get(key) or {}).get("since")
        live = self._live(reader, contract, service, now, periodic, None if open_since is None else int(open_since))
        state, events = alerting.decide_service(contract, service, live, states.get(key), now)
        if state != states.get(key):
            decisions.states[key] = state
        period = period_at(contract.period, contract.timezone, now)
        figures: sla.ServiceFigures | None = None
        if periodic:
            changes, budget_events = alerting.decide_budget(contract, service, live, states, period.label, now)
            decisions.states.update(changes)
            events += budget_events
            figures = figures_so_far(reader, contract, service, now)
            changes, breach_events = alerting.decide_breach(contract, service, figures, states, period.label)
            decisions.states.update(changes)
            events += breach_events
        if events:
            figures = figures or figures_so_far(reader, contract, service, now)
            facts = self._service_facts(config, reader, contract, service, figures, now)
            for event in events:
                self._queue(config, contract, service, event, facts, decisions)

    def _live(self, reader: Reader, contract: Contract, service: Service, now: int, periodic: bool,
              open_since: int | None) -> Live:
        """The service now. After an ingest only outage and recovery are decided, so a short window
        does (burn rates, every 10 s, need 6 h). While an outage is open the window reaches back to
        its start: its recovery (the first up run after it, however long ago: a watchdog that was
        stopped may learn of it late) and its duration are those of the whole outage. And when the
        status, or the outage going on now (down runs with no data between), began before the
        window, look further back for its start."""
        lookback = alerting.LOOKBACK_MS if periodic else QUICK_LOOKBACK_MS
        if open_since is not None:
            lookback = max(lookback, min(LONGEST_LOOKBACK_MS, now - open_since + alerting.MINUTE))
        while True:
            runs = reader.runs_for(service.checks, now - alerting.reach_ms(service, lookback), now)
            live = alerting.service_now(contract, service, runs, now, lookback)
            began_before = (live.reached_window_start and (live.status == DOWN or (live.status == UP and open_since is not None))
                            or any(outage.cut and outage.until is None for outage in live.outages()))
            if not began_before or lookback >= LONGEST_LOOKBACK_MS:
                return live
            lookback = min(LONGEST_LOOKBACK_MS, lookback * 4)


    def _service_facts(self, config: WatchdogConfig, reader: Reader, contract: Contract, service: Service,
                       figures: sla.ServiceFigures, now: int) -> dict[str, Any]:
        period = period_at(contract.period, contract.timezone, now)
        errors = reader.last_errors(service.checks)
        budget = figures.budget
        return {
            "service": {"id": service.id, "name": service.name},
            "target": sla.availability_target(service), "period": period.label, "period_kind": contract.period,
            "availability": "no data yet" if figures.availability_percent is None
            else percent_text(figures.availability),
            "budget": None if budget is None else (duration_text(round(budget.remaining_ms / 1000)) if
                                                   budget.remaining_ms >= 0 else "none (overspent)"),
            "last_error": f"{errors[0][3]} (agent {errors[0][0]}, check {errors[0][1]}, "
                          f"{iso(errors[0][2], contract.timezone)})" if errors else None,
            "link": f"{config.public_url.rstrip('/')}/contracts/{contract.id}/services/{service.id}"
            if config.public_url else None,
        }

    def _queue(self, config: WatchdogConfig, contract: Contract, service: Service | None, event: Event,
               facts: dict[str, Any], decisions: Decisions) -> None:
        wording = wording_for(config.templates)
        values = {"contract": {"id": contract.id, "client": contract.client_name, "provider": contract.provider_name},
                  "timezone": contract.timezone, "period_kind": contract.period, "link": None} | facts
        values |= _readable(event.facts, contract.timezone)
        for name in event.parties:
            party: Party = getattr(contract, name)
            if event.kind in ALWAYS:
                party = dataclasses.replace(party, events=(event.kind,))
            title, body = wording.render(event.kind, name, values)
            decisions.messages += messages_for(name, party, contract.id, event.kind, event.key, title, body)

    def _anchor(self, config: WatchdogConfig, reader: Reader, contract: Contract, states: dict[str, Any],
                decisions: Decisions, now: int) -> None:
        """Once a day: the evidence chain head to both parties (DESIGN.md "Evidence")."""
        day = to_local(now, contract.timezone).date().isoformat()
        key = f"anchor|{contract.id}"
        if states.get(key, {}).get("day") == day:
            return
        batches, head = reader.head()
        decisions.states[key] = {"day": day, "head": head.hex()}
        self._queue(config, contract, None, Event("anchor", f"anchor|{contract.id}|{day}",
                                                  {"date": day, "head": head.hex(), "batches": batches}), {},
                    decisions)

    # --- events from elsewhere ------------------------------------------------------------------

    async def agent_silent(self, agent: str, since: int | None, last_seen: int | None, checks: Sequence[str]) -> None:
        """An agent went silent (`since`) or came back (`since` None): tell the contracts using its checks."""
        now = self.clock()
        config = self.config()
        decisions = Decisions(silent=(agent, since))
        key = f"agent|{agent}"
        with Reader(config.database) as reader:
            held = reader.alert_states(key).get(key)
        if since is not None:
            decisions.states[key] = {"since": since}
            kind, event_key, facts = "agent-silent", f"agent-silent|{agent}|{since}", {
                "agent": agent, "last_seen": last_seen, "checks": list(checks)}
        else:
            decisions.states[key] = None
            began = held["since"] if held else now
            kind, event_key, facts = "agent-back", f"agent-back|{agent}|{began}", {
                "agent": agent, "since": began, "until": now, "duration_ms": now - began}
        for contract in config.contracts:
            used = {c for s in contract.services for c in s.checks}
            if checks and not used.intersection(checks):
                continue
            self._queue(config, contract, None, Event(kind, f"{event_key}|{contract.id}", facts), {}, decisions)
        await self.record(decisions, now)

    async def period_closed(self, contract: Contract, computed: dict[str, Any], html: str, csv_text: str) -> None:
        """A frozen period: its report to both parties, and a breach for each objective it missed."""
        now = self.clock()
        config = self.config()
        decisions = Decisions()
        attachment = json.dumps([{"name": f"{contract.id}-{computed['period']}.csv", "mime": "text/csv",
                                  "content": _b64(csv_text)}])
        key = report_key(contract.id, computed["period"])
        decisions.states[key] = {"at": now}  # with its messages
        title = f"SLA report {contract.id} {computed['period']}: credit {computed['credit']:.2f} {computed['currency']}"
        for name in ("client", "provider"):
            party = dataclasses.replace(getattr(contract, name), events=("report",))
            decisions.messages += messages_for(name, party, contract.id, "report", key, title, html, "html", attachment)
        for service in computed["services"]:
            for objective in service["objectives"]:
                if objective["met"] is False:
                    described = (f"availability at least {objective['target']} %" if objective["kind"] == "availability"
                                 else f"p{objective['percentile']:g} latency at most {objective['max_ms']:g} ms")
                    measured = (f"{objective['measured']:.3f} %" if objective["kind"] == "availability"
                                else f"{objective['measured']:.3f} ms")
                    self._queue(config, contract, None, Event(
                        "breach", f"breach-closed|{contract.id}|{service['id']}|{computed['period']}|{objective['kind']}"
                        + (f"-p{objective['percentile']:g}" if objective["kind"] == "latency" else ""),
                        {"closed": True, "objective": described, "measured": measured, "target": objective.get("target"),
                         "availability": measured}),
                        {"service": {"id": service["id"], "name": service["name"]}, "period": computed["period"]},
                        decisions)
        await self.record(decisions, now)


def figures_so_far(reader: Reader, contract: Contract, service: Service, now: int) -> sla.ServiceFigures:
    """The service's figures for its contract's current period, up to `now` (the report rules)."""
    period = period_at(contract.period, contract.timezone, now)
    runs = reader.runs_for(service.checks, period.start - round(service.min_outage * 1000), now)
    return sla.evaluate_service(contract, service, period, runs, now=now)


@lru_cache(maxsize=4)
def wording_for(directory: str | None) -> Wording:
    return Wording(directory)


def _readable(facts: dict[str, Any], timezone: str) -> dict[str, Any]:
    """Event facts with times as local text and durations as `1d 02:03:04`."""
    shown = dict(facts)
    for name in ("since", "until", "last_seen"):
        if isinstance(facts.get(name), int):
            shown[name] = _local(facts[name], timezone)
        elif name in facts and facts[name] is None:
            shown[name] = "never"
    if "duration_ms" in facts:
        shown["duration"] = duration_text(round(facts["duration_ms"] / 1000))
    return shown


def _local(instant: int, timezone: str) -> str:
    return to_local(instant, timezone).strftime("%Y-%m-%d %H:%M:%S")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
