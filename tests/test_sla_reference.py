"""SLA rules 1-11 (DESIGN.md "SLA semantics") against a brute-force reference computed per second.

The reference below is written independently of `slawatch.watchdog.sla` and `periods`: it takes the
raw readings of each (agent, check), decides every second of the time the data spans one rule at a
time (coverage -> quorum -> service -> min_outage -> eligibility -> counting -> credit, budget,
incidents), and counts seconds. It is slow on purpose: nothing but a loop over seconds, a few masks
and `Fraction`s. Hypothesis then compares `sla.evaluate_service` with it on small random cases
(periods of a few hours to a couple of days, DST changes in Europe/Amsterdam, America/New_York and
Australia/Lord_Howe, business hours, recurring and one-off maintenance, every unknown policy).

Assumptions of the reference (all inputs the tests generate satisfy them): reading times, interval
holds, period bounds, `now`, business hours and maintenance bounds are whole seconds, so the status
of every second `[t, t + 1)` is constant and counting seconds is exact.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slawatch.config.contract import (
    BusinessHours,
    Contract,
    CreditTier,
    Maintenance,
    Objective,
    Service,
    load_contract,
)
from slawatch.watchdog import intervals, periods, sla

S = 1000  # one second in ms
UP, DOWN, UNKNOWN = "up", "down", "unknown"
U, A, D = 0, 1, 2  # per-second codes: unknown, up ("available"), down
CODE = {UNKNOWN: U, UP: A, DOWN: D}

Reading = tuple[int, str, float]  # (ts_ms, status, interval_s)
Readings = Mapping[tuple[str, str], Sequence[Reading]]


# ------------------------------------------------------------------------------------------------
# The reference, per second
# ------------------------------------------------------------------------------------------------

def wall_to_s(naive: dt.datetime, tz: ZoneInfo) -> int:
    """A local wall time as a whole-second instant, zoneinfo's fold=0: a repeated time is its first
    occurrence, a missing time lands after the gap."""
    assert naive.tzinfo is None and naive.fold == 0
    value = naive.replace(tzinfo=tz).timestamp()
    assert value == int(value), naive
    return int(value)


def local_naive(second: int, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(second, tz).replace(tzinfo=None)


@functools.cache
def occurrences(rule: str) -> tuple[dt.datetime, ...]:
    """Every occurrence of a maintenance RRULE (local naive times) from 2025-06 to 2027-06, expanded
    the way the API says: `rrulestr(rule, dtstart=datetime(2000, 1, 1))`."""
    expanded = rrulestr(rule, dtstart=dt.datetime(2000, 1, 1))
    return tuple(expanded.between(dt.datetime(2025, 6, 1), dt.datetime(2027, 6, 1), inc=True))


def business_windows_s(hours: BusinessHours, first: dt.date, last: dt.date, tz: ZoneInfo) -> list[tuple[int, int]]:
    """[date + start, date + end) for each local date in [first, last] whose weekday counts ("24:00",
    `time.max`, is the next midnight)."""
    windows = []
    day = first
    while day <= last:
        if day.weekday() in hours.days:
            lo = wall_to_s(dt.datetime.combine(day, hours.start), tz)
            if hours.end == dt.time.max:
                hi = wall_to_s(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0)), tz)
            else:
                hi = wall_to_s(dt.datetime.combine(day, hours.end), tz)
            windows.append((lo, hi))
        day += dt.timedelta(days=1)
    return windows


def maintenance_windows_s(contract: Contract, service: Service, lo_s: int, hi_s: int, tz: ZoneInfo) -> list[tuple[int, int]]:
    """The maintenance windows that apply to the service, as (start, end) seconds, possibly empty or
    reaching outside [lo_s, hi_s)."""
    windows = []
    for window in contract.maintenance:
        if window.services and service.id not in window.services:
            continue
        if window.rrule is not None:
            assert window.duration is not None and window.duration == int(window.duration)
            earliest = local_naive(lo_s, tz) - dt.timedelta(seconds=window.duration) - dt.timedelta(days=2)
            latest = local_naive(hi_s, tz) + dt.timedelta(days=2)
            assert dt.datetime(2025, 6, 1) <= earliest and latest <= dt.datetime(2027, 6, 1)  # what occurrences() holds
            for occurrence in occurrences(window.rrule):
                if earliest <= occurrence <= latest:
                    start = wall_to_s(occurrence, tz)
                    windows.append((start, start + int(window.duration)))
        else:
            assert window.start is not None and window.end is not None
            windows.append((wall_to_s(window.start, tz), wall_to_s(window.end, tz)))
    return windows


def mask(lo_s: int, hi_s: int, windows: Sequence[tuple[int, int]]) -> bytearray:
    """1 for each second of [lo_s, hi_s) inside any of the windows [a, b)."""
    result = bytearray(hi_s - lo_s)
    for a, b in windows:
        for t in range(max(a, lo_s), min(b, hi_s)):
            result[t - lo_s] = 1
    return result


def spans_ms(lo_s: int, flags: Sequence[int]) -> list[tuple[int, int]]:
    """Maximal runs of set flags as [start, end) in ms."""
    result: list[tuple[int, int]] = []
    for i, flag in enumerate(flags):
        if flag:
            t = lo_s + i
            if result and result[-1][1] == t * S:
                result[-1] = (result[-1][0], (t + 1) * S)
            else:
                result.append((t * S, (t + 1) * S))
    return result


def rule1(readings: Sequence[Reading], lo_s: int, hi_s: int, now: int | None) -> bytearray:
    """Rule 1 for one agent's one check: a reading at ts holds over [ts, min(next_ts, ts + 1.5 x
    interval)); nothing else is known. With `now`, readings at or after now do not exist and nothing
    is known from now on."""
    status = bytearray(hi_s - lo_s)  # all unknown
    kept = [r for r in readings if now is None or r[0] < now]
    assert [r[0] for r in kept] == sorted(r[0] for r in kept)
    for i, (ts, code, interval_s) in enumerate(kept):
        end = ts + round(interval_s * 1.5 * S)
        if i + 1 < len(kept):
            end = min(end, kept[i + 1][0])
        if now is not None:
            end = min(end, now)
        assert ts % S == 0 and end % S == 0
        for t in range(ts // S, end // S):
            status[t - lo_s] = CODE[code]
    return status


def rule2(agents: Sequence[bytearray], quorum: int, length: int) -> bytearray:
    """A check at each second: unknown if no agent knows, down if d >= min(quorum, n), else up."""
    result = bytearray(length)  # unknown where no agent has data at all
    for i, values in enumerate(zip(*agents)):
        n = len(values) - values.count(U)
        d = values.count(D)
        if n == 0:
            result[i] = U
        elif d >= min(quorum, n):
            result[i] = D
        else:
            result[i] = A
    return result


def rule3(checks: Sequence[bytearray], length: int) -> bytearray:
    """The service at each second: down if any check is down, up if all are up, else unknown."""
    result = bytearray(length)
    for i, states in enumerate(zip(*checks)):
        if D in states:
            result[i] = D
        elif states.count(A) == len(states):
            result[i] = A
        else:
            result[i] = U
    return result


def rule4(service: bytearray, min_outage_s: float) -> bytearray:
    """Each maximal down run (over all the data) shorter than min_outage is up; exactly counts."""
    result = bytearray(service)
    i = 0
    while i < len(result):
        if result[i] != D:
            i += 1
            continue
        j = i
        while j < len(result) and result[j] == D:
            j += 1
        if (j - i) < min_outage_s:
            for k in range(i, j):
                result[k] = A
        i = j
    return result


def rule5(contract: Contract, service: Service, P0: int, P1: int) -> tuple[bytearray, bytearray, bytearray]:
    """Per second of [P0, P1) (seconds): (business hours, eligible, maintenance inside business hours).
    Eligible = business hours minus the maintenance windows that apply to the service."""
    tz = ZoneInfo(contract.timezone)
    first = local_naive(P0, tz).date() - dt.timedelta(days=1)
    last = local_naive(P1, tz).date() + dt.timedelta(days=1)
    if contract.business_hours is None:
        business = bytearray(b"\x01" * (P1 - P0))
    else:
        business = mask(P0, P1, business_windows_s(contract.business_hours, first, last, tz))
    eligible = bytearray(business)
    in_maintenance = bytearray(P1 - P0)
    for a, b in maintenance_windows_s(contract, service, P0, P1, tz):
        for t in range(max(a, P0), min(b, P1)):
            eligible[t - P0] = 0
            in_maintenance[t - P0] = business[t - P0]
    return business, eligible, in_maintenance


def decimal(value: float) -> Fraction:
    """A config number as the decimal the contract wrote (99.9 is 999/10, not the binary double)."""
    return Fraction(repr(value))


@dataclass
class Expected:
    business_ms: int            # business-hours time of the evaluated part of the period
    eligible_ms: int
    maintenance_ms: int
    up_ms: int
    down_ms: int
    unknown_ms: int
    coverage: Fraction | None   # percent
    availability: Fraction | None  # percent, after the unknown policy
    credit_percent: float
    target: float | None
    budget_allowed: Fraction | None
    budget_spent: int | None
    incidents: list[tuple[int, int, tuple[str, ...], tuple[str, ...]]]
    eligible_spans: list[tuple[int, int]]     # of the WHOLE period
    maintenance_spans: list[tuple[int, int]]  # of the WHOLE period


def reference(contract: Contract, service: Service, p0: int, p1: int, now: int | None,
              readings: Readings) -> Expected:
    """Rules 1-11 per second for `service` over the period [p0, p1) (ms), evaluated up to `now`."""
    assert p0 % S == 0 and p1 % S == 0 and (now is None or now % S == 0)
    P0, P1 = p0 // S, p1 // S
    E = P1 if now is None else max(P0, min(P1, now // S))  # evaluated: [P0, E)

    # the time the data spans, so that min_outage sees whole runs (rule 4)
    relevant = {key: list(rs) for key, rs in readings.items() if key[1] in service.checks}
    lo, hi = P0, P1
    for rs in relevant.values():
        for ts, _, interval_s in rs:
            lo = min(lo, ts // S)
            hi = max(hi, (ts + round(interval_s * 1.5 * S)) // S)
    length = hi - lo

    # rules 1-4 over [lo, hi)
    agent_status = {key: rule1(rs, lo, hi, now) for key, rs in relevant.items()}
    check_status = {
        check: rule2([s for (agent, c), s in agent_status.items() if c == check], service.quorum, length)
        for check in service.checks
    }
    service_status = rule3(list(check_status.values()), length)
    counted = rule4(service_status, service.min_outage)

    # rule 5 over the whole period [P0, P1)
    business, eligible, in_maintenance = rule5(contract, service, P0, P1)

    # rules 6-7: count the evaluated seconds
    business_s = eligible_s = maintenance_s = up_s = down_s = unknown_s = 0
    for t in range(P0, E):
        business_s += business[t - P0]
        maintenance_s += in_maintenance[t - P0]
        if not eligible[t - P0]:
            continue
        eligible_s += 1
        state = counted[t - lo]
        if state == A:
            up_s += 1
        elif state == D:
            down_s += 1
        else:
            unknown_s += 1
    coverage = Fraction(100 * (up_s + down_s), eligible_s) if eligible_s else None
    policy = contract.unknown
    if policy == "exclude":
        numerator, denominator = up_s, up_s + down_s
    elif policy == "up":
        numerator, denominator = up_s + unknown_s, eligible_s
    else:
        assert policy == "down"
        numerator, denominator = up_s, eligible_s
    availability = Fraction(100 * numerator, denominator) if denominator else None

    # rule 9
    credit = 0.0
    if availability is not None:
        credit = max((tier.percent for tier in contract.credit_tiers(service) if availability < decimal(tier.below)),
                     default=0.0)

    # rule 10
    targets = [o.target for o in service.objectives if o.kind == "availability"]
    target = targets[0] if targets else None
    allowed = spent = None
    if target is not None:
        allowed = (1 - decimal(target) / 100) * sum(eligible) * S
        spent = (down_s + (unknown_s if policy == "down" else 0)) * S

    # rule 11
    found: list[tuple[int, int, tuple[str, ...], tuple[str, ...]]] = []
    t = P0
    while t < E:
        if not (eligible[t - P0] and counted[t - lo] == D):
            t += 1
            continue
        u = t
        while u < E and eligible[u - P0] and counted[u - lo] == D:
            u += 1
        checks = tuple(sorted(c for c, s in check_status.items() if any(s[k - lo] == D for k in range(t, u))))
        agents = tuple(sorted({a for (a, c), s in agent_status.items() if any(s[k - lo] == D for k in range(t, u))}))
        found.append((t * S, u * S, checks, agents))
        t = u

    return Expected(
        business_ms=business_s * S, eligible_ms=eligible_s * S, maintenance_ms=maintenance_s * S,
        up_ms=up_s * S, down_ms=down_s * S, unknown_ms=unknown_s * S, coverage=coverage,
        availability=availability, credit_percent=credit, target=target, budget_allowed=allowed,
        budget_spent=spent, incidents=found, eligible_spans=spans_ms(P0, eligible),
        maintenance_spans=spans_ms(P0, in_maintenance),
    )


# ------------------------------------------------------------------------------------------------
# Building contracts, periods and the system's inputs
# ------------------------------------------------------------------------------------------------

BASE_TOML = """
[contract]
id = "reference"
client = "Client"
provider = "Provider"
timezone = "UTC"
fee = 1000.0

