"""Configuration of `type = "tcp"` checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..document import Context, Field
from ..values import integer, regex, string
from .base import CheckConfig


@dataclass(frozen=True, kw_only=True)
class TcpCheck(CheckConfig):
    host: str
    port: int
    expect_banner: str | None = None

    def target(self) -> str:
        return f"tcp {self.host}:{self.port}"


FIELDS = [
    Field("host", string(), help="host name or address"),
    Field("port", integer(1, 65535), help="TCP port"),
    Field("expect_banner", regex, None, "regular expression the server's greeting must match"),
]


def build(values: dict[str, Any], ctx: Context) -> TcpCheck:
    return TcpCheck(**values)
