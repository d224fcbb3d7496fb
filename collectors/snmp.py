"""SNMP checks: sysUpTime, named OIDs, interface state and traffic.

SNMPv1/v2c go straight through pysnmp's message layer; SNMPv3 through the one shared engine
(`snmp_usm`). Numeric OIDs only: no MIB is ever loaded on the polling path.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

# slawatch reads numeric OIDs only and never compiles MIBs, but pysnmp imports pysmi's MIB
# compiler (and with it jinja2 and requests) whenever pysmi happens to be installed: ~20 MB of
# agent memory for nothing. Unless something imported pysmi already, pysnmp is told it is absent.
sys.modules.setdefault("pysmi", None)  # type: ignore[arg-type]

from pyasn1.codec.ber import decoder, encoder  # noqa: E402
from pyasn1.error import PyAsn1Error
from pyasn1.type import namedtype, univ
from pysnmp.error import PySnmpError
from pysnmp.proto import rfc1905
from pysnmp.proto.api import v1, v2c
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message

from slawatch.config import SnmpCheck

from .reading import DOWN, UP, Metrics, Reading, utc_now
from .vantage import Vantage, elapsed_ms

log = logging.getLogger(__name__)

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_OPER = "1.3.6.1.2.1.2.2.1.8"
OCTETS_32 = {"in": "1.3.6.1.2.1.2.2.1.10", "out": "1.3.6.1.2.1.2.2.1.16"}
OCTETS_64 = {"in": "1.3.6.1.2.1.31.1.1.1.6", "out": "1.3.6.1.2.1.31.1.1.1.10"}
ERRORS = {"in_errors": "1.3.6.1.2.1.2.2.1.14", "out_errors": "1.3.6.1.2.1.2.2.1.20"}
OPER_STATES = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent",
               7: "lowerLayerDown"}
# pysnmp models these answers as (empty) OctetStrings: they must never pass for a value
NO_VALUE = (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView)

GET_BATCH = 30        # varbinds per GET: answers stay small enough for modest agents
WALK_REPETITIONS = 25
NO_SUCH_NAME = 2      # SNMPv1's error status at the end of a walked table
TICKS = 2**32         # sysUpTime is 32-bit TimeTicks (1/100 s): it wraps after 497 days


class PollFailed(Exception):
    """A failure whose message is ready for the reading (it never holds a secret)."""


class NoAnswer(Exception):
    """The device stayed silent; the caller finds out why."""


@dataclass
class Port:
    index: int
    name_column: str  # IF_NAME or IF_DESCR: where the configured name was found


@dataclass
class Sample:
    bits: int                 # 64 for ifHCIn/OutOctets, 32 for ifIn/OutOctets
    counters: dict[str, int]  # "in", "out" octets and "in_errors", "out_errors" when present


@dataclass
class DeviceState:
    """What one check remembers between polls (kept in `vantage.memory`)."""

    address: tuple[str, int, str]     # host, port, version: a new device starts afresh
    engine_id: bytes | None = None
    ports: dict[str, Port] = field(default_factory=dict)
    uptime: int | None = None          # sysUpTime ticks at the last answered poll
    polled_at: float = 0.0             # time.monotonic() then
    samples: dict[str, Sample] = field(default_factory=dict)
    sampled: dict[str, int] = field(default_factory=dict)  # sysUpTime ticks of each interface's sample


class Session(Protocol):
    """One poll's way to the device."""

    check: SnmpCheck

    async def get(self, oids: list[str]) -> dict[str, Any]: ...

    async def walk(self, column: str) -> dict[int, str]: ...

    async def close(self) -> None: ...


