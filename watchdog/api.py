"""The JSON API under /api/v1, as `openapi.json` beside this file documents it.

Figures come from the same functions as the CLI, the pages and the alerts (`report.build`,
`alerting.service_now`); who may read what is auth.py's. Errors are JSON `{"error", "code"}`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from slawatch.config.contract import Contract, CreditTier, Objective, Service

from . import alerting, auth
from .eligibility import maintenance_spans
from .live import LONGEST_LOOKBACK_MS
from .periods import Period, parse_period, period_at
from .report import build, due_to_freeze, freeze_args, iso
from .store import AgentState, OutboxRow, Reader, now_ms

if TYPE_CHECKING:
    from .server import Watchdog

T = TypeVar("T")
API = "/api/v1"
OPENAPI = Path(__file__).with_name("openapi.json")
MONEY = ("currency", "fee", "credit", "credit_percent")
OUTBOX_STATUSES = ("pending", "sent", "dead")
MAX_ALERTS = 1000
MAINTENANCE_REACH_MS = 35 * 86_400_000   # how far back a running maintenance window's start is looked for


def add_routes(app: web.Application) -> None:
    app.middlewares.append(json_errors)
    app.router.add_get(f"{API}/contracts", contracts)
    app.router.add_get(f"{API}/contracts/{{id}}/report", contract_report)
    app.router.add_get(f"{API}/contracts/{{id}}/status", contract_status)
    app.router.add_get(f"{API}/contracts/{{id}}/services/{{sid}}/incidents", contract_service_incidents)
    app.router.add_get(f"{API}/services/{{id}}/incidents", service_incidents)
    app.router.add_get(f"{API}/agents", agents)
    app.router.add_get(f"{API}/alerts", alerts)
    app.router.add_get(f"{API}/openapi.json", openapi)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under /api/, an error aiohttp or a handler raised as text (404, 405, 413) becomes JSON."""
    if not auth.is_api(request):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        kept = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After", "WWW-Authenticate")}
        return _json({"error": exc.reason, "code": exc.reason.lower().replace(" ", "-")}, exc.status, kept)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store"} | (headers or {}))


def _bad(request: web.Request, message: str, code: str) -> web.HTTPException:
    return auth.refusal(request, web.HTTPBadRequest, message, code)


def _watchdog(request: web.Request) -> Watchdog:
    from .server import WATCHDOG  # server imports this module

    return request.app[WATCHDOG]


async def _read(request: web.Request, function: Callable[[Reader], T]) -> T:
    """`function` with a reader connection, in a thread."""
    database = _watchdog(request).config.database

    def run() -> T:
        with Reader(database) as reader:
            return function(reader)
    return await asyncio.to_thread(run)


# --- contracts ---------------------------------------------------------------------------------

async def contracts(request: web.Request) -> web.Response:
    who = auth.need_login(request)
    now = now_ms()
    shown = [c for c in _watchdog(request).config.contracts if who.may_read(c) or c.public]
    return _json({"contracts": [_contract(c, who, now) for c in shown]})


def _contract(contract: Contract, who: auth.Viewer, now: int) -> dict[str, Any]:
    money = who.may_see_money(contract)
    entry: dict[str, Any] = {
        "id": contract.id, "client": contract.client_name, "provider": contract.provider_name,
        "timezone": contract.timezone, "period": contract.period,
        "current_period": period_at(contract.period, contract.timezone, now).label, "unknown": contract.unknown,
        "public": contract.public, "access": "full" if who.may_read(contract) else "status",
        "services": [_service(s, contract, money) for s in contract.services],
    }
    if money:
        entry |= {"currency": contract.currency, "fee": contract.fee, "credit": _tiers(contract.credit)}
    return entry


def _service(service: Service, contract: Contract, money: bool) -> dict[str, Any]:
    entry = {"id": service.id, "name": service.name, "checks": list(service.checks), "quorum": service.quorum,
             "min_outage_s": service.min_outage, "objectives": [_objective(o) for o in service.objectives]}
    if money:
        entry["credit"] = _tiers(contract.credit_tiers(service))
    return entry


def _objective(objective: Objective) -> dict[str, Any]:
    if objective.kind == "availability":
        return {"kind": "availability", "target": objective.target}
    return {"kind": "latency", "percentile": objective.percentile, "max_ms": objective.max_ms}


