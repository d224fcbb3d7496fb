"""Reporting periods: local calendar months, quarters and ISO weeks as [start, end) instants.

Every expected instant below is worked out by hand in UTC (Europe/Amsterdam is UTC+1 in winter
(CET) and UTC+2 in summer (CEST); in 2026 summer time runs from Sunday 2026-03-29 02:00 CET
(01:00 UTC) to Sunday 2026-10-25 03:00 CEST (01:00 UTC)), not computed with zoneinfo, so the
module under test is checked against independent numbers.
"""

from __future__ import annotations

import datetime as dt

import pytest

from slawatch.watchdog.periods import Period, local_ms, parse_period, period_at

AMS = "Europe/Amsterdam"
H = 3_600_000  # one hour in ms


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """A UTC wall time as integer ms since the epoch."""
    return int(dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC).timestamp()) * 1000


def check(period: Period, kind: str, label: str, start: int, end: int, timezone: str = AMS) -> None:
    assert (period.kind, period.label, period.timezone) == (kind, label, timezone)
    assert (period.start, period.end) == (start, end)
    assert isinstance(period.start, int) and isinstance(period.end, int)
    # the local bounds are aware datetimes naming the same instants
    assert period.start_local.tzinfo is not None and period.end_local.tzinfo is not None
    assert int(period.start_local.timestamp() * 1000) == start
    assert int(period.end_local.timestamp() * 1000) == end
    assert str(period.start_local.tzinfo) == timezone


# --- months -----------------------------------------------------------------------------------

def test_october_2026_in_amsterdam_has_745_hours() -> None:
    # 2026-10-01 00:00 CEST = 2026-09-30 22:00 UTC; 2026-11-01 00:00 CET = 2026-10-31 23:00 UTC
    # 31 days × 24 h + the repeated hour of 2026-10-25 = 745 h
    p = parse_period("2026-10", AMS)
    check(p, "month", "2026-10", utc(2026, 9, 30, 22), utc(2026, 10, 31, 23))
    assert p.end - p.start == 745 * H
    assert p.start_local.replace(tzinfo=None) == dt.datetime(2026, 10, 1)
    assert p.end_local.replace(tzinfo=None) == dt.datetime(2026, 11, 1)
    assert p.start_local.utcoffset() == dt.timedelta(hours=2)
    assert p.end_local.utcoffset() == dt.timedelta(hours=1)


def test_march_2026_in_amsterdam_has_743_hours() -> None:
    # 2026-03-01 00:00 CET = 2026-02-28 23:00 UTC; 2026-04-01 00:00 CEST = 2026-03-31 22:00 UTC
    # 31 × 24 − the skipped hour of 2026-03-29 = 743 h
    p = parse_period("2026-03", AMS)
    check(p, "month", "2026-03", utc(2026, 2, 28, 23), utc(2026, 3, 31, 22))
    assert p.end - p.start == 743 * H


def test_a_month_without_dst_change_and_december_into_the_next_year() -> None:
    # 2026-11: 00:00 CET both ends: 2026-10-31 23:00 → 2026-11-30 23:00 UTC = 720 h
    p = parse_period("2026-11", AMS)
    check(p, "month", "2026-11", utc(2026, 10, 31, 23), utc(2026, 11, 30, 23))
    assert p.end - p.start == 720 * H
    # 2026-12 ends at 2027-01-01 00:00 CET = 2026-12-31 23:00 UTC; 744 h
    p = parse_period("2026-12", AMS)
    check(p, "month", "2026-12", utc(2026, 11, 30, 23), utc(2026, 12, 31, 23))
    assert p.end - p.start == 744 * H
    # February of a leap year: 29 days
    p = parse_period("2028-02", AMS)
    check(p, "month", "2028-02", utc(2028, 1, 31, 23), utc(2028, 2, 29, 23))
    assert p.end - p.start == 29 * 24 * H