class _Answers(asyncio.DatagramProtocol):
    """Hands each answer on a community session's socket to the request that waits for it."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.waiting: dict[int, asyncio.Future[Any]] = {}

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            message, _ = decoder.decode(data, asn1Spec=self.api.Message())
            pdu = self.api.apiMessage.get_pdu(message)
            request_id = int(self.api.apiPDU.get_request_id(pdu))
        except (PyAsn1Error, PySnmpError, ValueError, TypeError) as exc:
            log.debug("event=snmp-stray-datagram from=%s error=%s", addr, exc)
            return  # not an answer to any request of ours: keep waiting for one
        answer = self.waiting.get(request_id)
        if answer is not None and not answer.done() and isinstance(pdu, self.api.GetResponsePDU):
            answer.set_result(pdu)

    def error_received(self, exc: Exception) -> None:
        for answer in self.waiting.values():
            if not answer.done():
                answer.set_exception(exc)


@dataclass
class CommunitySession:
    """SNMPv1/v2c on pysnmp's message layer (`pysnmp.proto.api`) over one connected UDP socket.

    No engine and no MIB instrumentation: a community request is a message, an answer matched by
    request id, and retries. That keeps agents that never use SNMPv3 ~15 MB smaller and spares
    the engine's per-target caches.
    """

    check: SnmpCheck
    attempt_s: float
    transport: asyncio.DatagramTransport
    answers: _Answers

    @classmethod
    async def open(cls, check: SnmpCheck, attempt_s: float) -> CommunitySession:
        api = v1 if check.version == "1" else v2c
        transport, answers = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Answers(api), remote_addr=(check.host, check.port))
        return cls(check, attempt_s, transport, answers)

    async def close(self) -> None:
        self.transport.close()

    async def get(self, oids: list[str]) -> dict[str, Any]:
        return await get_in_batches(self._get, oids)

    async def _get(self, oids: list[str]) -> dict[str, Any]:
        answer = await self._request(self.answers.api.GetRequestPDU(), oids)
        self._raise_for(answer, oids)
        return {str(name): value for name, value in self.answers.api.apiPDU.get_varbinds(answer)}

    async def walk(self, column: str) -> dict[int, str]:
        """Index -> text of one table column (GETNEXT for v1, GETBULK otherwise)."""
        api, table = self.answers.api, univ.ObjectIdentifier(column)
        found: dict[int, str] = {}
        last = table
        while True:
            if api is v1:
                answer = await self._request(v1.GetNextRequestPDU(), [last])
                if int(api.apiPDU.get_error_status(answer)) == NO_SUCH_NAME:
                    return found  # v1 says "end of the MIB" this way
            else:
                request = v2c.GetBulkRequestPDU()
                answer = await self._request(request, [last], repetitions=WALK_REPETITIONS)
            self._raise_for(answer, [column])
            var_binds = api.apiPDU.get_varbinds(answer)
            if not var_binds:
                return found
            for name, value in var_binds:
                if isinstance(value, rfc1905.EndOfMibView) or not table.isPrefixOf(name):
                    return found
                if name <= last:
                    raise PollFailed(f"device returned OIDs out of order walking {column} (at {name})")
                found[int(name[len(table)])] = text(value)
                last = name

    async def _request(self, pdu: Any, oids: list[Any], repetitions: int = 0) -> Any:
        """Send `pdu` asking for `oids` until an answer comes; NoAnswer after the last retry."""
        api, answers = self.answers.api, self.answers
        api.apiPDU.set_defaults(pdu)
        if repetitions:
            v2c.apiBulkPDU.set_non_repeaters(pdu, 0)
            v2c.apiBulkPDU.set_max_repetitions(pdu, repetitions)
        request_id = random.randrange(1, 2**31 - 1)
        while request_id in answers.waiting:
            request_id = random.randrange(1, 2**31 - 1)
        api.apiPDU.set_request_id(pdu, request_id)
        api.apiPDU.set_varbinds(pdu, [(api.ObjectIdentifier(oid), api.null) for oid in oids])
        message = api.Message()
        api.apiMessage.set_defaults(message)
        api.apiMessage.set_community(message, str(self.check.community))
        api.apiMessage.set_pdu(message, pdu)
        data = encoder.encode(message)
        answer = answers.waiting[request_id] = asyncio.get_running_loop().create_future()
        try:
            for _ in range(self.check.retries + 1):
                self.transport.sendto(data)
                try:
                    return await asyncio.wait_for(asyncio.shield(answer), self.attempt_s)
                except TimeoutError:
                    continue
            raise NoAnswer
        finally:
            del answers.waiting[request_id]
            if not answer.done():
                answer.cancel()

    def _raise_for(self, answer: Any, oids: list[Any]) -> None:
        status = self.answers.api.apiPDU.get_error_status(answer)
        if int(status):
            index = int(self.answers.api.apiPDU.get_error_index(answer, muteErrors=True))
            raise PollFailed(describe_status(status, index, [str(oid) for oid in oids], self.check))


async def get_in_batches(get: Callable[[list[str]], Awaitable[dict[str, Any]]], oids: list[str]) -> dict[str, Any]:
    """OID -> value, asking GET_BATCH OIDs per request, the requests at once."""
    batches = [oids[i:i + GET_BATCH] for i in range(0, len(oids), GET_BATCH)]
    answers = await asyncio.gather(*(get(batch) for batch in batches))
    return {name: value for answer in answers for name, value in answer.items()}


def describe_status(status: Any, index: int, oids: list[str], check: SnmpCheck) -> str:
    """A device's error status, naming the variable it points at."""
    where = f" for {_describe(oids[index - 1], check)}" if 0 < index <= len(oids) else ""
    return f"device answered {status.prettyPrint()}{where}"


