"""A report as CSV (one row per service, then the incidents) or as a printable HTML page."""

from __future__ import annotations

import csv
import io
import json
from fractions import Fraction
from functools import lru_cache
from typing import Any

import jinja2

from .sla import shown

UNKNOWN_POLICY = {
    "exclude": "excluded from both sides (availability = up / (up + down))",
    "up": "as up (availability = (up + unknown) / counted time)",
    "down": "as down (availability = up / counted time)",
}
SERVICE_COLUMNS = ("id", "name", "eligible_s", "maintenance_s", "up_s", "down_s", "unknown_s", "coverage_percent",
                   "availability_percent", "credit_percent", "budget_allowed_s", "budget_spent_s", "budget_remaining_s",
                   "objectives_met")


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["contract", report["contract"], "period", report["period"], "start", report["start"], "end",
                     report["end"], "partial", report["partial"], "rules_version", report["rules_version"],
                     "credit_percent", report["credit_percent"], "credit", report["credit"], report["currency"]])
    writer.writerow(SERVICE_COLUMNS)
    for s in report["services"]:
        budget = s["budget"] or {}
        objectives = [o["met"] for o in s["objectives"]]
        met = "" if not objectives or None in objectives else str(all(objectives)).lower()
        writer.writerow([s["id"], s["name"], s["eligible_s"], s["maintenance_s"], s["up_s"], s["down_s"], s["unknown_s"],
                         _cell(s["coverage_percent"]), _cell(s["availability_percent"]), s["credit_percent"],
                         _cell(budget.get("allowed_s")), _cell(budget.get("spent_s")),
                         _cell(budget.get("remaining_s")), met])
    writer.writerow([])
    writer.writerow(["incidents"])
    writer.writerow(["service", "start", "end", "duration_s", "checks", "agents"])
    for s in report["services"]:
        for i in s["incidents"]:
            writer.writerow([s["id"], i["start"], i["end"], i["duration_s"], " ".join(i["checks"]), " ".join(i["agents"])])
    return out.getvalue()


def _cell(value: Any) -> Any:
    return "" if value is None else value


def to_html(report: dict[str, Any]) -> str:
    return _template().render(r=report, pct=percent, dur=duration,
                              unknown_text=UNKNOWN_POLICY.get(report.get("unknown", "exclude"), "excluded"))


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.PackageLoader("slawatch.watchdog", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template("report.html")


def percent(value: Fraction | float | None) -> str:
    """An exact figure (a Fraction) as `shown`; a float is one already shown (a report's)."""
    if isinstance(value, Fraction):
        value = shown(value)
    return "no data" if value is None else f"{value:.3f} %"


def duration(value: float) -> str:
    """Seconds as `3d 04:05:06` (with milliseconds when there are any)."""
    sign, value = ("-" if value < 0 else ""), abs(value)
    whole = int(value)
    days, rest = divmod(whole, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    fraction = round(value - whole, 3)
    if fraction:
        text += f"{fraction:.3f}"[1:]
    return sign + (f"{days}d {text}" if days else text)
