"""Configuration of `type = "http"` checks."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from yarl import URL

from ..document import Context, Field, Invalid, show
from ..values import (
    Secret, boolean, integer, list_of, mapping, readable_file, regex, secret_fields, secret_string,
    string, take_secret, url,
)
from .base import CheckConfig

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpCheck(CheckConfig):
    url: str
    method: str = "GET"
    headers: tuple[tuple[str, Secret], ...] = ()
    body: str | None = None
    username: str | None = None
    password: Secret | None = None
    token: Secret | None = None
    follow_redirects: bool = True
    max_redirects: int = 10
    expect_status: tuple[tuple[int, int], ...] = ((200, 299),)
    expect_body: str | None = None
    expect_json: tuple[tuple[str, Any], ...] = ()
    verify_tls: bool = True
    ca_file: str | None = None
    tls_min_days: int | None = None

    def target(self) -> str:
        """What it requests, for the manifest the watchdog stores: no user, password or query."""
        return f"{self.method} {URL(self.url).with_user(None).with_query(None)}"


def status_range(value: Any, ctx: Context) -> tuple[int, int]:
    """An HTTP status (200) or an inclusive range ("200-299")."""
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return (value, value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d{3})\s*-\s*(\d{3})\s*", value)
        if match and 100 <= int(match.group(1)) <= int(match.group(2)) <= 599:
            return (int(match.group(1)), int(match.group(2)))
    raise Invalid(f'expected an HTTP status like 200 or a range like "200-299", found {show(value)}')


def json_expectation(value: Any, ctx: Context) -> Any:
    if isinstance(value, bool) or isinstance(value, (str, int)) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise Invalid(f"expected a string, number or boolean to compare with, found {show(value)}")


def header_name(value: Any, ctx: Context) -> str:
    if isinstance(value, str) and re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", value):
        return value
    raise Invalid(f"expected an HTTP header name (letters, digits, '-'), found {show(value)}")


FIELDS = [
    Field("url", url(["http", "https"]), help="the URL to request"),
    Field("method", string(), "GET", "the HTTP method"),
    Field("headers", mapping(header_name, secret_string), {}, "extra request headers (values are not shown in messages)"),
    Field("body", string(nonempty=False), None, "request body to send"),
    Field("username", string(), None, "user name for HTTP basic authentication"),
    *secret_fields("password", "password for HTTP basic authentication"),
    *secret_fields("token", "bearer token sent as Authorization: Bearer"),
    Field("follow_redirects", boolean, True, "follow 3xx redirects"),
    Field("max_redirects", integer(0, 30), 10, "most redirects followed"),
    Field("expect_status", list_of(status_range, nonempty=True), None,
          'accepted statuses: 200 or "200-299" (default "200-299")'),
    Field("expect_body", regex, None, "regular expression searched in the body"),
    Field("expect_json", mapping(string(), json_expectation), {},
          "dotted JSON paths and the values they must have"),
    Field("verify_tls", boolean, True, "verify the server's certificate"),
    Field("ca_file", readable_file, None, "CA bundle to verify the server with"),
    Field("tls_min_days", integer(0, 3650), None, "down when the certificate expires sooner"),
]


def validate(values: dict[str, Any], ctx: Context) -> None:
    """Keys that only make sense together; every problem is recorded."""
    method = values.get("method")
    if method is not None:
        if method.upper() in METHODS:
            values["method"] = method.upper()
        else:
            ctx.at("method").error(f"expected one of {', '.join(METHODS)}, found {show(method)}")
    take_secret(values, "password", ctx)
    take_secret(values, "token", ctx)
    failed = ctx.doc.failed_keys(ctx.path)
    if ("username" in values and (values["username"] is None) != (values["password"] is None)
            and not failed & {"username", "password", "password_file"}):
        ctx.at("username" if values["username"] is None else "password").error(
            'basic authentication needs both "username" and "password" (or "password_file")'
        )
    if values["token"] is not None and values["password"] is not None:
        ctx.at("token").error("use either basic authentication or a bearer token, not both")
    if values.get("method") == "HEAD" and (values.get("expect_body") is not None or values.get("expect_json")):
        ctx.at("expect_body" if values.get("expect_body") is not None else "expect_json").error(
            "a HEAD response has no body to match: use GET, or leave the body expectation out")
    url = values.get("url")
    if values.get("tls_min_days") is not None and url is not None and not url.startswith("https://"):
        ctx.at("tls_min_days").error("only https:// URLs have a certificate to check")


def build(values: dict[str, Any], ctx: Context) -> HttpCheck:
    return HttpCheck(
        **values | {
            "headers": tuple(values["headers"].items()),
            "expect_status": values["expect_status"] or ((200, 299),),
            "expect_json": tuple(values["expect_json"].items()),
        }
    )
