"""SLA engine: hand-computed cases, one per rule of DESIGN.md "SLA semantics" and per combination.

Every expected figure is worked out by hand in the comments. Instants are written in UTC; the
contract's timezone is Europe/Amsterdam (CET = UTC+1, CEST = UTC+2; in 2026 summer time starts
Sunday 2026-03-29 at 01:00 UTC and ends Sunday 2026-10-25 at 01:00 UTC).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path

import pytest

from slawatch.config.contract import Contract, Service, load_contract
from slawatch.watchdog import sketch, sla
from slawatch.watchdog.intervals import DOWN, UNKNOWN, UP, Run
from slawatch.watchdog.periods import parse_period
from slawatch.watchdog.render import percent
from slawatch.watchdog.report import _service as report_service
from slawatch.watchdog.sla import (
    ServiceFigures,
    contract_credit,
    eligible_windows,
    evaluate_service,
)

S = 1000
M = 60 * S
H = 60 * M
DAY = 24 * H


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC).timestamp()) * 1000


OCT0, OCT1 = utc(2026, 9, 30, 22), utc(2026, 10, 31, 23)   # 2026-10 in Amsterdam: 745 h
MAR0, MAR1 = utc(2026, 2, 28, 23), utc(2026, 3, 31, 22)    # 2026-03 in Amsterdam: 743 h
OCT_MS = 745 * H                                           # 2,682,000 s
B = utc(2026, 10, 10, 12)                                  # Saturday 2026-10-10 14:00 CEST
WIDE0, WIDE1 = utc(2026, 1, 1), utc(2027, 2, 1)            # every series below spans all of 2026


# --- building contracts and runs ----------------------------------------------------------------

_files = itertools.count()


def contract(tmp_path: Path, body: str, *, period: str = "month", fee: float = 1000.0,
             unknown: str = "exclude") -> Contract:
    """A contract file with the given services / hours / maintenance / credit tables, loaded."""
    head = f"""
