"""The shipper: signed batches from the spool to the watchdog, oldest first, until acknowledged."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from slawatch.config.values import masked_url

from .protocol import INGEST_PATH, MANIFEST_PATH, Signer, new_batch_id, sign
from .spool import PendingBatch, Spool
from .waiting import wait_event

log = logging.getLogger(__name__)

T = TypeVar("T")
BACKOFF_START_S, BACKOFF_CAP_S = 1.0, 60.0
CONFIG_PROBLEM_RETRY_S = 300.0


class SpoolAccess:
    """The spool behind one worker thread: SQLite calls never block the event loop."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self.spool.close()


@dataclass
class Delivery:
    """Counters of the shipper, for self-metrics and tests."""

    batches: int = 0
    readings: int = 0
    failures: int = 0
    last_error: str | None = None
    last_ack: float | None = None


@dataclass
class Shipper:
    """Delivers the spool to the watchdog; never drops, retries with capped backoff."""

    agent: str
    url: str
    key: Signer
    spool: SpoolAccess
    batch_size: int = 1000
    batch_wait: float = 2.0
    ca_file: str | None = None
    manifest: bytes | None = None
    delivery: Delivery = field(default_factory=Delivery)
    _backoff: float = BACKOFF_START_S
    _down_logged: bool = False
    _manifest_due: float = 0.0
    # seq ranges the last acknowledgement named as held by the watchdog for other readings
    _reused: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._tls: ssl.SSLContext | bool = True
        if self.url.startswith("https://"):
            self._tls = ssl.create_default_context(cafile=self.ca_file)

    async def run(self, stopping: asyncio.Event) -> None:
        """Ship until `stopping` is set."""
        async with aiohttp.ClientSession(headers={"User-Agent": "slawatch-agent"}) as session:
            while not stopping.is_set():
                try:
                    pause = await self._step(session)
                except Exception as exc:  # the spool (locked, full) or a bug: log, back off, go on
                    log.error("event=ship-step-failed error=%r", exc)
                    self._failed(f"{type(exc).__name__}: {exc}")
                    pause = self._after(0)
                if pause > 0:
                    await self._sleep(pause, stopping)

    async def flush(self, seconds: float) -> None:
        """On shutdown: ship what can be shipped within `seconds`, without waiting for batches to fill."""
        deadline = time.monotonic() + seconds
        async with aiohttp.ClientSession(headers={"User-Agent": "slawatch-agent"}) as session:
            while time.monotonic() < deadline:
                batch = await self.spool.call(self.spool.spool.next_batch, self.batch_size)
                if batch is None:
                    return
                try:
                    async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                        if await self._send(session, INGEST_PATH, batch.id, batch.body) != 200:
                            return
                except TimeoutError:
                    return
                await self._acknowledged(batch)

    async def _step(self, session: aiohttp.ClientSession) -> float:
        """Send the manifest when one is due, then a batch; return how long to wait before the next."""
        if self.manifest is not None and time.monotonic() >= self._manifest_due:
            await self._send_manifest(session)
        ready = await self._ready_in()
        if ready > 0:
            return ready
        batch = await self.spool.call(self.spool.spool.next_batch, self.batch_size)
        if batch is None:
            return self.batch_wait or 1.0
        status = await self._send(session, INGEST_PATH, batch.id, batch.body)
        if status == 200:
            await self._acknowledged(batch)
        elif status == 409:
            log.error("event=batch-conflict batch=%s action=rebatch", batch.id)
            await self.spool.call(self.spool.spool.abandon, batch)
        elif status == 413 and batch.count > 1:
            self.batch_size = max(1, batch.count // 2)
            log.warning("event=batch-too-large batch=%s readings=%d action=rebatch batch_size=%d",
                        batch.id, batch.count, self.batch_size)
            await self.spool.call(self.spool.spool.abandon, batch)
            return 0.0
        elif status == 422 and (ahead := await self.spool.call(self.spool.spool.abandon_if_stamped_ahead, batch)):
            # Formed while the clock was ahead, the batch is refused until real time catches up with
            # its readings. Refused, it was not stored: it is abandoned and the next batch drops them.
            log.error("event=batch-refused status=422 batch=%s readings_stamped_ahead=%d action=rebatch",
                      batch.id, ahead)
            return 0.0
        return self._after(status)

    async def _send_manifest(self, session: aiohttp.ClientSession) -> None:
        """The manifest goes beside the readings: its failure never holds them back."""
        assert self.manifest is not None
        status = await self._send(session, MANIFEST_PATH, new_batch_id(), self.manifest)
        if status == 200:
            self.manifest = None
            log.info("event=manifest-sent")
        elif status in (404, 405):
            self.manifest = None
            log.warning("event=manifest-not-supported status=%d", status)
        else:
            self._manifest_due = time.monotonic() + (CONFIG_PROBLEM_RETRY_S if 400 <= status < 500 else 30.0)

    async def _ready_in(self) -> float:
        """Seconds until a batch is worth sending: it is full, or its oldest reading waited long enough."""
        spool = self.spool.spool
        if await self.spool.call(spool.holds_at_least, self.batch_size):
            return 0.0
        age = await self.spool.call(spool.oldest_age_s)
        if age == 0.0:
            return 0.0  # empty: a pending batch or dropped ranges may still wait; next_batch decides
        return max(0.0, self.batch_wait - age)

    async def _acknowledged(self, batch: PendingBatch) -> None:
        renumbered = await self.spool.call(self.spool.spool.acknowledge, batch, self._reused)
        if renumbered:
            # The spool went back (put back from a backup or a VM snapshot): the watchdog holds other
            # readings under these seqs. These stay, numbered anew, and go in a later batch.
            log.error("event=seqs-reused batch=%s readings=%d action=renumbered", batch.id, renumbered)
        self.delivery.batches += 1
        self.delivery.readings += batch.count - renumbered
        self.delivery.last_ack = time.time()

    async def _send(self, session: aiohttp.ClientSession, path: str, batch: str, body: bytes) -> int:
        """POST one signed body; the HTTP status, or 0 when the watchdog could not be reached."""
        headers = sign(self.key, self.agent, batch, path, body) | {"Content-Type": "application/json"}
        try:
            # A redirect is not followed: a login page answering 200 must not pass for an acknowledgement.
            async with session.post(self.url + path, data=body, headers=headers, ssl=self._tls, allow_redirects=False,
                                    timeout=aiohttp.ClientTimeout(total=30)) as response:
                text = (await response.read()).decode("utf-8", errors="replace")
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            self._failed(f"{type(exc).__name__}: {exc}")
            return 0
        self._reused = []
        if status == 200:
            answer = _acknowledgement(text, batch)
            if answer is None:  # something else answered: not delivered
                self._failed(f"HTTP 200 that is not the watchdog's acknowledgement of batch {batch}: {text[:300]}")
                return 0
            reused = answer.get("reused", [])
            self._reused = [r for r in reused if isinstance(r, list) and len(r) == 2
                            and all(isinstance(n, int) for n in r)] if isinstance(reused, list) else []
        if status != 200:
            self._failed(f"HTTP {status}: {text[:300]}")
        elif self._down_logged:
            log.info("event=watchdog-reachable url=%s", masked_url(self.url))
            self._down_logged = False
        return status

    def _failed(self, error: str) -> None:
        self.delivery.failures += 1
        self.delivery.last_error = error
        if not self._down_logged:
            log.warning("event=ship-failed url=%s error=%r", masked_url(self.url), error)
            self._down_logged = True

    def _after(self, status: int) -> float:
        """The pause after a send: none after success, backoff while failing."""
        if status == 200:
            self._backoff = BACKOFF_START_S
            return 0.0
        if 400 <= status < 500 and status not in (408, 409, 429):  # 408: the body came too slowly
            # The watchdog's reason (e.g. "stale": a wrong clock) on this line too: `ship-failed` is
            # logged only once while failures last, and may have named an earlier cause.
            log.error("event=ship-refused status=%d error=%r hint=%r", status, self.delivery.last_error,
                      "configuration problem (agent id, key or clock?); retrying slowly, nothing dropped")
            return CONFIG_PROBLEM_RETRY_S
        pause = self._backoff * random.uniform(0.5, 1.0)
        self._backoff = min(BACKOFF_CAP_S, self._backoff * 2)
        return pause

    async def _sleep(self, seconds: float, stopping: asyncio.Event) -> None:
        """Sleep, but wake early when stopping."""
        await wait_event(stopping, seconds)


def _acknowledgement(text: str, batch: str) -> dict[str, Any] | None:
    """The watchdog's acknowledgement of `batch` (JSON naming it), or None when the answer is not one."""
    try:
        answer = json.loads(text)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) and answer.get("batch") == batch else None
