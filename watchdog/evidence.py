"""The evidence chain: verify it, export it for a third party, import history into it."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from slawatch.agent.protocol import VERSION, canonical_json, signed_message
from slawatch.collectors.reading import Reading

from .ingest import rows
from .store import GENESIS, EvidenceRow, Incoming, Reader, Store, chain_hash, now_ms

IMPORT_BATCH = 1000  # readings per evidence record of an import
IMPORT_GROUP = 50    # evidence records per transaction


@dataclass(frozen=True)
class Finding:
    """The first batch that does not verify, and why."""

    evidence_id: int
    agent: str
    batch: str
    reason: str


def verify_chain(reader: Reader, keys: Mapping[str, Ed25519PublicKey]) -> tuple[int, Finding | None]:
    """Recompute every hash and signature in chain order; (batches checked, first bad batch or None).

    `keys` are the agents' public keys from watchdog.toml; an agent no longer listed is checked
    with the key stored beside its batches.
    """
    previous, checked = GENESIS, 0
    for row in reader.evidence():
        problem = _problem(row, previous, keys)
        if problem:
            return checked, Finding(row.id, row.agent, row.batch, problem)
        previous, checked = row.hash, checked + 1
    return checked, None


def _problem(row: EvidenceRow, previous: bytes, keys: Mapping[str, Ed25519PublicKey]) -> str | None:
    if hashlib.sha256(row.body).digest() != row.body_sha256:
        return "its body does not match its recorded SHA-256 (the body was altered)"
    if chain_hash(previous, row.body_sha256, row.signature) != row.hash:
        return "its chain hash does not follow from the previous batch (the chain was altered)"
    if row.kind == "import":
        return None if row.signature is None else "an import carries a signature"
    if row.signature is None:
        return "a received batch without a signature"
    key = keys.get(row.agent)
    if key is None and row.public_key is not None:
        key = Ed25519PublicKey.from_public_bytes(row.public_key)
    if key is None:
        return "no public key known for its agent"
    try:
        key.verify(row.signature, signed_message(row.agent, row.batch, row.sent, row.path, row.body))
    except InvalidSignature:
        return "its signature does not verify with the agent's public key"
    return None


def export(reader: Reader, keys: Mapping[str, str], start: int, end: int, folder: Path) -> int:
    """Write the batches received in [start, end) with the agents' public keys and a README."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    first_previous: bytes | None = None
    with (folder / "batches.jsonl").open("w", encoding="utf-8") as out:
        for row in reader.evidence(start, end):
            if first_previous is None:
                first_previous = reader.previous_hash(row.id)
            out.write(json.dumps({
                "evidence": row.id, "agent": row.agent, "batch": row.batch, "kind": row.kind, "path": row.path,
                "sent": row.sent, "received_at": _iso(row.received_at),
                "body": base64.b64encode(row.body).decode(), "body_sha256": row.body_sha256.hex(),
                "signature": None if row.signature is None else base64.b64encode(row.signature).decode(),
                "hash": row.hash.hex()}, sort_keys=True) + "\n")
            count += 1
    used = {json.loads(line)["agent"] for line in (folder / "batches.jsonl").read_text().splitlines()}
    (folder / "public_keys.json").write_text(
        json.dumps({agent: key for agent, key in sorted(keys.items()) if agent in used}, indent=2) + "\n")
    (folder / "previous_hash.txt").write_text((first_previous or GENESIS).hex() + "\n")
    (folder / "README.md").write_text(README.format(
        count=count, start=_bound(start, "the start of the chain"), end=_bound(end, "the export"), version=VERSION))
    return count


def _bound(ms: int, otherwise: str) -> str:
    return otherwise if abs(ms) >= 2**62 else _iso(ms)


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds")