[contract]
id = "acme-hosting-2026"
client = "Example Corp"
provider = "Acme Hosting"
timezone = "Europe/Amsterdam"
period = "{period}"
fee = {fee}
currency = "EUR"
unknown = "{unknown}"
"""
    path = tmp_path / f"contract{next(_files)}.toml"
    path.write_text(head + body)
    loaded = load_contract(path)
    assert loaded is not None
    return loaded


def service(id: str = "web", checks: Sequence[str] = ("a",), *, quorum: int = 1,
            min_outage: str | None = None, objectives: str = '{ kind = "availability", target = 99.9 }',
            credit: str = "") -> str:
    lines = ["[[service]]", f'id = "{id}"', "checks = [" + ", ".join(f'"{c}"' for c in checks) + "]",
             f"quorum = {quorum}", f"objectives = [{objectives}]"]
    if min_outage is not None:
        lines.append(f'min_outage = "{min_outage}"')
    return "\n".join(lines) + "\n" + credit + "\n"


def timeline(*changes: tuple[int, int, str | None], start: int = WIDE0, end: int = WIDE1) -> list[Run]:
    """One agent's runs for one check: up over [start, end) except `changes` ((lo, hi, status),
    sorted and disjoint); status None means no run at all there (the agent was silent)."""
    runs: list[Run] = []
    cursor = start
    for lo, hi, status in changes:
        if lo > cursor:
            runs.append(Run(cursor, lo, UP, cursor))
        if status is not None:
            runs.append(Run(lo, hi, status, lo))
        cursor = hi
    if cursor < end:
        runs.append(Run(cursor, end, UP, cursor))
    return runs


def svc(c: Contract, id: str | None = None) -> Service:
    return c.services[0] if id is None else next(s for s in c.services if s.id == id)


def evaluate(c: Contract, label: str, runs: Mapping[tuple[str, str], Sequence[Run]], service_id: str | None = None,
             now: int | None = None, latency: sketch.Histogram | None = None) -> ServiceFigures:
    f = evaluate_service(c, svc(c, service_id), parse_period(label, c.timezone), runs, now=now, latency=latency)
    # rule 6: the measured times always add up to the eligible time
    assert f.up_ms + f.down_ms + f.unknown_ms == f.eligible_ms
    if f.eligible_ms:
        assert f.coverage_percent == pytest.approx(100 * (f.up_ms + f.down_ms) / f.eligible_ms, rel=1e-12)
    return f


def pct(numerator: int, denominator: int) -> float:
    return float(Fraction(100 * numerator, denominator))


def incidents(f: ServiceFigures) -> list[tuple[int, int, tuple[str, ...], tuple[str, ...]]]:
    return [(i.start, i.end, tuple(i.checks), tuple(i.agents)) for i in f.incidents]


def total(spans: Sequence[tuple[int, int]]) -> int:
    return sum(hi - lo for lo, hi in spans)


ALWAYS_UP = {("x", "a"): timeline()}


# --- periods across DST, no business hours -----------------------------------------------------

def test_october_eligible_time_is_745_hours(tmp_path: Path) -> None:
    c = contract(tmp_path, service())
    f = evaluate(c, "2026-10", ALWAYS_UP)
    # 2026-10-01 00:00 CEST .. 2026-11-01 00:00 CET = 745 h = 2,682,000,000 ms, all up
    assert (f.id, f.name) == ("web", "web")
    assert f.eligible_ms == 745 * H == 2_682_000_000
    assert (f.up_ms, f.down_ms, f.unknown_ms, f.maintenance_ms) == (745 * H, 0, 0, 0)
    assert f.coverage_percent == 100.0
    assert f.availability_percent == 100.0
    assert f.credit_percent == 0.0
    assert f.incidents == []
    # budget = (1 − 99.9/100) × 2,682,000 s = 2,682 s
    assert f.budget is not None
    assert f.budget.allowed_ms == pytest.approx(2_682_000)
    assert (f.budget.spent_ms, f.budget.remaining_ms) == (0, pytest.approx(2_682_000))
    [objective] = f.objectives
    assert (objective.kind, objective.target, objective.measured, objective.met) == ("availability", 99.9, 100.0, True)


def test_march_eligible_time_is_743_hours_and_an_hour_down(tmp_path: Path) -> None:
    c = contract(tmp_path, service() + "[[credit]]\nbelow = 99.9\npercent = 10\n")
    runs = {("x", "a"): timeline((utc(2026, 3, 10, 9), utc(2026, 3, 10, 10), DOWN))}
    f = evaluate(c, "2026-03", runs)
    # 2026-03-01 00:00 CET .. 2026-04-01 00:00 CEST = 743 h; 1 h down
    assert f.eligible_ms == 743 * H
    assert (f.up_ms, f.down_ms, f.unknown_ms) == (742 * H, H, 0)
    # 742 / 743 = 99.8654...% < 99.9 → 10 %
    assert f.availability_percent == pytest.approx(pct(742, 743), rel=1e-12)
    assert f.credit_percent == 10.0
    assert incidents(f) == [(utc(2026, 3, 10, 9), utc(2026, 3, 10, 10), ("a",), ("x",))]
    assert f.budget is not None and f.budget.spent_ms == H
    # budget 0.001 × 743 h = 2,674.8 s; spent 3,600 s: remaining −925.2 s
    assert f.budget.allowed_ms == pytest.approx(2_674_800)
    assert f.budget.remaining_ms == pytest.approx(2_674_800 - 3_600_000)
    assert f.objectives[0].met is False


def test_no_data_at_all_is_unknown_with_no_availability(tmp_path: Path) -> None:
    c = contract(tmp_path, service() + "[[credit]]\nbelow = 99.9\npercent = 10\n")
    f = evaluate(c, "2026-10", {})
    assert (f.eligible_ms, f.up_ms, f.down_ms, f.unknown_ms) == (745 * H, 0, 0, 745 * H)
    assert f.coverage_percent == 0.0
    assert f.availability_percent is None
    assert f.credit_percent == 0.0  # no availability: no tier applies
    assert f.objectives[0].measured is None and f.objectives[0].met is None
    assert f.budget is not None and f.budget.spent_ms == 0


# --- business hours ----------------------------------------------------------------------------

WEEKDAYS_8_18 = '[business_hours]\ndays = ["mon", "tue", "wed", "thu", "fri"]\nstart = "08:00"\nend = "18:00"\n'


def test_business_hours_in_the_week_of_the_autumn_change(tmp_path: Path) -> None:
    c = contract(tmp_path, WEEKDAYS_8_18 + service(), period="week")
    week = parse_period("2026-W43", c.timezone)  # Mon 2026-10-19 .. Mon 2026-10-26, DST ends Sunday 25th
    eligible, maintenance = eligible_windows(c, svc(c), week.start, week.end)
    # Mon-Fri are still CEST: 08:00-18:00 local = 06:00-16:00 UTC, 10 h each
    assert eligible == [(utc(2026, 10, d, 6), utc(2026, 10, d, 16)) for d in range(19, 24)]
    assert maintenance == []
    f = evaluate(c, "2026-W43", ALWAYS_UP)
    assert (f.eligible_ms, f.up_ms) == (50 * H, 50 * H)
    # the week after: CET, 08:00-18:00 local = 07:00-17:00 UTC, still exactly 50 h
    week = parse_period("2026-W44", c.timezone)
    eligible, _ = eligible_windows(c, svc(c), week.start, week.end)
    assert eligible == [(utc(2026, 10, d, 7), utc(2026, 10, d, 17)) for d in range(26, 31)]
    assert total(eligible) == 50 * H


def test_business_hours_00_04_on_the_autumn_dst_night_are_5_hours(tmp_path: Path) -> None:
    every_day = '[business_hours]\ndays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\nstart = "00:00"\nend = "04:00"\n'
    c = contract(tmp_path, every_day + service(), period="week")
    week = parse_period("2026-W43", c.timezone)
    eligible, _ = eligible_windows(c, svc(c), week.start, week.end)
    # Mon 19 .. Sat 24 (CEST): 00:00-04:00 local = 22:00 (day before) - 02:00 UTC, 4 h each
    # Sun 25: 00:00 CEST = 24th 22:00 UTC .. 04:00 CET = 03:00 UTC: 5 h (02:00-03:00 happens twice)
    assert eligible == [(utc(2026, 10, d - 1, 22), utc(2026, 10, d, 2)) for d in range(19, 25)] + [
        (utc(2026, 10, 24, 22), utc(2026, 10, 25, 3))]
    f = evaluate(c, "2026-W43", ALWAYS_UP)
    assert f.eligible_ms == 6 * 4 * H + 5 * H == 29 * H


def test_business_hours_00_04_on_the_spring_dst_night_are_3_hours(tmp_path: Path) -> None:
    every_day = '[business_hours]\ndays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\nstart = "00:00"\nend = "04:00"\n'
    c = contract(tmp_path, every_day + service(), period="week")
    week = parse_period("2026-W13", c.timezone)  # Mon 2026-03-23 .. Mon 2026-03-30
    eligible, _ = eligible_windows(c, svc(c), week.start, week.end)
    # Mon 23 .. Sat 28 (CET): 23:00 (day before) - 03:00 UTC; Sun 29: 00:00 CET = 28th 23:00 UTC ..
    # 04:00 CEST = 02:00 UTC: 3 h (02:00-03:00 does not exist)
    assert eligible == [(utc(2026, 3, d - 1, 23), utc(2026, 3, d, 3)) for d in range(23, 29)] + [
        (utc(2026, 3, 28, 23), utc(2026, 3, 29, 2))]
    f = evaluate(c, "2026-W13", {("x", "a"): timeline()})
    assert f.eligible_ms == 6 * 4 * H + 3 * H == 27 * H


def test_business_hours_to_24_00_reach_the_next_midnight_and_merge(tmp_path: Path) -> None:
    whole_days = '[business_hours]\ndays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\nstart = "00:00"\nend = "24:00"\n'
    c = contract(tmp_path, whole_days + service())
    eligible, maintenance = eligible_windows(c, svc(c), OCT0, OCT1)
    assert (eligible, maintenance) == ([(OCT0, OCT1)], [])  # one merged span, 745 h
    sundays = '[business_hours]\ndays = ["sun"]\nstart = "00:00"\nend = "24:00"\n'
    c = contract(tmp_path, sundays + service(), period="week")
    week = parse_period("2026-W43", c.timezone)
    # Sunday 2026-10-25 00:00 CEST = 24th 22:00 UTC .. Monday 00:00 CET = 25th 23:00 UTC: 25 h
    assert eligible_windows(c, svc(c), week.start, week.end) == ([(utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))], [])
    assert evaluate(c, "2026-W43", ALWAYS_UP).eligible_ms == 25 * H


def test_outage_outside_business_hours_does_not_count_and_one_across_their_edge_is_cut(tmp_path: Path) -> None:
    c = contract(tmp_path, WEEKDAYS_8_18 + service(), period="week")
    runs = {("x", "a"): timeline(
        (utc(2026, 10, 13, 4), utc(2026, 10, 13, 5), DOWN),          # Tue 06:00-07:00 CEST: outside
        (utc(2026, 10, 14, 15, 50), utc(2026, 10, 14, 16, 10), DOWN),  # Wed 17:50-18:10: 10 min inside
        (utc(2026, 10, 17, 8), utc(2026, 10, 17, 20), DOWN),           # Saturday: outside
    )}
    f = evaluate(c, "2026-W42", runs)  # Mon 2026-10-12 .. Mon 2026-10-19, CEST
    assert (f.eligible_ms, f.down_ms, f.up_ms) == (50 * H, 10 * M, 50 * H - 10 * M)
    assert incidents(f) == [(utc(2026, 10, 14, 15, 50), utc(2026, 10, 14, 16), ("a",), ("x",))]


# --- maintenance -------------------------------------------------------------------------------

SUNDAY_2AM = '[[maintenance]]\nrrule = "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=0"\nduration = "2h"\n'


def test_weekly_maintenance_on_the_spring_dst_night_lands_after_the_gap(tmp_path: Path) -> None:
    c = contract(tmp_path, service() + SUNDAY_2AM)
    eligible, maintenance = eligible_windows(c, svc(c), MAR0, MAR1)
    # Sundays 1, 8, 15, 22 March at 02:00 CET = 01:00-03:00 UTC. On the 29th 02:00 does not exist:
    # fold=0 reads it at +1, 01:00 UTC (= 03:00 CEST), and 2 h elapsed later is 03:00 UTC (05:00 CEST)
    expected = [(utc(2026, 3, d, 1), utc(2026, 3, d, 3)) for d in (1, 8, 15, 22, 29)]
    assert maintenance == expected
    bounds = [MAR0, *itertools.chain.from_iterable(expected), MAR1]
    assert eligible == list(zip(bounds[::2], bounds[1::2]))
    f = evaluate(c, "2026-03", {("x", "a"): timeline()})
    # 743 h − 5 × 2 h = 733 h
    assert (f.eligible_ms, f.maintenance_ms, f.up_ms) == (733 * H, 10 * H, 733 * H)


def test_weekly_maintenance_on_the_autumn_dst_night_is_the_first_02_00(tmp_path: Path) -> None:
    c = contract(tmp_path, service() + SUNDAY_2AM)
    eligible, maintenance = eligible_windows(c, svc(c), OCT0, OCT1)
    # Sundays 4, 11, 18 October 02:00 CEST = 00:00-02:00 UTC. On the 25th 02:00 happens twice;
    # fold=0 takes the first (CEST) = 00:00 UTC, + 2 h elapsed = 02:00 UTC (03:00 CET).
    # Sunday 1 November 02:00 is after the period.
    expected = [(utc(2026, 10, d, 0), utc(2026, 10, d, 2)) for d in (4, 11, 18, 25)]
    assert maintenance == expected
    bounds = [OCT0, *itertools.chain.from_iterable(expected), OCT1]
    assert eligible == list(zip(bounds[::2], bounds[1::2]))
    # an outage entirely inside the DST-night window does not count; 745 h − 4 × 2 h = 737 h
    runs = {("x", "a"): timeline((utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30), DOWN))}
    f = evaluate(c, "2026-10", runs)
    assert (f.eligible_ms, f.maintenance_ms, f.down_ms, f.up_ms) == (737 * H, 8 * H, 0, 737 * H)
    assert f.incidents == []


def test_maintenance_reaching_across_the_period_bounds_counts_its_part_inside(tmp_path: Path) -> None:
    nightly = '[[maintenance]]\nrrule = "FREQ=DAILY;BYHOUR=23;BYMINUTE=0"\nduration = "2h"\n'
    c = contract(tmp_path, service() + nightly)
    _, maintenance = eligible_windows(c, svc(c), OCT0, OCT1)
    # 30 September 23:00 CEST = 21:00 UTC, + 2 h = 23:00 UTC: its last hour [P0, P0+1h) is in October;
    # 1..30 October: 2 h each, fully inside (24 October 23:00 CEST = 21:00 UTC → 23:00 UTC, elapsed);
    # 31 October 23:00 CET = 22:00 UTC: only [22:00, 23:00 UTC) is before P1. 1 + 60 + 1 = 62 h
    assert maintenance[0] == (OCT0, OCT0 + H)
    assert maintenance[-1] == (OCT1 - H, OCT1)
    assert (utc(2026, 10, 24, 21), utc(2026, 10, 24, 23)) in maintenance
    assert (utc(2026, 10, 25, 22), utc(2026, 10, 26, 0)) in maintenance   # 25th 23:00 CET
    assert len(maintenance) == 32 and total(maintenance) == 62 * H
    f = evaluate(c, "2026-10", ALWAYS_UP)
    assert (f.eligible_ms, f.maintenance_ms) == (683 * H, 62 * H)


def test_one_off_maintenance_across_the_autumn_change_is_elapsed_time(tmp_path: Path) -> None:
    window = '[[maintenance]]\nstart = "2026-10-25T01:00"\nend = "2026-10-25T04:00"\nnote = "upgrade"\n'
    c = contract(tmp_path, service() + window)
    # 01:00 CEST = 24th 23:00 UTC .. 04:00 CET = 03:00 UTC: 4 h elapsed for 3 h on the clock
    _, maintenance = eligible_windows(c, svc(c), OCT0, OCT1)
    assert maintenance == [(utc(2026, 10, 24, 23), utc(2026, 10, 25, 3))]
    f = evaluate(c, "2026-10", ALWAYS_UP)
    assert (f.eligible_ms, f.maintenance_ms) == (741 * H, 4 * H)


def test_maintenance_counts_only_inside_business_hours(tmp_path: Path) -> None:
    windows = ('[[maintenance]]\nstart = "2026-10-14T12:00"\nend = "2026-10-14T13:00"\n'
               '[[maintenance]]\nstart = "2026-10-14T17:00"\nend = "2026-10-14T19:00"\n'
               '[[maintenance]]\nstart = "2026-10-17T10:00"\nend = "2026-10-17T12:00"\n')  # a Saturday
    c = contract(tmp_path, WEEKDAYS_8_18 + service() + windows, period="week")
    week = parse_period("2026-W42", c.timezone)
    eligible, maintenance = eligible_windows(c, svc(c), week.start, week.end)
    # Wednesday 14th (CEST): 08-12 and 13-17 local eligible = 06-10 and 11-15 UTC;
    # maintenance inside business hours: 12-13 and 17-18 local only
    assert maintenance == [(utc(2026, 10, 14, 10), utc(2026, 10, 14, 11)), (utc(2026, 10, 14, 15), utc(2026, 10, 14, 16))]
    assert eligible == [
        (utc(2026, 10, 12, 6), utc(2026, 10, 12, 16)), (utc(2026, 10, 13, 6), utc(2026, 10, 13, 16)),
        (utc(2026, 10, 14, 6), utc(2026, 10, 14, 10)), (utc(2026, 10, 14, 11), utc(2026, 10, 14, 15)),
        (utc(2026, 10, 15, 6), utc(2026, 10, 15, 16)), (utc(2026, 10, 16, 6), utc(2026, 10, 16, 16))]
    f = evaluate(c, "2026-W42", ALWAYS_UP)
    assert (f.eligible_ms, f.maintenance_ms) == (48 * H, 2 * H)


def test_maintenance_applies_only_to_the_services_it_names(tmp_path: Path) -> None:
    window = '[[maintenance]]\nservices = ["mail"]\nstart = "2026-10-14T12:00"\nend = "2026-10-14T13:00"\n'
    c = contract(tmp_path, service("web", ["a"]) + service("mail", ["m"]) + window)
    assert eligible_windows(c, svc(c, "web"), OCT0, OCT1) == ([(OCT0, OCT1)], [])
    assert eligible_windows(c, svc(c, "mail"), OCT0, OCT1) == (
        [(OCT0, utc(2026, 10, 14, 10)), (utc(2026, 10, 14, 11), OCT1)], [(utc(2026, 10, 14, 10), utc(2026, 10, 14, 11))])


def test_maintenance_cuts_an_outage_into_two_incidents_after_min_outage(tmp_path: Path) -> None:
    window = '[[maintenance]]\nstart = "2026-10-14T10:00"\nend = "2026-10-14T10:30"\n'
    c = contract(tmp_path, service(min_outage="15m") + window)
    # down 09:50-10:40 CEST = 07:50-08:40 UTC: 50 min in real time ≥ 15 min, so it counts;
    # maintenance 10:00-10:30 then cuts it: two 10-minute incidents (each shorter than min_outage
    # on its own, which does not matter: maintenance applies after min_outage)
    runs = {("x", "a"): timeline((utc(2026, 10, 14, 7, 50), utc(2026, 10, 14, 8, 40), DOWN))}
    f = evaluate(c, "2026-10", runs)
    assert (f.eligible_ms, f.maintenance_ms) == (745 * H - 30 * M, 30 * M)
    assert (f.down_ms, f.up_ms) == (20 * M, 745 * H - 50 * M)
    assert incidents(f) == [
        (utc(2026, 10, 14, 7, 50), utc(2026, 10, 14, 8), ("a",), ("x",)),
        (utc(2026, 10, 14, 8, 30), utc(2026, 10, 14, 8, 40), ("a",), ("x",))]


# --- quorum (rule 2) ---------------------------------------------------------------------------

def test_quorum_1_with_two_agents_any_down_is_down(tmp_path: Path) -> None:
    c = contract(tmp_path, service(quorum=1))
    runs = {("x", "a"): timeline((B, B + 5 * M, DOWN)), ("y", "a"): timeline((B + 3 * M, B + 8 * M, DOWN))}
    f = evaluate(c, "2026-10", runs)
    # union of the two: [B, B+8m)
    assert f.down_ms == 8 * M
    assert incidents(f) == [(B, B + 8 * M, ("a",), ("x", "y"))]


def test_quorum_2_of_3_agents(tmp_path: Path) -> None:
    c = contract(tmp_path, service(quorum=2))
    runs = {
        ("x", "a"): timeline((B, B + 10 * M, DOWN)),
        ("y", "a"): timeline((B + 5 * M, B + 15 * M, DOWN)),
        ("z", "a"): timeline((B + 30 * M, B + 40 * M, DOWN)),   # alone: never down
        ("x", "other"): timeline((OCT0, OCT1, DOWN)),           # not a check of the service: ignored
    }
    f = evaluate(c, "2026-10", runs)
    # n = 3 throughout; d = 1 on [B, B+5m), 2 on [B+5m, B+10m), 1 on [B+10m, B+15m), 1 on z's run
    assert (f.down_ms, f.unknown_ms, f.up_ms) == (5 * M, 0, 745 * H - 5 * M)
    # x and y both said down inside the incident; z did not
    assert incidents(f) == [(B + 5 * M, B + 10 * M, ("a",), ("x", "y"))]


def test_quorum_3_with_two_agents_needs_both(tmp_path: Path) -> None:
    c = contract(tmp_path, service(quorum=3))
    runs = {("x", "a"): timeline((B, B + 10 * M, DOWN)), ("y", "a"): timeline((B + 5 * M, B + 15 * M, DOWN))}
    f = evaluate(c, "2026-10", runs)
    # n = 2, min(3, 2) = 2: down only where both are, [B+5m, B+10m)
    assert f.down_ms == 5 * M
    assert incidents(f) == [(B + 5 * M, B + 10 * M, ("a",), ("x", "y"))]


def test_quorum_3_with_one_agent_needs_that_one(tmp_path: Path) -> None:
    c = contract(tmp_path, service(quorum=3))
    f = evaluate(c, "2026-10", {("x", "a"): timeline((B, B + 10 * M, DOWN))})
    # n = 1, min(3, 1) = 1
    assert f.down_ms == 10 * M
    assert incidents(f) == [(B, B + 10 * M, ("a",), ("x",))]


def test_quorum_2_an_agent_going_silent_is_not_counted_in_n(tmp_path: Path) -> None:
    c = contract(tmp_path, service(quorum=2))
    # y's runs stop at B (the agent went silent); x is down [B, B+10m) then up again
    runs = {("x", "a"): timeline((B, B + 10 * M, DOWN)), ("y", "a"): timeline(end=B)}
    f = evaluate(c, "2026-10", runs)
    # before B: n = 2, d = 0 → up. [B, B+10m): n = 1 (y unknown), d = 1 ≥ min(2, 1) → down.
    # after: n = 1, d = 0 → up. Nothing is unknown: x always has a status.
    assert (f.down_ms, f.unknown_ms, f.up_ms) == (10 * M, 0, 745 * H - 10 * M)
    assert incidents(f) == [(B, B + 10 * M, ("a",), ("x",))]


def test_quorum_3_an_agent_with_unknown_readings_is_not_counted_in_n(tmp_path: Path) -> None:
    c = contract(tmp_path, service(quorum=3))
    runs = {
        ("x", "a"): timeline((B, B + 10 * M, DOWN), (B + H, B + H + 10 * M, DOWN)),
        ("y", "a"): timeline((B, B + 10 * M, DOWN), (B + H, B + H + 10 * M, DOWN)),
        ("z", "a"): timeline((B - M, B + 20 * M, UNKNOWN)),     # its canaries were down
    }
    f = evaluate(c, "2026-10", runs)
    # [B, B+10m): n = 2 (x, y), d = 2 ≥ min(3, 2) → down.
    # [B+1h, B+1h10m): z is back, n = 3, d = 2 < 3 → up.
    assert (f.down_ms, f.unknown_ms) == (10 * M, 0)
    assert incidents(f) == [(B, B + 10 * M, ("a",), ("x", "y"))]


def test_all_agents_silent_is_unknown(tmp_path: Path) -> None:
    c = contract(tmp_path, service(quorum=2))
    runs = {("x", "a"): timeline((B, B + H, None)), ("y", "a"): timeline((B + 30 * M, B + 2 * H, None))}
    f = evaluate(c, "2026-10", runs)
    # no agent knows on [B+30m, B+1h)
    assert (f.unknown_ms, f.down_ms, f.up_ms) == (30 * M, 0, 745 * H - 30 * M)


# --- service of several checks (rule 3) --------------------------------------------------------

def test_service_down_when_any_check_down_and_unknown_when_some_unknown_and_none_down(tmp_path: Path) -> None:
    c = contract(tmp_path, service(checks=["a", "b"]))
    runs = {
        ("x", "a"): timeline((B, B + 10 * M, DOWN)),
        ("x", "b"): timeline((B + 5 * M, B + 20 * M, None)),     # no data for b
    }
    f = evaluate(c, "2026-10", runs)
    # [B, B+5m) a down, b up → down; [B+5m, B+10m) a down, b unknown → down;
    # [B+10m, B+20m) a up, b unknown → unknown
    assert (f.down_ms, f.unknown_ms, f.up_ms) == (10 * M, 10 * M, 745 * H - 20 * M)
    assert incidents(f) == [(B, B + 10 * M, ("a",), ("x",))]
    # exclude: 744 h 40 m up of 744 h 50 m known
    assert f.availability_percent == pytest.approx(pct(745 * 60 - 20, 745 * 60 - 10), rel=1e-12)


def test_a_check_without_any_runs_makes_the_service_unknown_not_up(tmp_path: Path) -> None:
    c = contract(tmp_path, service(checks=["a", "b"]))
    f = evaluate(c, "2026-10", {("x", "a"): timeline()})
    assert (f.up_ms, f.down_ms, f.unknown_ms) == (0, 0, 745 * H)
    assert f.availability_percent is None


# --- min_outage (rule 4) -----------------------------------------------------------------------

def every(start: int, stop: int, status: str, interval_s: int = 30) -> list[tuple[int, str, float]]:
    return [(ts, status, float(interval_s)) for ts in range(start, stop, interval_s * S)]


def test_min_outage_exactly_the_threshold_counts(tmp_path: Path) -> None:
    from slawatch.watchdog.intervals import runs_of

    c = contract(tmp_path, service(min_outage="2m"))
    # readings every 30 s: up from B−600 s, down at B, B+30, B+60, B+90 s, up from B+120 s to B+570 s
    readings = every(B - 600 * S, B, UP) + every(B, B + 120 * S, DOWN) + every(B + 120 * S, B + 600 * S, UP)
    runs = runs_of(readings)
    # runs: up [B−600s, B), down [B, B+120s), up [B+120s, B+570s+45s)
    assert [(r.start, r.end, r.status) for r in runs] == [
        (B - 600 * S, B, UP), (B, B + 120 * S, DOWN), (B + 120 * S, B + 615 * S, UP)]
    f = evaluate(c, "2026-10", {("x", "a"): runs})
    # 120 s down = min_outage: counts. known 1,215 s; up 1,095 s
    assert (f.down_ms, f.up_ms, f.unknown_ms) == (120 * S, 1095 * S, 745 * H - 1215 * S)
    assert incidents(f) == [(B, B + 120 * S, ("a",), ("x",))]
    assert f.availability_percent == pytest.approx(pct(1095, 1215), rel=1e-12)


def test_min_outage_one_second_below_the_threshold_counts_as_up(tmp_path: Path) -> None:
    from slawatch.watchdog.intervals import runs_of

    c = contract(tmp_path, service(min_outage="2m"))
    # down at B .. B+90 s, then up at B+119 s and every 30 s to B+599 s (covering to B+644 s)
    readings = every(B - 600 * S, B, UP) + every(B, B + 120 * S, DOWN) + every(B + 119 * S, B + 600 * S, UP)
    runs = runs_of(readings)
    assert [(r.start, r.end, r.status) for r in runs][1] == (B, B + 119 * S, DOWN)
    f = evaluate(c, "2026-10", {("x", "a"): runs})
    # 119 s < 120 s: the run counts as up; known 600 + 644 = 1,244 s, all up
    assert (f.down_ms, f.up_ms) == (0, 1244 * S)
    assert f.incidents == []
    assert f.availability_percent == 100.0


def test_min_outage_is_measured_on_the_service_run_across_checks_and_agents(tmp_path: Path) -> None:
    c = contract(tmp_path, service(checks=["a", "b"], min_outage="2m"))
    # check a down (seen by x) [B, B+70s), check b down (seen by y) [B+50s, B+120s):
    # neither is 2 min alone, the service is down [B, B+120s) = 2 min → counts
    runs = {("x", "a"): timeline((B, B + 70 * S, DOWN)), ("y", "b"): timeline((B + 50 * S, B + 120 * S, DOWN))}
    f = evaluate(c, "2026-10", runs)
    assert f.down_ms == 120 * S
    assert incidents(f) == [(B, B + 120 * S, ("a", "b"), ("x", "y"))]


def test_min_outage_unknown_time_breaks_a_down_run(tmp_path: Path) -> None:
    c = contract(tmp_path, service(min_outage="2m"))
    # down 60 s, unknown 10 s, down 60 s: two maximal down runs of 60 s, each < 2 min → up
    runs = {("x", "a"): timeline((B, B + 60 * S, DOWN), (B + 60 * S, B + 70 * S, None), (B + 70 * S, B + 130 * S, DOWN))}
    f = evaluate(c, "2026-10", runs)
    assert (f.down_ms, f.unknown_ms, f.up_ms) == (0, 10 * S, 745 * H - 10 * S)
    assert f.incidents == []


@pytest.mark.parametrize("before_s, counts", [(60, True), (30, True), (29, False)])
def test_min_outage_for_a_run_crossing_the_period_start_is_real_time(tmp_path: Path, before_s: int, counts: bool) -> None:
    c = contract(tmp_path, service(min_outage="2m"))
    # down [P0 − before, P0 + 90 s): 150 s / 120 s / 119 s in real time, 90 s inside the period
    runs = {("x", "a"): timeline((OCT0 - before_s * S, OCT0 + 90 * S, DOWN))}
    f = evaluate(c, "2026-10", runs)
    if counts:
        assert f.down_ms == 90 * S
        assert incidents(f) == [(OCT0, OCT0 + 90 * S, ("a",), ("x",))]
    else:
        assert (f.down_ms, f.up_ms) == (0, 745 * H)
        assert f.incidents == []


def test_min_outage_for_a_run_crossing_the_period_end_is_real_time(tmp_path: Path) -> None:
    c = contract(tmp_path, service(min_outage="2m"))
    # down [P1 − 90 s, P1 + 60 s) = 150 s: counts, 90 s of it in October
    runs = {("x", "a"): timeline((OCT1 - 90 * S, OCT1 + 60 * S, DOWN))}
    f = evaluate(c, "2026-10", runs)
    assert f.down_ms == 90 * S
    assert incidents(f) == [(OCT1 - 90 * S, OCT1, ("a",), ("x",))]


def test_min_outage_is_measured_before_business_hours_cut(tmp_path: Path) -> None:
    c = contract(tmp_path, WEEKDAYS_8_18 + service(min_outage="2m"), period="week")
    runs = {("x", "a"): timeline(
        (utc(2026, 10, 14, 5, 59), utc(2026, 10, 14, 6, 1, 30), DOWN),   # Wed 07:59-08:01:30 CEST: 150 s, 90 s inside
        (utc(2026, 10, 14, 15, 59), utc(2026, 10, 14, 16, 0, 30), DOWN),  # Wed 17:59-18:00:30: 90 s real → up
    )}
    f = evaluate(c, "2026-W42", runs)
    assert f.down_ms == 90 * S
    assert incidents(f) == [(utc(2026, 10, 14, 6), utc(2026, 10, 14, 6, 1, 30), ("a",), ("x",))]


# --- unknown policy (rules 6 and 7) and the error budget ---------------------------------------

# October: E = 2,682,000 s eligible; unknown [B, B+10m) = 600 s, down [B+1h, B+1h20m) = 1,200 s,
# up = 2,682,000 − 1,800 = 2,680,200 s. Budget = 0.001 × 2,682,000 s = 2,682 s. Tier: below 99.95 → 10 %.
POLICY_CASES = [
    # exclude: 2,680,200 / 2,681,400 = 99.955247...%, spent 1,200 s
    ("exclude", Fraction(2_680_200, 2_681_400), 1_200 * S, 0.0),
    # up: (2,680,200 + 600) / 2,682,000 = 99.955257...%, spent 1,200 s
    ("up", Fraction(2_680_800, 2_682_000), 1_200 * S, 0.0),
    # down: 2,680,200 / 2,682,000 = 99.932886...% < 99.95, spent 1,200 + 600 = 1,800 s
    ("down", Fraction(2_680_200, 2_682_000), 1_800 * S, 10.0),
]


@pytest.mark.parametrize("policy, availability, spent, credit", POLICY_CASES)
def test_unknown_policy(tmp_path: Path, policy: str, availability: Fraction, spent: int, credit: float) -> None:
    c = contract(tmp_path, service() + "[[credit]]\nbelow = 99.95\npercent = 10\n", unknown=policy)
    runs = {("x", "a"): timeline((B, B + 10 * M, None), (B + H, B + H + 20 * M, DOWN))}
    f = evaluate(c, "2026-10", runs)
    # measured figures do not depend on the policy
    assert (f.eligible_ms, f.up_ms, f.down_ms, f.unknown_ms) == (OCT_MS, 2_680_200 * S, 1_200 * S, 600 * S)
    assert f.coverage_percent == pytest.approx(pct(2_681_400, 2_682_000), rel=1e-12)  # 99.977628...%
    assert f.availability_percent == pytest.approx(float(100 * availability), rel=1e-12)
    assert f.credit_percent == credit
    assert f.budget is not None
    assert f.budget.allowed_ms == pytest.approx(2_682_000)
    assert f.budget.spent_ms == spent
    assert f.budget.remaining_ms == pytest.approx(2_682_000 - spent)
    assert incidents(f) == [(B + H, B + H + 20 * M, ("a",), ("x",))]


# --- credits (rule 9) --------------------------------------------------------------------------

TIERS = "[[credit]]\nbelow = 99.9\npercent = 10\n[[credit]]\nbelow = 99.0\npercent = 25\n"


@pytest.mark.parametrize("down_s, credit, met, shown", [
    (2_682, 0.0, True, "99.900"),     # up 2,679,318 / 2,682,000 = 0.999 exactly: 99.9 is not below 99.9
    (2_683, 10.0, False, "99.899"),   # 99.899962...% < 99.9, shown cut down: never 99.900 beside "not met"
    (26_820, 10.0, False, "99.000"),  # exactly 99.0: below 99.9 but not below 99.0
    (26_821, 25.0, False, "98.999"),  # 98.999962...%: both tiers, the largest percent applies
])
def test_credit_tier_boundaries_are_exact(tmp_path: Path, down_s: int, credit: float, met: bool, shown: str) -> None:
    c = contract(tmp_path, service() + TIERS)
    f = evaluate(c, "2026-10", {("x", "a"): timeline((B, B + down_s * S, DOWN))})
    assert f.down_ms == down_s * S
    assert f.availability_percent == pytest.approx(pct(2_682_000 - down_s, 2_682_000), rel=1e-12)
    assert f.credit_percent == credit
    assert f.objectives[0].met is met
    reported = report_service(f, c.timezone)  # the report's JSON and CSV, the pages, the alerts
    assert (reported["availability_percent"], reported["objectives"][0]["measured"]) == (float(shown),) * 2
    assert percent(f.availability) == percent(reported["availability_percent"]) == f"{shown} %"


def test_shown_figures_never_cross_a_threshold_the_exact_ones_do_not() -> None:
    assert sla.shown(Fraction(9999, 100)) == 99.99  # exactly 99.99 (its float, 99.98999..., is not cut to 99.989)
    assert sla.shown(Fraction(99_899_999, 1_000_000)) == 99.899
    assert sla.shown(Fraction(100)) == 100.0 and sla.shown(None) is None
    assert sla.shown_ms(800.0004) == 800.001 and sla.shown_ms(800.0) == 800.0  # a p95 over 800 ms is not 800.000
    assert sla.shown_ms(122.0) == 122.0 and sla.shown_ms(None) is None


def test_a_services_own_tiers_replace_the_contracts(tmp_path: Path) -> None:
    own = "[[service.credit]]\nbelow = 99.99\npercent = 5\n"
    c = contract(tmp_path, service("web", ["a"]) + service("mail", ["m"], credit=own) + TIERS)
    # 98.0 %: down 2 % of 2,682,000 s = 53,640 s
    runs = {("x", "a"): timeline((B, B + 53_640 * S, DOWN)), ("x", "m"): timeline((B, B + 53_640 * S, DOWN))}
    web, mail = evaluate(c, "2026-10", runs, "web"), evaluate(c, "2026-10", runs, "mail")
    assert web.availability_percent == mail.availability_percent == pytest.approx(98.0, rel=1e-12)
    assert web.credit_percent == 25.0   # contract tiers
    assert mail.credit_percent == 5.0   # own tiers only, though the contract's would give 25
    # 99.95 %: down 1,341 s: the contract's tiers give nothing, the service's own 5 %
    runs = {("x", "m"): timeline((B, B + 1_341 * S, DOWN))}
    assert evaluate(c, "2026-10", runs, "mail").credit_percent == 5.0


def test_contract_credit_is_the_largest_service_credit_times_the_fee(tmp_path: Path) -> None:
    c = contract(tmp_path, service("web", ["a"]) + service("mail", ["m"]) + TIERS, fee=12345.67)
    # web 99.5 % (down 13,410 s) → 10 %; mail all up → 0 %
    runs = {("x", "a"): timeline((B, B + 13_410 * S, DOWN)), ("x", "m"): timeline()}
    web, mail = evaluate(c, "2026-10", runs, "web"), evaluate(c, "2026-10", runs, "mail")
    assert (web.credit_percent, mail.credit_percent) == (10.0, 0.0)
    # 12,345.67 × 10 / 100 = 1,234.567 → 1,234.57
    assert contract_credit(c, [web, mail]) == (10.0, pytest.approx(1234.57, abs=1e-9))
    # mail 98.9 % (down 29,502 s) → 25 %: 12,345.67 × 0.25 = 3,086.4175 → 3,086.42
    runs[("x", "m")] = timeline((B, B + 29_502 * S, DOWN))
    mail = evaluate(c, "2026-10", runs, "mail")
    assert mail.credit_percent == 25.0
    assert contract_credit(c, [web, mail]) == (25.0, pytest.approx(3086.42, abs=1e-9))
    # the percentage is capped at 100
    over = dataclasses.replace(mail, credit_percent=150.0)
    assert contract_credit(c, [web, over]) == (100.0, pytest.approx(12345.67, abs=1e-9))
    # no service earns a credit: nothing
    assert contract_credit(c, [dataclasses.replace(web, credit_percent=0.0), dataclasses.replace(mail, credit_percent=0.0)]) == (0.0, 0.0)


@pytest.mark.parametrize("fee, percent, expected", [
    (12000.30, 25, 3000.08),   # 12,000.30 × 25 / 100 = 3,000.075 exactly: half a cent rounds to …08
    (100.30, 25, 25.08),       # 25.075 exactly → 25.08 (half-up and half-even agree: 7 is odd)
    (12345.67, 10, 1234.57),   # 1,234.567 → 1,234.57
])
def test_contract_credit_rounds_the_exact_amount_to_cents(tmp_path: Path, fee: float, percent: int,
                                                         expected: float) -> None:
    tier = f"[[credit]]\nbelow = 99.9\npercent = {percent}\n"
    c = contract(tmp_path, service() + tier, fee=fee)
    f = evaluate(c, "2026-10", {("x", "a"): timeline((B, B + H, DOWN))})  # 744 / 745 = 99.87 % < 99.9
    assert f.credit_percent == percent
    assert contract_credit(c, [f]) == (percent, pytest.approx(expected, abs=1e-9))


# --- a running period (now) --------------------------------------------------------------------

NOW = utc(2026, 10, 9, 22)  # 2026-10-10 00:00 CEST: 9 days = 216 h into October


def test_a_running_period_counts_up_to_now_and_budgets_the_whole_period(tmp_path: Path) -> None:
    c = contract(tmp_path, service())
    runs = {("x", "a"): timeline((NOW - H, NOW - 30 * M, DOWN), (NOW + H, NOW + 2 * H, DOWN))}
    f = evaluate(c, "2026-10", runs, now=NOW)
    # eligible so far 216 h; the outage after now has not happened yet
    assert (f.eligible_ms, f.down_ms, f.up_ms, f.unknown_ms) == (216 * H, 30 * M, 216 * H - 30 * M, 0)
    assert incidents(f) == [(NOW - H, NOW - 30 * M, ("a",), ("x",))]
    # budget over the whole 745 h: 2,682 s allowed, 1,800 s spent, 882 s left
    assert f.budget is not None
    assert f.budget.allowed_ms == pytest.approx(2_682_000)
    assert f.budget.spent_ms == 1_800_000
    assert f.budget.remaining_ms == pytest.approx(882_000)
    assert f.availability_percent == pytest.approx(pct(216 * 60 - 30, 216 * 60), rel=1e-12)


def test_a_running_period_cuts_a_run_at_now_before_min_outage(tmp_path: Path) -> None:
    c = contract(tmp_path, service(min_outage="2m"))
    # down since now − 60 s (and on after now, which has not happened): 60 s so far < 2 min
    runs = {("x", "a"): timeline((NOW - 60 * S, NOW + 10 * M, DOWN))}
    f = evaluate(c, "2026-10", runs, now=NOW)
    assert (f.eligible_ms, f.down_ms, f.up_ms) == (216 * H, 0, 216 * H)
    assert f.incidents == []
    # once 3 minutes have passed it counts, from its start
    f = evaluate(c, "2026-10", runs, now=NOW + 2 * M)
    assert f.down_ms == 3 * M
    assert incidents(f) == [(NOW - 60 * S, NOW + 2 * M, ("a",), ("x",))]


def test_now_after_the_period_end_is_the_whole_period(tmp_path: Path) -> None:
    c = contract(tmp_path, service())
    runs = {("x", "a"): timeline((B, B + H, DOWN))}
    closed = evaluate(c, "2026-10", runs)
    later = evaluate(c, "2026-10", runs, now=OCT1 + DAY)
    assert (later.eligible_ms, later.up_ms, later.down_ms) == (closed.eligible_ms, closed.up_ms, closed.down_ms) == (
        745 * H, 744 * H, H)


# --- incidents (rule 11) -----------------------------------------------------------------------

def test_incidents_list_the_checks_and_agents_that_saw_them(tmp_path: Path) -> None:
    c = contract(tmp_path, service(checks=["a", "b"]))
    runs = {
        ("x", "a"): timeline((B, B + 10 * M, DOWN)),
        ("y", "a"): timeline((B + H, B + H + 5 * M, DOWN)),
        ("x", "b"): timeline(),
        ("y", "b"): timeline((B + 5 * M, B + 20 * M, DOWN)),
        ("w", "other"): timeline((B, B + 2 * H, DOWN)),   # not a check of the service
    }
    f = evaluate(c, "2026-10", runs)
    # [B, B+20m): a (x) then b (y), one maximal down run; [B+1h, B+1h5m): a (y) only
    assert incidents(f) == [
        (B, B + 20 * M, ("a", "b"), ("x", "y")),
        (B + H, B + H + 5 * M, ("a",), ("y",)),
    ]
    assert f.down_ms == 25 * M


# --- latency objective (rule 8) ----------------------------------------------------------------

def latencies() -> sketch.Histogram:
    histogram: sketch.Histogram = {}
    for value in range(10, 1001, 10):   # 10, 20, ..., 1000 ms: 100 readings
        sketch.add(histogram, float(value))
    return histogram


@pytest.mark.parametrize("percentile, max_, true_value, met", [
    (95, "800ms", 950.0, False),   # rank ceil(0.95 × 100) = 95 → 950 ms > 800 ms
    (95, "1s", 950.0, True),       # 950 ms ≤ 1,000 ms
    (7, "75ms", 70.0, True),       # rank 7 (not 8: 7/100 × 100 exactly) → 70 ms ≤ 75 ms
    (7, "65ms", 70.0, False),
    (50, "600ms", 500.0, True),    # rank 50 → 500 ms
])
def test_latency_objective_nearest_rank(tmp_path: Path, percentile: int, max_: str, true_value: float, met: bool) -> None:
    objective = f'{{ kind = "latency", percentile = {percentile}, max = "{max_}" }}'
    c = contract(tmp_path, service(objectives=objective))
    f = evaluate(c, "2026-10", ALWAYS_UP, latency=latencies())
    [result] = f.objectives
    assert (result.kind, result.percentile) == ("latency", percentile)
    assert result.max_ms == pytest.approx(float(max_[:-2]) if max_.endswith("ms") else 1000.0)
    assert result.measured == pytest.approx(true_value, rel=0.01)
    assert result.met is met
    assert f.budget is None  # no availability objective, no budget


def test_latency_without_readings_is_not_measured(tmp_path: Path) -> None:
    objectives = '{ kind = "availability", target = 99.9 }, { kind = "latency", percentile = 95, max = "800ms" }'
    c = contract(tmp_path, service(objectives=objectives))
    f = evaluate(c, "2026-10", ALWAYS_UP, latency=None)
    availability, latency = f.objectives
    assert (availability.kind, availability.met) == ("availability", True)
    assert (latency.kind, latency.measured, latency.met) == ("latency", None, None)
    assert f.budget is not None


def test_burn_rate_matches_the_sre_workbook_thresholds() -> None:
    """Rule 10: 14.4 over 1 h spends 2 % of a 30-day 99.9 % budget (51.84 s down); 6 over 6 h spends 5 %."""
    from slawatch.watchdog.sla import burn_rate

    hour, t0 = 3_600_000, 1_790_000_000_000
    page = [(t0, t0 + 51_840, "down"), (t0 + 51_840, t0 + hour, "up")]
    assert burn_rate(page, [(t0, t0 + hour)], t0, t0 + hour, 99.9) == 14.4
    warn = [(t0, t0 + 129_600, "down"), (t0 + 129_600, t0 + 6 * hour, "up")]
    assert burn_rate(warn, [(t0, t0 + 6 * hour)], t0, t0 + 6 * hour, 99.9) == 6.0
    # unknown time is not known time; ineligible time does not count; no known time: no rate
    half = [(t0, t0 + 51_840, "down"), (t0 + 51_840, t0 + hour // 2, "up"), (t0 + hour // 2, t0 + hour, "unknown")]
    assert burn_rate(half, [(t0, t0 + hour)], t0, t0 + hour, 99.9) == 28.8
    assert burn_rate(page, [(t0 + 51_840, t0 + hour)], t0, t0 + hour, 99.9) == 0.0
    assert burn_rate([(t0, t0 + hour, "unknown")], [(t0, t0 + hour)], t0, t0 + hour, 99.9) is None
