"""Configuration of `type = "host"` checks (metrics of the agent's own machine)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..document import Context, Field, show
from ..values import list_of, mapping, number, string
from .base import CheckConfig

# Metric names a threshold may name; {disk}, {process} and {interface} stand for configured items.
METRICS = {
    "cpu.percent": "CPU use over the poll, percent",
    "load1": "1-minute load average",
    "load5": "5-minute load average",
    "load15": "15-minute load average",
    "mem.percent": "memory in use, percent",
    "swap.percent": "swap in use, percent",
    "uptime_s": "seconds since boot",
    "disk.{disk}.percent": "space used on a listed mount, percent",
    "disk.{disk}.free_bytes": "free bytes on a listed mount",
    "process.{process}.count": "running processes of a listed name",
    "net.{interface}.rx_bytes_per_s": "bytes received per second on a listed interface",
    "net.{interface}.tx_bytes_per_s": "bytes sent per second on a listed interface",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class HostCheck(CheckConfig):
    disks: tuple[str, ...] = ()
    processes: tuple[str, ...] = ()
    interfaces: tuple[str, ...] = ()
    max: tuple[tuple[str, float], ...] = ()
    min: tuple[tuple[str, float], ...] = ()

    def target(self) -> str:
        return "this host"


FIELDS = [
    Field("disks", list_of(string(), unique=True), (), "mount points whose use is measured"),
    Field("processes", list_of(string(), unique=True), (), "process names that must be running"),
    Field("interfaces", list_of(string(), unique=True), (), "network interfaces whose rates are measured"),
    Field("max", mapping(string(), number()), {}, "metric = highest healthy value"),
    Field("min", mapping(string(), number()), {}, "metric = lowest healthy value"),
]


def metric_names(disks: tuple[str, ...], processes: tuple[str, ...],
                 interfaces: tuple[str, ...]) -> list[str]:
    """Every metric a host check with these items reports."""
    names = []
    for template in METRICS:
        if "{disk}" in template:
            names += [template.replace("{disk}", d) for d in disks]
        elif "{process}" in template:
            names += [template.replace("{process}", p) for p in processes]
        elif "{interface}" in template:
            names += [template.replace("{interface}", i) for i in interfaces]
        else:
            names.append(template)
    return names


def validate(values: dict[str, Any], ctx: Context) -> None:
    """Thresholds must name metrics the check reports (a typo must not disable a threshold)."""
    if not all(key in values for key in ("disks", "processes", "interfaces")):
        return  # the lists themselves are wrong; their problems are already recorded
    known = metric_names(values["disks"], values["processes"], values["interfaces"])
    for bound in ("max", "min"):
        for name in values.get(bound, {}):
            if name not in known:
                ctx.at(bound, name).error(
                    f"expected a metric this check reports ({', '.join(known)}), found {show(name)}; "
                    "disks, processes and interfaces must be listed to be measured"
                )
    highest, lowest = values.get("max", {}), values.get("min", {})
    for name in highest:
        if name in lowest and lowest[name] > highest[name]:
            ctx.at("min", name).error(f"expected at most max = {highest[name]:g} for {name} (else the check is never "
                                      f"up), found {lowest[name]:g}")


def build(values: dict[str, Any], ctx: Context) -> HostCheck:
    return HostCheck(**values | {"max": tuple(values["max"].items()), "min": tuple(values["min"].items())})
