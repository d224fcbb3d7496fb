"""The agent ↔ watchdog wire protocol: canonical bodies, Ed25519 signatures, their verification.

One implementation, used by the agent to sign and by the watchdog to verify.

A request carries its body (compact JSON, UTF-8) and four headers:

    Slawatch-Agent: ams-probe
    Slawatch-Batch: 0f5c...            (unique per batch; a resend keeps it)
    Slawatch-Sent: 2026-10-03T12:00:31Z
    Slawatch-Signature: <base64 Ed25519 signature>

The signature covers `slawatch/1`, the agent id, the batch id, the send time, the request path
and the SHA-256 of the exact body, one per line, so no part can be swapped for another's.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from slawatch.collectors.reading import Fields, Reading, fields, format_ts, parse_ts

if TYPE_CHECKING:  # the agent never loads cryptography (see slawatch.config.keys); the watchdog does
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

VERSION = "slawatch/1"
INGEST_PATH = "/api/v1/ingest"
MANIFEST_PATH = "/api/v1/manifest"
HEADER_AGENT, HEADER_BATCH = "Slawatch-Agent", "Slawatch-Batch"
HEADER_SENT, HEADER_SIGNATURE = "Slawatch-Sent", "Slawatch-Signature"
MAX_SKEW_S = 300.0
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


class Refused(Exception):
    """A request the watchdog must refuse: `status` is the HTTP status, `reason` says why and
    `code` names the kind of refusal in a word (for counting)."""

    def __init__(self, status: int, reason: str, code: str = "invalid-body") -> None:
        super().__init__(reason)
        self.status, self.reason, self.code = status, reason, code


def new_batch_id() -> str:
    return uuid.uuid4().hex


def canonical_json(value: Any) -> bytes:
    """Compact, key-sorted UTF-8 JSON: the same data always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def batch_body(agent: str, readings: Sequence[Reading], dropped: Iterable[tuple[int, int]] = ()) -> bytes:
    """The body of an ingest request: readings, and seq ranges the spool had to drop."""
    return canonical_json({"agent": agent, "readings": [r.to_json() for r in readings],
                           "dropped": [[first, last] for first, last in dropped]})


def signed_message(agent: str, batch: str, sent: str, path: str, body: bytes) -> bytes:
    return _signed_message(agent, batch, sent, path, hashlib.sha256(body).digest())


def _signed_message(agent: str, batch: str, sent: str, path: str, body_sha256: bytes) -> bytes:
    return "\n".join([VERSION, agent, batch, sent, path, body_sha256.hex()]).encode()


class Signer(Protocol):
    def sign(self, data: bytes) -> bytes: ...


def sign(key: Signer, agent: str, batch: str, path: str, body: bytes,
         now: dt.datetime | None = None) -> dict[str, str]:
    """The headers that authenticate `body` as sent by `agent` now."""
    sent = format_ts((now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0))
    signature = key.sign(signed_message(agent, batch, sent, path, body))
    return {HEADER_AGENT: agent, HEADER_BATCH: batch, HEADER_SENT: sent,
            HEADER_SIGNATURE: base64.b64encode(signature).decode()}


@dataclass(frozen=True)
class Envelope:
    """The authenticated outside of a request: who sent it, which batch, when (and the exact signed
    send time and signature, as the evidence keeps them)."""

    agent: str
    batch: str
    sent: dt.datetime
    sent_text: str = ""
    signature: bytes = b""


