"""Alert decisions: a service's state now, by the same rules as reports, against what was decided
before. Pure functions; `live.py` feeds them from the store and writes what they decide.

Events (DESIGN.md "Alerting"): `outage` once a counted down run has lasted `min_outage` in eligible
time (never during maintenance or outside business hours), repeated every party's `repeat` while it
lasts; `recovery` when the service is up again; `budget` when a multi-window burn-rate rule fires
(once per rule per period until it clears); `breach` when the objective can no longer be met.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slawatch.config.contract import Contract, Service

from . import sla
from .eligibility import eligible_windows
from .intervals import DOWN, UNKNOWN, UP, Run
from .timeline import Segment, Span, intersect, spans_of, total

HOUR = 3_600_000
MINUTE = 60_000
LOOKBACK_MS = 6 * HOUR + 5 * MINUTE   # the longest burn-rate window, and a little more
BURN_RULES = {  # DESIGN.md rule 10: the Google SRE workbook's multi-window alerts
    "page": (14.4, (HOUR, 5 * MINUTE)),
    "warn": (6.0, (6 * HOUR, 30 * MINUTE)),
}


@dataclass(frozen=True)
class Episode:
    """An outage as the alerts tell it: from its first counted instant (rule 11) to the start of the
    up run that ends it (None while none has: down, or unknown, at now). Down runs with no up run
    between them (unknown time, maintenance) are one outage; `down_ms` is its counted down time,
    as the report's incidents add up (unknown time is not down)."""

    since: int
    until: int | None
    down_ms: int
    checks: tuple[str, ...]
    agents: tuple[str, ...]
    cut: bool = False                  # its first down run began before the window: its start is unknown


@dataclass(frozen=True)
class Live:
    """A service at `now`: its status, and if a counted outage runs, since when and who sees it."""

    status: str                        # up | down | unknown
    eligible: bool                     # `now` is counted time (business hours, no maintenance)
    since: int                         # start of the current status (as far back as the window reaches);
                                       # down: from its first eligible instant
    checks_down: tuple[str, ...] = ()
    agents_down: tuple[str, ...] = ()
    burn: dict[str, float | None] = field(default_factory=dict)   # window ("1h", ...) -> burn rate
    reached_window_start: bool = False  # the current status began before the window: look further back
    # The window's service state (rules 1-4) and counted time, and the outages in it; None for a Live
    # made by hand, which knows only `now`.
    timeline: tuple[Segment, ...] | None = None
    counted: tuple[Span, ...] = ()
    episodes: tuple[Episode, ...] | None = None
    first: int = 0                      # the window's first instant

    def up_after(self, since: int) -> int | None:
        """When the service came up after `since` (None: not yet, or before the window)."""
        if self.timeline is None:
            return self.since if self.status == UP else None
        return next((max(a, since) for a, b, status in self.timeline if status == UP and b > since and a > self.first),
                    None)

    def down_ms(self, contract: Contract, service: Service, since: int, until: int) -> int:
        """Counted down time in `[since, until)`."""
        if self.timeline is None:
            return total(eligible_windows(contract, service, since, until)[0])
        return total(intersect(intersect(spans_of(self.timeline, DOWN), [(since, until)]), self.counted))

    def outages(self) -> tuple[Episode, ...]:
        if self.episodes is not None:
            return self.episodes
        return (Episode(self.since, None, 0, self.checks_down, self.agents_down),) if self.status == DOWN else ()


def window_name(ms: int) -> str:
    return f"{ms // HOUR}h" if ms % HOUR == 0 else f"{ms // MINUTE}m"


def reach_ms(service: Service, lookback_ms: int = LOOKBACK_MS) -> int:
    """How far back from now the runs are read for a window of `lookback_ms`: min_outage further, so
    that a down run crossing the window's start is judged by its whole length (rule 4: runs in real
    time, not clipped), however long before the window it began."""
    return lookback_ms + round(service.min_outage * 1000)