async def collect(check: SnmpCheck, vantage: Vantage) -> Reading:
    """Poll one device once; every failure becomes a down reading with a precise reason."""
    started = utc_now()
    state = _state(vantage, check)
    requests_s, reserve_s = _budget(check)
    since = time.perf_counter()
    metrics: Metrics = {}
    latency: float | None = None
    try:
        async with asyncio.timeout(requests_s):
            session = await _session(check, vantage, state, requests_s / (check.retries + 1))
            try:
                metrics, problems = await _poll(session, state)
            finally:
                await session.close()
        latency = elapsed_ms(since)
        error = "; ".join(problems) or None
    except (NoAnswer, TimeoutError, ConnectionRefusedError):
        error = await _explain_silence(check, reserve_s)
    except PollFailed as exc:
        error = str(exc)
    except (PySnmpError, PyAsn1Error, OSError) as exc:
        error = f"SNMP failure talking to {check.host}:{check.port}: {exc}"
    except Exception as exc:  # a bug must cost one reading, never the poller
        log.exception("event=snmp-internal-error check=%s", check.id)
        error = f"internal error: {type(exc).__name__}: {exc}"
    if error and latency is None:
        state.engine_id = None  # a replaced device has a new engine ID: discover it again
    error = _scrub(error, check)
    if error:  # the scheduler logs up/down changes; this is the per-poll detail
        log.debug("event=snmp-poll-down check=%s target=%s error=%r", check.id, check.target(), error)
    return vantage.reading(check, started, DOWN if error else UP, latency_ms=latency, metrics=metrics,
                           error=error)


def _state(vantage: Vantage, check: SnmpCheck) -> DeviceState:
    memory = vantage.memory(check.id)
    address = (check.host, check.port, check.version)
    state = memory.get("snmp")
    if not isinstance(state, DeviceState) or state.address != address:
        state = memory["snmp"] = DeviceState(address=address)
    return state


def _budget(check: SnmpCheck) -> tuple[float, float]:
    """Split the timeout: the requests first, then a short probe that explains a silence."""
    reserve = min(1.0, check.timeout * 0.25)
    return check.timeout - reserve, reserve


async def _session(check: SnmpCheck, vantage: Vantage, state: DeviceState, attempt_s: float) -> Session:
    if check.version != "3":
        return await CommunitySession.open(check, attempt_s)
    from .snmp_usm import UsmSession  # the engine is loaded only for agents that poll SNMPv3

    if state.engine_id is None:
        state.engine_id = await _discover((check.host, check.port), attempt_s, check.retries + 1)
        if state.engine_id is None:
            raise NoAnswer
    return await UsmSession.open(check, vantage.snmp_engine(), state.engine_id, attempt_s)


