"""A TOML file being validated: parsing, key paths, line lookup and the collected problems."""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, Problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

KeyPath = tuple[str | int, ...]


class Invalid(Exception):
    """A value does not fit its field; the message says what was expected and what was found."""


class Reported(Exception):
    """A nested value was invalid and its problems are already recorded."""


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Field:
    """One accepted key: how its value is checked and converted, its default and its help."""

    name: str
    parse: Callable[[Any, Context], Any]
    default: Any = REQUIRED
    help: str = ""


def format_path(path: KeyPath) -> str:
    """Render a key path the way users write it: `check[3].interval`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            text += f".{part}" if text else part
        else:
            text += f'."{part}"' if text else f'"{part}"'
    return text


def show(value: Any) -> str:
    """A found value as a user would recognise it from the TOML file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*[.=]""")


def _split_dotted(name: str) -> list[str]:
    parts = re.findall(r""""[^"]*"|'[^']*'|[^.\s]+""", name)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def index_lines(text: str) -> dict[KeyPath, int]:
    """Map the key paths of tables and keys to the line that defines them (best effort).

    Lines inside multi-line strings and the continuation lines of multi-line arrays are skipped,
    so text that merely looks like a key or a header there is not taken for one.
    """
    positions: dict[KeyPath, int] = {}
    counts: dict[KeyPath, int] = {}
    current: KeyPath = ()
    in_string: str | None = None
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        if in_string is not None:
            if line.count(in_string) % 2 == 1:
                in_string = None
            continue
        if depth > 0:
            depth = max(0, depth + _bracket_balance(line))
            continue
        header = _HEADER.match(line)
        if header:
            current = _header_path(header, counts)
            positions.setdefault(current, number)
            positions.setdefault(current[:-1] if isinstance(current[-1], int) else current, number)
            continue
        key = _KEY.match(line)
        if key:
            positions.setdefault(current + (key.group(1).strip("\"'"),), number)
            value = line.split("=", 1)[1] if "=" in line else ""
            for quote in ('"""', "'''"):
                if value.count(quote) % 2 == 1:
                    in_string = quote
            if in_string is None:
                depth = max(0, _bracket_balance(value))
    return positions


def _header_path(header: re.Match[str], counts: dict[KeyPath, int]) -> KeyPath:
    resolved: KeyPath = ()
    parts = _split_dotted(header.group(2))
    for part in parts[:-1]:
        resolved += (part,)
        if resolved in counts:
            resolved += (counts[resolved] - 1,)
    resolved += (parts[-1],)
    if header.group(1) == "[[":
        index = counts.get(resolved, 0)
        counts[resolved] = index + 1
        resolved += (index,)
    return resolved