[[service]]
id = "svc"
checks = ["c1"]

[[service]]
id = "other"
checks = ["c1"]
"""


@functools.cache
def base_contract() -> Contract:
    fd, name = tempfile.mkstemp(suffix=".toml")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(BASE_TOML)
        contract = load_contract(name)
    finally:
        os.unlink(name)
    assert contract is not None
    return contract


def make_contract(*, timezone: str = "UTC", unknown: str = "exclude", checks: Sequence[str] = ("c1",),
                  quorum: int = 1, min_outage: float = 0.0, objectives: Sequence[Objective] = (),
                  service_credit: Sequence[CreditTier] | None = None, credit: Sequence[CreditTier] = (),
                  business_hours: BusinessHours | None = None,
                  maintenance: Sequence[Maintenance] = ()) -> tuple[Contract, Service]:
    base = base_contract()
    service = dataclasses.replace(
        base.services[0], checks=tuple(checks), quorum=quorum, min_outage=float(min_outage),
        objectives=tuple(objectives), credit=None if service_credit is None else tuple(service_credit))
    contract = dataclasses.replace(
        base, timezone=timezone, unknown=unknown, business_hours=business_hours,
        services=(service, base.services[1]), maintenance=tuple(maintenance), credit=tuple(credit))
    return contract, service


def make_period(timezone: str, start: int, end: int) -> periods.Period:
    """A Period over any [start, end) (the API allows spans that are not calendar periods)."""
    tz = ZoneInfo(timezone)
    return periods.Period(kind="week", label="test", timezone=timezone, start=start, end=end,
                          start_local=dt.datetime.fromtimestamp(start / S, tz),
                          end_local=dt.datetime.fromtimestamp(end / S, tz))


def system(contract: Contract, service: Service, period: periods.Period, readings: Readings,
           now: int | None) -> sla.ServiceFigures:
    runs = {key: intervals.runs_of(rs) for key, rs in readings.items()}
    return sla.evaluate_service(contract, service, period, runs, now=now)


def close(value: float | None, exact: Fraction | None) -> bool:
    if value is None or exact is None:
        return value is None and exact is None
    return math.isclose(value, float(exact), rel_tol=1e-12, abs_tol=1e-9)


def assert_matches(got: sla.ServiceFigures, want: Expected, *, now: int | None, period_end: int) -> None:
    """Every figure the system reports equals the reference's, plus the invariants of rules 5-7."""
    assert (got.eligible_ms, got.maintenance_ms) == (want.eligible_ms, want.maintenance_ms), "rule 5"
    assert (got.up_ms, got.down_ms, got.unknown_ms) == (want.up_ms, want.down_ms, want.unknown_ms), "rules 1-6"
    assert got.up_ms + got.down_ms + got.unknown_ms == got.eligible_ms
    assert got.eligible_ms + got.maintenance_ms == want.business_ms
    assert close(got.coverage_percent, want.coverage), (got.coverage_percent, want.coverage)
    assert close(got.availability_percent, want.availability), (got.availability_percent, want.availability)
    if got.availability_percent is not None:
        assert 0.0 <= got.availability_percent <= 100.0
    assert got.credit_percent == want.credit_percent, "rule 9"
    if want.target is None:
        assert got.budget is None
    else:
        assert got.budget is not None and want.budget_allowed is not None and want.budget_spent is not None
        assert math.isclose(got.budget.allowed_ms, float(want.budget_allowed), rel_tol=1e-9, abs_tol=1e-6), "rule 10"
        assert got.budget.spent_ms == want.budget_spent, "rule 10"
        assert math.isclose(got.budget.remaining_ms, float(want.budget_allowed - want.budget_spent),
                            rel_tol=1e-9, abs_tol=1e-6)
    incidents = [(i.start, i.end, tuple(i.checks), tuple(i.agents)) for i in got.incidents]
    assert incidents == want.incidents, "rule 11"
    availability_objectives = [o for o in got.objectives if o.kind == "availability"]
    if want.target is not None and (now is None or now >= period_end):
        assert len(availability_objectives) == 1
        objective = availability_objectives[0]
        assert close(objective.measured, want.availability)
        assert objective.met == (None if want.availability is None else want.availability >= decimal(want.target))