async def _poll(session: Session, state: DeviceState) -> tuple[Metrics, list[str]]:
    check, now = session.check, time.monotonic()
    problems: list[str] = []
    values = await _read(session, state, problems)
    uptime = _ticks(values)
    rebooted = _rebooted(state, uptime, now)
    if rebooted or _moved(check, state, values):
        # After a reboot indexes may be renumbered and counters restart: walk and read afresh.
        log.info("event=snmp-%s check=%s uptime_s=%g", "reboot" if rebooted else "ifindex-changed",
                 check.id, uptime / 100)
        state.ports.clear()
        if rebooted:
            state.samples.clear()
            state.sampled.clear()
        problems.clear()
        values = await _read(session, state, problems)
        uptime = _ticks(values)
    metrics: Metrics = {"snmp.uptime_s": uptime / 100}
    if rebooted:
        metrics["snmp.rebooted"] = 1
    problems += _named_values(check, values, metrics)
    problems += _interfaces(check, state, values, uptime, metrics)
    state.uptime, state.polled_at = uptime, now
    return metrics, problems


async def _read(session: Session, state: DeviceState, problems: list[str]) -> dict[str, Any]:
    check = session.check
    if any(name not in state.ports for name in check.interfaces):
        problems += await _find_ports(session, state)
    oids = [SYS_UPTIME, *(oid for _, oid in check.oids)]
    for name in check.interfaces:
        if name in state.ports:
            oids += _port_oids(check, state.ports[name])
    return await session.get(oids)


def _port_oids(check: SnmpCheck, port: Port) -> list[str]:
    columns = [port.name_column, IF_OPER, *OCTETS_32.values(), *ERRORS.values()]
    if check.version != "1":  # SNMPv1 has no Counter64, and a missing OID fails a whole v1 GET
        columns += OCTETS_64.values()
    return [f"{column}.{port.index}" for column in columns]


async def _find_ports(session: Session, state: DeviceState) -> list[str]:
    """Map each configured interface to its ifIndex by ifName, else by ifDescr."""
    wanted = session.check.interfaces
    names = await session.walk(IF_NAME)
    descrs = await session.walk(IF_DESCR) if not set(wanted) <= set(names.values()) else {}
    problems = []
    for wanted_name in wanted:
        for column, table in ((IF_NAME, names), (IF_DESCR, descrs)):
            index = next((i for i, text in sorted(table.items()) if text == wanted_name), None)
            if index is not None:
                state.ports[wanted_name] = Port(index, column)
                break
        else:
            have = sorted(set(names.values() or descrs.values()))
            shown = ", ".join(have[:20]) + (f" and {len(have) - 20} more" if len(have) > 20 else "")
            problems.append(f"interface {wanted_name} not found (have: {shown or 'none'})")
    log.debug("event=snmp-walked check=%s ports=%s", session.check.id, state.ports)
    return problems


def _moved(check: SnmpCheck, state: DeviceState, values: dict[str, Any]) -> bool:
    return any(text(values.get(f"{port.name_column}.{port.index}")) != name
               for name, port in state.ports.items() if name in check.interfaces)


def _rebooted(state: DeviceState, uptime: int, now: float) -> bool:
    """Did the device restart since the last poll? Its sysUpTime then went back, or advanced
    less than our own clock did (it restarted and has been up for a while already)."""
    if state.uptime is None:
        return False
    elapsed = (now - state.polled_at) * 100
    advanced = (uptime - state.uptime) % TICKS  # modulo: the 497-day wrap is no restart
    return advanced > TICKS // 2 or advanced < elapsed * 0.9 - 500


def _named_values(check: SnmpCheck, values: dict[str, Any], metrics: Metrics) -> list[str]:
    problems = []
    for name, oid in check.oids:
        value = values.get(oid)
        number = _number(value)
        if number is None:
            problems.append(f"{_describe(oid, check)}: {_not_a_number(value)}")
        else:
            metrics[name] = number
    return problems


