"""The web UI: server-rendered pages for client managers and on-call staff.

Every figure comes from the same functions as reports and alerts (`sla`, `report`, `alerting`);
pages only arrange them. Store reads run in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import jinja2
from aiohttp import web

from slawatch.config.contract import Contract, Service

from . import alerting, auth, charts, sketch, sla
from .eligibility import eligible_windows, maintenance_spans
from .intervals import DOWN, UNKNOWN
from .live import figures_so_far
from .periods import Period, local_ms, parse_period, period_at, to_local
from .render import duration, to_csv, to_html, to_json
from .render import percent as percent_text
from .report import iso
from .report import report as period_report
from .store import AgentState, Reader, now_ms
from .timeline import intersect, spans_of

T = TypeVar("T")
DAY_MS = 86_400_000
STATIC = Path(__file__).parent / "static"


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", overview)
    app.router.add_get("/contracts/{contract}", contract_page)
    app.router.add_get("/contracts/{contract}/services/{service}", service_page)
    app.router.add_get("/contracts/{contract}/report", report_page)
    app.router.add_get("/agents", agents_page)
    app.router.add_get("/alerts", alerts_page)
    app.router.add_post("/alerts/{id}/retry", retry_alert)
    app.router.add_static("/static", STATIC, append_version=False)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("slawatch.watchdog", "templates/ui"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["pct"] = percent_text
    env.filters["dur"] = lambda v: "-" if v is None else duration(v)
    return env


def page(request: web.Request, template: str, **values: Any) -> web.Response:
    viewer = auth.viewer(request)
    text = environment().get_template(template).render(
        viewer=viewer, csrf=auth.csrf_token(request) if viewer.name else "", rules_version=sla.RULES_VERSION, **values)
    return web.Response(text=text, content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": "default-src 'self'; style-src 'self'; img-src 'self' data:",
                                 "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"})


def database(request: web.Request) -> str:
    from .server import WATCHDOG

    return request.app[WATCHDOG].config.database


def config_of(request: web.Request) -> Any:
    from .server import WATCHDOG

    return request.app[WATCHDOG].config


async def read(request: web.Request, function: Callable[[Reader], T]) -> T:
    """Run `function` with a reader connection in a thread."""
    path = database(request)

    def run() -> T:
        with Reader(path) as reader:
            return function(reader)
    return await asyncio.to_thread(run)


# --- what pages show ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceNow:
    id: str
    name: str
    state: str                 # up | down | unknown | maintenance | off-hours
    since: int
    checks_down: tuple[str, ...]
    agents_down: tuple[str, ...]
    figures: sla.ServiceFigures
    target: float | None


def service_now(contract: Contract, service: Service, reader: Reader, now: int) -> ServiceNow:
    """The service's state now (the alerting rules) and its figures so far this period (the report rules)."""
    live = alerting.service_now(contract, service,
                                reader.runs_for(service.checks, now - alerting.reach_ms(service), now), now)
    state = live.status
    if not live.eligible:
        in_window = maintenance_spans(contract.maintenance, service, contract.timezone, now - 1, now + 1)
        state = "maintenance" if in_window else "off-hours"
    figures = figures_so_far(reader, contract, service, now)
    return ServiceNow(service.id, service.name, state, live.since, live.checks_down, live.agents_down, figures,
                      sla.availability_target(service))


def daily(contract: Contract, service: Service, reader: Reader, now: int, days: int = 90) -> list[charts.Day]:
    """Availability of each local day (the report rules, each day a period of its own)."""
    today = to_local(now, contract.timezone).date()
    first = today - dt.timedelta(days=days - 1)
    start = local_ms(dt.datetime.combine(first, dt.time()), contract.timezone)
    reach = round(service.min_outage * 1000)
    state = sla.service_state(service, reader.runs_for(service.checks, start - reach, now), start - reach, now)
    result = []
    for n in range(days):
        day = first + dt.timedelta(days=n)
        lo = local_ms(dt.datetime.combine(day, dt.time()), contract.timezone)
        hi = min(now, local_ms(dt.datetime.combine(day + dt.timedelta(days=1), dt.time()), contract.timezone))
        counts = sla.count(state.timeline, eligible_windows(contract, service, lo, hi)[0])
        percent = sla.availability(counts, contract.unknown)
        shown = "no counted time" if counts.eligible_ms == 0 else (
            f"{percent_text(percent)}; down {duration(counts.down_ms / 1000)}, "
            f"no data {duration(counts.unknown_ms / 1000)}")
        result.append(charts.Day(day.isoformat(), None if percent is None else float(percent), shown))
    return result


