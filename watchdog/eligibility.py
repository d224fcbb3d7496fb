"""Rule 5's calendar: business hours and maintenance windows as spans of instants (ms, UTC).

Local times become instants with zoneinfo's `fold=0` (`periods.local_ms`); durations are elapsed
time, so a 2-hour window that starts just before a clock change still lasts 2 hours.
"""

from __future__ import annotations

import datetime as dt
import math
from functools import lru_cache

from dateutil.rrule import DAILY, HOURLY, MONTHLY, WEEKLY, YEARLY, rruleset, rrulestr
from dateutil.rrule import rrule as RRule

from slawatch.config.contract import BusinessHours, Contract, Maintenance, Service

from .periods import local_ms, to_local
from .timeline import Span, intersect, merge_spans, subtract, total

RRULE_START = dt.datetime(2000, 1, 1)  # rules without DTSTART count from here (local time)
DAY = dt.timedelta(days=1)


def business_spans(hours: BusinessHours | None, timezone: str, start: int, end: int) -> list[Span]:
    """The business hours inside `[start, end)`; all of it without business hours."""
    if end <= start:
        return []
    if hours is None:
        return [(start, end)]
    first = to_local(start, timezone).date() - DAY
    last = to_local(end, timezone).date() + DAY
    spans = []
    day = first
    while day <= last:
        if day.weekday() in hours.days:
            opens = local_ms(dt.datetime.combine(day, hours.start), timezone)
            closes = (local_ms(dt.datetime.combine(day + DAY, dt.time()), timezone) if hours.end == dt.time.max
                      else local_ms(dt.datetime.combine(day, hours.end), timezone))
            spans.append((opens, closes))
        day += DAY
    return intersect(merge_spans(spans), [(start, end)])


def maintenance_spans(windows: tuple[Maintenance, ...], service: Service, timezone: str, start: int,
                      end: int) -> list[Span]:
    """The maintenance windows that apply to `service`, inside `[start, end)`."""
    spans: list[Span] = []
    for window in windows:
        if window.services and service.id not in window.services:
            continue
        if window.rrule is not None and window.duration is not None:
            spans.extend(_occurrences(window.rrule, round(window.duration * 1000), timezone, start, end))
        elif window.start is not None and window.end is not None:
            spans.append((local_ms(window.start, timezone), local_ms(window.end, timezone)))
    return intersect(merge_spans(spans), [(start, end)])


@lru_cache(maxsize=1024)
def _occurrences(rule: str, duration_ms: int, timezone: str, start: int, end: int) -> tuple[Span, ...]:
    # Local wall times from a day before the earliest window that can reach `start` to a day after
    # `end`: offsets are under a day, so no occurrence that touches [start, end) is missed.
    earliest = to_local(start - duration_ms, timezone).replace(tzinfo=None) - DAY
    latest = to_local(end, timezone).replace(tzinfo=None) + DAY
    found = []
    for occurrence in _counted_from(_rule(rule), earliest).between(earliest, latest, inc=True):
        opens = local_ms(occurrence, timezone)
        found.append((opens, opens + duration_ms))
    return tuple(found)


@lru_cache(maxsize=256)
def _rule(text: str) -> RRule | rruleset:
    return rrulestr(text, dtstart=RRULE_START)


def _counted_from(rule: RRule | rruleset, before: dt.datetime) -> RRule | rruleset:
    """`rule` counted from a later start, before `before`, that gives it the same occurrences from
    there on: a whole number of its intervals after RRULE_START, with the same defaults a rule takes
    from its start (midnight; the 1st of the month for MONTHLY, 1 January for YEARLY; a Saturday
    otherwise). Counted from 2000, every look-up walked every occurrence since (an hourly rule: a
    quarter of a million). A rule with COUNT stays as it is: its occurrences depend on the start."""
    if not isinstance(rule, RRule):
        return rule
    freq, interval, count = (getattr(rule, name) for name in ("_freq", "_interval", "_count"))  # as parsed
    if count is not None:
        return rule
    if freq in (YEARLY, MONTHLY):
        months = (before.year - RRULE_START.year) * 12 + before.month - 2  # a month before, at least
        months -= months % (interval * (12 if freq == YEARLY else 1))
        if months <= 0:
            return rule
        return rule.replace(dtstart=dt.datetime(RRULE_START.year + months // 12, months % 12 + 1, 1))
    steps = {DAILY: interval, HOURLY: interval // math.gcd(interval, 24), WEEKLY: 7 * interval}
    if freq not in steps:
        return rule
    days = (before - RRULE_START).days - 7
    days -= days % math.lcm(7, steps[freq])
    return rule if days <= 0 else rule.replace(dtstart=RRULE_START + dt.timedelta(days=days))


def eligible_windows(contract: Contract, service: Service, start: int, end: int) -> tuple[list[Span], list[Span]]:
    """(eligible spans, maintenance spans) inside `[start, end)`: business hours minus the service's
    maintenance, and the maintenance that fell in business hours."""
    hours = business_spans(contract.business_hours, contract.timezone, start, end)
    maintenance = intersect(maintenance_spans(contract.maintenance, service, contract.timezone, start, end), hours)
    return subtract(hours, maintenance), maintenance


def eligible_ms(contract: Contract, service: Service, start: int, end: int) -> int:
    return total(eligible_windows(contract, service, start, end)[0])
