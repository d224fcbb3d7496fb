"""The evidence chain: verify it, export it for a third party, import history into it."""

from __future__ import annotations

import base64
import codecs
import contextlib
import datetime as dt
import hashlib
import json
import sqlite3
import textwrap
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from slawatch.agent.protocol import INGEST_PATH, MANIFEST_PATH, VERSION, Refused, canonical_json, signed_message
from slawatch.collectors.reading import Reading, parse_ts

from .ingest import rows, ts_ms
from .intervals import clip, runs_of
from .store import DAY_MS, GENESIS, EvidenceRow, Incoming, Reader, Row, Store, chain_hash, now_ms

IMPORT_BATCH = 1000  # readings per evidence record of an import
IMPORT_GROUP = 50    # evidence records gathered before their intervals and rollups are written


@dataclass(frozen=True)
class Finding:
    """The first batch that does not verify, and why."""

    evidence_id: int
    agent: str
    batch: str
    reason: str


@dataclass
class Verified:
    """What a verification found: signed and imported batches that hold, and the first that does not."""

    signed: int = 0
    imported: int = 0
    readings: int = 0
    finding: Finding | None = None
    purged_before: int | None = None  # raw readings taken before it count as deleted by retention


KeyLines = Mapping[str, Sequence[str]]  # agent -> its public key lines, current first, then previous_keys


KINDS = {INGEST_PATH: "readings", MANIFEST_PATH: "manifest"}  # a signed batch's kind, by its signed path


def verify_chain(reader: Reader, keys: KeyLines) -> Verified:
    """Recompute every hash and signature in chain order, and compare every stored reading with the
    signed body it came in: each batch's stored readings must be its body's, and each reading of a
    body must be stored (under it, or under an earlier batch that brought the same seq) unless
    retention deleted it; no stored reading may be outside every batch. Signatures are checked only
    with keys watchdog.toml lists (the database says which of them, and it must be one of them)."""
    result = Verified()
    previous = GENESIS
    parsed = {agent: {_raw(line): line for line in lines} for agent, lines in keys.items()}
    held = reader.readings_per_batch()
    purged = result.purged_before = reader.readings_purged_before()
    for row in reader.evidence():
        problem = (_problem(row, previous, parsed)
                   or _readings_problem(reader, row, result, held.pop(row.id, 0), purged))
        if problem:
            result.finding = Finding(row.id, row.agent, row.batch, problem)
            return result
        previous = row.hash
        if row.kind == "import":
            result.imported += 1
        else:
            result.signed += 1
    if held:  # readings naming a batch the chain does not hold
        evidence_id = min(held)
        result.finding = Finding(evidence_id, "", "", f"the store holds {sum(held.values())} readings under batches "
                                 f"the chain does not hold (first: evidence #{evidence_id}): they were added or moved")
    return result


def verify_intervals(reader: Reader, history_from: int) -> tuple[int, str | None]:
    """Fold every check's intervals again from its raw readings (those retention kept, with its
    agent's dropped ranges) and compare them with the stored ones, which every report is computed
    from: from the check's first raw reading (before it, the stored runs came from readings deleted
    since) or `history_from` (history retention), whichever is later. (Checks compared, the first
    difference.)"""
    checked = 0
    for agent, check, readings in reader.replayed(reader.readings_purged_before() or -2**62):
        start = max(readings[0][0], history_from)
        want = clip(runs_of(readings), start, 2**62)
        got = clip(reader.intervals(agent, check, start, 2**62), start, 2**62)
        if got != want:
            (stored, folded) = next((g, w) for g, w in zip([*got, None], [*want, None]) if g != w)
            return checked, (f"the intervals of agent {agent} check {check} differ from its raw readings: stored "
                             f"{_run_text(stored)} where they fold into {_run_text(folded)} (the intervals were edited)")
        checked += 1
    return checked, None


def _run_text(run: tuple[int, int, str] | None) -> str:
    if run is None:
        return "nothing"
    start, end, status = run
    return f"{status} from {_iso(start)} to {'the end' if end >= 2**62 else _iso(end)}"


def _raw(line: str) -> bytes:
    return base64.b64decode(line.removeprefix("ed25519:"))


