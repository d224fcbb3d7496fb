"""Parsers for single configuration values: each checks one value and returns it converted."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import itertools
import logging
import math
import re
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yarl import URL

from .document import Context, Field, Invalid, Reported, os_reason, read_secret_file, show

Parser = Callable[[Any, Context], Any]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_HINT = 'a duration like "30s", "5m", "2h", "1d" or "800ms"'
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Secret(str):
    """A secret string whose repr never shows the value (configs get logged and printed)."""

    def __repr__(self) -> str:
        return "Secret('***')"


def parse_duration(text: str) -> float:
    """Turn "1h30m", "30s" or "800ms" into seconds; raise ValueError on anything else."""
    text = text.strip()
    if not text or _DURATION_PART.sub("", text) != "":
        raise ValueError(text)
    return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """Render seconds the way a config would write them."""
    for unit in ("d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds * 1000:g}ms"


def string(nonempty: bool = True) -> Parser:
    def parse(value: Any, ctx: Context) -> str:
        if not isinstance(value, str):
            raise Invalid(f"expected a string, found {show(value)}")
        if nonempty and not value.strip():
            raise Invalid("expected a non-empty string, found an empty one")
        return value

    return parse


def identifier(value: Any, ctx: Context) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise Invalid(
            "expected an id of letters, digits, '.', '_' or '-' (at most 64, starting with a "
            f"letter or digit), found {show(value)}"
        )
    return value


def host_name(value: Any, ctx: Context) -> str:
    """A DNS name (internationalised names allowed) or an IPv4/IPv6 address."""
    wrong = Invalid(f'expected a host name like "mail.example.com" or an IP address, found {show(value)}')
    if not isinstance(value, str) or not value:
        raise wrong
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        try:
            ascii_name = value.rstrip(".").encode("idna").decode()
        except UnicodeError:
            raise wrong from None
    labels = ascii_name.split(".")
    if not all(re.fullmatch(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?", label) for label in labels):
        raise wrong
    return value


def integer(low: int | None = None, high: int | None = None) -> Parser:
    def parse(value: Any, ctx: Context) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"expected an integer{_range_text(low, high)}, found {show(value)}")
        _check_range(value, low, high, "an integer")
        return value

    return parse


def number(low: float | None = None, high: float | None = None, low_open: bool = False) -> Parser:
    def parse(value: Any, ctx: Context) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise Invalid(f"expected a number{_range_text(low, high, low_open)}, found {show(value)}")
        if low_open and low is not None and value <= low:
            raise Invalid(f"expected a number{_range_text(low, high, low_open)}, found {show(value)}")
        _check_range(value, low, high, "a number", low_open)
        return float(value)

    return parse


def _range_text(low: float | None, high: float | None, low_open: bool = False) -> str:
    if low is not None and high is not None:
        return f" {'above' if low_open else 'from'} {low:g} {'up to' if low_open else 'to'} {high:g}"
    if low is not None:
        return f" {'above' if low_open else 'of at least'} {low:g}"
    if high is not None:
        return f" of at most {high:g}"
    return ""


def _check_range(value: float, low: float | None, high: float | None, what: str,
                 low_open: bool = False) -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        raise Invalid(f"expected {what}{_range_text(low, high, low_open)}, found {show(value)}")


def boolean(value: Any, ctx: Context) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, found {show(value)}")
    return value


def duration(minimum: float = 0.0, maximum: float | None = None) -> Parser:
    def parse(value: Any, ctx: Context) -> float:
        if not isinstance(value, str):
            raise Invalid(f"expected {DURATION_HINT} (a quoted string), found {show(value)}")
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise Invalid(f"expected {DURATION_HINT}, found {show(value)}") from None
        if seconds < minimum or (minimum > 0 and seconds == 0):
            raise Invalid(f"expected a duration of at least {format_duration(minimum)}, found {show(value)}")
        if maximum is not None and seconds > maximum:
            raise Invalid(f"expected a duration of at most {format_duration(maximum)}, found {show(value)}")
        return seconds

    return parse


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)")
_SIZE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def size(minimum: int = 0) -> Parser:
    """A byte size: "512MB", "2GiB" or a plain number of bytes."""
    def parse(value: Any, ctx: Context) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            result = value
        elif isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
            result = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
        else:
            raise Invalid(f'expected a size like "512MB" or "2GiB", found {show(value)}')
        if result < minimum:
            raise Invalid(f"expected a size of at least {minimum} bytes, found {show(value)}")
        return result

    return parse


def one_of(choices: Sequence[str]) -> Parser:
    def parse(value: Any, ctx: Context) -> str:
        if value not in choices:
            raise Invalid(f"expected one of {', '.join(show(c) for c in choices)}, found {show(value)}")
        return str(value)

    return parse


def list_of(item: Parser, nonempty: bool = False, unique: bool = False, secret: bool = False) -> Parser:
    def parse(value: Any, ctx: Context) -> tuple[Any, ...]:
        if isinstance(value, str):
            shown = "a string" if secret else show(value)
            raise Invalid(f"expected an array, found {shown}; put it in brackets: [\"...\"]")
        if not isinstance(value, list):
            raise Invalid(f"expected an array, found {show(value)}")
        if nonempty and not value:
            raise Invalid("expected a non-empty array, found []")
        items, failed = [], False
        for i, element in enumerate(value):
            try:
                items.append(item(element, ctx.at(i)))
            except Invalid as exc:
                ctx.at(i).error(str(exc))
                failed = True
            except Reported:
                failed = True
        if unique:
            seen: set[Any] = set()
            for i, element in enumerate(items):
                if element in seen:
                    ctx.at(i).error(f"{show(element)} is listed twice")
                    failed = True
                seen.add(element)
        if failed:
            raise Reported
        return tuple(items)

    return parse


def mapping(key: Parser, item: Parser) -> Parser:
    def parse(value: Any, ctx: Context) -> dict[str, Any]:
        if not isinstance(value, dict):  # not shown: a header line given as text may hold a secret
            raise Invalid(f"expected a table like {{ Name = \"value\" }}, found {_kind_of(value)}")
        result, failed = {}, False
        for name, element in value.items():
            try:
                result[key(name, ctx.at(name))] = item(element, ctx.at(name))
            except Invalid as exc:
                ctx.at(name).error(str(exc))
                failed = True
            except Reported:
                failed = True
        if failed:
            raise Reported
        return result

    return parse


Validate = Callable[[dict[str, Any], Context], None]


def table(fields: Sequence[Field], build: Callable[[dict[str, Any], Context], Any],
          validate: Validate | None = None) -> Parser:
    """A nested table (or inline table) checked against its own fields, then built.

    `validate` sees the values that parsed (failed keys are absent) and records every cross-key
    problem; `build` runs only when the whole table is clean. So all problems come out at once.
    """

    def parse(value: Any, ctx: Context) -> Any:
        before = len(ctx.doc.problems)
        values = ctx.doc.table(value, fields, ctx.path, partial=True)
        if values is None:
            raise Reported
        if validate is not None:
            validate(values, ctx)
        if len(ctx.doc.problems) > before:
            raise Reported
        return build(values, ctx)

    return parse


def regex(value: Any, ctx: Context) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected a regular expression (a string), found {show(value)}")
    try:
        re.compile(value)
    except re.error as exc:
        raise Invalid(f"expected a regular expression, found {show(value)}: {exc}") from None
    return value


def timezone(value: Any, ctx: Context) -> str:
    if not isinstance(value, str):
        raise Invalid(f'expected an IANA timezone like "Europe/Amsterdam", found {show(value)}')
    try:
        # Only the IANA names: the system's zone files also hold "right/..." (leap seconds, an offset of
        # its own), "posix/..." copies, and "localtime", which is whatever this host is set to.
        if value.startswith(("right/", "posix/")) or value in ("localtime", "posixrules", "Factory"):
            raise ValueError(value)
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a directory of zones, not a zone
        raise Invalid(
            f'expected an IANA timezone like "Europe/Amsterdam" or "UTC", found {show(value)}'
        ) from None
    return value


def url(schemes: Sequence[str]) -> Parser:
    """A URL of one of the schemes, with a host and a valid port; credentials are not echoed."""
    def parse(value: Any, ctx: Context) -> str:
        wanted = " or ".join(f"{s}://" for s in schemes)
        if not isinstance(value, str):
            raise Invalid(f"expected a URL starting with {wanted}, found {show(value)}")
        try:
            parsed = URL(value)
            port = parsed.port
            valid = (parsed.scheme in schemes and bool(parsed.host) and port is not None
                     and 0 < port < 65536 and value.startswith(f"{parsed.scheme}://"))
            if valid:
                _ = parsed.raw_host and parsed.raw_host.encode("idna")
        except (ValueError, UnicodeError):
            valid = False
        if not valid or any(c.isspace() or ord(c) < 32 for c in value):
            raise Invalid(f"expected a URL starting with {wanted} and a host (port 1-65535), "
                          f"found {show(masked_url(value))}")
        return value

    return parse


def _kind_of(value: Any) -> str:
    kinds = {str: "a string", bool: "true or false", int: "a number", float: "a number", list: "a list"}
    return kinds.get(type(value), "a date or time")


def masked_url(text: str) -> str:
    """A URL with user:password and the query hidden, fit for messages and logs. Up to the last "@"
    before the query: a password may hold a "/" (and a path with an "@" is hidden too, to be safe)."""
    text = re.sub(r"^([^:/?#\s]+://)[^?#]*@", r"\1***@", text)
    return re.sub(r"\?.*$", "?***", text)


def local_time(value: Any, ctx: Context) -> dt.time:
    wrong = Invalid(f'expected a local time "HH:MM" like "08:00" (or "24:00"), found {show(value)}')
    if isinstance(value, str) and value == "24:00":
        return dt.time.max
    if not isinstance(value, str) or not re.fullmatch(r"\d\d:\d\d", value):
        raise wrong
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        raise wrong from None


def local_datetime(value: Any, ctx: Context) -> dt.datetime:
    wrong = Invalid(
        f'expected a local date and time like "2026-11-14T22:00" (no offset: the contract\'s '
        f"timezone applies), found {show(value)}"
    )
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?", value):
        raise wrong
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise wrong from None


def rrule(value: Any, ctx: Context) -> str:
    from dateutil.rrule import rrulestr

    if not isinstance(value, str):
        raise Invalid(f'expected an RRULE string like "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2", found {show(value)}')
    upper = value.upper()
    if "DTSTART" in upper:  # windows start in the contract's timezone, from the rule's BY* parts
        raise Invalid(f"expected an RRULE without DTSTART (the contract's timezone applies), found {show(value)}")
    if re.search(r"FREQ=(SECONDLY|MINUTELY)", upper):
        raise Invalid(f"expected maintenance at most hourly (FREQ=HOURLY and up), found {show(value)}")
    try:
        rule = rrulestr(value, dtstart=dt.datetime(2000, 1, 1))
        if re.search(r"(^|;)INTERVAL=0*(;|$)", upper):
            raise ValueError("INTERVAL must be 1 or more")
        list(itertools.islice(rule, 3))  # some mistakes only show when the rule is used
    except (ValueError, TypeError, OverflowError) as exc:
        raise Invalid(f"expected an RFC 5545 RRULE, found {show(value)}: {exc}") from None
    return value


def public_key(value: Any, ctx: Context) -> str:
    if isinstance(value, str) and value.startswith("ed25519:"):
        try:
            raw = base64.b64decode(value[len("ed25519:"):], validate=True)
        except ValueError:
            raw = b""
        if len(raw) == 32:
            return value
    raise Invalid(
        'expected "ed25519:" and 32 bytes in base64, as printed by `slawatch-agent keygen`, '
        f"found {show(value)}"
    )


def apprise_url(value: Any, ctx: Context) -> Secret:
    """An Apprise notification URL that Apprise accepts; the URL itself is never echoed."""
    import apprise

    if not isinstance(value, str):
        raise Invalid(f"expected an Apprise URL (a string), found {show(value)}")
    scheme = value.split("://", 1)[0] if "://" in value else ""
    apprise_log = logging.getLogger("apprise")
    level = apprise_log.level
    apprise_log.setLevel(logging.CRITICAL)  # Apprise's own warning would print the secret URL
    try:
        accepted = apprise.Apprise().add(value)
    finally:
        apprise_log.setLevel(level)
    if not accepted:
        shown = f'scheme "{scheme}"' if scheme else "no scheme://"
        raise Invalid(
            f"Apprise does not accept this URL ({shown}; the URL is not shown because it may hold "
            "secrets); see https://github.com/caronc/apprise/wiki for the URL formats"
        )
    return Secret(value)


def path_value(value: Any, ctx: Context) -> str:
    """A path, resolved against the config file's folder when relative."""
    return str(ctx.resolve(string()(value, ctx)))


