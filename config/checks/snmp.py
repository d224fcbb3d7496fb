"""Configuration of `type = "snmp"` checks (SNMP v1, v2c and v3)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..document import Context, Field, Invalid, show
from ..values import Secret, host_name, integer, list_of, mapping, one_of, secret_fields, string, take_secret
from .base import CheckConfig

AUTH_PROTOCOLS = ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")
PRIV_PROTOCOLS = ("DES", "AES", "AES192", "AES256")


@dataclass(frozen=True, kw_only=True, slots=True)
class SnmpCheck(CheckConfig):
    host: str
    port: int = 161
    version: str = "2c"
    community: Secret | None = None
    user: str | None = None
    auth_protocol: str | None = None
    auth_key: Secret | None = None
    priv_protocol: str | None = None
    priv_key: Secret | None = None
    context: str = ""
    retries: int = 1
    interfaces: tuple[str, ...] = ()
    oids: tuple[tuple[str, str], ...] = ()

    @property
    def security_level(self) -> str:
        """The SNMPv3 security level the given keys imply."""
        if self.priv_key is not None:
            return "authPriv"
        return "authNoPriv" if self.auth_key is not None else "noAuthNoPriv"

    def target(self) -> str:
        return f"snmp v{self.version} {self.host}:{self.port}"


def oid(value: Any, ctx: Context) -> str:
    if isinstance(value, str) and re.fullmatch(r"\.?\d+(\.\d+)+", value):
        return value.lstrip(".")
    raise Invalid(f'expected a numeric OID like "1.3.6.1.2.1.1.3.0", found {show(value)}')


FIELDS = [
    Field("host", host_name, help="device address or name"),
    Field("port", integer(1, 65535), 161, "UDP port"),
    Field("version", one_of(["1", "2c", "3"]), "2c", 'SNMP version: "1", "2c" or "3"'),
    *secret_fields("community", "community string (v1 and v2c)"),
    Field("user", string(), None, "SNMPv3 user name"),
    Field("auth_protocol", one_of(AUTH_PROTOCOLS), None, "SNMPv3 authentication protocol"),
    *secret_fields("auth_key", "SNMPv3 authentication pass phrase"),
    Field("priv_protocol", one_of(PRIV_PROTOCOLS), None, "SNMPv3 privacy protocol"),
    *secret_fields("priv_key", "SNMPv3 privacy pass phrase"),
    Field("context", string(nonempty=False), "", "SNMPv3 context name"),
    Field("retries", integer(0, 5), 1, "resends after a timeout"),
    Field("interfaces", list_of(string(), unique=True), (), "ifName or ifDescr that must be up"),
    Field("oids", mapping(string(), oid), {}, "named OIDs read as metrics"),
]

_V3_ONLY = ("user", "auth_protocol", "auth_key", "priv_protocol", "priv_key")


def validate(values: dict[str, Any], ctx: Context) -> None:
    """Version and security keys that go together; every problem is recorded."""
    for name in ("community", "auth_key", "priv_key"):
        take_secret(values, name, ctx)
    if values.get("version") == "3":
        _check_v3(values, ctx)
    elif "version" in values:
        _check_community(values, ctx)


def build(values: dict[str, Any], ctx: Context) -> SnmpCheck:
    return SnmpCheck(**values | {"oids": tuple(values["oids"].items())})


def _check_community(values: dict[str, Any], ctx: Context) -> None:
    for name in _V3_ONLY:
        if values.get(name) is not None:
            ctx.at(name).error(f'only SNMP version "3" takes "{name}"; set version = "3" or remove it')
    if values["community"] is None and not ctx.doc.has_problem_at(ctx.path + ("community_file",)):
        ctx.at("community").error(f'SNMP v{values["version"]} needs "community" or "community_file"')


def _check_v3(values: dict[str, Any], ctx: Context) -> None:
    if values["community"] is not None:
        ctx.at("community").error('SNMP v3 uses "user" and keys, not "community"')
    if values.get("user") is None and "user" not in ctx.doc.failed_keys(ctx.path):
        ctx.at("user").error('SNMP v3 needs "user"')
    failed = ctx.doc.failed_keys(ctx.path)
    for kind in ("auth", "priv"):
        protocol, key = values.get(f"{kind}_protocol"), values.get(f"{kind}_key")
        involved = {f"{kind}_protocol", f"{kind}_key", f"{kind}_key_file"}
        if (protocol is None) != (key is None) and not failed & involved:
            missing = f"{kind}_protocol" if protocol is None else f"{kind}_key"
            ctx.at(missing).error(f'"{kind}_protocol" and "{kind}_key" go together; add "{missing}"')
        if key is not None and len(key) < 8:
            ctx.at(f"{kind}_key").error("SNMPv3 keys must be at least 8 characters long")
    auth_failed = failed & {"auth_protocol", "auth_key", "auth_key_file"}
    if values.get("priv_key") is not None and values.get("auth_key") is None and not auth_failed:
        ctx.at("priv_key").error("privacy needs authentication: add auth_protocol and auth_key")
