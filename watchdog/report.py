"""A contract's report for one period: the store feeds the SLA rules; figures come out as JSON data.

Values are seconds and percent rounded to 3 decimals (times are exact milliseconds, so seconds
with 3 decimals lose nothing), times are ISO 8601 in the contract's timezone. A closed period's
figures are frozen once its grace has passed; later reports read them (`frozen`), or recompute
and list what differs.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from slawatch.config.contract import Contract

from . import sla
from .eligibility import eligible_windows
from .periods import Period, period_at, to_local, zone
from .store import Reader, Store, now_ms


@dataclass(frozen=True)
class Outcome:
    """A report and where it came from."""

    report: dict[str, Any]
    differences: list[dict[str, Any]]   # --recompute against the frozen figures
    compared: bool = False               # frozen figures existed and were recomputed


def build(contract: Contract, period: Period, reader: Reader, now: int, exact_latency: bool = False) -> dict[str, Any]:
    """The period's figures from the store, up to `now` when it is still running. Latency comes
    from the rollups (within 0.9 %, cost independent of the raw readings), or with `exact_latency`
    from the raw readings (exact nearest rank; they are kept for `readings_retention` only)."""
    reach = max(round(s.min_outage * 1000) for s in contract.services)
    checks = sorted({c for s in contract.services for c in s.checks})
    runs = reader.runs_for(checks, period.start - reach, min(period.end + reach, max(now, period.start)))
    end = max(period.start, min(period.end, now))
    services = []
    notes: set[str] = set()
    for service in contract.services:
        latency: sla.Latency | None = None
        if any(o.kind == "latency" for o in service.objectives):
            eligible, _ = eligible_windows(contract, service, period.start, end)
            if exact_latency:
                latency, unseen = reader.latency_values(service.checks, eligible)
                if unseen:
                    notes.add(f"latency of service {service.id}: {unseen / 1000:.0f} s of counted time had no raw "
                              "readings left (past retention) and is not in the exact percentile")
                services.append(sla.evaluate_service(contract, service, period, runs, now=now, latency=latency))
                continue
            found = reader.latency_in(service.checks, eligible)
            latency = found.histogram
            if found.unseen_ms:
                notes.add(f"latency of service {service.id}: {found.unseen_ms / 1000:.0f} s at the edges of eligible "
                          "time had no raw readings left (past retention) and is not in the percentile")
        services.append(sla.evaluate_service(contract, service, period, runs, now=now, latency=latency))
    percent, credit = sla.contract_credit(contract, services)
    head_id, head = reader.head()
    return {
        "contract": contract.id, "period": period.label, "timezone": contract.timezone,
        "start": iso(period.start, contract.timezone), "end": iso(end, contract.timezone),
        "partial": end < period.end, "rules_version": sla.RULES_VERSION, "unknown": contract.unknown,
        "currency": contract.currency, "fee": contract.fee, "credit_percent": percent, "credit": credit,
        "client": contract.client_name, "provider": contract.provider_name,
        "evidence": {"batches": head_id, "head": head.hex()},
        "latency_source": "raw readings (exact)" if exact_latency else "histograms (within 0.9 %)",
        "notes": sorted(notes),
        "services": [_service(f, contract.timezone) for f in services],
    }


def _service(figures: sla.ServiceFigures, timezone: str) -> dict[str, Any]:
    budget = figures.budget
    return {
        "id": figures.id, "name": figures.name,
        "eligible_s": seconds(figures.eligible_ms), "maintenance_s": seconds(figures.maintenance_ms),
        "up_s": seconds(figures.up_ms), "down_s": seconds(figures.down_ms), "unknown_s": seconds(figures.unknown_ms),
        "coverage_percent": sla.shown(figures.coverage),
        "availability_percent": sla.shown(figures.availability),
        "objectives": [_objective(o, figures.availability) for o in figures.objectives],
        "credit_percent": figures.credit_percent,
        "budget": None if budget is None else {"allowed_s": round(budget.allowed_ms / 1000, 3),
                                               "spent_s": seconds(budget.spent_ms),
                                               "remaining_s": round(budget.remaining_ms / 1000, 3)},
        "incidents": [{"start": iso(i.start, timezone), "end": iso(i.end, timezone),
                       "duration_s": seconds(i.duration_ms), "checks": list(i.checks), "agents": list(i.agents)}
                      for i in figures.incidents],
    }


def _objective(result: sla.ObjectiveResult, availability: Fraction | None) -> dict[str, Any]:
    if result.kind == "availability":  # measured: the service's availability
        return {"kind": "availability", "target": result.target, "measured": sla.shown(availability),
                "met": result.met}
    return {"kind": "latency", "percentile": result.percentile, "max_ms": result.max_ms,
            "measured": sla.shown_ms(result.measured), "met": result.met}


def seconds(ms: int) -> float:
    return round(ms / 1000, 3)


def iso(instant_ms: int, timezone: str) -> str:
    """An instant in the contract's timezone with its offset; milliseconds only when there are any."""
    if instant_ms % 1000:
        return to_local(instant_ms, timezone).isoformat(timespec="milliseconds")
    return dt.datetime.fromtimestamp(instant_ms // 1000, zone(timezone)).isoformat()


def due_to_freeze(contract: Contract, period: Period, now: int) -> bool:
    """A closed period whose figures can no longer change: a down run crossing its end counts by its
    whole length (rule 4), known once min_outage has passed after the end (the longest of the
    contract's services), and the readings of that time get the grace to arrive."""
    settled = max((service.min_outage for service in contract.services), default=0.0)
    return now >= period.end + round((settled + contract.grace) * 1000)


def report(contract: Contract, period: Period, database: str, recompute: bool = False,
           now: int | None = None, exact_latency: bool = False, freeze_due: bool = True) -> Outcome:
    """The period's report: frozen figures when there are some (unless `recompute`), else computed;
    a period due to be frozen is frozen now (with histogram latency: what is frozen is what any
    later recomputation, after the raw readings are gone, can reproduce)."""
    live, now = now is None, now_ms() if now is None else now
    with Reader(database) as reader:
        frozen = reader.frozen(contract.id, period.label)
        if frozen is not None and not recompute:
            return Outcome(frozen.figures | {"frozen_at": iso(frozen.frozen_at, contract.timezone)}, [])
        computed = build(contract, period, reader, now, exact_latency)
    if frozen is not None:
        return Outcome(computed | {"frozen_at": None}, list(differences(frozen.figures, computed)), compared=True)
    if freeze_due and live and due_to_freeze(contract, period, now) and not exact_latency:  # never as of a chosen time
        frozen = freeze(contract, computed, database)
        return Outcome(frozen.figures | {"frozen_at": iso(frozen.frozen_at, contract.timezone)}, [])
    return Outcome(computed | {"frozen_at": None}, [])


def due_report(contract: Contract, database: str, now: int) -> dict[str, Any] | None:
    """The report of the contract's last closed period if it is due to be frozen and is not yet,
    and the watchdog was receiving batches before it ended (history imported later is frozen on a
    report's first read, not behind the user's back)."""
    period = period_at(contract.period, contract.timezone, now).preceding()
    if not due_to_freeze(contract, period, now):
        return None
    with Reader(database) as reader:
        first = reader.first_received()
        if reader.frozen(contract.id, period.label) is not None or first is None or first >= period.end:
            return None
        return build(contract, period, reader, now)


def unreported(contract: Contract, database: str, now: int) -> dict[str, Any] | None:
    """The frozen figures of the contract's last closed period while its report has not gone to the
    parties: whoever froze it (the daemon, a report, the API), and even if the daemon stopped in
    between."""
    period = period_at(contract.period, contract.timezone, now).preceding()
    if not due_to_freeze(contract, period, now):
        return None
    with Reader(database) as reader:
        frozen = reader.frozen(contract.id, period.label)
        key = report_key(contract.id, period.label)
        if frozen is None or key in reader.alert_states(key):
            return None
        return frozen.figures


def report_key(contract: str, period: str) -> str:
    """The alert state that says a period's report went to the parties (and its outbox key)."""
    return f"report|{contract}|{period}"


def freeze_args(contract: Contract, computed: dict[str, Any]) -> tuple[str, str, str, int, str, str]:
    """The arguments of `Store.freeze` for a computed report."""
    evidence = computed["evidence"]
    return (contract.id, computed["period"], computed["rules_version"], evidence["batches"], evidence["head"],
            json.dumps(computed, sort_keys=True))


def freeze(contract: Contract, computed: dict[str, Any], database: str) -> Any:
    """Store a report's figures as the period's frozen ones (the first freeze stands); return them."""
    store = Store(database)
    try:
        store.freeze(*freeze_args(contract, computed))
    finally:
        store.close()
    with Reader(database) as reader:
        return reader.frozen(contract.id, computed["period"])


def differences(frozen: Any, computed: Any, path: str = "") -> Iterator[dict[str, Any]]:
    """Where a recomputed report differs from the frozen one (the evidence head aside: it moves on)."""
    if isinstance(frozen, dict) and isinstance(computed, dict):
        for key in sorted(set(frozen) | set(computed)):
            if key in ("evidence", "frozen_at") and not path:
                continue
            yield from differences(frozen.get(key), computed.get(key), f"{path}.{key}" if path else key)
    elif isinstance(frozen, list) and isinstance(computed, list) and len(frozen) == len(computed):
        for i, (a, b) in enumerate(zip(frozen, computed)):
            yield from differences(a, b, f"{path}[{i}]")
    elif frozen != computed:
        yield {"path": path, "frozen": frozen, "recomputed": computed}


def parse_now(text: str | None) -> int | None:
    """`--now` (for reproducing a report as of a time): ISO 8601 with an offset."""
    if text is None:
        return None
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"--now {text!r}: give an offset (Z or +01:00)")
    return int(value.timestamp() * 1000)