def raw_table(value: Any, ctx: Context) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"expected a table ([{ctx.path[-1]}]), found {show(value)}")
    return value


def raw_tables(value: Any, ctx: Context) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(f"expected an array of tables ([[{ctx.path[-1]}]]), found {show(value)}")
    return value


def readable_file(value: Any, ctx: Context) -> str:
    """A path (relative to the config file's folder) to a file that can be read now (a CA bundle:
    under systemd, the unit's credential of that name when there is one)."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"expected a file path, found {show(value)}")
    path = ctx.resolve_secret(value)
    try:
        with open(path, "rb"):
            return str(path)
    except (OSError, ValueError) as exc:
        raise Invalid(f"cannot read {show(str(path))}: {os_reason(exc)}; create it or fix the path") from None


def kind_of(value: Any) -> str:
    """What a value is, without showing it (for secrets)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "a table" if isinstance(value, dict) else "a date or time"


def secret_string(value: Any, ctx: Context) -> Secret:
    """A non-empty one-line secret; never echoed in messages."""
    if not isinstance(value, str):
        raise Invalid(f"expected a string (quoted), found {kind_of(value)}; the value is not shown")
    if not value:
        raise Invalid("expected a non-empty string, found an empty one")
    if any(c in value for c in "\r\n\0"):
        raise Invalid("expected a single line, found a line break or NUL; the value is not shown")
    return Secret(value)


