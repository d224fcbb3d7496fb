"""A loopback ingest receiver for agent tests: verifies signatures with the shared protocol module."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from slawatch.agent.protocol import INGEST_PATH, MANIFEST_PATH, Refused, parse_batch, verify
from slawatch.collectors.reading import Reading


@dataclass
class Receiver:
    """What the receiver accepted; `fail_with` makes it answer that status instead."""

    keys: dict[str, Ed25519PublicKey]
    readings: dict[tuple[str, int], Reading] = field(default_factory=dict)
    duplicates: int = 0
    batches: dict[str, str] = field(default_factory=dict)  # batch id -> body sha256
    dropped: list[tuple[int, int]] = field(default_factory=list)
    manifests: list[dict[str, Any]] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    fail_with: int | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post(INGEST_PATH, self.ingest)
        app.router.add_post(MANIFEST_PATH, self.manifest)
        return app

    async def ingest(self, request: web.Request) -> web.Response:
        if self.fail_with is not None:
            return web.json_response({"error": "unavailable"}, status=self.fail_with)
        body = await request.read()
        try:
            envelope = verify(request.headers, INGEST_PATH, body, self.keys)
            digest = hashlib.sha256(body).hexdigest()
            if envelope.batch in self.batches:
                if self.batches[envelope.batch] != digest:
                    raise Refused(409, "batch id replayed with a different body")
                return web.json_response({"batch": envelope.batch, "resent": True})
            batch = parse_batch(envelope, body)
        except Refused as refused:
            self.refused.append((refused.status, refused.reason))
            return web.json_response({"error": refused.reason}, status=refused.status)
        self.batches[envelope.batch] = digest
        for reading in batch.readings:
            if (reading.agent, reading.seq) in self.readings:
                self.duplicates += 1
            self.readings[(reading.agent, reading.seq)] = reading
        self.dropped.extend(batch.dropped)
        return web.json_response({"batch": envelope.batch, "accepted": len(batch.readings)})

    async def manifest(self, request: web.Request) -> web.Response:
        if self.fail_with is not None:
            return web.json_response({"error": "unavailable"}, status=self.fail_with)
        body = await request.read()
        try:
            envelope = verify(request.headers, MANIFEST_PATH, body, self.keys)
        except Refused as refused:
            return web.json_response({"error": refused.reason}, status=refused.status)
        import json
        self.manifests.append(json.loads(body))
        return web.json_response({"batch": envelope.batch})

    def seqs(self, agent: str = "probe", check: str | None = None) -> list[int]:
        return sorted(seq for (a, seq), r in self.readings.items() if a == agent and (check is None or r.check == check))
