"""The check types an agent.toml may use, registered explicitly by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..document import Context, Field
from . import host, http, snmp, tcp
from .base import CheckConfig, common_fields
from .host import HostCheck
from .http import HttpCheck
from .snmp import SnmpCheck
from .tcp import TcpCheck


@dataclass(frozen=True)
class CheckType:
    """The schema of one check type: its own keys and how a validated table becomes a check."""

    fields: Sequence[Field]
    validate: Callable[[dict[str, Any], Context], None]
    build: Callable[[dict[str, Any], Context], CheckConfig]


CHECK_TYPES: dict[str, CheckType] = {
    "http": CheckType(http.FIELDS, http.validate, http.build),
    "snmp": CheckType(snmp.FIELDS, snmp.validate, snmp.build),
    "host": CheckType(host.FIELDS, host.validate, host.build),
    "tcp": CheckType(tcp.FIELDS, tcp.validate, tcp.build),
}

__all__ = [
    "CHECK_TYPES", "CheckConfig", "CheckType", "HostCheck", "HttpCheck", "SnmpCheck", "TcpCheck",
    "common_fields",
]
