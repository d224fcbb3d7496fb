"""Figures at the edges of windows: a down run is judged by its whole length (rule 4) wherever a
window cuts it -- a burn-rate window, a period's end, a chart --, an objective is breached as soon
as it cannot be met, an outage counts from where maintenance stops cutting it, and a database
compacted before hourly rollups existed still answers latency exactly."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slawatch.config.contract import Maintenance, Objective
from slawatch.watchdog import alerting, charts, live, pages, report, sla
from slawatch.watchdog.intervals import DOWN, UP, Run, runs_of
from slawatch.watchdog.store import Reader, Store

from .test_report_store import DAY0, month_rows, raw_histogram
from .test_sla_reference import make_contract, make_period
from .test_store import incoming

S, MINUTE, HOUR, DAY = 1000, 60_000, 3_600_000, 86_400_000
NOW = 1_790_000_000_000  # 2026-09-21 14:13:20 UTC


def test_burn_rate_over_6h_sees_whole_down_runs_that_began_before_the_window() -> None:
    """DESIGN.md rule 4: "Each maximal run of down (in real time, not clipped to the period) shorter
    than min_outage is counted as up"; rule 10: "burn rate over a window w = (down seconds in w /
    known seconds in w) / (1 - target/100) ... warn at burn >= 6 over both 6 h and 30 m".

    Target 99 %, min_outage 15 min. Down run A = [now-6h10m, now-5h52m): 18 min, so it counts;
    8 min of it lie in the 6 h window. Down run B = [now-15m, now): 15 min, counts. Up otherwise.
    6 h burn = (8+15) min / 360 min / 0.01 = 6.39 >= 6, 30 m burn = 15/30/0.01 = 50: warn fires.
    """
    contract, service = make_contract(min_outage=900, objectives=[Objective("availability", target=99.0)])
    readings = []
    t = NOW - 8 * HOUR
    while t < NOW:
        down = NOW - 6 * HOUR - 10 * MINUTE <= t < NOW - 5 * HOUR - 52 * MINUTE or t >= NOW - 15 * MINUTE
        readings.append((t, DOWN if down else UP, 60.0))
        t += MINUTE
    runs = {("a1", "c1"): runs_of(readings)}
    live = alerting.service_now(contract, service, runs, NOW)
    assert abs(live.burn["6h"] - (23 * 60 / (6 * 3600)) / 0.01) < 1e-9, live.burn  # 6.39, not the 4.17 of the run cut at the reach
    _, events = alerting.decide_budget(contract, service, live, {}, "2026-09", NOW)
    assert "warn" in [e.facts["rule"] for e in events]


def test_breach_when_the_availability_objective_can_no_longer_be_met_under_unknown_exclude() -> None:
    """DESIGN.md "Alerting": "`breach` (an objective can no longer be met this period, ...)";
    rule 7 (unknown = exclude): availability = up / (up + down).

    Period of 10 h, target 99.9 %, unknown = "exclude". The first 5 h have no data (unknown), then
    1 h of readings with 20 s down; now = P0 + 6 h. Even if all the remaining 4 h are up, the
    period ends at most at (4 h + 1 h - 20 s) / (5 h) = 17 980 / 18 000 = 99.8889 % < 99.9 % (shown
    cut down to 99.888 %, as every figure is):
    the objective can no longer be met, so a breach is due now. The error budget of rule 10 (0.1 %
    x 36 000 s = 36 s) still has 16 s left: it is not what decides.
    """

    contract, service = make_contract(unknown="exclude", objectives=[Objective("availability", target=99.9)])
    p0, p1 = NOW, NOW + 10 * HOUR
    now = p0 + 6 * HOUR
    readings = [(t, UP, 10.0) for t in range(p0 + 5 * HOUR, now, 10 * S)]
    readings = [(t, DOWN if p0 + 5 * HOUR + 30 * MINUTE <= t < p0 + 5 * HOUR + 30 * MINUTE + 20 * S else status, i)
                for t, status, i in readings]
    figures = sla.evaluate_service(contract, service, make_period("UTC", p0, p1),
                                   {("a1", "c1"): runs_of(readings)}, now=now)
    assert (figures.down_ms, figures.unknown_ms) == (20 * S, 5 * HOUR)
    best_final = sla.Fraction(100 * ((p1 - p0) - 5 * HOUR - 20 * S), (p1 - p0) - 5 * HOUR)
    assert best_final < sla.exact(99.9)  # the objective cannot be met any more
    _, events = alerting.decide_breach(contract, service, figures, {}, "test")
    assert [e.kind for e in events] == ["breach"]
    assert events[0].facts["overspent"] is False and events[0].facts["best_percent"] == 99.888
    title, body = live.Wording(None).render("breach", "client", events[0].facts | {
        "contract": {"id": "c"}, "service": {"name": "Shop"}, "period": "2026-09", "period_kind": "month",
        "availability": "99.556 %", "link": None})
    assert title == "[c] Objective can no longer be met: Shop"
    assert body.startswith("Shop can no longer meet the 99.9 % availability objective this month: up for all "
                           "the rest of 2026-09, it would end at 99.888 % at best (time without data is not "
                           "counted under this contract)."), body
    assert "error budget" not in body  # 16 s of it are left


def test_a_period_is_frozen_only_once_min_outage_and_the_grace_have_passed_after_its_end() -> None:
    """Rule 4 (a down run counts by its whole length, "not clipped to the period") and "Every figure
    in a report must be reproducible from the stored readings": a run crossing the period's end is
    known only min_outage after it, so the freeze waits for min_outage, then the grace.

    grace 60 s, min_outage 5 min; down over [P1 - 1 min, P1 + 4 min): 5 min, so the minute inside
    the period counts. Evaluated at P1 + 60 s the run has lasted 2 min (counted as up): too early.
    """
    contract, service = make_contract(min_outage=300, objectives=[Objective("availability", target=99.9)])
    contract = dataclasses.replace(contract, grace=60.0)
    p0, p1 = NOW, NOW + HOUR
    period = make_period("UTC", p0, p1)
    readings = [(t, DOWN if p1 - MINUTE <= t < p1 + 4 * MINUTE else UP, 10.0)
                for t in range(p0 - HOUR, p1 + HOUR, 10 * S)]
    runs = {("a1", "c1"): runs_of(readings)}
    final = sla.evaluate_service(contract, service, period, runs)
    assert final.down_ms == MINUTE
    assert sla.evaluate_service(contract, service, period, runs, now=p1 + MINUTE).down_ms == 0  # not known yet
    assert not report.due_to_freeze(contract, period, p1 + MINUTE)
    assert not report.due_to_freeze(contract, period, p1 + 6 * MINUTE - 1)
    assert report.due_to_freeze(contract, period, p1 + 6 * MINUTE)  # min_outage, then the grace
    assert sla.evaluate_service(contract, service, period, runs, now=p1 + 6 * MINUTE).down_ms == final.down_ms


def test_burn_down_of_a_closed_period_spends_what_the_report_spends(monkeypatch: pytest.MonkeyPatch) -> None:
    """DESIGN.md rule 4 ("in real time, not clipped to the period") and rule 10 ("spent = down
    seconds so far"): the budget chart of a closed period must end at the report's budget.

    min_outage = 5 min; down over [P1 - 1 min, P1 + 4 min) (5 min: counts, 60 s inside the period).
    The report's budget: allowed 3.6 s (99.9 % of 1 h), spent 60 s, remaining -56.4 s. The chart's
    last point should be -56.4 s = -0.94 min; pages.burn_down clips the state at P1, so the run looks
    1 min long, counts as up, and the chart ends at +0.06 min (nothing spent).
    """

    contract, service = make_contract(min_outage=300, objectives=[Objective("availability", target=99.9)])
    p0, p1 = NOW, NOW + HOUR
    period = make_period("UTC", p0, p1)
    readings = [(t, DOWN if p1 - MINUTE <= t < p1 + 4 * MINUTE else UP, 10.0)
                for t in range(p0 - HOUR, p1 + HOUR, 10 * S)]
    runs = {("a1", "c1"): runs_of(readings)}

    class FakeReader:
        def runs_for(self, checks: object, start: int, end: int) -> dict[tuple[str, str], list[Run]]:
            return runs

    now = p1 + 24 * HOUR
    figures = sla.evaluate_service(contract, service, period, runs, now=now)
    assert figures.budget is not None and figures.budget.spent_ms == MINUTE
    seen: dict[str, list[tuple[float, float]]] = {}
    monkeypatch.setattr(charts, "line_chart", lambda series, *a, **k: seen.setdefault("points", series[0].points))
    pages.burn_down(contract, service, FakeReader(), period, now)  # type: ignore[arg-type]
    last_minutes = seen["points"][-1][1]
    assert abs(last_minutes - figures.budget.remaining_ms / 60_000) < 1e-9, (last_minutes, figures.budget)


def test_a_database_compacted_before_hourly_rollups_keeps_its_latency_after_the_upgrade(tmp_path: Path) -> None:
    """Rule 8 (the percentile over the up readings in eligible time) on a database whose days were
    compacted before migration 0005: they have daily rows and no hourly ones, while reports take a
    compacted day's hours from hourly_rollups. Migration 0006 marks those days stale: reports read
    their 15-minute rows, and the next compaction merges them again, hours included."""
    path = tmp_path / "w.db"
    store = Store(path)
    rows = month_rows(1, DAY0, 2 * 1440, seed=3)
    store.store([incoming(rows, kind="import")])
    assert store.compact(DAY0 + 2 * DAY) == 2
    store.conn.execute("DELETE FROM hourly_rollups")  # what a compaction before 0005 left
    store.conn.execute("DELETE FROM migrations WHERE name = '0006-hours-of-days-compacted-before-0005'")
    store.close()
    spans = [(DAY0 + d * DAY + 8 * HOUR, DAY0 + d * DAY + 18 * HOUR) for d in (0, 1)]  # hours, not whole days
    want = raw_histogram([r for r in rows if r.check == "web"], spans)
    assert sum(want.values()) > 0
    upgraded = Store(path)  # the writer's start applies 0006
    with Reader(path) as reader:
        assert reader.latency_in(["web"], spans).histogram == want
    assert upgraded.compact(DAY0 + 2 * DAY) > 0
    upgraded.close()
    with Reader(path) as reader:
        counts = [reader.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                  for table in ("stale_days", "hourly_rollups")]
        assert counts[0] == 0 and counts[1] > 0, counts
        assert reader.latency_in(["web"], spans).histogram == want


def test_outage_alert_duration_is_the_outage_that_counts_not_time_in_maintenance() -> None:
    """DESIGN.md rule 11: "Incidents are the maximal down runs that count (after min_outage and
    maintenance)"; rule 5: maintenance "cuts outages it overlaps"; "Alerting": "`recovery` (with the
    outage's duration)".

    Maintenance 00:00-02:00 UTC; the service is down 01:00-03:00. The report's incident is
    02:00-03:00 (1 h). The alerts say the outage began at 01:00 and the recovery says it lasted 2 h.
    """

    day = dt.datetime(2026, 9, 22)
    t0 = int(day.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
    contract, service = make_contract(objectives=[Objective("availability", target=99.9)], maintenance=[
        Maintenance((), None, None, day.replace(hour=0), day.replace(hour=2), "")])
    readings = [(t, DOWN if t0 + HOUR <= t < t0 + 3 * HOUR else UP, 10.0)
                for t in range(t0 - HOUR, t0 + 5 * HOUR, 10 * S)]
    runs = {("a1", "c1"): runs_of(readings)}
    figures = sla.evaluate_service(contract, service, make_period("UTC", t0, t0 + 5 * HOUR), runs)
    assert [(i.start, i.duration_ms) for i in figures.incidents] == [(t0 + 2 * HOUR, HOUR)]
    state: dict[str, Any] | None = None
    sent: list[alerting.Event] = []
    for now in range(t0 + HOUR, t0 + 4 * HOUR, MINUTE):
        live = alerting.service_now(contract, service, runs, now)
        state, events = alerting.decide_service(contract, service, live, state, now)
        sent += events
    outage = next(e for e in sent if e.kind == "outage")
    recovery = next(e for e in sent if e.kind == "recovery")
    assert outage.facts["since"] == t0 + 2 * HOUR  # not 01:00, inside maintenance
    assert recovery.facts["duration_ms"] == HOUR  # not 2 h


_DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


@settings(max_examples=300, deadline=None)
@given(freq=st.sampled_from(["HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"]), interval=st.integers(1, 9),
       days=st.lists(st.sampled_from(_DAYS), max_size=3, unique=True), hour=st.none() | st.integers(0, 23),
       monthday=st.none() | st.sampled_from([1, 15, 28, 31, -1]), setpos=st.booleans(),
       start_min=st.integers(0, 40 * 365 * 24 * 60), span_days=st.sampled_from([1, 7, 31, 92]))
def test_maintenance_rules_counted_from_a_later_start_give_the_same_windows(
        freq: str, interval: int, days: list[str], hour: int | None, monthday: int | None, setpos: bool,
        start_min: int, span_days: int) -> None:
    """Rules are counted from a start near the window (not from 2000, which walked every occurrence
    since on each look-up): the windows must be exactly those counted from 2000."""
    from slawatch.watchdog.eligibility import RRULE_START, _counted_from, _rule

    parts = [f"FREQ={freq}", f"INTERVAL={interval}"]
    if days:
        parts.append("BYDAY=" + ",".join(days))
    if hour is not None and freq != "HOURLY":
        parts.append(f"BYHOUR={hour}")
    if monthday is not None and freq in ("MONTHLY", "YEARLY"):
        parts.append(f"BYMONTHDAY={monthday}")
    if setpos and days and freq in ("MONTHLY", "YEARLY"):
        parts.append("BYSETPOS=1")
    rule = _rule(";".join(parts))
    start = RRULE_START + dt.timedelta(minutes=start_min)
    end = start + dt.timedelta(days=span_days)
    assert list(_counted_from(rule, start).between(start, end, inc=True)) == list(rule.between(start, end, inc=True))