def _tiers(tiers: tuple[CreditTier, ...]) -> list[dict[str, float]]:
    return [{"below": t.below, "percent": t.percent} for t in tiers]


def without_money(report: dict[str, Any]) -> dict[str, Any]:
    """A report without fee, credits and currency (for readers who may not see them)."""
    shown = {k: v for k, v in report.items() if k not in MONEY}
    if isinstance(report.get("services"), list):
        shown["services"] = [{k: v for k, v in s.items() if k not in MONEY} for s in report["services"]]
    return shown


# --- reports and incidents ---------------------------------------------------------------------

async def contract_report(request: web.Request) -> web.Response:
    contract = auth.contract_for(request, request.match_info["id"])
    figures = await period_figures(request, contract, _period(request, contract))
    return _json(figures if auth.viewer(request).may_see_money(contract) else without_money(figures))


def _period(request: web.Request, contract: Contract) -> Period:
    text = request.query.get("period")
    if text is None:
        return period_at(contract.period, contract.timezone, now_ms())
    try:
        return parse_period(text, contract.timezone, contract.period)
    except ValueError as exc:
        raise _bad(request, str(exc), "bad-period") from None


async def period_figures(request: web.Request, contract: Contract, period: Period) -> dict[str, Any]:
    """The period's report as the CLI gives it: the frozen figures once frozen, else computed now
    (and frozen now, through the store's writer, when the period is due to be)."""
    watchdog = _watchdog(request)
    now = now_ms()

    def compute(reader: Reader) -> tuple[dict[str, Any], bool]:
        frozen = reader.frozen(contract.id, period.label)
        if frozen is not None:
            return frozen.figures | {"frozen_at": iso(frozen.frozen_at, contract.timezone)}, False
        return build(contract, period, reader, now) | {"frozen_at": None}, due_to_freeze(contract, period, now)

    figures, due = await _read(request, compute)
    if not due:
        return figures
    args = freeze_args(contract, {k: v for k, v in figures.items() if k != "frozen_at"})
    await watchdog._writer().call(lambda store: store.freeze(*args))
    again, _ = await _read(request, compute)  # the first freeze stands, whoever made it
    return again


async def contract_service_incidents(request: web.Request) -> web.Response:
    contract = auth.contract_for(request, request.match_info["id"])
    return await _incidents(request, contract, request.match_info["sid"])


async def service_incidents(request: web.Request) -> web.Response:
    who = auth.need_login(request)
    service_id = request.match_info["id"]
    if "contract" in request.query:
        contract = auth.contract_for(request, request.query["contract"])
    else:
        having = [c for c in _watchdog(request).config.contracts
                  if who.may_read(c) and any(s.id == service_id for s in c.services)]
        if len(having) > 1:
            raise _bad(request, f"service {service_id!r} is in several contracts; give ?contract= "
                                f"({', '.join(c.id for c in having)})", "ambiguous-service")
        if not having:
            raise auth.refusal(request, web.HTTPNotFound, f"no service {service_id!r}", "not-found")
        contract = having[0]
    return await _incidents(request, contract, service_id)


async def _incidents(request: web.Request, contract: Contract, service_id: str) -> web.Response:
    if not any(s.id == service_id for s in contract.services):
        raise auth.refusal(request, web.HTTPNotFound, f"no service {service_id!r} in contract {contract.id!r}",
                           "not-found")
    period = _period(request, contract)
    figures = await period_figures(request, contract, period)
    entry = next((s for s in figures["services"] if s["id"] == service_id), None)
    if entry is None:
        raise auth.refusal(request, web.HTTPNotFound, f"service {service_id!r} is not in the frozen report of "
                           f"{period.label}", "not-found")
    return _json({"contract": contract.id, "service": service_id, "name": entry["name"],
                  "period": figures["period"], "timezone": figures["timezone"], "start": figures["start"],
                  "end": figures["end"], "partial": figures["partial"], "frozen_at": figures["frozen_at"],
                  "rules_version": figures["rules_version"], "incidents": entry["incidents"]})


# --- status now --------------------------------------------------------------------------------

