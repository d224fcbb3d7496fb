"""The outbox's sending side: decisions become one message per Apprise URL, and a sender delivers
them with per-URL retries and exponential backoff, never twice once one succeeded.

The outbox holds only a URL's sha256 and its privacy form: the URL itself is a secret that stays
in the configuration and is looked up at send time. Nothing here logs a URL other than its
`shown()` form, and delivery errors are redacted before they are stored or logged.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import contextvars
import functools
import hashlib
import json
import logging
import random
import re
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote

from slawatch.agent.waiting import wait_event
from slawatch.config.contract import Contract, Party

from .store import Message, OutboxRow, Reader, Store

log = logging.getLogger(__name__)

T = TypeVar("T")
DELIVERY_TIMEOUT_S = 60.0   # one notify call at most; a hung mail server must not hold a worker forever
ERROR_CHARS = 300           # stored and logged error texts are cut to this
NOTIFY_TYPES = {"outage": "failure", "breach": "failure", "agent-silent": "failure", "budget": "warning",
                "tls-expiring": "warning", "recovery": "success", "agent-back": "success"}


def _apprise() -> Any:
    """apprise, imported on first use (it loads ~190 plugins), its log made safe to keep: see
    `_AppriseLog`. Its records stay with apprise (each call's own capture, read by `deliver`)."""
    import apprise

    logger = logging.getLogger("apprise")
    if not any(isinstance(f, _AppriseLog) for f in logger.filters):
        logger.addFilter(_AppriseLog())
        logger.propagate = False  # apprise keeps its own NullHandler; our own lines say what happened
        logger.setLevel(logging.DEBUG)  # "Socket Exception" (the reason of a failure) is logged at DEBUG
    # apprise posts through requests; urllib3 logs each request's path, a webhook's token, at DEBUG
    transport = logging.getLogger("urllib3")
    if transport.getEffectiveLevel() < logging.INFO:
        transport.setLevel(logging.INFO)
    return apprise


# The URL apprise is working on in this context (apprise copies contexts into its worker threads):
# (url, its privacy form, the parts of it that form hides).
_in_use: contextvars.ContextVar[tuple[str, str, tuple[str, ...]] | None] = contextvars.ContextVar(
    "slawatch_apprise_url", default=None)


class _AppriseLog(logging.Filter):
    """On apprise's logger, before any handler: DEBUG records go (they hold request URLs, headers
    and payloads, where tokens are) except a failure's "Socket Exception", cut to its reason; what
    stays has the URL in use redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno < logging.INFO:
            if not message.startswith("Socket Exception:"):
                return False
            message = _reason(message)
        in_use = _in_use.get()
        if in_use is not None:
            url, visible, secrets = in_use
            message = _hide(message.replace(url, visible), secrets)
        record.msg, record.args = message, ()
        return True


def _reason(message: str) -> str:
    """A "Socket Exception: ..." line without the request path urllib3 puts in it."""
    errno = re.search(r"\[Errno -?\d+\][^'\"()]*", message)
    if errno:
        return f"Socket Exception: {errno.group(0).strip()}"
    return re.sub(r"\burl: \S+", "url: (not shown)", message)


@contextlib.contextmanager
def _using(url: str, visible: str) -> Iterator[None]:
    token = _in_use.set((url, visible, _secrets(url, visible)))
    try:
        yield
    finally:
        _in_use.reset(token)


def _service(url: str, visible: str) -> Any:
    """Apprise's service object for `url`, or None when apprise cannot use it."""
    apprise = _apprise()
    with _using(url, visible):
        return apprise.Apprise.instantiate(url)


def url_hash(url: str) -> str:
    """The outbox's name for a URL: its sha256, hex."""
    return hashlib.sha256(url.encode()).hexdigest()


@functools.lru_cache(maxsize=1024)  # messages_for and redact ask often, and apprise parses slowly
def shown(url: str) -> str:
    """The URL as apprise shows it with privacy=True; a masked form when apprise cannot parse it."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    masked = f"{scheme}://***" if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]{0,31}", scheme) else "***"
    service = _service(url, masked)  # while apprise parses it, all of it but the scheme is secret
    if service is None:
        return masked
    # apprise shows custom headers (json://...?+Authorization=...) as they are: hide their values too
    return re.sub(r"([?&](?:\+|%2B)[^=&]*=)[^&]*", r"\1****", str(service.url(privacy=True)), flags=re.IGNORECASE)


def _secrets(url: str, visible: str) -> tuple[str, ...]:
    """The parts of `url` that `visible`, its privacy form, hides (password, tokens, keys), longest first."""
    parts = {part for piece in re.split(r"[:/@?&=#,;]+", url) if piece
             for part in (piece, unquote(piece)) if len(part) >= 3 and part not in visible}
    return tuple(sorted(parts, key=len, reverse=True))


def _hide(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, "****")
    return text


def redact(text: str, url: str) -> str:
    """`text` without any part of `url` that its privacy form hides."""
    visible = shown(url)
    return _hide(text.replace(url, visible), _secrets(url, visible))


def urls_of(contracts: Iterable[Contract]) -> dict[str, str]:
    """url_hash -> URL for every notify URL of the contracts (what a Sender looks URLs up in)."""
    return {url_hash(url): str(url) for c in contracts for party in (c.client, c.provider) for url in party.notify}


def messages_for(party_name: str, party: Party, contract_id: str, event: str, key: str, title: str, body: str,
                 body_format: str = "text", attachments: str | None = None) -> list[Message]:
    """One outbox message per URL of the party, if the party takes this event."""
    if event not in party.events:
        return []
    messages: dict[str, Message] = {}
    for url in party.notify:
        digest = url_hash(url)
        messages[digest] = Message(f"{key}|{party_name}|{digest}", event, contract_id, party_name, digest,
                                   shown(url), title, body, body_format, attachments)
    return list(messages.values())


def deliver(url: str, title: str, body: str, body_format: str = "text", attachments: str | None = None,
            notify_type: str = "info") -> str | None:
    """Blocking: one Apprise notify to one URL. None when it was delivered, else a short error
    (from apprise's captured log of this call) that holds none of the URL's secrets."""
    apprise = _apprise()
    visible = shown(url)
    service = _service(url, visible)
    if service is None:
        return "Apprise cannot use this URL (unknown scheme, missing parts or a disabled service)"
    with tempfile.TemporaryDirectory(prefix="slawatch-attach-") as folder, _using(url, visible):
        try:
            attach = (_attachments(attachments, Path(folder))
                      if attachments and service.attachment_support else None)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return redact(f"the attachments could not be prepared: {type(exc).__name__}: {exc}", url)[:ERROR_CHARS]
        notifier = apprise.Apprise()
        notifier.add(service)
        result = notifier.notify(body=body, title=title, body_format=body_format, notify_type=notify_type,
                                 attach=attach, timeout=DELIVERY_TIMEOUT_S, log_level=logging.DEBUG)
    if result:
        return None
    return redact(_error_text(result), url)[:ERROR_CHARS]


def _attachments(text: str, folder: Path) -> Any:
    """The outbox's JSON attachments as files in `folder`, in an AppriseAttachment."""
    apprise = _apprise()
    from apprise.attachment.file import AttachFile

    attach = apprise.AppriseAttachment()
    for index, item in enumerate(json.loads(text)):
        name = Path(str(item["name"])).name or f"attachment-{index}"
        path = folder / f"{index}-{name}"
        path.write_bytes(base64.b64decode(item["content"], validate=True))
        attach.add(AttachFile(str(path), name=name, mimetype=item.get("mime")))
    return attach


def _error_text(result: Any) -> str:
    """What apprise logged above INFO during this call (`_AppriseLog` lets through only a failure's
    "Socket Exception" below that), each line once."""
    lines: list[str] = []
    for entry in [entry for service in result for entry in service.logs()] + list(result.call_logs()):
        if entry.level != "INFO" and entry.message not in lines:
            lines.append(entry.message)
    return "; ".join(lines) or f"not delivered (apprise: {result.status.name})"


class StoreCall(Protocol):
    """Runs a function on the store's writer thread and returns its result (`Writer.call`)."""

    def __call__(self, function: Callable[[Store], T], /) -> Awaitable[T]: ...


class Sender:
    """Delivers due outbox messages; each attempt is recorded through the store's writer."""

    def __init__(self, database: str, call: StoreCall,
                 urls: Callable[[], Mapping[str, str]], clock: Callable[[], float] = time.time,
                 concurrency: int = 4, max_backoff_s: float = 300, give_up_after_s: float = 86400,
                 jitter: float = 0.1, poll_s: float = 60) -> None:
        self.database = database
        self.call = call
        self.urls = urls
        self.clock = clock
        self.concurrency = concurrency
        self.max_backoff_s = max_backoff_s
        self.give_up_after_s = give_up_after_s
        self.jitter = jitter      # a retry comes up to this fraction early, so URLs down together spread out
        self.poll_s = poll_s      # look again at least this often: `alerts retry` runs in another process
        self.sent = self.failed = self.dead = 0   # counters for /metrics (Reader.outbox_counts has the gauges)
        self._woken = asyncio.Event()
        self._round = asyncio.Lock()  # two rounds reading at once would both take the same due rows
        self._loop: asyncio.AbstractEventLoop | None = None
        # Each URL is a lane: its messages one at a time, oldest first, so a receiver that hangs
        # holds its own lane (and one worker), never the messages to other URLs.
        # Lanes start only in a round, under its lock, after its read; the read skips the URLs whose lane
        # runs: no message is read as pending while a lane may be sending it.
        self._lanes: dict[str, asyncio.Task[int]] = {}   # URL hash -> its lane, while it runs
        self._held: dict[str, int] = {}                  # URL hash -> ms: after a failure its messages wait
        self._workers = concurrent.futures.ThreadPoolExecutor(concurrency, thread_name_prefix="alert-delivery")

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def _read(self, query: Callable[[Reader], T]) -> T:
        def read() -> T:
            with Reader(self.database) as reader:
                return query(reader)

        return await asyncio.to_thread(read)

    async def deliver_due(self) -> int:
        """One round: attempt the messages due now, each URL's in its own lane; return how many were
        attempted, once the lanes it started have ended."""
        lanes = await self.start_due()
        attempted = await asyncio.gather(*lanes, return_exceptions=True)  # every lane ends before one's error is raised
        for outcome in attempted:
            if isinstance(outcome, BaseException):
                raise outcome
        return sum(n for n in attempted if isinstance(n, int))

    async def start_due(self) -> list[asyncio.Task[int]]:
        """Start a lane for each URL with messages due now, but those whose lane still runs or that
        are held after a failure; return the lanes started."""
        async with self._round:
            now = self._now_ms()
            skip = self._busy(now)
            rows = await self._read(lambda reader: reader.due(now, skip=skip))
            by_url: dict[str, list[OutboxRow]] = {}
            for row in rows:
                by_url.setdefault(row.url_hash, []).append(row)
            urls = self.urls()
            for url_hash, queued in by_url.items():
                self._lanes[url_hash] = asyncio.create_task(self._lane(url_hash, urls.get(url_hash), queued),
                                                            name=f"alert-lane-{url_hash[:8]}")
            return [self._lanes[url_hash] for url_hash in by_url]

    def _busy(self, now: int) -> list[str]:
        """The URL hashes a round leaves alone: those whose lane runs, and those held after a failure."""
        return sorted(set(self._lanes) | {h for h, until in self._held.items() if until > now})

    async def _lane(self, url_hash: str, url: str | None, rows: list[OutboxRow]) -> int:
        """Attempt a URL's messages in order; after a failure the rest wait (held) until the failed
        one's next attempt, so a receiver that is down costs one attempt per backoff, not one each."""
        attempted, ended = 0, False
        try:
            for row in sorted(rows, key=lambda r: r.id):  # in the order they were decided
                attempted += 1
                next_at = await self._attempt(row, url)
                if next_at is not None:
                    self._held[url_hash] = next_at
                    break
                self._held.pop(url_hash, None)
            ended = True
        except Exception:  # the store failed to record an attempt: not again before the next look
            self._held[url_hash] = self._now_ms() + round(self.poll_s * 1000)
            raise
        finally:
            del self._lanes[url_hash]
            if ended:
                self.wake()  # more of its messages may have come due meanwhile
        return attempted

    async def _attempt(self, row: OutboxRow, url: str | None) -> int | None:
        """Attempt one message and record it; return when it is due again (None: sent, or dead)."""
        error = await self._send(row, url)
        now = self._now_ms()
        next_at = None if error is None else self._next_attempt(row, now)
        await self.call(lambda store: store.record_attempt(row.id, now, error, next_at))
        self._count_and_log(row, error, next_at, now)
        return next_at

    async def _send(self, row: OutboxRow, url: str | None) -> str | None:
        if url is None:
            return (f"the URL is no longer in the configuration (contract {row.contract}, party {row.party}); "
                    "put it back, or the message dies when its retries run out")
        try:
            call = functools.partial(deliver, url, row.title, row.body, row.body_format, row.attachments,
                                     NOTIFY_TYPES.get(row.event, "info"))
            context = contextvars.copy_context()
            return await asyncio.get_running_loop().run_in_executor(self._workers, context.run, call)
        except Exception as exc:  # a bug or a broken plugin: a failed attempt, retried, never a lost message
            log.error("event=alert-delivery-crashed id=%d url=%s error=%s", row.id, row.url_shown,
                      type(exc).__name__)
            return redact(f"delivery crashed: {type(exc).__name__}: {exc}", url)[:ERROR_CHARS]

    def _next_attempt(self, row: OutboxRow, now: int) -> int | None:
        """When to try again after a failure: 1 s, 2 s, 4 s ... capped, a little early at random;
        None (dead) once the message is older than give_up_after_s."""
        if now - row.queued_at >= self.give_up_after_s * 1000:
            return None
        delay = min(self.max_backoff_s, 2.0 ** min(row.attempts, 62)) * (1 - self.jitter * random.random())
        return now + max(1, round(delay * 1000))

    def _count_and_log(self, row: OutboxRow, error: str | None, next_at: int | None, now: int) -> None:
        where = f"id={row.id} alert={row.event} contract={row.contract} party={row.party} url={row.url_shown}"
        attempts = row.attempts + 1
        if error is None:
            self.sent += 1
            log.info("event=alert-sent %s attempts=%d", where, attempts)
        elif next_at is None:
            self.failed += 1
            self.dead += 1
            log.error("event=alert-dead %s attempts=%d error=%r hint=%r", where, attempts, error,
                      f"slawatch-watchdog alerts retry {row.id}")
        else:
            self.failed += 1
            # The first failure is news; the retries after it are in the outbox (`alerts --pending`).
            log.log(logging.WARNING if row.attempts == 0 else logging.DEBUG,
                    "event=alert-failed %s attempts=%d error=%r retry_in_s=%.1f",
                    where, attempts, error, (next_at - now) / 1000)

    def wake(self) -> None:
        """Look at the outbox now (new messages were recorded); safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._woken.set()
        else:
            loop.call_soon_threadsafe(self._woken.set)

    async def run(self) -> None:
        """Deliver forever: start the due lanes, then sleep until woken (a new message, a lane that
        ended) or until the next message is due; lanes run on meanwhile."""
        self._loop = asyncio.get_running_loop()
        try:
            while True:
                self._woken.clear()
                try:
                    for lane in await self.start_due():
                        lane.add_done_callback(_log_lane_failure)
                    now = self._now_ms()
                    skip = self._busy(now)
                    next_due = await self._read(lambda reader: reader.next_due(skip=skip))
                    held = [until for until in self._held.values() if until > now]
                except Exception:  # the store failed: try again later, never spin
                    log.exception("event=outbox-round-failed retry_in_s=%g", self.poll_s)
                    next_due, held = None, []
                due = [at for at in (next_due, min(held, default=None)) if at is not None]
                wait = self.poll_s if not due else min(self.poll_s, (min(due) - self._now_ms()) / 1000)
                # Due and not started (a lane ended meanwhile wakes us; a clock stepped back): look
                # again soon, never spin.
                await wait_event(self._woken, max(wait, 0.05))
        finally:
            lanes = list(self._lanes.values())
            for lane in lanes:
                lane.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)
            self._workers.shutdown(wait=False)


def _log_lane_failure(lane: asyncio.Task[int]) -> None:
    if not lane.cancelled() and lane.exception() is not None:  # its message stays pending: tried again later
        log.error("event=outbox-lane-failed lane=%s error=%r", lane.get_name(), str(lane.exception()))


def message_status(reader: Reader, message_id: int) -> str | None:
    """A message's status, None when there is no such message."""
    row = reader.message(message_id)
    return None if row is None else row.status