README = textwrap.dedent('''\
    # slawatch evidence export

    {count} batches received from {start} to {end}, in chain order.

    - `batches.jsonl`: one batch per line: `body` (base64 of the exact bytes the agent sent),
      `signature` (base64 Ed25519, null for history imported from a file), `sent`, `path`,
      `agent`, `batch`, and `hash`, the chain hash after this batch.
    - `public_keys.json`: the agents' public keys (`ed25519:<base64>`), as configured on the watchdog.
      Compare them with the keys the agents' owners printed with `slawatch-agent keygen`.
    - `previous_hash.txt`: the chain hash before the first batch here (64 zeros at the chain's start).

    Each batch was signed over these lines, joined by newlines:
    `{version}`, the agent id, the batch id, the `sent` time, the request path, and the hex SHA-256
    of the body. The chain hash is `sha256(previous hash || sha256(body) || signature)` (raw bytes;
    an empty signature for imports). Check everything with Python 3 and `cryptography`:

    ```python
    import base64, hashlib, json
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    keys = {{agent: Ed25519PublicKey.from_public_bytes(base64.b64decode(line.split(":", 1)[1]))
            for agent, line in json.load(open("public_keys.json")).items()}}
    previous = bytes.fromhex(open("previous_hash.txt").read().strip())
    for line in open("batches.jsonl"):
        b = json.loads(line)
        body = base64.b64decode(b["body"])
        digest = hashlib.sha256(body).digest()
        signature = base64.b64decode(b["signature"]) if b["signature"] else b""
        if signature:
            message = "\\n".join(["{version}", b["agent"], b["batch"], b["sent"], b["path"], digest.hex()])
            keys[b["agent"]].verify(signature, message.encode())  # raises InvalidSignature if forged
        previous = hashlib.sha256(previous + digest + signature).digest()
        assert previous.hex() == b["hash"], f"chain broken at batch {{b['batch']}}"
    print("all batches verify; chain head", previous.hex())
    ```

    The chain head printed last must equal the head the watchdog sent both parties (the daily
    anchor, and the one in every report) for the log to be the one they were shown.
    ''')


# --- import -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str


def read_jsonl(path: Path) -> tuple[list[tuple[int, Reading]], list[BadLine]]:
    """The readings of a JSON-lines file with their line numbers, and the lines that are not readings."""
    good: list[tuple[int, Reading]] = []
    bad: list[BadLine] = []
    seen: dict[tuple[str, int], int] = {}
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
                reading = Reading.from_json(data)
                rows([reading])  # the same checks as ingest (text SQLite can hold)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                bad.append(BadLine(number, str(exc) if not isinstance(exc, json.JSONDecodeError)
                                   else f"not JSON ({exc.msg})"))
                continue
            except Exception as exc:  # Refused from rows(): same reason text
                bad.append(BadLine(number, getattr(exc, "reason", str(exc))))
                continue
            key = (reading.agent, reading.seq)
            if key in seen:
                bad.append(BadLine(number, f"agent {reading.agent} seq {reading.seq} already on line {seen[key]}"))
                continue
            seen[key] = number
            good.append((number, reading))
    return good, bad


def import_readings(store: Store, path: Path, readings: list[tuple[int, Reading]]) -> tuple[int, int]:
    """Store readings through the ingest path, one evidence record per agent and 1,000 readings,
    marked as imported; (stored, already present)."""
    stored = duplicates = 0
    name = path.name
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    group: list[Incoming] = []
    for agent, chunk in _chunks(readings):
        body = canonical_json({"agent": agent, "readings": [r.to_json() for _, r in chunk],
                               "dropped": [], "file": name, "lines": [chunk[0][0], chunk[-1][0]]})
        group.append(Incoming(agent=agent, batch=f"import-{digest}-{chunk[0][0]}", kind="import",
                              path=f"import:{name}", sent=_iso(now_ms()), body=body, signature=None,
                              public_key=None, rows=rows([r for _, r in chunk])))
        if len(group) == IMPORT_GROUP:
            stored, duplicates = _store(store, group, stored, duplicates)
            group = []
    if group:
        stored, duplicates = _store(store, group, stored, duplicates)
    return stored, duplicates


def _store(store: Store, group: list[Incoming], stored: int, duplicates: int) -> tuple[int, int]:
    """One transaction for the group; a resent chunk (the file imported before) counts as duplicates."""
    for incoming, result in zip(group, store.store(group)):
        if isinstance(result, Exception):
            raise result
        stored += 0 if result.resend else result.ack["stored"]
        duplicates += len(incoming.rows) if result.resend else result.ack["duplicates"]
    return stored, duplicates


def _chunks(readings: list[tuple[int, Reading]]) -> Iterator[tuple[str, list[tuple[int, Reading]]]]:
    by_agent: dict[str, list[tuple[int, Reading]]] = {}
    for item in readings:
        by_agent.setdefault(item[1].agent, []).append(item)
    for agent, items in by_agent.items():
        for i in range(0, len(items), IMPORT_BATCH):
            yield agent, items[i:i + IMPORT_BATCH]