async def contract_status(request: web.Request) -> web.Response:
    contract = auth.contract_for(request, request.match_info["id"], allow_public=True)
    now = now_ms()
    services = await _read(request, lambda reader: [_status(reader, contract, s, now) for s in contract.services])
    return _json({"contract": contract.id, "client": contract.client_name, "provider": contract.provider_name,
                  "timezone": contract.timezone, "as_of": iso(now, contract.timezone), "services": services})


def _status(reader: Reader, contract: Contract, service: Service, now: int) -> dict[str, Any]:
    """The service now, by the alerting rules; when its status began before the window, look further
    back (as the alerts do), so `since` is the real start."""
    lookback = alerting.LOOKBACK_MS
    while True:
        runs = reader.runs_for(service.checks, now - alerting.reach_ms(service, lookback), now)
        live = alerting.service_now(contract, service, runs, now, lookback)
        if not live.reached_window_start or lookback >= LONGEST_LOOKBACK_MS:
            break
        lookback *= 4
    windows = maintenance_spans(contract.maintenance, service, contract.timezone, now - MAINTENANCE_REACH_MS, now + 1)
    window = next(((a, b) for a, b in windows if a < now <= b), None)
    return {"id": service.id, "name": service.name, "state": "maintenance" if window else live.status,
            "counted": live.eligible, "since": iso(window[0] if window else live.since, contract.timezone),
            "checks_down": list(live.checks_down), "agents_down": list(live.agents_down)}


# --- agents and alerts -------------------------------------------------------------------------

async def agents(request: web.Request) -> web.Response:
    who = auth.need_login(request)
    watchdog = _watchdog(request)
    readable = {c for contract in watchdog.config.contracts if who.may_read(contract)
                for s in contract.services for c in s.checks}
    states = {a.name: a for a in await _read(request, lambda reader: reader.agents())}
    if who.admin:  # listed agents that never sent anything are news to an admin
        for agent in watchdog.config.agents:
            states.setdefault(agent.id, AgentState(agent.id, 0, None, None, None, None, None, None, None))
    shown = []
    for name, state in sorted(states.items()):
        checks = [c["id"] for c in (state.manifest or {}).get("checks", [])]
        if not who.admin:
            checks = [c for c in checks if c in readable]
            if not checks:
                continue  # an agent that reports none of the viewer's checks is none of its business
        silent = watchdog.silent.get(name, state.silent_since)
        shown.append({
            "name": name, "last_seen": _utc(state.last_seen), "last_seq": state.last_seq,
            "last_reading_at": _utc(state.last_reading_ts), "version": (state.manifest or {}).get("version"),
            "silent_since": _utc(silent), "self_metrics": state.self_metrics or {}, "checks": checks,
        })
    return _json({"agents": shown})


async def alerts(request: web.Request) -> web.Response:
    if not auth.need_login(request).admin:
        raise auth.refusal(request, web.HTTPForbidden, "alerts are for admins", "admin-only")
    status = request.query.get("status")
    if status is not None and status not in OUTBOX_STATUSES:
        raise _bad(request, f"status {status!r}: expected one of {', '.join(OUTBOX_STATUSES)}", "bad-status")
    text = request.query.get("limit", "100")
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_ALERTS:  # isdigit alone takes ¹
        raise _bad(request, f"limit {text!r}: expected a whole number from 1 to {MAX_ALERTS}", "bad-limit")
    rows = await _read(request, lambda reader: reader.outbox(status, int(text)))
    return _json({"alerts": [_alert(row) for row in rows]})


def _alert(row: OutboxRow) -> dict[str, Any]:
    """An outbox message as admins may see it: the URL only as Apprise's privacy form (`url_shown`)."""
    return {"id": row.id, "event": row.event, "contract": row.contract, "party": row.party,
            "url_shown": row.url_shown, "title": row.title, "body": row.body, "status": row.status,
            "attempts": row.attempts, "created_at": _utc(row.created_at), "queued_at": _utc(row.queued_at),
            "next_attempt_at": _utc(row.next_attempt_at) if row.status == "pending" else None,
            "last_error": row.last_error, "sent_at": _utc(row.sent_at)}


def _utc(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


# --- the description ---------------------------------------------------------------------------

async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=openapi_text(), content_type="application/json",
                        headers={"Cache-Control": "no-store"})


@lru_cache(maxsize=1)
def openapi_text() -> bytes:
    return OPENAPI.read_bytes()


def openapi_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(openapi_text())
    return document