# ------------------------------------------------------------------------------------------------
# The reference itself on hand-computed cases (and the system with it)
# ------------------------------------------------------------------------------------------------

T0 = 1_790_000_000_000  # 2026-09-21 14:13:20 UTC, a Monday
H = 3600 * S


def every(start: int, count: int, interval_s: int, status: str = UP) -> list[Reading]:
    return [(start + i * interval_s * S, status, interval_s) for i in range(count)]


def check_both(contract: Contract, service: Service, p0: int, p1: int, readings: Readings,
               now: int | None = None) -> Expected:
    want = reference(contract, service, p0, p1, now, readings)
    got = system(contract, service, make_period(contract.timezone, p0, p1), readings, now)
    assert_matches(got, want, now=now, period_end=p1)
    return want


def test_reference_min_outage_runs_cross_the_period_start_and_exactly_min_outage_counts() -> None:
    contract, service = make_contract(min_outage=120, objectives=[Objective("availability", target=99.0)],
                                      credit=[CreditTier(99.9, 10.0), CreditTier(99.0, 25.0)])
    p0, p1 = T0, T0 + H
    # down from p0 - 60 s to p0 + 60 s (120 s, counts: 60 s of it inside), up, then a 59 s blip
    # (up), then exactly 120 s down (counts)
    readings = {("a1", "c1"): [
        *every(p0 - 600 * S, 9, 60),                 # up to p0 - 60
        *every(p0 - 60 * S, 2, 60, DOWN),           # down [p0 - 60, p0 + 60)
        *every(p0 + 60 * S, 10, 60),                # up [p0 + 60, p0 + 660)
        (p0 + 660 * S, DOWN, 60),                   # down [p0 + 660, p0 + 719)
        *every(p0 + 719 * S, 10, 60),               # up [p0 + 719, p0 + 1319)
        *every(p0 + 1319 * S, 2, 60, DOWN),         # down [p0 + 1319, p0 + 1439)
        *every(p0 + 1439 * S, 40, 60),              # up to p0 + 1439 + 2400 - 60 + 90 > p1
    ]}
    want = check_both(contract, service, p0, p1, readings)
    assert want.down_ms == 180 * S and want.up_ms == 3420 * S and want.unknown_ms == 0
    assert want.incidents == [(p0, p0 + 60 * S, ("c1",), ("a1",)), (p0 + 1319 * S, p0 + 1439 * S, ("c1",), ("a1",))]
    assert want.availability == Fraction(100 * 3420, 3600)  # 95 %
    assert want.credit_percent == 25.0
    assert want.budget_allowed == Fraction(36 * S) and want.budget_spent == 180 * S


