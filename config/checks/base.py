"""What every check has, whatever its type."""

from __future__ import annotations

from dataclasses import dataclass

from slawatch.collectors.reading import MAX_INTERVAL_S  # what a reading can carry

from ..document import Field
from ..values import duration, identifier, string


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckConfig:
    """One configured check: its id, type and schedule."""

    id: str
    type: str
    interval: float
    timeout: float

    def target(self) -> str:
        """What the check looks at, without secrets (for tables, logs and the manifest)."""
        raise NotImplementedError


def common_fields(interval: float, timeout: float) -> list[Field]:
    """The keys every check takes; interval and timeout default to the [defaults] table."""
    return [
        Field("id", identifier, help="the check's id; contracts refer to checks by it"),
        Field("type", string(), help="the check type: http, snmp, host or tcp"),
        Field("interval", duration(minimum=1.0, maximum=MAX_INTERVAL_S), interval, "how often the check runs"),
        Field("timeout", duration(minimum=0.001), timeout, "how long one run may take"),
    ]
