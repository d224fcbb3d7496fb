"""Run every benchmark, then print one table of their figures against DESIGN.md's targets and the peers.

    make bench     (or: .venv/bin/python bench/run_all.py [--only agent.py ...] [--quick])

Runs each bench/*.py script (helpers excepted) in bench/ with this Python, passing through every
argument this runner does not know (e.g. --quick), streams its output, and collects its RESULT
lines (see `peers.result`). Then prints the table (figure, slawatch, target, met?, peer, ratio)
and writes it with the machine description to bench/RESULTS.md. A script that fails, or prints
no RESULT line, is a row of its own and makes the exit status non-zero.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shlex
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HELPERS = {"peers.py", "http_target.py", "signed_target.py", "snmp_bench.py", "run_all.py"}  # imported or started by the scripts
ORDER = ["collectors.py", "agent.py", "ingest.py", "report.py", "alerts.py"]  # the rest follow by name
PEER_PACKAGES = ["prometheus-blackbox-exporter", "prometheus-snmp-exporter", "snmp", "snmpd"]
TARGET = re.compile(r"^(<=|>=)\s*([0-9][0-9_,.]*)$")


@dataclass
class Result:
    figure: str
    value: float
    unit: str
    target: str
    peer: str
    peer_value: float | None
    ratio: float | None

    @classmethod
    def parse(cls, line: str) -> Result:
        fields = line.rstrip("\n").split("\t")
        if len(fields) != 8 or fields[0] != "RESULT":
            raise ValueError(f"not a RESULT line: {line!r}")
        _, figure, value, unit, target, peer, peer_value, ratio = fields
        return cls(figure, float(value), unit, target, peer, float(peer_value) if peer_value else None,
                   float(ratio) if ratio else None)

    def limit(self) -> tuple[str, float] | None:
        """The target as (operator, number), or None for no target or one a reader judges (e.g. "flat")."""
        found = TARGET.match(self.target)
        return (found[1], float(found[2].replace(",", "").replace("_", ""))) if found else None

    def met(self) -> str:
        """"yes"/"NO" for a numeric target, "" otherwise."""
        if (limit := self.limit()) is None:
            return ""
        operator, number = limit
        return "yes" if (self.value <= number if operator == "<=" else self.value >= number) else "NO"


@dataclass
class Run:
    script: str
    returncode: int | None = None
    seconds: float = 0.0
    results: list[Result] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)

    @property
    def failure(self) -> str:
        if self.returncode:
            return f"FAILED (exit status {self.returncode})"
        if self.bad_lines:
            return f"FAILED ({len(self.bad_lines)} unreadable RESULT line(s))"
        if not self.results:
            return "FAILED (no RESULT lines)"
        return ""


def scripts() -> list[str]:
    found = sorted(p.name for p in HERE.glob("*.py") if p.name not in HELPERS)
    return [s for s in ORDER if s in found] + [s for s in found if s not in ORDER]


def run(script: str, passed: list[str]) -> Run:
    """Run one script in bench/, echoing its output and keeping its RESULT lines."""
    outcome = Run(script)
    print(f"== bench/{script} {shlex.join(passed)}".rstrip(), flush=True)
    started = time.monotonic()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with subprocess.Popen([sys.executable, script, *passed], cwd=HERE, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as process:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("RESULT\t"):
                try:
                    outcome.results.append(Result.parse(line))
                    continue
                except ValueError:
                    outcome.bad_lines.append(line)
            print(line, end="", flush=True)
    outcome.returncode = process.returncode
    outcome.seconds = time.monotonic() - started
    if outcome.failure:
        print(f"== bench/{script}: {outcome.failure}", flush=True)
    return outcome


def number(value: float) -> str:
    if value == 0 or abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def with_unit(value: str, unit: str) -> str:
    return f"{value} {unit}" if unit else value


HEADER = ["bench", "figure", "slawatch", "target", "met?", "peer", "ratio"]


def rows(runs: list[Run]) -> list[list[str]]:
    table = []
    for outcome in runs:
        name = outcome.script.removesuffix(".py")
        for r in outcome.results:
            limit = r.limit()
            target = r.target if limit is None else with_unit(f"{limit[0]} {limit[1]:,g}", r.unit)
            peer = "" if r.peer_value is None else f"{r.peer} {with_unit(number(r.peer_value), r.unit)}"
            ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
            table.append([name, r.figure, with_unit(number(r.value), r.unit), target, r.met(), peer, ratio])
        if outcome.failure:
            table.append([name, outcome.failure, "", "", "", "", ""])
    return table


def aligned(table: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [HEADER, *table]) for i in range(len(HEADER))]
    right = {2, 6}  # numbers

    def line(row: list[str]) -> str:
        return "  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                         for i, (cell, w) in enumerate(zip(row, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(HEADER), rule, *(line(row) for row in table)])


def markdown(table: list[list[str]]) -> str:
    def line(row: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"

    align = ["---", "---", "---:", "---", "---", "---", "---:"]
    return "\n".join([line(HEADER), line(align), *(line(row) for row in table)])


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _output(*argv: str) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> list[tuple[str, str]]:
    cpuinfo = _read("/proc/cpuinfo")
    models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    logical = len(re.findall(r"^processor\s*:", cpuinfo, re.M)) or os.cpu_count() or 0
    memory = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    os_release = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', _read("/etc/os-release"), re.M))
    debian = _read("/etc/debian_version").strip()
    peers = ", ".join(f"{package} {version}" if version else f"{package} (not installed)"
                      for package in PEER_PACKAGES
                      for version in [_output("dpkg-query", "-W", "-f", "${Version}", package)])
    commit = _output("git", "rev-parse", "--short", "HEAD")
    dirty = " + uncommitted changes" if _output("git", "status", "--porcelain", "--untracked-files=no") else ""
    return [
        ("CPU", f"{models[0] if models else platform.processor() or 'unknown'} x {logical} logical CPUs"),
        ("RAM", f"{int(memory[1]) / 2**20:.1f} GiB" if memory else "unknown"),
        ("OS", f"{os_release.get('PRETTY_NAME', 'unknown')} (Debian {debian or 'n/a'})"),
        ("kernel", platform.release()),
        ("Python", f"{platform.python_version()} ({sys.executable})"),
        ("SQLite", sqlite3.sqlite_version),
        ("peers", peers),
        ("load average at start", " ".join(f"{load:.2f}" for load in os.getloadavg())),
        ("code", f"{commit or 'unknown'}{dirty}"),
    ]


def command(passed: list[str]) -> str:
    direct = shlex.join([os.path.relpath(sys.executable, ROOT), os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    if os.environ.get("MAKELEVEL"):
        via = "make bench" + (f" BENCH_ARGS={shlex.quote(shlex.join(passed))}" if passed else "")
        return f"{via}   (runs: {direct})"
    return direct


def write_results(path: Path, runs: list[Run], table: list[list[str]], described: list[tuple[str, str]],
                  passed: list[str], started: dt.datetime) -> None:
    lines = [
        "# slawatch benchmark results",
        "",
        f"Last benchmark run, started {started:%Y-%m-%d %H:%M} UTC. Generated by `bench/run_all.py`; targets from",
        "the Targets table of DESIGN.md; every peer was measured in the same run on the same machine, on",
        "loopback. Ratio = slawatch / peer (below 1 is better for times, CPU and memory; above 1 for rates).",
        "",
    ]
    if "--quick" in passed:
        lines += ["**Smoke run (--quick): shorter runs and smaller loads, not the benchmark's figures.**", ""]
    lines += ["## Machine", ""]
    lines += [f"- {name}: {value}" for name, value in described]
    lines += ["", "## Results", "", markdown(table), "", "## Scripts", ""]
    lines += [f"- `bench/{r.script}`: {r.failure or 'ok'}, {r.seconds:.0f} s, {len(r.results)} figures" for r in runs]
    lines += ["", "## Command", "", "```", command(passed), "```", ""]
    path.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False,
                                     epilog="Other arguments (e.g. --quick) are passed to every script.")
    parser.add_argument("--only", action="append", metavar="SCRIPT",
                        help="run just this script (repeatable); RESULTS.md is then left alone unless --results")
    parser.add_argument("--results", type=Path, help="where to write the results (default bench/RESULTS.md)")
    args, passed = parser.parse_known_args()
    chosen = scripts()
    if args.only:
        wanted = [name if name.endswith(".py") else f"{name}.py" for name in args.only]
        unknown = [name for name in wanted if name not in chosen]
        if unknown:
            parser.error(f"not a benchmark script: {', '.join(unknown)} (scripts: {', '.join(chosen)})")
        chosen = [name for name in chosen if name in wanted]
    results = args.results or (None if args.only else HERE / "RESULTS.md")
    started = dt.datetime.now(dt.timezone.utc)
    described = machine()
    runs = [run(script, passed) for script in chosen]
    table = rows(runs)
    print()
    about = dict(described)
    print(f"== summary   CPU {about['CPU']}, load average at start {about['load average at start']}")
    print(aligned(table))
    if results is not None:
        write_results(results, runs, table, described, passed, started)
        print(f"\nwritten to {results}")
    failed = [r.script for r in runs if r.failure]
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
