"""Charts as inline SVG, made on the server: no script, no external resource, printable."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

GREEN, AMBER, RED, GREY = "#2e8540", "#d98c00", "#c62828", "#b8b8b8"


@dataclass(frozen=True)
class Day:
    """One day of a service: its availability (None without data) and what the bar's title says."""

    label: str
    availability: float | None
    detail: str


def uptime_bar(days: Sequence[Day], target: float | None) -> Markup:
    """One segment per day: green when the day met the target, amber within 10x its error allowance
    below, red under that, grey without data; each segment's title gives the figures."""
    width, gap, height = 8, 2, 34
    parts = [f'<svg class="uptime" viewBox="0 0 {len(days) * (width + gap)} {height}" role="img" '
             f'aria-label="daily availability, {len(days)} days" xmlns="http://www.w3.org/2000/svg">']
    for i, day in enumerate(days):
        color = _day_color(day.availability, target)
        parts.append(f'<rect x="{i * (width + gap)}" y="0" width="{width}" height="{height}" rx="1.5" fill="{color}">'
                     f'<title>{escape(day.label)}: {escape(day.detail)}</title></rect>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _day_color(availability: float | None, target: float | None) -> str:
    if availability is None:
        return GREY
    goal = 99.9 if target is None else target
    if availability >= goal:
        return GREEN
    return AMBER if availability >= 100 - 10 * (100 - goal) else RED


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    points: Sequence[tuple[float, float]]   # (x, y); x in any unit, increasing


def line_chart(series: Sequence[Series], x_labels: tuple[str, str], y_unit: str, zero_line: bool = False,
               width: int = 640, height: int = 180) -> Markup:
    """Lines over a shared x range, y from 0 (or the lowest value) to the highest, with labels."""
    points = [p for s in series for p in s.points]
    if not points:
        return Markup('<p class="muted">No data in this range yet.</p>')
    left, right, top, bottom = 56, 8, 10, 22
    xs, ys = [x for x, _ in points], [y for _, y in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(0.0, min(ys)), max(ys) if max(ys) > min(0.0, min(ys)) else min(0.0, min(ys)) + 1

    def at(x: float, y: float) -> str:
        px = left + (x - x0) / (x1 - x0) * (width - left - right)
        py = top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom)
        return f"{px:.1f},{py:.1f}"

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" xmlns="http://www.w3.org/2000/svg" '
             f'aria-label="{escape(", ".join(s.label for s in series))}">',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#999"/>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#999"/>',
             f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{_number(y1)} {escape(y_unit)}</text>',
             f'<text x="{left - 4}" y="{height - bottom}" text-anchor="end">{_number(y0)}</text>',
             f'<text x="{left}" y="{height - 6}">{escape(x_labels[0])}</text>',
             f'<text x="{width - right}" y="{height - 6}" text-anchor="end">{escape(x_labels[1])}</text>']
    if zero_line and y0 < 0:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{at(x0, 0).split(",")[1]}" '
                     f'y2="{at(x0, 0).split(",")[1]}" stroke="{RED}" stroke-dasharray="4 3"/>')
    for s in series:
        parts.append(f'<polyline fill="none" stroke="{s.color}" stroke-width="2" '
                     f'points="{" ".join(at(x, y) for x, y in s.points)}"><title>{escape(s.label)}</title></polyline>')
    legend_x = left + 8
    for s in series:
        parts.append(f'<text x="{legend_x}" y="{top + 10}" fill="{s.color}">{escape(s.label)}</text>')
        legend_x += 8 * len(s.label) + 24
    parts.append("</svg>")
    return Markup("".join(parts))


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}".rstrip("0").rstrip(".")