def service_now(contract: Contract, service: Service, runs: Mapping[tuple[str, str], Sequence[Run]], now: int,
                lookback_ms: int = LOOKBACK_MS) -> Live:
    """Rules 1-5 at `now` (the instant just before it) over `[now - lookback, now)`; `runs` must
    reach `reach_ms` back."""
    first = now - reach_ms(service, lookback_ms)
    state = sla.service_state(service, runs, first, now)
    eligible, _ = eligible_windows(contract, service, first, now)
    start, _, status = state.timeline[-1] if state.timeline else (first, now, UNKNOWN)
    counted = bool(eligible) and eligible[-1][1] == now
    checks_down = tuple(sorted(c for c, t in state.checks.items() if t and t[-1][2] == DOWN))
    agents_down = tuple(sorted({a for (a, c), t in state.agents.items() if t and t[-1][2] == DOWN}))
    target = sla.availability_target(service)
    burn: dict[str, float | None] = {}
    if target is not None:
        for _, windows in BURN_RULES.values():
            for width in windows:
                burn[window_name(width)] = sla.burn_rate(state.timeline, eligible, now - width, now, target)
    since = start
    if status == DOWN:  # an outage counts from its first eligible instant (rule 11: maintenance cuts it)
        since = next((max(start, a) for a, b in eligible if b > start), start)
    return Live(status, counted, since, checks_down, agents_down, burn, start == first, tuple(state.timeline),
                tuple(eligible), episodes(state.timeline, sla.incidents(state, eligible), first), first)


def episodes(timeline: Sequence[Segment], incidents: Sequence[sla.Incident], first: int) -> tuple[Episode, ...]:
    """The outages of a window, from its incidents (rule 11) and the up runs between them."""
    ups = [a for a, _, status in timeline if status == UP]
    found: list[Episode] = []
    for incident in incidents:
        until = next((a for a in ups if a >= incident.end), None)
        if found and found[-1].until == until:  # no up run between: the same outage
            last = found[-1]
            found[-1] = Episode(last.since, until, last.down_ms + incident.duration_ms,
                                tuple(sorted({*last.checks, *incident.checks})),
                                tuple(sorted({*last.agents, *incident.agents})), last.cut)
        else:
            began = next(a for a, b, status in timeline if a <= incident.start < b)
            found.append(Episode(incident.start, until, incident.duration_ms, incident.checks, incident.agents,
                                 cut=began <= first))
    return tuple(found)


@dataclass(frozen=True)
class Event:
    """A decision to tell the parties something. `key` makes it unique (no decision twice)."""

    kind: str                     # outage | recovery | budget | breach | ...
    key: str
    facts: dict[str, Any]
    parties: tuple[str, ...] = ("client", "provider")


def decide_service(contract: Contract, service: Service, live: Live, state: dict[str, Any] | None,
                   now: int) -> tuple[dict[str, Any] | None, list[Event]]:
    """Outage, repeat and recovery for one service: (its new state, the events to send).

    The state holds the open outage ("since", "told", "repeats") and "done", the end of the last
    outage told with its recovery. Beyond the state at `now`, the window's outages count: readings
    that come late (an agent that could not reach the watchdog during the outage, a watchdog that
    was stopped) may show an outage that began, or ended, unseen; each is told once, with its real
    times, outage then recovery."""
    subject = f"{contract.id}|{service.id}"
    state = dict(state or {})
    events: list[Event] = []
    if "since" in state:
        since = int(state["since"])
        until = live.up_after(since)
        if until is None:
            return _repeats(contract, subject, live, state, now)
        # its duration is counted down time, as the report's incidents count it (outside business
        # hours, in maintenance or with no data it does not count)
        events.append(Event("recovery", f"recovery|{subject}|{since}", {
            "since": since, "until": until, "duration_ms": live.down_ms(contract, service, since, until)}))
        state = {"done": until}
    for outage in live.outages():
        if outage.cut or outage.since < state.get("done", outage.since):
            continue  # begun before the window (told then, or too long ago to tell), or told already
        facts = {"since": outage.since, "checks": list(outage.checks), "agents": list(outage.agents), "repeat": 0}
        if outage.until is not None:  # over before its readings came: told now, outage and recovery
            events += [Event("outage", f"outage|{subject}|{outage.since}", facts | {"duration_ms": outage.down_ms}),
                       Event("recovery", f"recovery|{subject}|{outage.since}", {
                           "since": outage.since, "until": outage.until, "duration_ms": outage.down_ms})]
            state = {"done": outage.until}
        elif live.eligible:  # not raised outside counted time (maintenance, business hours) until it is
            events.append(Event("outage", f"outage|{subject}|{outage.since}", facts | {"duration_ms": now - outage.since}))
            state |= {"since": outage.since, "told": now, "repeats": {"client": 0, "provider": 0}}
    return state or None, events


