"""What both command-line tools share at their edge: version, config errors and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Sequence

from .errors import ConfigError

# The release, as pyproject.toml says (a test holds them equal). A constant rather than
# importlib.metadata, whose import (zipfile, csv, email) costs the agent ~0.8 MB of memory.
VERSION = "0.1.0"

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2

Handler = Callable[[argparse.Namespace], int]


def package_version() -> str:
    return VERSION


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser with --version; subcommands are added by the tool."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    return p


def add_config_option(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("-c", "--config", default=default, metavar="FILE",
                   help=f"configuration file (default: {default})")


def add_commands(p: argparse.ArgumentParser, commands: dict[str, tuple[str, Handler]],
                 default_config: str) -> dict[str, argparse.ArgumentParser]:
    """One subcommand per entry (name: help, handler), each with -c/--config."""
    sub = p.add_subparsers(metavar="COMMAND")
    made = {}
    for name, (help_text, handler) in commands.items():
        made[name] = cmd = sub.add_parser(name, help=help_text, description=help_text)
        add_config_option(cmd, default_config)
        cmd.set_defaults(handler=handler)
    return made


def print_config_error(err: ConfigError) -> None:
    """Every problem on its own line, then a count, on stderr."""
    for problem in err.problems:
        print(problem, file=sys.stderr)
    count = len(err.problems)
    print(f"{count} problem{'s' if count != 1 else ''} found; nothing was started.", file=sys.stderr)


def run(p: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse arguments and call the subcommand's handler; config errors exit with status 2."""
    args = p.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        p.print_help(sys.stderr)
        return EXIT_CONFIG
    try:
        return handler(args)
    except ConfigError as err:
        print_config_error(err)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


def not_implemented(name: str) -> Handler:
    """A subcommand whose issue has not landed: it says so and fails, never pretends."""

    def handler(args: argparse.Namespace) -> int:
        print(f"{name}: not implemented yet", file=sys.stderr)
        return EXIT_FAILED

    return handler


def count_text(counter: Counter[str]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counter.items()))