def secret_fields(name: str, help: str) -> list[Field]:
    """The pair of keys for one secret: inline `name` or `name_file` (a file holding it)."""
    return [
        Field(name, secret_string, None, f"{help}, inline"),
        Field(f"{name}_file", string(), None, f"path of a file holding the {help}"),
    ]


def take_secret(values: dict[str, Any], name: str, ctx: Context, required: bool = False) -> None:
    """Resolve a secret pair in place: `values[name]` becomes the secret (or None), problems recorded."""
    try:
        values[name] = resolve_secret(values, name, ctx, required)
    except Reported:
        values[name] = None
    values.pop(f"{name}_file", None)


def resolve_secret(values: dict[str, Any], name: str, ctx: Context, required: bool) -> Secret | None:
    """The secret given inline or read from its file; problems are recorded at the right key."""
    inline, file = values.get(name), values.get(f"{name}_file")
    if inline is not None and file is not None:
        ctx.at(f"{name}_file").error(f'give either "{name}" or "{name}_file", not both')
        raise Reported
    if file is not None:
        try:
            return secret_string(read_secret_file(ctx.resolve_secret(file)), ctx.at(f"{name}_file"))
        except Invalid as exc:
            ctx.at(f"{name}_file").error(str(exc))
            raise Reported from None
    if inline is not None:
        return Secret(inline)
    if required:
        ctx.at(name).error(f'required key is missing (give "{name}" or "{name}_file")')
        raise Reported
    return None