def _bracket_balance(text: str) -> int:
    """Opening minus closing brackets outside quoted strings and comments."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'', "", text).split("#", 1)[0]
    return text.count("[") + text.count("{") - text.count("]") - text.count("}")


class Document:
    """One configuration file: its parsed data and the problems found in it so far."""

    def __init__(self, path: Path, text: str, problems: list[Problem] | None = None) -> None:
        self.path = path
        self.name = str(path)
        self.problems: list[Problem] = problems if problems is not None else []
        self.data: dict[str, Any] = {}
        self._lines: dict[KeyPath, int] = {}
        try:
            self.data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            self._syntax_problem(str(exc), text)
            return
        self._lines = index_lines(text)

    @classmethod
    def read(cls, path: Path | str, problems: list[Problem] | None = None) -> Document:
        """Read and parse a file; an unreadable file is a problem, not an exception."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            doc = cls(path, "", problems)
            doc.problems.append(Problem(str(path), f"cannot read the file: {os_reason(exc)}"))
            doc.data = {}
            return doc
        return cls(path, text, problems)

    @property
    def base_dir(self) -> Path:
        """Relative paths inside the file are relative to the file's folder."""
        return self.path.parent

    def _syntax_problem(self, message: str, text: str) -> None:
        line = column = None
        where = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        if where:
            line, column = int(where.group(1)), int(where.group(2))
            message = message[: where.start()]
        elif message.endswith("(at end of document)"):
            message = message[: -len("(at end of document)")].rstrip() + " at the end of the file"
            line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        self.problems.append(
            Problem(self.name, f"TOML syntax error: {message}", line=line, column=column)
        )

    @property
    def has_syntax_error(self) -> bool:
        return bool(self.problems) and self.problems[-1].message.startswith("TOML syntax error")

    def line_of(self, path: KeyPath) -> int | None:
        """The line that defines `path`, or the nearest enclosing table's line."""
        for end in range(len(path), 0, -1):
            if path[:end] in self._lines:
                return self._lines[path[:end]]
        return None

    def error(self, path: KeyPath, message: str) -> None:
        """Record one problem at a key path."""
        self.problems.append(
            Problem(self.name, message, key=format_path(path), line=self.line_of(path))
        )

    def failed_keys(self, path: KeyPath) -> set[str]:
        """Keys directly under `path` that already have a problem recorded."""
        prefix = format_path(path)
        keys = set()
        for problem in self.problems:
            if problem.file == self.name and problem.key.startswith(prefix + "."):
                keys.add(re.split(r"[.\[]", problem.key[len(prefix) + 1:], maxsplit=1)[0])
        return keys

    def has_problem_at(self, path: KeyPath) -> bool:
        key = format_path(path)
        return any(p.file == self.name and p.key == key for p in self.problems)

    def table(self, value: Any, fields: Sequence[Field], path: KeyPath,
              partial: bool = False) -> dict[str, Any] | None:
        """Check a table against its fields; return the converted values or None if any failed.

        With `partial`, return the values that did parse (failed keys are left out), so that
        the sections of a file are all checked even when one of them is wrong.
        """
        if not isinstance(value, dict):
            self.error(path, f"expected a table, found {show(value)}")
            return None
        known = [f.name for f in fields]
        ok = True
        for key in value:
            if key not in known:
                self.error(path + (key,), unknown_key_message(key, known))
                ok = False
        result: dict[str, Any] = {}
        for field in fields:
            if field.name in value:
                try:
                    result[field.name] = field.parse(value[field.name], Context(self, path + (field.name,)))
                except Invalid as exc:
                    self.error(path + (field.name,), str(exc))
                    ok = False
                except Reported:
                    ok = False
            elif field.default is REQUIRED:
                self.error(path + (field.name,), "required key is missing" + _help_suffix(field))
                ok = False
            else:
                result[field.name] = field.default
        return result if ok or partial else None

    def raise_if_problems(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)


def _help_suffix(field: Field) -> str:
    return f" ({field.help})" if field.help else ""


def unknown_key_message(key: str, known: Sequence[str]) -> str:
    """Say that a key is unknown and suggest the closest known one."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f'unknown key "{key}"; did you mean "{close[0]}"?'
    return f'unknown key "{key}"; known keys here: {", ".join(known)}'


def os_reason(exc: BaseException) -> str:
    """The system's words for a failed file operation ("No such file or directory")."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


@dataclass(frozen=True)
class Context:
    """Where a value being parsed sits: its document and key path."""

    doc: Document
    path: KeyPath

    def at(self, *more: str | int) -> Context:
        return Context(self.doc, self.path + more)

    def error(self, message: str) -> None:
        self.doc.error(self.path, message)

    def resolve(self, file: str) -> Path:
        """A path from the file, relative to the file's own folder."""
        path = Path(file)
        return path if path.is_absolute() else self.doc.base_dir / path

    def resolve_secret(self, file: str) -> Path:
        """The path of a secret file, as `resolve`, or the unit's credential of its name (see
        `credential`)."""
        return credential(self.resolve(file))


def credential(path: Path) -> Path:
    """Under systemd with a credential of the file's name (`LoadCredential=web.token:/etc/slawatch/
    secrets/web.token`), the unit's copy, which its dynamic user can read; else the path itself."""
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        handed = Path(credentials) / path.name
        if handed.is_file():
            return handed
    return path


def read_secret_file(path: Path) -> str:
    """Read a secret from a file, raising Invalid with the reason when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path, or not UTF-8
        raise Invalid(f'cannot read "{path}": {os_reason(exc)}; create it or fix the path') from None
    secret = text.strip("\r\n")
    if not secret:
        raise Invalid(f'"{path}" is empty; put the secret in it')
    return secret
