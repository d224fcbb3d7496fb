"""The SLA arithmetic: DESIGN.md "SLA semantics", rule by rule, as pure functions (no I/O).

coverage (the store's runs, rule 1) → quorum (2) → service state (3) → min_outage (4) →
eligibility (5) → counting and availability (6, 7) → latency (8) → credit (9) → budget (10) →
incidents (11). Times are integer milliseconds, so every duration is exact; percentages are
compared as exact fractions, so 99.9 is not below 99.9.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from slawatch.config.contract import Contract, CreditTier, Service

from . import sketch
from .eligibility import eligible_windows
from .intervals import DOWN, UNKNOWN, UP, Run, clip
from .periods import Period
from .timeline import Span, Timeline, combine, intersect, relabel, spans_of, total

RULES_VERSION = "1"
POLICIES = ("exclude", "up", "down")

__all__ = ["RULES_VERSION", "ServiceFigures", "evaluate_service", "eligible_windows", "contract_credit"]


@dataclass(frozen=True)
class ObjectiveResult:
    kind: str
    target: float | None
    percentile: float | None
    max_ms: float | None
    measured: float | None
    met: bool | None


@dataclass(frozen=True)
class Budget:
    """The error budget of the whole period, and how much of it is spent so far (rule 10)."""

    allowed_ms: float
    spent_ms: int
    remaining_ms: float


@dataclass(frozen=True)
class Incident:
    """A down run that counts (rule 11), with the checks and agents that saw it."""

    start: int
    end: int
    checks: tuple[str, ...]
    agents: tuple[str, ...]

    @property
    def duration_ms(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class ServiceFigures:
    id: str
    name: str
    eligible_ms: int
    maintenance_ms: int
    up_ms: int
    down_ms: int
    unknown_ms: int
    coverage_percent: float | None
    availability_percent: float | None
    objectives: list[ObjectiveResult]
    credit_percent: float
    budget: Budget | None
    incidents: list[Incident]
    availability: Fraction | None = field(default=None, repr=False)  # exact, for comparisons and `shown`
    coverage: Fraction | None = field(default=None, repr=False)
    # the availability if every eligible instant still to come in the period is up: the best it can end at
    best_availability: Fraction | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ServiceState:
    """A service's state over a window, with what it was made of."""

    timeline: Timeline                               # after quorum, rule 3 and min_outage
    checks: dict[str, Timeline]                      # each check after quorum
    agents: dict[tuple[str, str], Timeline]          # each (agent, check) as its runs say


# --- rules 1-4: from runs to the service's state --------------------------------------------


def agent_timeline(runs: Sequence[Run], start: int, end: int) -> Timeline:
    """Rule 1 (the runs already are it): an agent's status for a check, unknown where no run is."""
    return [(s, e, status) for s, e, status in clip(runs, start, end)]


def check_timeline(agents: Sequence[Timeline], quorum: int, start: int, end: int) -> Timeline:
    """Rule 2: unknown with no agent knowing; down when d >= min(quorum, n); else up."""
    if len(agents) == 1:
        return list(agents[0])  # n is 0 or 1: the one agent's status, whatever the quorum

    def decide(counts: dict[str, int]) -> str:
        down = counts.get(DOWN, 0)
        known = down + counts.get(UP, 0)
        if known == 0:
            return UNKNOWN
        return DOWN if down >= min(quorum, known) else UP
    return combine(agents, start, end, decide, UNKNOWN)


def service_timeline(checks: Sequence[Timeline], start: int, end: int) -> Timeline:
    """Rule 3: down if any check is down; up if all are up; else unknown."""
    def decide(counts: dict[str, int]) -> str:
        if counts.get(DOWN, 0):
            return DOWN
        return UNKNOWN if counts.get(UNKNOWN, 0) else UP
    return combine(checks, start, end, decide, UNKNOWN)


def apply_min_outage(timeline: Timeline, min_outage_ms: int) -> Timeline:
    """Rule 4: a maximal down run shorter than `min_outage_ms` counts as up.

    Runs are measured as the timeline shows them; the caller's window reaches `min_outage` beyond
    the period on both sides, so a run that reaches into the period and is cut by the window is
    already longer than `min_outage`.
    """
    if min_outage_ms <= 0:
        return timeline
    return relabel(timeline, lambda s: UP if s[2] == DOWN and s[1] - s[0] < min_outage_ms else s[2])