def test_reference_quorum_gaps_and_unknown_policies() -> None:
    p0, p1 = T0, T0 + 1000 * S
    readings = {
        ("a1", "c1"): [*every(p0, 10, 10), *every(p0 + 100 * S, 10, 10, DOWN)],
        ("a2", "c1"): [*every(p0, 10, 10), *every(p0 + 100 * S, 5, 10, DOWN), *every(p0 + 150 * S, 5, 10)],
        ("a1", "c2"): every(p0, 20, 10),
        ("a1", "elsewhere"): every(p0, 100, 10, DOWN),  # not a check of the service: ignored
    }
    # a1/c1: up [0, 100), down [100, 205) (the last reading holds 15 s); a2/c1: up [0, 100),
    # down [100, 150), up [150, 205); a1/c2: up [0, 205); everything unknown from 205 on.
    # c1 is down over [100, 150) for any quorum, and over [150, 205) (1 of 2 agents) for quorum 1 only
    for quorum, down_s in ((1, 105), (2, 50), (3, 50)):
        for policy in ("exclude", "up", "down"):
            contract, service = make_contract(checks=("c1", "c2"), quorum=quorum, unknown=policy,
                                              objectives=[Objective("availability", target=99.5)])
            want = check_both(contract, service, p0, p1, readings)
            up_s = 205 - down_s
            assert (want.up_ms, want.down_ms, want.unknown_ms) == (up_s * S, down_s * S, 795 * S)
            assert want.coverage == Fraction(100 * 205, 1000)
            assert want.availability == {"exclude": Fraction(100 * up_s, 205),
                                         "up": Fraction(100 * (up_s + 795), 1000),
                                         "down": Fraction(100 * up_s, 1000)}[policy]
            assert want.budget_spent == (down_s + (795 if policy == "down" else 0)) * S
            assert want.incidents == [(p0 + 100 * S, p0 + (100 + down_s) * S, ("c1",), ("a1", "a2"))]


def test_reference_business_hours_and_maintenance_across_dst_end_in_amsterdam() -> None:
    tz = "Europe/Amsterdam"
    # Sunday 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00 UTC; 02:00-03:00 local happens twice
    p0 = periods.local_ms(dt.datetime(2026, 10, 25), tz)
    p1 = periods.local_ms(dt.datetime(2026, 10, 26), tz)
    assert p1 - p0 == 25 * H
    hours = BusinessHours(days=(6,), start=dt.time(1, 0), end=dt.time(2, 30))
    # business hours: 01:00 CEST (23:00 UTC) to the FIRST 02:30 (00:30 UTC): 1.5 h
    windows = [
        Maintenance((), "FREQ=DAILY;BYHOUR=2;BYMINUTE=0", 600.0, None, None, ""),  # first 02:00 + 10 min
        Maintenance(("other",), None, None, dt.datetime(2026, 10, 25, 1, 0), dt.datetime(2026, 10, 25, 2, 0), ""),
    ]
    contract, service = make_contract(timezone=tz, business_hours=hours, maintenance=windows, min_outage=60)
    start = p0 - 2 * H
    # up, down over [p0 + 65 min, p0 + 67 min) (01:05-01:07 CEST), up again
    readings = {("a1", "c1"): [*every(start, 185, 60), *every(start + 185 * 60 * S, 2, 60, DOWN),
                               *every(start + 187 * 60 * S, 100, 60)]}
    want = check_both(contract, service, p0, p1, readings)
    assert want.business_ms == 90 * 60 * S
    assert want.maintenance_ms == 10 * 60 * S and want.eligible_ms == 80 * 60 * S
    assert want.down_ms == 120 * S and want.up_ms == 78 * 60 * S
    assert want.incidents == [(p0 + 65 * 60 * S, p0 + 67 * 60 * S, ("c1",), ("a1",))]
    assert want.maintenance_spans == [(p0 + 2 * H, p0 + 2 * H + 600 * S)]
    assert want.eligible_spans == [(p0 + H, p0 + 2 * H), (p0 + 2 * H + 600 * S, p0 + 2 * H + 1800 * S)]
    assert sla.eligible_windows(contract, service, p0, p1) == (want.eligible_spans, want.maintenance_spans)