def _repeats(contract: Contract, subject: str, live: Live, state: dict[str, Any],
             now: int) -> tuple[dict[str, Any], list[Event]]:
    """An open outage, still not up again: repeated every party's `repeat` while it is down in
    counted time."""
    if live.status != DOWN or not live.eligible:
        return state, []  # unknown, maintenance or outside business hours: neither repeat nor recover
    since = int(state["since"])
    facts = {"since": live.since, "checks": list(live.checks_down), "agents": list(live.agents_down)}
    events: list[Event] = []
    repeats = dict(state["repeats"])
    told = int(state.get("told", since))  # repeats count from the outage message, which may have come late
    for name, party in (("client", contract.client), ("provider", contract.provider)):
        due = (now - told) // max(1, round(party.repeat * 1000))
        if due > repeats.get(name, 0):
            repeats[name] = due
            events.append(Event("outage", f"outage|{subject}|{since}|repeat-{due}",
                                facts | {"since": since, "repeat": due, "duration_ms": now - since}, parties=(name,)))
    return (state | {"repeats": repeats} if events else state), events


def decide_budget(contract: Contract, service: Service, live: Live, states: Mapping[str, Any], period: str,
                  now: int) -> tuple[dict[str, Any], list[Event]]:
    """The burn-rate rules: each fires once per period until it clears. Returns state changes
    (key -> new value, or None to clear) and events."""
    changes: dict[str, Any] = {}
    events: list[Event] = []
    target = sla.availability_target(service)
    if target is None:
        return changes, events
    for rule, (threshold, windows) in BURN_RULES.items():
        key = f"budget|{contract.id}|{service.id}|{rule}"
        rates = [live.burn.get(window_name(w)) for w in windows]
        firing = all(rate is not None and rate >= threshold for rate in rates)
        held = states.get(key)
        if firing and (held is None or held.get("period") != period):
            changes[key] = {"period": period, "since": now}
            events.append(Event("budget", f"{key}|{period}|{now}", {
                "rule": rule, "threshold": threshold, "target": target,
                "windows": {window_name(w): rate for w, rate in zip(windows, rates)}}))
        elif not firing and held is not None:
            changes[key] = None
    return changes, events


def decide_breach(contract: Contract, service: Service, figures: sla.ServiceFigures, states: Mapping[str, Any],
                  period: str) -> tuple[dict[str, Any], list[Event]]:
    """The availability objective can no longer be met: even if every eligible instant still to come
    is up, the period ends below its target. That is when the error budget is overspent; under
    `unknown = "exclude"` it can come sooner, time without data shrinking what is counted."""
    key = f"breach|{contract.id}|{service.id}|{period}"
    budget, best, target = figures.budget, figures.best_availability, sla.availability_target(service)
    if budget is None or target is None or best is None or best >= sla.exact(target) or key in states:
        return {}, []
    return {key: {"at": budget.spent_ms}}, [Event("breach", key, {
        "target": target, "measured": sla.shown(figures.availability), "closed": False,
        "allowed_ms": budget.allowed_ms, "spent_ms": budget.spent_ms, "overspent": budget.remaining_ms < 0,
        "best_percent": sla.shown(best)})]


def decide_tls(contract: Contract, stats: Sequence[tuple[str, str, dict[str, list[float | int]]]],
               states: Mapping[str, Any], now: int) -> tuple[dict[str, Any], list[Event]]:
    """A certificate whose days left fell below the check's tls_min_days: once, until renewed (the
    next certificate's warning is another decision, even at the same days left: `now` tells)."""
    changes: dict[str, Any] = {}
    events: list[Event] = []
    by_check: dict[str, list[tuple[str, float, float]]] = {}
    for agent, check, metrics in stats:
        if "tls.days_left" in metrics and "tls.min_days" in metrics:
            by_check.setdefault(check, []).append((agent, metrics["tls.days_left"][1], metrics["tls.min_days"][2]))
    for check, seen in sorted(by_check.items()):
        key = f"tls|{contract.id}|{check}"
        low = min(days for _, days, _ in seen)
        minimum = max(limit for _, _, limit in seen)
        if low < minimum and key not in states:
            changes[key] = {"days_left": low}
            events.append(Event("tls-expiring", f"{key}|{low}|{now}", {
                "check": check, "days_left": low, "min_days": minimum,
                "agents": sorted({a for a, days, _ in seen if days < minimum})}))
        elif low >= minimum and key in states:
            changes[key] = None  # renewed: the next certificate gets its own warning
    return changes, events


def status_word(status: str) -> str:
    return {UP: "up", DOWN: "down", UNKNOWN: "without data"}.get(status, status)
