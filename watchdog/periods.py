"""Contract periods in the contract's timezone: `2026-10` (month), `2026-Q4` (quarter), `2026-W44` (ISO week).

Boundaries are local midnights. A local time becomes an instant the way zoneinfo does with
`fold=0` (DESIGN.md "SLA semantics"): a time that occurs twice means its first occurrence, a time
that does not exist lands after the gap. Instants are integer milliseconds since the epoch (UTC),
so a month across a DST change is 743 or 745 hours long, exactly.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

KINDS = ("month", "quarter", "week")
_FORMS = {
    "month": re.compile(r"(\d{4})-(\d{2})"),
    "quarter": re.compile(r"(\d{4})-Q([1-4])"),
    "week": re.compile(r"(\d{4})-W(\d{2})"),
}


@dataclass(frozen=True)
class Period:
    """One contract period: `[start, end)` in ms, and the same bounds as local times."""

    kind: str
    label: str
    timezone: str
    start: int
    end: int
    start_local: dt.datetime
    end_local: dt.datetime

    def following(self) -> Period:
        return period_at(self.kind, self.timezone, self.end)

    def preceding(self) -> Period:
        return period_at(self.kind, self.timezone, self.start - 1)


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_ms(naive: dt.datetime, timezone: str) -> int:
    """A local wall time as an instant (fold=0: first occurrence; a missing time lands after the gap)."""
    aware = naive.replace(tzinfo=zone(timezone), fold=0)
    return _ms(aware)


def to_local(instant_ms: int, timezone: str) -> dt.datetime:
    """An instant as an aware local time."""
    return (_EPOCH + dt.timedelta(milliseconds=instant_ms)).astimezone(zone(timezone))


def _ms(aware: dt.datetime) -> int:
    return (aware - _EPOCH) // dt.timedelta(milliseconds=1)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def parse_period(text: str, timezone: str, kind_wanted: str | None = None) -> Period:
    """A period from its label; the kind follows from the form, and must be `kind_wanted` when given
    (a contract's fee, credits and error budget are per its own period). Raise ValueError naming the
    forms."""
    for kind, form in _FORMS.items():
        match = form.fullmatch(text.strip())
        if match is None:
            continue
        if kind_wanted is not None and kind != kind_wanted:
            raise ValueError(f"period {text!r} is a {kind}: this contract's periods are {kind_wanted}s, "
                             f"like {_EXAMPLES[kind_wanted]}")
        year, number = int(match[1]), int(match[2])
        try:
            return _period(kind, _first_day(kind, year, number), timezone)
        except (ValueError, OverflowError):  # no such month or week; or beyond the dates Python has
            break
    raise ValueError(f"period {text!r}: expected a month like 2026-10, a quarter like 2026-Q4 "
                     "or an ISO week like 2026-W44")


_EXAMPLES = {"month": "2026-10", "quarter": "2026-Q4", "week": "2026-W44"}


def period_at(kind: str, timezone: str, instant_ms: int) -> Period:
    """The period of `kind` that contains the instant."""
    day = to_local(instant_ms, timezone).date()
    if kind == "month":
        first = day.replace(day=1)
    elif kind == "quarter":
        first = dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    elif kind == "week":
        first = day - dt.timedelta(days=day.weekday())
    else:
        raise ValueError(f"unknown period kind {kind!r}; expected one of {', '.join(KINDS)}")
    period = _period(kind, first, timezone)
    if instant_ms < period.start:  # a local midnight that does not exist pushed the start later
        return _period(kind, _first_day(kind, *_previous(kind, first)), timezone)
    return period


def label_of(kind: str, first: dt.date) -> str:
    if kind == "month":
        return f"{first.year:04d}-{first.month:02d}"
    if kind == "quarter":
        return f"{first.year:04d}-Q{(first.month - 1) // 3 + 1}"
    year, week, _ = first.isocalendar()
    return f"{year:04d}-W{week:02d}"


def _first_day(kind: str, year: int, number: int) -> dt.date:
    if kind == "month":
        return dt.date(year, number, 1)
    if kind == "quarter":
        return dt.date(year, 3 * (number - 1) + 1, 1)
    return dt.date.fromisocalendar(year, number, 1)


def _next_first_day(kind: str, first: dt.date) -> dt.date:
    if kind == "week":
        return first + dt.timedelta(days=7)
    months = 1 if kind == "month" else 3
    month = first.month - 1 + months
    return dt.date(first.year + month // 12, month % 12 + 1, 1)


def _previous(kind: str, first: dt.date) -> tuple[int, int]:
    before = first - dt.timedelta(days=1)
    if kind == "month":
        return before.year, before.month
    if kind == "quarter":
        return before.year, (before.month - 1) // 3 + 1
    year, week, _ = before.isocalendar()
    return year, week


def _period(kind: str, first: dt.date, timezone: str) -> Period:
    after = _next_first_day(kind, first)
    start_naive, end_naive = dt.datetime.combine(first, dt.time()), dt.datetime.combine(after, dt.time())
    start, end = local_ms(start_naive, timezone), local_ms(end_naive, timezone)
    return Period(kind, label_of(kind, first), timezone, start, end, to_local(start, timezone),
                  to_local(end, timezone))