def test_reference_business_hours_start_in_the_dst_gap_land_after_it() -> None:
    tz = "Europe/Amsterdam"
    # Sunday 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist and means 03:30 CEST
    p0 = periods.local_ms(dt.datetime(2026, 3, 29), tz)
    p1 = periods.local_ms(dt.datetime(2026, 3, 30), tz)
    assert p1 - p0 == 23 * H
    contract, service = make_contract(timezone=tz, business_hours=BusinessHours((6,), dt.time(2, 30), dt.time(4, 0)))
    readings = {("a1", "c1"): every(p0, 23 * 60, 60)}
    want = check_both(contract, service, p0, p1, readings)
    assert want.eligible_ms == 30 * 60 * S  # 03:30 to 04:00 CEST
    assert want.eligible_spans == [(p0 + 2 * H + 30 * 60 * S, p0 + 3 * H)]


def test_exact_tier_boundary_is_not_below_it() -> None:
    p0, p1 = T0, T0 + 1000 * S
    readings = {("a1", "c1"): [*every(p0, 50, 10), (p0 + 500 * S, DOWN, 2), *every(p0 + 501 * S, 50, 10)]}
    contract, service = make_contract(objectives=[Objective("availability", target=99.9)],
                                      credit=[CreditTier(99.9, 10.0), CreditTier(99.95, 5.0), CreditTier(99.0, 25.0)])
    want = check_both(contract, service, p0, p1, readings)
    assert want.availability == Fraction(999, 10)  # exactly 99.9: not below 99.9, below 99.95
    assert want.credit_percent == 5.0
    got = system(contract, service, make_period("UTC", p0, p1), readings, None)
    assert got.credit_percent == 5.0
    assert sla.contract_credit(contract, [got]) == (5.0, 50.0)  # fee 1000.0
    assert [o.met for o in got.objectives if o.kind == "availability"] == [True]


def test_a_running_period_is_evaluated_up_to_now_and_an_outage_under_min_outage_at_now_is_up() -> None:
    p0, p1 = T0, T0 + 4 * H
    contract, service = make_contract(min_outage=300, objectives=[Objective("availability", target=99.0)])
    # down from p0 + 1 h on, for 10 min; now = p0 + 1 h + 4 min: only 4 min of it has happened
    readings = {("a1", "c1"): [*every(p0, 60, 60), *every(p0 + H, 10, 60, DOWN), *every(p0 + H + 600 * S, 60, 60)]}
    now = p0 + H + 240 * S
    want = check_both(contract, service, p0, p1, readings, now=now)
    assert want.eligible_ms == now - p0 and want.down_ms == 0 and want.incidents == []
    assert want.budget_allowed == Fraction(4 * H, 100)  # allowed: the whole period's eligible time
    later = check_both(contract, service, p0, p1, readings, now=p0 + H + 420 * S)
    assert later.down_ms == 420 * S
    assert later.incidents == [(p0 + H, p0 + H + 420 * S, ("c1",), ("a1",))]