def _problem(row: EvidenceRow, previous: bytes, keys: Mapping[str, Mapping[bytes, str]]) -> str | None:
    if hashlib.sha256(row.body).digest() != row.body_sha256:
        return "its body does not match its recorded SHA-256 (the body was altered)"
    if chain_hash(previous, row.body_sha256, row.signature) != row.hash:
        return "its chain hash does not follow from the previous batch (the chain was altered)"
    if row.kind == "import":
        return None if row.signature is None else "an import carries a signature"
    if row.signature is None:
        return "a received batch without a signature"
    if row.kind != KINDS.get(row.path):
        return f"its kind ({row.kind}) is not the one of the path its agent signed ({row.path})"
    listed = keys.get(row.agent)
    if listed is None:
        return "its agent is not in watchdog.toml: list it (keys and all) for as long as its evidence is kept"
    if row.public_key is None or row.public_key not in listed:
        return ("it was signed with a key watchdog.toml does not list for this agent "
                "(after a key change, keep the old key in previous_keys)")
    try:
        Ed25519PublicKey.from_public_bytes(row.public_key).verify(
            row.signature, signed_message(row.agent, row.batch, row.sent, row.path, row.body))
    except InvalidSignature:
        return "its signature does not verify with the agent's public key"
    return None


def _readings_problem(reader: Reader, row: EvidenceRow, result: Verified, held: int,
                      purged: int | None) -> str | None:
    """The stored readings of this batch (`held` of them) must be the ones in its signed body,
    unaltered, and each reading of its body must be stored unless retention deleted it."""
    if row.kind == "manifest":
        return None if held == 0 else f"the store holds {held} readings under a manifest"
    try:
        body = json.loads(row.body)
        signed = {item["seq"]: item for item in body["readings"]}
    except (ValueError, KeyError, TypeError):
        return "its body holds no readings array"
    if body.get("agent") != row.agent:  # an import's record names its agent outside the chain
        return f"its body is agent {str(body.get('agent'))[:64]}'s, not the agent it is filed under (it was moved)"
    compared = set()
    if signed:
        for seq, owner, check, ts, status, interval_s, latency_ms, error in reader.readings_of(
                row.agent, min(signed), max(signed), row.id):
            item = signed.get(seq)
            if item is None:
                return f"the store holds seq {seq} under it, which its body does not"
            if (owner, check, ts, status, interval_s, latency_ms, error) != (
                    row.agent, item["check"], ts_ms(parse_ts(item["ts"])), item["status"], float(item["interval_s"]),
                    None if item.get("latency_ms") is None else float(item["latency_ms"]), item.get("error")):
                return f"the stored reading seq {seq} differs from the one its agent sent (the store was edited)"
            compared.add(seq)
    if held != len(compared):
        return f"the store holds {held - len(compared)} readings under it outside its body's seqs"
    result.readings += len(compared)
    # The body's other readings came before, under another batch (a resend), or retention deleted them.
    kept = [seq for seq, item in signed.items() if seq not in compared
            and (purged is None or ts_ms(parse_ts(item["ts"])) >= purged)]
    missing = sorted(set(kept) - reader.stored_seqs(row.agent, kept)) if kept else []
    if missing:
        return f"seq {missing[0]} of its body is not stored ({len(missing)} readings deleted from the store)"
    return None


def export(reader: Reader, keys: KeyLines, start: int, end: int, folder: Path) -> int:
    """Write the batches of the period [start, end) with the agents' public keys and a README: those
    received in it, and those that brought readings taken in it or within a day of it (a period
    in any timezone, and the readings holding into it; a backlog or an import arrives late), and
    the whole chain between the first of them and the last. Into a new or empty folder: a failure
    leaves nothing behind.

    Raise ValueError when a batch was signed with a key watchdog.toml does not list: a third
    party must get the keys from the configuration, not from the database being checked."""
    if folder.is_dir() and any(folder.iterdir()):
        raise ValueError(f"{folder} is not empty: name a new or empty folder (an earlier export is not overwritten)")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return _export(reader, keys, start, end, folder)
    except BaseException:
        for name in ("batches.jsonl", "public_keys.json", "previous_hash.txt", "README.md"):
            (folder / name).unlink(missing_ok=True)
        raise