def test_the_timezone_argument_decides_the_boundaries() -> None:
    p = parse_period("2026-10", "UTC")
    check(p, "month", "2026-10", utc(2026, 10, 1), utc(2026, 11, 1), "UTC")
    assert p.end - p.start == 744 * H
    # New York leaves DST on 2026-11-01 02:00 EDT: 2026-11-01 00:00 EDT = 04:00 UTC,
    # 2026-12-01 00:00 EST = 05:00 UTC; 30 × 24 + 1 = 721 h
    p = parse_period("2026-11", "America/New_York")
    check(p, "month", "2026-11", utc(2026, 11, 1, 4), utc(2026, 12, 1, 5), "America/New_York")
    assert p.end - p.start == 721 * H


def test_a_month_starting_at_a_missing_midnight_starts_after_the_gap() -> None:
    # Asunción moved its clocks from 00:00 (−04) to 01:00 (−03) on Sunday 2017-10-01: that midnight
    # never happened. fold=0 reads it at −04, 04:00 UTC, which is 01:00 −03, just after the gap.
    tz = "America/Asuncion"
    october = parse_period("2017-10", tz)
    assert october.start == utc(2017, 10, 1, 4)
    assert october.start_local.replace(tzinfo=None) == dt.datetime(2017, 10, 1, 1)
    assert parse_period("2017-09", tz).end == october.start
    assert period_at("month", tz, utc(2017, 10, 1, 4)).label == "2017-10"
    assert period_at("month", tz, utc(2017, 10, 1, 4) - 1).label == "2017-09"


# --- quarters ---------------------------------------------------------------------------------

def test_q4_2026_crosses_the_autumn_change() -> None:
    # 2026-10-01 00:00 CEST = 2026-09-30 22:00 UTC → 2027-01-01 00:00 CET = 2026-12-31 23:00 UTC
    # 92 days × 24 + 1 = 2209 h
    p = parse_period("2026-Q4", AMS)
    check(p, "quarter", "2026-Q4", utc(2026, 9, 30, 22), utc(2026, 12, 31, 23))
    assert p.end - p.start == 2209 * H


def test_q1_2026_crosses_the_spring_change() -> None:
    # 2026-01-01 00:00 CET = 2025-12-31 23:00 UTC → 2026-04-01 00:00 CEST = 2026-03-31 22:00 UTC
    # 90 days × 24 − 1 = 2159 h
    p = parse_period("2026-Q1", AMS)
    check(p, "quarter", "2026-Q1", utc(2025, 12, 31, 23), utc(2026, 3, 31, 22))
    assert p.end - p.start == 2159 * H


def test_q2_and_q3_2026_lie_inside_summer_time() -> None:
    # Q2: 2026-04-01 → 2026-07-01, both 00:00 CEST: 91 days = 2184 h
    p = parse_period("2026-Q2", AMS)
    check(p, "quarter", "2026-Q2", utc(2026, 3, 31, 22), utc(2026, 6, 30, 22))
    assert p.end - p.start == 2184 * H
    # Q3: 2026-07-01 → 2026-10-01: 92 days = 2208 h
    p = parse_period("2026-Q3", AMS)
    check(p, "quarter", "2026-Q3", utc(2026, 6, 30, 22), utc(2026, 9, 30, 22))
    assert p.end - p.start == 2208 * H


# --- ISO weeks --------------------------------------------------------------------------------

def test_the_week_of_the_autumn_change_has_169_hours() -> None:
    # 2026-W43: Monday 2026-10-19 00:00 CEST = 10-18 22:00 UTC → Monday 2026-10-26 00:00 CET = 10-25 23:00 UTC
    p = parse_period("2026-W43", AMS)
    check(p, "week", "2026-W43", utc(2026, 10, 18, 22), utc(2026, 10, 25, 23))
    assert p.end - p.start == 169 * H


def test_the_week_of_the_spring_change_has_167_hours() -> None:
    # 2026-W13: Monday 2026-03-23 00:00 CET = 03-22 23:00 UTC → Monday 2026-03-30 00:00 CEST = 03-29 22:00 UTC
    p = parse_period("2026-W13", AMS)
    check(p, "week", "2026-W13", utc(2026, 3, 22, 23), utc(2026, 3, 29, 22))
    assert p.end - p.start == 167 * H