def service_state(service: Service, runs: Mapping[tuple[str, str], Sequence[Run]], start: int,
                  end: int) -> ServiceState:
    """Rules 1-4 for one service over `[start, end)`."""
    agents = {key: agent_timeline(r, start, end) for key, r in runs.items() if key[1] in service.checks}
    checks = {check: check_timeline([t for (_, c), t in agents.items() if c == check], service.quorum, start, end)
              for check in service.checks}
    timeline = apply_min_outage(service_timeline(list(checks.values()), start, end),
                                round(service.min_outage * 1000))
    return ServiceState(timeline, checks, agents)


# --- rules 5-11: from the service's state to figures ------------------------------------------


@dataclass(frozen=True)
class Counts:
    eligible_ms: int
    up_ms: int
    down_ms: int
    unknown_ms: int


def count(timeline: Timeline, eligible: Sequence[Span]) -> Counts:
    """Rule 6: up, down and unknown time inside eligible time, before the unknown policy."""
    up = total(intersect(spans_of(timeline, UP), eligible))
    down = total(intersect(spans_of(timeline, DOWN), eligible))
    eligible_ms = total(eligible)
    return Counts(eligible_ms, up, down, eligible_ms - up - down)


def availability(counts: Counts, policy: str) -> Fraction | None:
    """Rule 7, exactly: percent of counted time up after the unknown policy; None with nothing to count."""
    up, down, unknown = counts.up_ms, counts.down_ms, counts.unknown_ms
    if policy == "exclude":
        counted, good = up + down, up
    elif policy == "up":
        counted, good = up + down + unknown, up + unknown
    elif policy == "down":
        counted, good = up + down + unknown, up
    else:
        raise ValueError(f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}")
    return None if counted == 0 else Fraction(100 * good, counted)


def exact(value: float) -> Fraction:
    """A configured number as the decimal it was written as (99.9 is 999/10, not the float's binary)."""
    return Fraction(repr(value))


def shown(percent: Fraction | None) -> float | None:
    """A percentage as reports, pages and alerts show it: 3 decimals, cut down from the exact
    figure, so a figure shown never reaches a target or credit tier the exact one misses (99.89959
    is 99.899, not 99.900)."""
    return None if percent is None else float(Fraction(math.floor(percent * 1000), 1000))


def shown_ms(ms: float | None) -> float | None:
    """A latency as shown: 3 decimals, rounded up, so it is never at a maximum it exceeds."""
    return None if ms is None else float(Fraction(math.ceil(Fraction(ms) * 1000), 1000))


def credit_percent(percent: Fraction | None, tiers: Sequence[CreditTier]) -> float:
    """Rule 9: the largest tier percent with availability strictly below the tier's `below`."""
    if percent is None:
        return 0.0
    return max((tier.percent for tier in tiers if percent < exact(tier.below)), default=0.0)


def budget(target: float, eligible_whole_ms: int, counts: Counts, policy: str) -> Budget:
    """Rule 10: the period's allowance of down time and what is spent of it so far."""
    allowed = (1 - exact(target) / 100) * eligible_whole_ms
    spent = counts.down_ms + (counts.unknown_ms if policy == "down" else 0)
    return Budget(float(allowed), spent, float(allowed - spent))


def burn_rate(timeline: Timeline, eligible: Sequence[Span], start: int, end: int, target: float) -> float | None:
    """Rule 10: (down / known time in `[start, end)` of eligible time) / (1 − target/100)."""
    window = intersect(eligible, [(start, end)])
    down = total(intersect(spans_of(timeline, DOWN), window))
    known = down + total(intersect(spans_of(timeline, UP), window))
    allowance = 1 - exact(target) / 100
    if known == 0 or allowance == 0:
        return None
    return float(Fraction(down, known) / allowance)


def incidents(state: ServiceState, eligible: Sequence[Span]) -> list[Incident]:
    """Rule 11: the down runs that count (after min_outage), inside eligible time, each with the
    checks (after quorum) and the agents whose own runs were down at some time in it."""
    runs = intersect(spans_of(state.timeline, DOWN), eligible)
    ends = [end for _, end in runs]
    checks: list[set[str]] = [set() for _ in runs]
    agents: list[set[str]] = [set() for _ in runs]


    def mark(seen: list[set[str]], timeline: Timeline, name: str) -> None:
        for start, end in spans_of(timeline, DOWN):
            i = bisect.bisect_right(ends, start)  # the first incident ending after this down span starts
            while i < len(runs) and runs[i][0] < end:
                seen[i].add(name)
                i += 1

    for check, timeline in state.checks.items():
        mark(checks, timeline, check)
    for (agent, _), timeline in state.agents.items():
        mark(agents, timeline, agent)
    return [Incident(start, end, tuple(sorted(checks[i])), tuple(sorted(agents[i])))
            for i, (start, end) in enumerate(runs)]