def _export(reader: Reader, keys: KeyLines, start: int, end: int, folder: Path) -> int:
    count = 0
    first_previous: bytes | None = None
    used: set[str] = set()
    # The chain from the first such batch to the last, whole: receive times come from the
    # watchdog's clock, which may have stepped back in between.
    spans = [s for s in (reader.evidence_span(start, end),
                         reader.evidence_span_of_readings(max(start, -2**62 + DAY_MS) - DAY_MS,
                                                          min(end, 2**62 - DAY_MS) + DAY_MS)) if s]
    span = (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None
    with (folder / "batches.jsonl").open("w", encoding="utf-8") as out:
        for row in (reader.evidence(*span) if span else ()):
            if first_previous is None:
                first_previous = reader.previous_hash(row.id)
            key_line = None
            if row.signature is not None:
                listed = {_raw(line): line for line in keys.get(row.agent, ())}
                if row.public_key not in listed:
                    raise ValueError(f"batch {row.batch} of agent {row.agent} was signed with a key watchdog.toml "
                                     "does not list for it; list it (previous_keys) before exporting")
                key_line = listed[row.public_key]
                used.add(row.agent)
            out.write(json.dumps({
                "evidence": row.id, "agent": row.agent, "batch": row.batch, "kind": row.kind, "path": row.path,
                "sent": row.sent, "received_at": _iso(row.received_at), "public_key": key_line,
                "body": base64.b64encode(row.body).decode(), "body_sha256": row.body_sha256.hex(),
                "signature": None if row.signature is None else base64.b64encode(row.signature).decode(),
                "hash": row.hash.hex()}, sort_keys=True) + "\n")
            count += 1
    (folder / "public_keys.json").write_text(
        json.dumps({agent: list(keys[agent]) for agent in sorted(used)}, indent=2) + "\n")
    # With no batch, the chain as it stood at the period's start: a later export continues from it.
    (folder / "previous_hash.txt").write_text((first_previous or reader.head_before(start)).hex() + "\n")
    (folder / "README.md").write_text(README.format(
        count=count, start=_bound(start, "the start of the chain"), end=_bound(end, "the export"), version=VERSION))
    return count


def _bound(ms: int, otherwise: str) -> str:
    return otherwise if abs(ms) >= 2**62 else _iso(ms)


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds")


README = textwrap.dedent('''\
    # slawatch evidence export

    {count} batches, in chain order: those received from {start} to {end}, those that brought
    readings taken then or within a day of it, and every batch between the first and the last.

    - `batches.jsonl`: one batch per line: `body` (base64 of the exact bytes the agent sent),
      `signature` (base64 Ed25519, null for history imported from a file), `sent`, `path`,
      `agent`, `batch`, and `hash`, the chain hash after this batch.
    - `public_keys.json`: each agent's public keys (`ed25519:<base64>`) as configured on the watchdog,
      the current one first, then earlier ones (key changes). Compare them with the keys the
      agents' owners printed with `slawatch-agent keygen`. Each batch names the one it was signed with.
    - `previous_hash.txt`: the chain hash before the first batch here (64 zeros at the chain's start;
      with no batch here, the chain hash as it stood at the start).

    Each batch was signed over these lines, joined by newlines:
    `{version}`, the agent id, the batch id, the `sent` time, the request path, and the hex SHA-256
    of the body. The chain hash is `sha256(previous hash || sha256(body) || signature)` (raw bytes;
    an empty signature for imports). Check everything with Python 3 and `cryptography`:

    ```python
    import base64, hashlib, json
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    keys = json.load(open("public_keys.json"))
    previous = bytes.fromhex(open("previous_hash.txt").read().strip())
    heads, imported = {{}}, 0
    for line in open("batches.jsonl"):
        b = json.loads(line)
        body = base64.b64decode(b["body"])
        digest = hashlib.sha256(body).digest()
        if b["signature"] is None:  # only history imported from a file has none
            if b["kind"] != "import":
                raise SystemExit(f"batch {{b['batch']}}: a received batch without a signature")
            imported += 1
            signature = b""
        else:
            signature = base64.b64decode(b["signature"])
            if b["public_key"] not in keys.get(b["agent"], []):
                raise SystemExit(f"batch {{b['batch']}}: signed with a key not listed for {{b['agent']}}")
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(b["public_key"].split(":", 1)[1]))
            message = "\\n".join(["{version}", b["agent"], b["batch"], b["sent"], b["path"], digest.hex()])
            key.verify(signature, message.encode())  # raises InvalidSignature if forged
        previous = hashlib.sha256(previous + digest + signature).digest()
        if previous.hex() != b["hash"]:
            raise SystemExit(f"chain broken at batch {{b['batch']}}")
        heads[b["evidence"]] = previous.hex()
    print(f"all {{len(heads)}} batches verify ({{imported}} imported, unsigned); chain head", previous.hex())
    ```

    Each daily anchor, and every report, names the chain head and how many batches the chain held
    then (`batches`): `heads[batches]` must equal that head (the export must reach that batch), for
    the log to be the one both parties were shown.
    ''')


# --- import -----------------------------------------------------------------------------------

class FileChanged(ValueError):
    """An import file that is not the one its first pass checked."""


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str


@dataclass
class Scan:
    """What a first pass over an import file found."""

    good: int = 0
    bad: list[BadLine] = field(default_factory=list)
    sha256: str = ""  # of the file as read: the second pass must read the same


def _lines(path: Path, agents: Collection[str], latest_ms: int,
           digest: Any = None) -> Iterator[tuple[int, tuple[Reading, Row] | BadLine]]:
    """Each non-empty line of a JSON-lines file as a reading (and its store row), or as the reason
    it is none; `digest` (a hashlib object) takes every byte read. The (agent, seq) already met go
    to a temporary database on disk, not to memory: a year of history is tens of millions of lines."""
    seen = sqlite3.connect("")  # private, on disk, deleted when closed
    seen.execute("PRAGMA journal_mode = OFF")
    seen.execute("CREATE TABLE seen (agent TEXT, seq INTEGER, line INTEGER, PRIMARY KEY (agent, seq)) WITHOUT ROWID")
    with contextlib.closing(seen), path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if digest is not None:
                digest.update(raw)
            if number == 1 and raw.startswith(codecs.BOM_UTF8):  # a BOM some editors write first
                raw = raw[len(codecs.BOM_UTF8):]
            if not raw.strip():
                continue
            try:
                # As its evidence record will hold it (latency to the microsecond, time to the
                # millisecond): what is stored is what the record says.
                reading = Reading.from_json(Reading.from_json(json.loads(raw.decode("utf-8"))).to_json())
                (row,) = rows([reading])  # the same checks as ingest (text SQLite can hold)
            except json.JSONDecodeError as exc:
                yield number, BadLine(number, f"not JSON ({exc.msg})")
                continue
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                yield number, BadLine(number, str(exc) if not isinstance(exc, UnicodeDecodeError) else "not UTF-8")
                continue
            except Refused as refused:
                yield number, BadLine(number, refused.reason.split(": ", 1)[-1])
                continue
            if reading.agent not in agents:
                yield number, BadLine(number, f"agent {reading.agent} is not in watchdog.toml; list it there "
                                              "(history of a retired agent too) or fix the line")
                continue
            if row.ts > latest_ms:
                yield number, BadLine(number, f"taken in the future ({reading.to_json()['ts']})")
                continue
            added = seen.execute("INSERT OR IGNORE INTO seen VALUES (?, ?, ?)", (reading.agent, reading.seq, number))
            if added.rowcount == 0:
                (first,) = seen.execute("SELECT line FROM seen WHERE agent = ? AND seq = ?",
                                        (reading.agent, reading.seq)).fetchone()
                yield number, BadLine(number, f"agent {reading.agent} seq {reading.seq} already on line {first}")
                continue
            yield number, (reading, row)


def scan_jsonl(path: Path, agents: Collection[str], latest_ms: int, reader: Reader | None = None) -> Scan:
    """First pass: count the good lines and name the bad ones (a thousand lines in memory at most),
    among them those that contradict a reading the store holds (`reader`)."""
    scan = Scan()
    pending: list[tuple[int, str, Row]] = []
    digest = hashlib.sha256()

    def against_store() -> None:
        contradicting = _contradicting(reader, pending) if reader is not None else []
        scan.bad += contradicting
        scan.good -= len(contradicting)
        pending.clear()

    for number, item in _lines(path, agents, latest_ms, digest):
        if isinstance(item, BadLine):
            scan.bad.append(item)
            continue
        scan.good += 1
        pending.append((number, item[0].agent, item[1]))
        if len(pending) == IMPORT_BATCH:
            against_store()
    against_store()
    scan.bad.sort(key=lambda bad: bad.line)
    scan.sha256 = digest.hexdigest()
    return scan


def _contradicting(reader: Reader, lines: Sequence[tuple[int, str, Row]]) -> list[BadLine]:
    """The lines whose (agent, seq) the store holds for another reading: an import adds readings,
    it never changes one (nor files a body that says otherwise beside it)."""
    bad = []
    for agent in sorted({agent for _, agent, _ in lines}):
        ours = [(number, row) for number, of, row in lines if of == agent]
        stored = reader.stored_readings(agent, [row.seq for _, row in ours])
        for number, row in ours:
            held = stored.get(row.seq)
            if held is not None and held != (row.check, row.ts, row.status, row.interval_s, row.latency_ms, row.error):
                bad.append(BadLine(number, f"agent {agent} seq {row.seq} is stored as another reading (check "
                                           f"{held[0]}, {held[2]} at {_iso(held[1])}): an import cannot change it; "
                                           "leave the line out or number it anew"))
    return bad


def import_readings(store: Store, path: Path, scan: Scan, agents: Collection[str],
                    latest_ms: int) -> tuple[int, int]:
    """Second pass: store the good lines through the ingest path, one evidence record per agent
    and 1,000 readings, marked as imported, all in one transaction (a failure imports nothing);
    (stored, already present)."""
    results = store.store_atomically(_groups(path, agents, latest_ms, {bad.line for bad in scan.bad}, scan.sha256))
    stored = sum(0 if r.resend else r.ack["stored"] for r, _ in results)
    duplicates = sum(count if r.resend else r.ack["duplicates"] + r.ack["reused_seqs"] for r, count in results)
    return stored, duplicates


def _groups(path: Path, agents: Collection[str], latest_ms: int, bad: Collection[int],
            checked_sha256: str) -> Iterator[list[tuple[Incoming, int]]]:
    """Evidence records of up to 1,000 readings of one agent, IMPORT_GROUP at a time. Raise
    ValueError, before the last group (so the transaction imports nothing), when the file is not
    the one the first pass checked (written to since)."""
    pending: dict[str, list[tuple[int, Reading, Row]]] = {}
    group: list[tuple[Incoming, int]] = []
    digest = hashlib.sha256()
    for number, item in _lines(path, agents, latest_ms, digest):
        if isinstance(item, BadLine) or number in bad:
            continue
        reading, row = item
        chunk = pending.setdefault(reading.agent, [])
        chunk.append((number, reading, row))
        if len(chunk) == IMPORT_BATCH:
            group.append(_record(path, reading.agent, pending.pop(reading.agent)))
            if len(group) == IMPORT_GROUP:
                yield group
                group = []
    group += [_record(path, agent, chunk) for agent, chunk in pending.items()]
    if digest.hexdigest() != checked_sha256:
        raise FileChanged("the file changed since its lines were checked (is something still writing it?); "
                          "import it again once it is complete")
    if group:
        yield group


def _record(path: Path, agent: str, chunk: list[tuple[int, Reading, Row]]) -> tuple[Incoming, int]:
    body = canonical_json({"agent": agent, "readings": [reading.to_json() for _, reading, _ in chunk],
                           "dropped": [], "file": path.name, "lines": [chunk[0][0], chunk[-1][0]]})
    # Named by its body: importing the same lines again is a resend; other lines (a renamed copy, a
    # line --skip-bad left out that is good now) are another record, whose known seqs count once.
    incoming = Incoming(agent=agent, batch=f"import-{hashlib.sha256(body).hexdigest()[:32]}", kind="import",
                        path=f"import:{path.name}",
                        sent=_iso(now_ms()), body=body, signature=None, public_key=None,
                        rows=[row for _, _, row in chunk])
    return incoming, len(chunk)