def test_2026_has_a_week_53_and_2027_w01_starts_on_4_january() -> None:
    # 2026-01-01 is a Thursday, so 2026 has 53 ISO weeks; W53 = Mon 2026-12-28 .. Mon 2027-01-04
    p = parse_period("2026-W53", AMS)
    check(p, "week", "2026-W53", utc(2026, 12, 27, 23), utc(2027, 1, 3, 23))
    assert p.end - p.start == 168 * H
    p = parse_period("2027-W01", AMS)
    check(p, "week", "2027-W01", utc(2027, 1, 3, 23), utc(2027, 1, 10, 23))


def test_2026_w01_starts_in_2025() -> None:
    # 2026-W01 = Monday 2025-12-29 .. Monday 2026-01-05
    p = parse_period("2026-W01", AMS)
    check(p, "week", "2026-W01", utc(2025, 12, 28, 23), utc(2026, 1, 4, 23))


def test_2020_w53_runs_into_2021() -> None:
    # 2020 is a leap year starting on a Wednesday: 53 weeks; W53 = Mon 2020-12-28 .. Mon 2021-01-04
    p = parse_period("2020-W53", AMS)
    check(p, "week", "2020-W53", utc(2020, 12, 27, 23), utc(2021, 1, 3, 23))


@pytest.mark.parametrize("text", [
    "2027-W53",   # 2027 starts on a Friday: 52 weeks
    "2021-W53",   # 2021 starts on a Friday: 52 weeks
    "2026-W54",
    "2026-W00",
    "2026-13",
    "2026-00",
    "2026-Q0",
    "2026-Q5",
    "",
    "2026",
    "October",
    "2026-10-01",
    "2026/10",
    "2026-W4x",
    "2026-Qx",
])
def test_bad_period_texts_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_period(text, AMS)


# --- period_at --------------------------------------------------------------------------------

def test_period_at_month_start_is_inclusive_and_end_exclusive() -> None:
    start, end = utc(2026, 9, 30, 22), utc(2026, 10, 31, 23)
    assert period_at("month", AMS, start).label == "2026-10"
    assert period_at("month", AMS, start - 1).label == "2026-09"
    assert period_at("month", AMS, end - 1).label == "2026-10"
    assert period_at("month", AMS, end).label == "2026-11"
    assert period_at("month", AMS, utc(2026, 10, 15, 12)) == parse_period("2026-10", AMS)
    # in UTC the same instant 2026-09-30 22:00 is still September
    assert period_at("month", "UTC", start).label == "2026-09"


def test_period_at_the_repeated_hour_is_inside_its_month_and_week() -> None:
    # 2026-10-25 01:30 UTC = 02:30 CET, the second 02:30 of that night
    assert period_at("month", AMS, utc(2026, 10, 25, 1, 30)).label == "2026-10"
    assert period_at("week", AMS, utc(2026, 10, 25, 1, 30)).label == "2026-W43"
    # Sunday 2026-10-25 23:00 UTC = Monday 00:00 CET: the next week begins
    assert period_at("week", AMS, utc(2026, 10, 25, 23)).label == "2026-W44"
    assert period_at("week", AMS, utc(2026, 10, 25, 23) - 1).label == "2026-W43"


def test_period_at_quarter_boundaries() -> None:
    q4_end = utc(2026, 12, 31, 23)  # 2027-01-01 00:00 CET
    assert period_at("quarter", AMS, q4_end - 1).label == "2026-Q4"
    assert period_at("quarter", AMS, q4_end) == parse_period("2027-Q1", AMS)
    q1_end = utc(2026, 3, 31, 22)  # 2026-04-01 00:00 CEST
    assert period_at("quarter", AMS, q1_end - 1).label == "2026-Q1"
    assert period_at("quarter", AMS, q1_end).label == "2026-Q2"