def nearest_rank(values: Sequence[float], p: float) -> float | None:
    """Rule 8 on raw values: the nearest-rank `p`-th percentile (0 < p ≤ 100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-exact(p) * len(ordered) // 100))
    return ordered[int(rank) - 1]


Latency = sketch.Histogram | list[float]  # a histogram, or the raw values (exact nearest rank)


def percentile(latency: Latency | None, p: float) -> float | None:
    """Rule 8 from a histogram (within its relative error) or from raw values (exactly)."""
    if latency is None:
        return None
    return nearest_rank(latency, p) if isinstance(latency, list) else sketch.percentile(latency, p)


def objectives(service: Service, percent: Fraction | None, latency: Latency | None) -> list[ObjectiveResult]:
    results = []
    for objective in service.objectives:
        if objective.kind == "availability":
            assert objective.target is not None
            met = None if percent is None else percent >= exact(objective.target)
            results.append(ObjectiveResult("availability", objective.target, None, None,
                                           None if percent is None else float(percent), met))
        else:
            assert objective.percentile is not None and objective.max_ms is not None
            measured = percentile(latency, objective.percentile)
            results.append(ObjectiveResult("latency", None, objective.percentile, objective.max_ms, measured,
                                           None if measured is None else measured <= objective.max_ms))
    return results


def availability_target(service: Service) -> float | None:
    return next((o.target for o in service.objectives if o.kind == "availability"), None)


def window(service: Service, period: Period, now: int | None) -> tuple[int, int, int]:
    """(first instant, end of the evaluated time, last instant) whose readings matter: min_outage
    beyond the period on both sides, and nothing at or after `now`."""
    reach = round(service.min_outage * 1000)
    end = period.end if now is None else max(period.start, min(period.end, now))
    last = period.end + reach if now is None else min(period.end + reach, max(now, period.start))
    return period.start - reach, end, last


def evaluate_service(contract: Contract, service: Service, period: Period,
                     runs: Mapping[tuple[str, str], Sequence[Run]], now: int | None = None,
                     latency: Latency | None = None) -> ServiceFigures:
    """Every figure of one service for one period (up to `now` for a running period)."""
    first, end, last = window(service, period, now)
    state = service_state(service, runs, first, last)
    eligible, maintenance = eligible_windows(contract, service, period.start, end)
    counts = count(state.timeline, eligible)
    percent = availability(counts, contract.unknown)
    coverage = None if counts.eligible_ms == 0 else Fraction(100 * (counts.up_ms + counts.down_ms), counts.eligible_ms)
    target = availability_target(service)
    whole = eligible if end == period.end else eligible_windows(contract, service, period.start, period.end)[0]
    to_come = total(whole) - counts.eligible_ms
    best = availability(Counts(counts.eligible_ms + to_come, counts.up_ms + to_come, counts.down_ms,
                               counts.unknown_ms), contract.unknown)
    return ServiceFigures(
        id=service.id, name=service.name, eligible_ms=counts.eligible_ms, maintenance_ms=total(maintenance),
        up_ms=counts.up_ms, down_ms=counts.down_ms, unknown_ms=counts.unknown_ms,
        coverage_percent=None if coverage is None else float(coverage),
        availability_percent=None if percent is None else float(percent),
        objectives=objectives(service, percent, latency),
        credit_percent=credit_percent(percent, contract.credit_tiers(service)),
        budget=None if target is None else budget(target, total(whole), counts, contract.unknown),
        incidents=incidents(state, eligible), availability=percent, coverage=coverage, best_availability=best)


def contract_credit(contract: Contract, figures: Sequence[ServiceFigures]) -> tuple[float, float]:
    """(credit percent: the largest of the services', capped at 100; credit = fee × percent / 100)."""
    percent = min(100.0, max((f.credit_percent for f in figures), default=0.0))
    amount = exact(contract.fee) * exact(percent) / 100
    cents = (Decimal(amount.numerator) / Decimal(amount.denominator)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return percent, float(cents)