def rule5_spans(contract: Contract, service: Service, p0: int, p1: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The reference's (eligible spans, maintenance spans) of [p0, p1), in ms."""
    _, eligible, in_maintenance = rule5(contract, service, p0 // S, p1 // S)
    return spans_ms(p0 // S, eligible), spans_ms(p0 // S, in_maintenance)


def test_recurring_maintenance_counts_from_2000_and_lasts_elapsed_time_across_dst() -> None:
    tz = "Europe/Amsterdam"
    windows = [
        # every other weekend from 2000-01-01: 21/22 March 2026, not 28/29 March
        Maintenance((), "FREQ=WEEKLY;INTERVAL=2;BYDAY=SA,SU;BYHOUR=2;BYMINUTE=0", 3600.0, None, None, ""),
        # every third day from 2000-01-01: 21, 24, 27 March 2026
        Maintenance((), "FREQ=DAILY;INTERVAL=3;BYHOUR=12;BYMINUTE=0", 1800.0, None, None, ""),
        # 01:30 CET on the day clocks go forward, 2 h of elapsed time: until 04:30 CEST
        Maintenance(("svc",), "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=29;BYHOUR=1;BYMINUTE=30", 7200.0, None, None, ""),
        Maintenance(("other",), "FREQ=DAILY;BYHOUR=6;BYMINUTE=0", 7200.0, None, None, ""),  # not this service
    ]
    contract, service = make_contract(timezone=tz, maintenance=windows)
    p0 = periods.local_ms(dt.datetime(2026, 3, 21), tz)
    p1 = periods.local_ms(dt.datetime(2026, 3, 30), tz)
    eligible, maintenance = rule5_spans(contract, service, p0, p1)
    at = functools.partial(periods.local_ms, timezone=tz)
    assert maintenance == [
        (at(dt.datetime(2026, 3, 21, 2)), at(dt.datetime(2026, 3, 21, 3))),
        (at(dt.datetime(2026, 3, 21, 12)), at(dt.datetime(2026, 3, 21, 12, 30))),
        (at(dt.datetime(2026, 3, 22, 2)), at(dt.datetime(2026, 3, 22, 3))),
        (at(dt.datetime(2026, 3, 24, 12)), at(dt.datetime(2026, 3, 24, 12, 30))),
        (at(dt.datetime(2026, 3, 27, 12)), at(dt.datetime(2026, 3, 27, 12, 30))),
        (at(dt.datetime(2026, 3, 29, 1, 30)), at(dt.datetime(2026, 3, 29, 4, 30))),
    ]
    assert sum(b - a for a, b in maintenance) == int(5.5 * H)
    assert sla.eligible_windows(contract, service, p0, p1) == (eligible, maintenance)
    # 01:30 CEST on the day clocks go back, 2 h elapsed: until the second 02:30 (CET)
    windows = [Maintenance((), "FREQ=YEARLY;BYMONTH=10;BYMONTHDAY=25;BYHOUR=1;BYMINUTE=30", 7200.0, None, None, "")]
    contract, service = make_contract(timezone=tz, maintenance=windows)
    p0 = periods.local_ms(dt.datetime(2026, 10, 25), tz)
    p1 = periods.local_ms(dt.datetime(2026, 10, 26), tz)
    eligible, maintenance = rule5_spans(contract, service, p0, p1)
    assert maintenance == [(p0 + int(1.5 * H), p0 + int(3.5 * H))]
    assert sla.eligible_windows(contract, service, p0, p1) == (eligible, maintenance)


def test_one_off_windows_in_the_dst_gap_and_business_hours_to_24_00() -> None:
    tz = "Europe/Amsterdam"
    p0 = periods.local_ms(dt.datetime(2026, 3, 29), tz)  # 23:00 UTC the day before
    p1 = periods.local_ms(dt.datetime(2026, 3, 30), tz)
    day = functools.partial(dt.datetime, 2026, 3, 29)
    windows = [
        Maintenance((), None, None, day(2, 30), day(3, 10), ""),   # 03:30 CEST to 03:10 CEST: empty
        Maintenance((), None, None, day(2, 30), day(3, 45), ""),   # 03:30 to 03:45 CEST
        Maintenance((), None, None, day(1, 50), day(2, 10), ""),   # 01:50 CET to 03:10 CEST: 20 min
    ]
    contract, service = make_contract(timezone=tz, maintenance=windows,
                                      business_hours=BusinessHours((6,), dt.time(0, 0), dt.time.max))
    eligible, maintenance = rule5_spans(contract, service, p0, p1)
    assert maintenance == [(p0 + 110 * 60 * S, p0 + 130 * 60 * S), (p0 + int(2.5 * H), p0 + int(2.75 * H))]
    assert eligible == [(p0, p0 + 110 * 60 * S), (p0 + 130 * 60 * S, p0 + int(2.5 * H)), (p0 + int(2.75 * H), p1)]
    assert sla.eligible_windows(contract, service, p0, p1) == (eligible, maintenance)
    readings = {("a1", "c1"): every(p0 - H, 25 * 60, 60, DOWN)}
    want = check_both(contract, service, p0, p1, readings)
    assert want.eligible_ms == 23 * H - 35 * 60 * S and want.business_ms == 23 * H
    assert [(a, b) for a, b, _, _ in want.incidents] == eligible
    # "24:00" is the next midnight: the last second of each day counts
    contract, service = make_contract(business_hours=BusinessHours(tuple(range(7)), dt.time(23, 0), dt.time.max))
    eleven = periods.local_ms(dt.datetime(2026, 9, 21, 23), "UTC")  # T0 is 2026-09-21 14:13:20 UTC
    assert rule5_spans(contract, service, T0, T0 + 48 * H)[0] == [(eleven, eleven + H), (eleven + 24 * H, eleven + 25 * H)]
    assert sla.eligible_windows(contract, service, T0, T0 + 48 * H) == rule5_spans(contract, service, T0, T0 + 48 * H)


# ------------------------------------------------------------------------------------------------
# Random cases
# ------------------------------------------------------------------------------------------------

# (timezone, instants near which periods are drawn): DST changes and an ordinary day
ANCHORS = {
    "UTC": [dt.datetime(2026, 6, 10, 12, tzinfo=dt.UTC)],
    "Europe/Amsterdam": [dt.datetime(2026, 3, 29, 1, tzinfo=dt.UTC),
                         dt.datetime(2026, 10, 25, 1, tzinfo=dt.UTC),
                         dt.datetime(2026, 7, 1, 6, tzinfo=dt.UTC)],
    "America/New_York": [dt.datetime(2026, 3, 8, 7, tzinfo=dt.UTC),
                         dt.datetime(2026, 11, 1, 6, tzinfo=dt.UTC)],
    "Australia/Lord_Howe": [dt.datetime(2026, 4, 4, 15, tzinfo=dt.UTC),      # 30 min back
                            dt.datetime(2026, 10, 3, 15, 30, tzinfo=dt.UTC)],  # 30 min forward
}
ZONE_WEIGHTED = ["Europe/Amsterdam", "UTC", "America/New_York", "Australia/Lord_Howe", "Europe/Amsterdam"]

TIMES = [dt.time(0, 0), dt.time(1, 0), dt.time(1, 30), dt.time(2, 0), dt.time(2, 15), dt.time(2, 30),
         dt.time(3, 0), dt.time(6, 0), dt.time(8, 0), dt.time(12, 30), dt.time(18, 0), dt.time(23, 0), dt.time.max]
RRULES = [
    "FREQ=DAILY;BYHOUR={h};BYMINUTE={m}",
    "FREQ=WEEKLY;BYDAY=SU;BYHOUR={h};BYMINUTE={m}",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=SA,SU;BYHOUR={h};BYMINUTE={m}",
    "FREQ=DAILY;BYHOUR={h},{h2};BYMINUTE={m}",
    "FREQ=DAILY;INTERVAL=3;BYHOUR={h};BYMINUTE={m}",
]
INTERVALS = [10, 20, 30, 60, 120, 300]
STATUSES = [UP, UP, UP, DOWN, DOWN, UNKNOWN]


@dataclass
class Case:
    contract: Contract
    service: Service
    p0: int
    p1: int
    now: int | None
    readings: dict[tuple[str, str], list[Reading]]

    @property
    def period(self) -> periods.Period:
        return make_period(self.contract.timezone, self.p0, self.p1)


@st.composite
def series(draw: st.DrawFn, lo: int, hi: int) -> list[Reading]:
    """One agent's readings of one check, starting in [lo, hi): a few segments of regular readings of
    one status, with gaps between them that hit a hold exactly, miss it by a second, or repeat an
    instant (the later reading wins)."""
    ts = draw(st.integers(lo // S, hi // S)) * S
    readings: list[Reading] = []
    for _ in range(draw(st.integers(0, 6))):
        status, interval_s = draw(st.sampled_from(STATUSES)), draw(st.sampled_from(INTERVALS))
        seconds = draw(st.one_of(st.integers(0, 900), st.integers(900, 5 * 3600)))
        count = min(400, seconds // interval_s + 1)
        if readings:
            previous = int(readings[-1][2])
            named = {"next": previous, "same": 0, "hold": previous * 3 // 2, "hold+1": previous * 3 // 2 + 1}
            gap = draw(st.one_of(st.sampled_from(sorted(named)), st.integers(1, 3600)))
            ts = readings[-1][0] + (named[gap] if isinstance(gap, str) else gap) * S
        readings.extend((ts + i * interval_s * S, status, interval_s) for i in range(count))
        ts = readings[-1][0]
    return readings


@st.composite
def maintenance_windows(draw: st.DrawFn, p0: int, span_s: int, tz: ZoneInfo) -> Maintenance:
    services = draw(st.sampled_from([(), ("svc",), ("other",), ("other", "svc")]))
    if draw(st.booleans()):
        h, h2 = draw(st.one_of(st.sampled_from([0, 1, 2, 3]), st.integers(0, 23))), draw(st.integers(0, 23))
        template = draw(st.sampled_from(RRULES))
        rule = template.format(h=h, h2=h2 if h2 != h else (h + 12) % 24, m=draw(st.sampled_from([0, 15, 30, 45])))
        duration = draw(st.sampled_from([60, 600, 1800, 3600, 7200])) + draw(st.sampled_from([0, 1, 59]))
        return Maintenance(services, rule, float(duration), None, None, "")
    start = local_naive(p0 // S, tz).replace(second=0) + dt.timedelta(minutes=draw(st.integers(-180, span_s // 60)))
    end = start + dt.timedelta(minutes=draw(st.one_of(st.integers(1, 90), st.integers(1, 24 * 60))))
    return Maintenance(services, None, None, start, end, "note")


@st.composite
def calendars(draw: st.DrawFn, p0: int, span_s: int, tz: ZoneInfo,
              max_windows: int = 2) -> tuple[BusinessHours | None, list[Maintenance]]:
    """Optional business hours (bounds often in the hours clocks change) and maintenance windows."""
    hours = None
    if draw(st.booleans()):
        start, end = sorted(draw(st.lists(st.sampled_from(TIMES), min_size=2, max_size=2, unique=True)))
        days = tuple(range(7)) if draw(st.booleans()) else tuple(sorted(draw(st.sets(st.integers(0, 6), min_size=1))))
        hours = BusinessHours(days, start, end)
    return hours, draw(st.lists(maintenance_windows(p0, span_s, tz), max_size=max_windows))


@st.composite
def cases(draw: st.DrawFn, min_minutes: int = 30, max_minutes: int = 12 * 60, zones: Sequence[str] = ZONE_WEIGHTED,
          max_agents: int = 3, max_checks: int = 3, with_now: bool = True, quorum: int | None = None,
          anchors: Sequence[dt.datetime] = ()) -> Case:
    timezone = draw(st.sampled_from(zones))
    tz = ZoneInfo(timezone)
    anchor = int(draw(st.sampled_from(anchors or ANCHORS[timezone])).timestamp())
    if draw(st.booleans()):  # from a local midnight
        day = local_naive(anchor, tz).date() - dt.timedelta(days=draw(st.integers(0, 1)))
        p0 = wall_to_s(dt.datetime.combine(day, dt.time(0, 0)), tz)
    else:
        p0 = anchor - draw(st.integers(0, 30 * 60)) * 60
    if max_minutes >= 24 * 60 and draw(st.booleans()):  # one or two local calendar days
        day = local_naive(p0, tz).date() + dt.timedelta(days=draw(st.integers(1, 2)))
        p1 = wall_to_s(dt.datetime.combine(day, dt.time(0, 0)), tz)
    else:
        p1 = p0 + draw(st.integers(min_minutes, max_minutes)) * 60
    p0, p1 = p0 * S, p1 * S
    span_s = (p1 - p0) // S

    checks = [f"c{i}" for i in range(1, draw(st.integers(1, max_checks)) + 1)]
    agents = [f"a{i}" for i in range(1, draw(st.integers(1, max_agents)) + 1)]
    readings: dict[tuple[str, str], list[Reading]] = {}
    for agent in agents:
        for check in checks + ["elsewhere"]:
            if check == "elsewhere" and not draw(st.booleans()):
                continue
            rs = draw(series(p0 - 2 * H, (p0 + p1) // 2))
            keep_empty = draw(st.booleans())
            if rs or keep_empty:
                readings[(agent, check)] = rs

    hours, windows = draw(calendars(p0, span_s, tz))
    tiers = st.lists(st.builds(CreditTier, st.sampled_from([50.0, 90.0, 99.0, 99.5, 99.9, 100.0]),
                               st.sampled_from([5.0, 10.0, 25.0, 100.0])), max_size=3)
    service_credit = draw(st.one_of(st.none(), tiers))
    target = draw(st.sampled_from([None, 90.0, 99.0, 99.5, 99.9, 100.0]))
    objectives = [] if target is None else [Objective("availability", target=target)]
    contract, service = make_contract(
        timezone=timezone, unknown=draw(st.sampled_from(["exclude", "up", "down"])), checks=checks,
        quorum=quorum if quorum is not None else draw(st.integers(1, 3)),
        min_outage=draw(st.sampled_from([0.0, 0.0, 1.0, 30.0, 60.0, 90.5, 120.0, 300.0, 900.0])),
        objectives=objectives, service_credit=service_credit, credit=draw(tiers),
        business_hours=hours, maintenance=windows)
    now = None
    if with_now and draw(st.booleans()):
        now = p0 + draw(st.integers(-600, span_s + 3600)) * S  # before, inside or after the period
    return Case(contract, service, p0, p1, now, readings)


def fast(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@fast(300)
@given(case=cases())
def test_figures_equal_the_reference(case: Case) -> None:
    want = reference(case.contract, case.service, case.p0, case.p1, case.now, case.readings)
    got = system(case.contract, case.service, case.period, case.readings, case.now)
    assert_matches(got, want, now=case.now, period_end=case.p1)
    assert sla.eligible_windows(case.contract, case.service, case.p0, case.p1) == (
        want.eligible_spans, want.maintenance_spans)


@fast(60)
@given(data=st.data(), timezone=st.sampled_from(ZONE_WEIGHTED), days=st.integers(1, 9))
def test_eligible_windows_over_days_equal_the_reference(data: st.DataObject, timezone: str, days: int) -> None:
    tz = ZoneInfo(timezone)
    anchor = int(data.draw(st.sampled_from(ANCHORS[timezone])).timestamp())
    p0 = (anchor - data.draw(st.integers(0, days * 24 * 60)) * 60) * S
    p1 = p0 + days * 24 * H + data.draw(st.integers(-12 * 60, 12 * 60)) * 60 * S
    hours, windows = data.draw(calendars(p0, (p1 - p0) // S, tz, max_windows=4))
    contract, service = make_contract(timezone=timezone, business_hours=hours, maintenance=windows)
    assert sla.eligible_windows(contract, service, p0, p1) == rule5_spans(contract, service, p0, p1)


@fast(25)
@given(case=cases(min_minutes=24 * 60, max_minutes=50 * 60, max_agents=2, max_checks=2))
def test_figures_equal_the_reference_over_days(case: Case) -> None:
    want = reference(case.contract, case.service, case.p0, case.p1, case.now, case.readings)
    got = system(case.contract, case.service, case.period, case.readings, case.now)
    assert_matches(got, want, now=case.now, period_end=case.p1)


WEEKS = {  # ISO week -> its DST change in Europe/Amsterdam (on the Sunday)
    "2026-W13": dt.datetime(2026, 3, 29, 1, tzinfo=dt.UTC),
    "2026-W43": dt.datetime(2026, 10, 25, 1, tzinfo=dt.UTC),
}


@fast(6)
@given(week=st.sampled_from(sorted(WEEKS)), data=st.data())
def test_week_periods_across_dst_equal_the_reference(week: str, data: st.DataObject) -> None:
    period = periods.parse_period(week, "Europe/Amsterdam")
    tz = ZoneInfo("Europe/Amsterdam")
    monday = dt.date.fromisocalendar(2026, int(week[-2:]), 1)
    assert (period.kind, period.label, period.timezone) == ("week", week, "Europe/Amsterdam")
    assert period.start == wall_to_s(dt.datetime.combine(monday, dt.time(0, 0)), tz) * S
    assert period.end == wall_to_s(dt.datetime.combine(monday + dt.timedelta(days=7), dt.time(0, 0)), tz) * S
    assert period.end - period.start == (7 * 24 + (-1 if week == "2026-W13" else 1)) * H
    # data, one-off windows and `now` sit around the DST change on the week's Sunday
    case = data.draw(cases(max_minutes=6 * 60, zones=["Europe/Amsterdam"], max_agents=2, max_checks=2,
                           anchors=[WEEKS[week]]))
    assert period.start <= case.p0 - 2 * H and case.p1 + H <= period.end
    want = reference(case.contract, case.service, period.start, period.end, case.now, case.readings)
    got = system(case.contract, case.service, period, case.readings, case.now)
    assert_matches(got, want, now=case.now, period_end=period.end)


@fast(60)
@given(case=cases(with_now=True, quorum=1))
def test_raising_quorum_never_adds_down_time(case: Case) -> None:
    previous = None
    for quorum in (1, 2, 3):
        service = dataclasses.replace(case.service, quorum=quorum)
        contract = dataclasses.replace(case.contract, services=(service, *case.contract.services[1:]))
        got = system(contract, service, case.period, case.readings, case.now)
        down = [(i.start, i.end) for i in got.incidents]
        assert sum(end - start for start, end in down) == got.down_ms
        if previous is not None:
            assert got.down_ms <= previous.down_ms
            # every outage under the higher quorum lies inside one under the lower quorum
            wider = [(i.start, i.end) for i in previous.incidents]
            assert all(any(a <= start and end <= b for a, b in wider) for start, end in down)
        previous = got


@fast(40)
@given(case=cases(max_minutes=8 * 60), data=st.data())
def test_readings_at_or_after_now_change_nothing(case: Case, data: st.DataObject) -> None:
    now = case.now if case.now is not None else case.p0 + data.draw(st.integers(0, (case.p1 - case.p0) // S)) * S
    cut = {key: [r for r in rs if r[0] < now] for key, rs in case.readings.items()}
    everything = system(case.contract, case.service, case.period, case.readings, now)
    before = system(case.contract, case.service, case.period, cut, now)
    assert everything == before
    assert all(i.end <= now for i in everything.incidents)
    assert everything.eligible_ms <= max(0, min(now, case.p1) - case.p0)