def public_key_from_line(line: str) -> Ed25519PublicKey:
    """`ed25519:<base64>` (watchdog.toml's public_key) as a key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(base64.b64decode(line.removeprefix("ed25519:")))


_OURS = {HEADER_AGENT.lower(), HEADER_BATCH.lower(), HEADER_SENT.lower(), HEADER_SIGNATURE.lower()}


def check_envelope(headers: Mapping[str, str], keys: Mapping[str, Any], now: dt.datetime | None = None,
                   max_skew_s: float = MAX_SKEW_S) -> Envelope:
    """Everything about a request that needs no body: each header once, a known agent, a well-formed
    batch id and signature, a send time within `max_skew_s`. Raise Refused; the signature is
    checked by `verify`."""
    found: dict[str, str] = {}
    for name, value in headers.items():  # a multidict yields a repeated header once per value
        key = name.lower()
        if key in _OURS and key in found:
            raise Refused(400, f"header {name} appears more than once", "malformed-header")
        found[key] = value
    agent, batch = found.get(HEADER_AGENT.lower(), ""), found.get(HEADER_BATCH.lower(), "")
    sent_text = found.get(HEADER_SENT.lower(), "")
    signature_text = found.get(HEADER_SIGNATURE.lower(), "")
    if not (agent and batch and sent_text and signature_text):
        raise Refused(401, "missing Slawatch-Agent, -Batch, -Sent or -Signature header", "unsigned")
    if agent not in keys:
        raise Refused(403, f"unknown agent {agent!r}: add it with its public key to watchdog.toml", "unknown-agent")
    if not _BATCH_ID.fullmatch(batch):
        raise Refused(400, "malformed batch id", "malformed-header")
    try:
        sent = parse_ts(sent_text)
        signature = base64.b64decode(signature_text, validate=True)
    except ValueError:
        raise Refused(400, "malformed Slawatch-Sent or Slawatch-Signature header", "malformed-header") from None
    skew = abs(((now or dt.datetime.now(dt.timezone.utc)) - sent).total_seconds())
    if skew > max_skew_s:
        raise Refused(401, f"send time is {skew:.0f}s off the watchdog's clock (limit {max_skew_s:.0f}s): "
                           "stale request or a wrong clock on the agent", "stale")
    return Envelope(agent, batch, sent, sent_text, signature)


def verify(headers: Mapping[str, str], path: str, body: bytes, keys: Mapping[str, Ed25519PublicKey],
           now: dt.datetime | None = None, max_skew_s: float = MAX_SKEW_S) -> Envelope:
    """Check the envelope and signature before anything of the body is parsed; raise Refused."""
    envelope = check_envelope(headers, keys, now, max_skew_s)
    verify_signature(envelope, path, body, keys)
    return envelope


def verify_signature(envelope: Envelope, path: str, body: bytes, keys: Mapping[str, Ed25519PublicKey]) -> bytes:
    """The signature of a checked envelope over `path` and `body`, by its agent's key; raise Refused.
    Return the body's SHA-256 (the evidence keeps it)."""
    from cryptography.exceptions import InvalidSignature

    digest = hashlib.sha256(body).digest()
    try:
        keys[envelope.agent].verify(envelope.signature, _signed_message(envelope.agent, envelope.batch,
                                                                       envelope.sent_text, path, digest))
    except InvalidSignature:
        raise Refused(401, "bad signature: wrong key, or the body or headers were altered", "bad-signature") from None
    return digest


@dataclass(frozen=True)
class Batch:
    """A verified ingest body, parsed."""

    agent: str
    readings: tuple[Reading, ...]
    dropped: tuple[tuple[int, int], ...]


def parse_batch(envelope: Envelope, body: bytes) -> Batch:
    """Parse an authenticated ingest body; raise Refused(400/422) naming the first problem."""
    items, dropped = parse_batch_fields(envelope, body)
    return Batch(envelope.agent, tuple(Reading(agent=f[0], check=f[1], seq=f[2], ts=f[3], status=f[4],
                                               interval_s=f[5], latency_ms=f[6], metrics=f[7], error=f[8])
                                       for f in items), dropped)


def parse_batch_fields(envelope: Envelope, body: bytes) -> tuple[list[Fields], tuple[tuple[int, int], ...]]:
    """parse_batch without building Reading objects: each reading's checked fields (see
    `reading.fields`) and the dropped ranges. The watchdog's ingest uses it directly."""
    try:
        data = json.loads(body.decode("utf-8"))  # strict: no surrogates smuggled in as raw bytes
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Refused(400, "body is not UTF-8 JSON", "not-json") from None
    if not isinstance(data, dict) or set(data) != {"agent", "readings", "dropped"}:
        raise Refused(422, 'body must be an object with exactly "agent", "readings" and "dropped"')
    if data["agent"] != envelope.agent:
        raise Refused(422, "body's agent differs from the signed Slawatch-Agent header")
    if not isinstance(data["readings"], list) or not isinstance(data["dropped"], list):
        raise Refused(422, '"readings" and "dropped" must be arrays')
    items = []
    agent = envelope.agent
    for i, item in enumerate(data["readings"]):
        try:
            checked = fields(item)
        except ValueError as exc:
            raise Refused(422, f"readings[{i}]: {exc}") from None
        if checked[0] != agent:
            raise Refused(422, f"readings[{i}]: agent {checked[0]!r} is not the sender")
        items.append(checked)
    return items, tuple(_dropped(data["dropped"]))


def _dropped(ranges: list[Any]) -> list[tuple[int, int]]:
    result = []
    for i, pair in enumerate(ranges):
        if (not isinstance(pair, list) or len(pair) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) and 0 < n < 2**63 for n in pair)
                or pair[0] > pair[1]):
            raise Refused(422, f"dropped[{i}]: expected [first_seq, last_seq] with first <= last")
        result.append((pair[0], pair[1]))
    return result