def _interfaces(check: SnmpCheck, state: DeviceState, values: dict[str, Any], uptime: int,
                metrics: Metrics) -> list[str]:
    """Each interface's status, and its rates since its previous counters: over the time between
    the two samples (a poll in between may have brought none), by the device's sysUpTime."""
    problems = []
    for name in check.interfaces:
        port = state.ports.get(name)
        if port is None:
            continue  # already reported as not found
        oper = _integer(values.get(f"{IF_OPER}.{port.index}"))
        if oper is None:
            problems.append(f"interface {name} has no ifOperStatus")
            continue
        metrics[f"if.{name}.oper"] = oper
        if oper != 1:
            problems.append(f"interface {name} is {OPER_STATES.get(oper, 'unknown')}({oper})")
        sample = _sample(values, port.index)
        previous = state.samples.get(name)
        if sample is None:
            continue
        if previous is not None and name in state.sampled:
            seconds = ((uptime - state.sampled[name]) % TICKS) / 100
            if seconds:
                metrics.update(_rates(name, previous, sample, seconds))
        state.samples[name], state.sampled[name] = sample, uptime
    return problems


def _sample(values: dict[str, Any], index: int) -> Sample | None:
    """The interface's counters, 64-bit when the device has them."""
    errors = {key: _integer(values.get(f"{oid}.{index}")) for key, oid in ERRORS.items()}
    for bits, columns in ((64, OCTETS_64), (32, OCTETS_32)):
        octets = {key: _integer(values.get(f"{oid}.{index}")) for key, oid in columns.items()}
        if all(value is not None for value in octets.values()):
            counters = {k: v for k, v in (octets | errors).items() if v is not None}
            return Sample(bits, counters)
    return None


def _rates(name: str, old: Sample, new: Sample, seconds: float) -> Metrics:
    rates: Metrics = {}
    if old.bits != new.bits:
        return rates  # the device switched counter tables: a fresh baseline, no rate
    for key, value in new.counters.items():
        bits = 32 if key.endswith("errors") else new.bits
        delta = _delta(old.counters.get(key), value, bits)
        if delta is not None and key.endswith("errors"):
            rates[f"if.{name}.{key}"] = delta
        elif delta is not None:
            rates[f"if.{name}.{key}_bps"] = delta * 8 / seconds
    return rates


def _delta(old: int | None, new: int, bits: int) -> int | None:
    if old is None:
        return None
    if new >= old:
        return new - old
    # A 32-bit counter wraps in minutes on a busy link; a 64-bit one going back was reset.
    return new + 2**32 - old if bits == 32 else None


def _ticks(values: dict[str, Any]) -> int:
    uptime = _integer(values.get(SYS_UPTIME))
    if uptime is None:
        raise PollFailed(f"sysUpTime ({SYS_UPTIME}): {_not_a_number(values.get(SYS_UPTIME))}")
    return uptime


def _integer(value: Any) -> int | None:
    return int(value) if isinstance(value, univ.Integer) else None


def _number(value: Any) -> int | float | None:
    """An SNMP value as a number; text is accepted when it is one (UCD's laLoad is "0.15")."""
    if isinstance(value, univ.Integer):
        return int(value)
    if isinstance(value, univ.OctetString) and not isinstance(value, NO_VALUE):
        try:
            number = float(text(value))
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _not_a_number(value: Any) -> str:
    if value is None:
        return "missing from the answer"
    if isinstance(value, univ.OctetString) and not isinstance(value, NO_VALUE):
        return f"not a number ({text(value)[:40]!r})"
    kind = type(value).__name__
    return kind[0].lower() + kind[1:]  # noSuchObject, noSuchInstance, endOfMibView, ...


def text(value: Any) -> str:
    if not isinstance(value, univ.OctetString) or isinstance(value, NO_VALUE):
        return ""
    return bytes(value.asOctets()).decode("utf-8", "replace").rstrip("\x00").strip()


def _describe(oid: str, check: SnmpCheck) -> str:
    names = [name for name, configured in check.oids if configured == oid]
    return f"{names[0]} ({oid})" if names else oid