def test_period_at_iso_weeks_at_year_edges() -> None:
    w01 = utc(2027, 1, 3, 23)  # Monday 2027-01-04 00:00 CET
    assert period_at("week", AMS, w01) == parse_period("2027-W01", AMS)
    assert period_at("week", AMS, w01 - 1) == parse_period("2026-W53", AMS)
    # 2021-01-01 (a Friday) belongs to 2020-W53; 2026-01-01 (a Thursday) to 2026-W01
    assert period_at("week", AMS, utc(2021, 1, 1, 12)).label == "2020-W53"
    assert period_at("week", AMS, utc(2026, 1, 1, 12)).label == "2026-W01"
    # 2025-12-28 is a Sunday: still 2025-W52
    assert period_at("week", AMS, utc(2025, 12, 28, 22, 59)).label == "2025-W52"


# --- local_ms ---------------------------------------------------------------------------------

def test_local_ms_in_the_spring_gap_lands_after_the_gap() -> None:
    # 02:30 does not exist on 2026-03-29; fold=0 reads it with the offset before the gap (+1):
    # 01:30 UTC, which is 03:30 CEST
    assert local_ms(dt.datetime(2026, 3, 29, 2, 30), AMS) == utc(2026, 3, 29, 1, 30)
    # 02:00 (the gap's start) and 03:00 (its end) are one instant
    assert local_ms(dt.datetime(2026, 3, 29, 2, 0), AMS) == utc(2026, 3, 29, 1)
    assert local_ms(dt.datetime(2026, 3, 29, 3, 0), AMS) == utc(2026, 3, 29, 1)
    assert local_ms(dt.datetime(2026, 3, 29, 1, 59, 59), AMS) == utc(2026, 3, 29, 0, 59, 59)


def test_local_ms_in_the_repeated_hour_is_the_first_occurrence() -> None:
    # 02:30 happens twice on 2026-10-25: first at CEST (+2) = 00:30 UTC, again at CET = 01:30 UTC
    assert local_ms(dt.datetime(2026, 10, 25, 2, 30), AMS) == utc(2026, 10, 25, 0, 30)
    assert local_ms(dt.datetime(2026, 10, 25, 1, 59), AMS) == utc(2026, 10, 24, 23, 59)
    assert local_ms(dt.datetime(2026, 10, 25, 3, 0), AMS) == utc(2026, 10, 25, 2)
    # so local 02:00 → 03:00 that night is two hours of real time
    assert local_ms(dt.datetime(2026, 10, 25, 3), AMS) - local_ms(dt.datetime(2026, 10, 25, 2), AMS) == 2 * H


def test_local_ms_ordinary_times_and_other_zones() -> None:
    assert local_ms(dt.datetime(2026, 7, 1, 12, 0), AMS) == utc(2026, 7, 1, 10)
    assert local_ms(dt.datetime(2026, 12, 1, 12, 0), AMS) == utc(2026, 12, 1, 11)
    assert local_ms(dt.datetime(2026, 12, 1, 12, 0), "UTC") == utc(2026, 12, 1, 12)
    assert local_ms(dt.datetime(2026, 12, 1, 12, 0, 0, 250_000), "UTC") == utc(2026, 12, 1, 12) + 250
    assert isinstance(local_ms(dt.datetime(2026, 12, 1, 12, 0), AMS), int)


@pytest.mark.parametrize("label", ["0001-01", "0001-W01", "9999-W52"])
def test_a_period_beyond_the_dates_python_has_is_a_value_error(label: str) -> None:
    with pytest.raises(ValueError, match="expected a month like 2026-10"):
        parse_period(label, AMS)


def test_a_period_of_another_kind_than_the_contracts_is_refused() -> None:
    """A contract's fee, credits and error budget are per its own period: a week of a monthly
    contract would claim a month's credit."""
    with pytest.raises(ValueError, match="'2026-W47' is a week: this contract's periods are months, like 2026-10"):
        parse_period("2026-W47", AMS, "month")
    assert parse_period("2026-11", AMS, "month").label == "2026-11"
