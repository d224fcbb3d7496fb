"""Configuration of `type = "tcp"` checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..document import Context, Field
from ..values import host_name, integer, regex
from .base import CheckConfig


@dataclass(frozen=True, kw_only=True, slots=True)
class TcpCheck(CheckConfig):
    host: str
    port: int
    expect_banner: str | None = None

    def target(self) -> str:
        return f"tcp {self.host}:{self.port}"


FIELDS = [
    Field("host", host_name, help="host name or address"),
    Field("port", integer(1, 65535), help="TCP port"),
    Field("expect_banner", regex, None, "regular expression the server's greeting must match"),
]


def validate(values: dict[str, Any], ctx: Context) -> None:
    """Nothing spans several keys of a tcp check."""


def build(values: dict[str, Any], ctx: Context) -> TcpCheck:
    return TcpCheck(**values)