async def _explain_silence(check: SnmpCheck, probe_s: float) -> str:
    """After a timeout, ask the device for its SNMPv3 engine ID: any live agent answers that."""
    silent = f"no response from {check.host}:{check.port} within {check.timeout:g}s"
    try:
        async with asyncio.timeout(probe_s):  # bounds a slow name lookup too
            engine_id = await _discover((check.host, check.port), probe_s, attempts=1)
    except TimeoutError:
        return silent
    except ConnectionRefusedError:
        return f"{silent} (port unreachable: nothing listens there)"
    except OSError as exc:
        return f"{silent} ({exc.strerror or exc})"
    if engine_id is None:
        return silent
    alive = f"{check.host}:{check.port} is alive (it answered an SNMPv3 probe) but"
    if check.version != "3":
        return (f"{alive} ignored SNMPv{check.version} requests: wrong community, "
                "or this address is not allowed to use it")
    guess = " (wrong priv key or privacy protocol?)" if check.security_level == "authPriv" else ""
    return f"{alive} ignored user {check.user}'s {check.security_level} requests{guess}"


class _Discovery(asyncio.DatagramProtocol):
    """Waits for the Report that answers an SNMPv3 engine-ID discovery request."""

    def __init__(self, msg_id: int) -> None:
        self.msg_id = msg_id
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        engine_id = _engine_id(data, self.msg_id)
        if engine_id is not None and not self.answer.done():
            self.answer.set_result(engine_id)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def _discover(address: tuple[str, int], attempt_s: float, attempts: int) -> bytes | None:
    """The device's SNMPv3 engine ID (RFC 3414 discovery), or None when it stays silent."""
    msg_id = random.randrange(1, 2**31 - 1)
    loop = asyncio.get_running_loop()
    transport, probe = await loop.create_datagram_endpoint(
        lambda: _Discovery(msg_id), remote_addr=address,
        family=socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
    try:
        for _ in range(attempts):
            transport.sendto(_discovery_request(msg_id))
            try:
                return await asyncio.wait_for(asyncio.shield(probe.answer), attempt_s)
            except TimeoutError:
                continue
        return None
    finally:
        transport.close()


class UsmSecurityParameters(univ.Sequence):
    """RFC 3414's security parameters, all an engine-ID discovery needs of USM."""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("msgAuthoritativeEngineId", univ.OctetString()),
        namedtype.NamedType("msgAuthoritativeEngineBoots", univ.Integer()),
        namedtype.NamedType("msgAuthoritativeEngineTime", univ.Integer()),
        namedtype.NamedType("msgUserName", univ.OctetString()),
        namedtype.NamedType("msgAuthenticationParameters", univ.OctetString()),
        namedtype.NamedType("msgPrivacyParameters", univ.OctetString()))


def _discovery_request(msg_id: int) -> bytes:
    """An unauthenticated, reportable SNMPv3 GET with an empty engine ID and no variables."""
    pdu = v2c.GetRequestPDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, msg_id)
    security = UsmSecurityParameters()
    for name, empty in (("msgAuthoritativeEngineId", b""), ("msgAuthoritativeEngineBoots", 0),
                        ("msgAuthoritativeEngineTime", 0), ("msgUserName", b""),
                        ("msgAuthenticationParameters", b""), ("msgPrivacyParameters", b"")):
        security[name] = empty
    message = SNMPv3Message()
    message["msgVersion"] = 3
    header = message["msgGlobalData"]
    header["msgID"], header["msgMaxSize"] = msg_id, 65507
    header["msgFlags"], header["msgSecurityModel"] = b"\x04", 3  # reportable; USM
    message["msgSecurityParameters"] = encoder.encode(security)
    scoped = message["msgData"]["plaintext"]
    scoped["contextEngineId"], scoped["contextName"] = b"", b""
    scoped["data"]["get-request"] = pdu
    return bytes(encoder.encode(message))


def _engine_id(data: bytes, msg_id: int) -> bytes | None:
    try:
        message, _ = decoder.decode(data, asn1Spec=SNMPv3Message())
        if int(message["msgGlobalData"]["msgID"]) != msg_id:
            return None
        security, _ = decoder.decode(bytes(message["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters())
    except (PyAsn1Error, ValueError):
        return None  # not an answer to our probe: keep waiting for one
    return bytes(security["msgAuthoritativeEngineId"])


def _scrub(error: str | None, check: SnmpCheck) -> str | None:
    """Belt and braces: no secret reaches a reading, whatever a library put in its message."""
    if error is None:
        return None
    for secret in (check.community, check.auth_key, check.priv_key):
        if secret:
            error = error.replace(str(secret), "***")
    return error