def burn_down(contract: Contract, service: Service, reader: Reader, period: Period, now: int) -> charts.Markup:
    """The period's error budget left over time (below zero: overspent)."""
    target = sla.availability_target(service)
    if target is None:
        return charts.Markup('<p class="muted">No availability objective, so no error budget.</p>')
    first, end, last = sla.window(service, period, now)  # the report's own reach: a run crossing an end counts whole
    state = sla.service_state(service, reader.runs_for(service.checks, first, last), first, last)
    whole, _ = eligible_windows(contract, service, period.start, period.end)
    allowed = (1 - sla.exact(target) / 100) * sum(b - a for a, b in whole)
    spent_status = (DOWN, UNKNOWN) if contract.unknown == "down" else (DOWN,)
    spans = sorted(span for status in spent_status for span in intersect(spans_of(state.timeline, status), whole))
    step = max(3600_000, (period.end - period.start) // 200)
    points = []
    for t in [*range(period.start, end, step), end]:
        spent = sum(min(b, t) - a for a, b in spans if a < t)
        points.append(((t - period.start) / 3600_000, float(allowed - spent) / 60_000))
    return charts.line_chart([charts.Series("budget left (minutes)", charts.GREEN, points)],
                             (period.start_local.strftime("%d %b"), period.end_local.strftime("%d %b")),
                             "min", zero_line=True)


def latency_chart(contract: Contract, service: Service, reader: Reader, now: int, days: int = 30) -> charts.Markup:
    """p50 and the objective's percentile (else p95) of each day's up readings, from the rollups."""
    p = next((o.percentile for o in service.objectives if o.kind == "latency" and o.percentile), 95.0)
    today = to_local(now, contract.timezone).date()
    lines: dict[str, list[tuple[float, float]]] = {"p50": [], f"p{p:g}": []}
    for n in range(days):
        day = today - dt.timedelta(days=days - 1 - n)
        lo = local_ms(dt.datetime.combine(day, dt.time()), contract.timezone)
        hi = min(now, local_ms(dt.datetime.combine(day + dt.timedelta(days=1), dt.time()), contract.timezone))
        histogram = reader.latency_in(service.checks, [(lo, hi)]).histogram
        for name, q in (("p50", 50.0), (f"p{p:g}", p)):
            value = sketch.percentile(histogram, q)
            if value is not None:
                lines[name].append((n, value))
    first = (today - dt.timedelta(days=days - 1)).strftime("%d %b")
    return charts.line_chart([charts.Series("p50", "#1565c0", lines["p50"]),
                              charts.Series(f"p{p:g}", "#6a1b9a", lines[f"p{p:g}"])], (first, "today"), "ms")


# --- pages --------------------------------------------------------------------------------------


async def overview(request: web.Request) -> web.Response:
    viewer = auth.viewer(request)
    contracts = [c for c in config_of(request).contracts if viewer.may_read(c) or c.public]
    if not contracts and not viewer.name:
        auth.need_login(request)
    now = now_ms()

    def gather(reader: Reader) -> dict[str, Any]:
        rows = []
        for contract in contracts:
            services = [service_now(contract, s, reader, now) for s in contract.services]
            rows.append({"contract": contract, "services": services, "money": viewer.may_see_money(contract),
                         "credit": sla.contract_credit(contract, [s.figures for s in services])})
        silent = [a for a in visible_agents(viewer, config_of(request).contracts, reader.agents())
                  if a.silent_since is not None]
        return {"rows": rows, "silent": silent if viewer.name else []}
    data = await read(request, gather)
    return page(request, "overview.html", now=now, iso=lambda t, tz: iso(t, tz), **data)


def _period(request: web.Request, contract: Contract, now: int) -> Period:
    text = request.query.get("period")
    try:
        return parse_period(text, contract.timezone, contract.period) if text else period_at(contract.period, contract.timezone, now)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None


def _recent_periods(contract: Contract, now: int, count: int = 12) -> list[Period]:
    periods = [period_at(contract.period, contract.timezone, now)]
    while len(periods) < count:
        periods.append(periods[-1].preceding())
    return periods


async def contract_page(request: web.Request) -> web.Response:
    contract = auth.contract_for(request, request.match_info["contract"], allow_public=True)
    viewer = auth.viewer(request)
    now = now_ms()
    period = _period(request, contract, now)
    path = database(request)

    def gather(reader: Reader) -> dict[str, Any]:
        return {
            "bars": {s.id: (charts.uptime_bar(daily(contract, s, reader, now), sla.availability_target(s)))
                     for s in contract.services},
            "burn": {s.id: burn_down(contract, s, reader, period_at(contract.period, contract.timezone, now), now)
                     for s in contract.services},
        }
    outcome = await asyncio.to_thread(period_report, contract, period, path, False, None, False, False)
    data = await read(request, gather)
    return page(request, "contract.html", contract=contract, period=period, report=outcome.report,
                periods=_recent_periods(contract, now), money=viewer.may_see_money(contract), **data)


async def service_page(request: web.Request) -> web.Response:
    contract = auth.contract_for(request, request.match_info["contract"])
    service = next((s for s in contract.services if s.id == request.match_info["service"]), None)
    if service is None:
        raise web.HTTPNotFound(text="no such service in this contract")
    now = now_ms()

    def gather(reader: Reader) -> dict[str, Any]:
        current = service_now(contract, service, reader, now)
        agents = []
        for (agent, check), runs in sorted(reader.runs_for(service.checks, now - 6 * 3600_000, now).items()):
            last = runs[-1]
            status = last.status if last.end > now else UNKNOWN
            agents.append({"agent": agent, "check": check, "status": status, "last_ts": last.last_ts,
                           "since": last.start if status != UNKNOWN else last.end})
        upcoming = maintenance_spans(contract.maintenance, service, contract.timezone, now, now + 30 * DAY_MS)
        return {"current": current, "agents": agents, "errors": reader.recent_errors(service.checks, 20),
                "latency": latency_chart(contract, service, reader, now), "upcoming": upcoming}
    data = await read(request, gather)
    return page(request, "service.html", contract=contract, service=service, now=now,
                local=lambda t: iso(t, contract.timezone), **data)


async def report_page(request: web.Request) -> web.Response:
    contract = auth.contract_for(request, request.match_info["contract"])
    if not auth.viewer(request).may_see_money(contract):
        raise web.HTTPNotFound(text="no such report")
    now = now_ms()
    period = _period(request, contract, now)
    outcome = await asyncio.to_thread(period_report, contract, period, database(request), False, None, False, False)
    kind = request.query.get("format", "html")
    name = f"{contract.id}-{period.label}"
    if kind == "csv":
        return web.Response(text=to_csv(outcome.report), content_type="text/csv",
                            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    if kind == "json":
        return web.Response(text=to_json(outcome.report), content_type="application/json",
                            headers={"Content-Disposition": f'attachment; filename="{name}.json"'})
    if kind != "html":
        raise web.HTTPBadRequest(text="format: html, csv or json")
    html = to_html(outcome.report).replace(
        "<body>", f'<body><p class="noprint"><a href="?period={period.label}&amp;format=csv">CSV</a> · '
                  f'<a href="?period={period.label}&amp;format=json">JSON</a> · '
                  f'<a href="/contracts/{contract.id}?period={period.label}">back</a></p>', 1)
    return web.Response(text=html, content_type="text/html", charset="utf-8")


async def agents_page(request: web.Request) -> web.Response:
    viewer = auth.need_login(request)
    states = await read(request, lambda r: r.agents())
    shown = visible_agents(viewer, config_of(request).contracts, states)
    return page(request, "agents.html", agents=shown, now=now_ms(), local=lambda t: iso(t, "UTC"))


def visible_agents(viewer: auth.Viewer, contracts: Sequence[Contract],
                   states: Sequence[AgentState]) -> list[AgentState]:
    """The agents a viewer may see: all for an admin; else those whose manifest lists a check of a
    contract the viewer may read (a public contract's checks do not make its agents the viewer's)."""
    checks = {c for contract in contracts if viewer.may_read(contract) for s in contract.services for c in s.checks}
    return [a for a in states
            if viewer.admin or (a.manifest and checks & {c["id"] for c in a.manifest.get("checks", [])})]


async def alerts_page(request: web.Request) -> web.Response:
    viewer = auth.need_login(request)
    if not viewer.admin:
        raise web.HTTPNotFound(text="no such page")
    rows = await read(request, lambda r: r.outbox(None, 200))
    return page(request, "alerts.html", rows=rows, local=lambda t: iso(t, "UTC"))


async def retry_alert(request: web.Request) -> web.Response:
    viewer = auth.need_login(request)
    if not viewer.admin:
        raise web.HTTPNotFound(text="no such page")
    await auth.form_with_csrf(request)
    from .server import WATCHDOG

    watchdog = request.app[WATCHDOG]
    text = request.match_info["id"]
    if not (text.isascii() and text.isdigit() and len(text) <= 18):  # an id SQLite can hold
        raise web.HTTPNotFound(text="no such alert")
    message_id = int(text)
    if await watchdog._writer().call(lambda s: s.retry(message_id, now_ms())):
        watchdog._sender().wake()
    raise web.HTTPSeeOther("/alerts")

