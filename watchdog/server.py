"""`slawatch-watchdog run`: the ingest API, liveness of agents, /metrics, systemd integration."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from slawatch.agent import systemd
from slawatch.agent.protocol import (
    INGEST_PATH, MANIFEST_PATH, Envelope, Refused, check_envelope, public_key_from_line, verify_signature,
)
from slawatch.config import ConfigError, WatchdogConfig, load_watchdog

from .ingest import RateLimiter, parse_manifest, rows_of_body, ts_ms
from . import api, auth, pages, tls
from .live import Alerting
from .outbox import Sender, url_hash
from .render import to_csv, to_html
from .report import due_report, freeze_args, unreported
from .store import AgentState, Conflict, Incoming, Reader, Row, Store, Stored, now_ms
from .writer import Writer, tune_gc

log = logging.getLogger(__name__)

LIVENESS_EVERY_S = 5.0
PURGE_EVERY_S = 3600.0
COMPACT_EVERY_S = 600.0
FREEZE_EVERY_S = 3600.0
SILENT_AFTER_INTERVALS = 3
DEFAULT_INTERVAL_S = 60.0        # for an agent that has not sent its manifest yet
SHUTDOWN_TIMEOUT_S = 10.0
BODIES_AT_ONCE = 16              # request bodies read at the same time (each up to max_batch_size)
BODIES_PER_AGENT = 4             # ... of them naming one agent: anyone can name a listed agent


@dataclass(frozen=True)
class BlindSpot:
    """A contract check fewer agents report than the service's quorum asks for."""

    contract: str
    service: str
    check: str
    agents: int
    quorum: int


@dataclass
class Settings:
    """What a reload replaces at once."""

    config: WatchdogConfig
    keys: dict[str, Ed25519PublicKey]
    limiter: RateLimiter

    @classmethod
    def of(cls, config: WatchdogConfig) -> Settings:
        return cls(config, {a.id: public_key_from_line(a.public_key) for a in config.agents},
                   RateLimiter(config.agent_rate))


class Metrics:
    """The watchdog's Prometheus metrics (a registry of its own, so tests can run several)."""

    def __init__(self, watchdog: Watchdog) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.batches = Counter("slawatch_ingest_batches", "Batches accepted (resends included)", ["kind"],
                               registry=self.registry)
        self.readings = Counter("slawatch_ingest_readings", "Readings stored", registry=self.registry)
        self.duplicates = Counter("slawatch_ingest_duplicate_readings",
                                  "Readings received again and not stored twice", registry=self.registry)
        self.refused = Counter("slawatch_ingest_refused", "Requests refused, by reason", ["reason"],
                               registry=self.registry)
        self.latency = Histogram("slawatch_ingest_batch_seconds", "Time from request to acknowledgement",
                                 registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.registry.register(_StateCollector(watchdog))


class _StateCollector(Collector):
    def __init__(self, watchdog: Watchdog) -> None:
        self.watchdog = watchdog

    def collect(self) -> Iterable[GaugeMetricFamily]:
        w = self.watchdog
        size = GaugeMetricFamily("slawatch_db_bytes", "Database file size, WAL included")
        size.add_metric([], w.database_bytes())
        yield size
        silent = GaugeMetricFamily("slawatch_agents_silent", "Configured agents that stopped reporting")
        silent.add_metric([], sum(1 for since in list(w.silent.values()) if since is not None))
        yield silent
        seen = GaugeMetricFamily("slawatch_agent_last_seen_timestamp_seconds",
                                 "When each agent's last batch was accepted", labels=["agent"])
        listed = {agent.id for agent in w.config.agents}
        for state in list(w.agents.values()):  # copies: the event loop may replace them meanwhile
            if state.last_seen is not None and state.name in listed:
                seen.add_metric([state.name], state.last_seen / 1000)
        yield seen
        blind = GaugeMetricFamily("slawatch_blind_spot_agents",
                                  "Agents reporting a contract check that fewer agents than its quorum report",
                                  labels=["contract", "service", "check", "quorum"])
        for spot in list(w.blind_spots):
            blind.add_metric([spot.contract, spot.service, spot.check, str(spot.quorum)], spot.agents)
        yield blind
        outbox = GaugeMetricFamily("slawatch_alerts", "Alert messages in the outbox, by status (dead: given up "
                                   "after 24 h of failed deliveries; see `slawatch-watchdog alerts --dead`)",
                                   labels=["status"])
        for status, count in sorted(w.outbox_counts.items()):
            outbox.add_metric([status], count)
        yield outbox


WATCHDOG: web.AppKey[Watchdog] = web.AppKey("watchdog")


class RateLimited(Refused):
    def __init__(self, agent: str, wait_s: float, reason: str | None = None, code: str = "rate-limited") -> None:
        super().__init__(429, reason or f"agent {agent} sends too fast; retry in {wait_s:.1f}s", code)
        self.retry_after = max(1, round(wait_s + 0.5))


@dataclass
class Watchdog:
    """The running watchdog: settings (replaced on reload), the writer, what it knows of agents."""

    config_path: str
    settings: Settings
    writer: Writer | None = None
    alerting: Alerting | None = None
    sender: Sender | None = None
    started_ms: int = field(default_factory=now_ms)
    agents: dict[str, AgentState] = field(default_factory=dict)
    silent: dict[str, int | None] = field(default_factory=dict)
    blind_spots: list[BlindSpot] = field(default_factory=list)
    outbox_counts: dict[str, int] = field(default_factory=lambda: {"pending": 0, "sent": 0, "dead": 0})
    metrics: Metrics = field(init=False)
    reading_bodies: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(BODIES_AT_ONCE))
    bodies_of: collections.Counter[str] = field(default_factory=collections.Counter)  # bodies being read, per agent named
    ended: list[str] = field(default_factory=list)  # background tasks that ended though they run for the daemon's life

    def __post_init__(self) -> None:
        self.metrics = Metrics(self)

    @property
    def config(self) -> WatchdogConfig:
        return self.settings.config

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024)  # bodies are read by hand, up to max_batch_size
        app[WATCHDOG] = self
        app.middlewares.append(auth.middleware)
        auth.add_routes(app)
        api.add_routes(app)
        app.router.add_post(INGEST_PATH, ingest)
        app.router.add_post(MANIFEST_PATH, manifest)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/metrics", metrics)
        pages.add_routes(app)
        app.cleanup_ctx.append(_store_context)
        app.cleanup_ctx.append(_background_context)
        return app

    # --- reload -------------------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read watchdog.toml and the contracts; on any problem keep running the old ones."""
        try:
            config = load_watchdog(self.config_path)
        except ConfigError as err:
            for problem in err.problems:
                log.error("event=reload-refused problem=%r", str(problem))
            log.error("event=reload-refused action=keep-running-old-config problems=%d", len(err.problems))
            return False
        if config.database != self.config.database or (config.listen_host, config.listen_port) != (
                self.config.listen_host, self.config.listen_port) or (config.tls_cert_file, config.tls_key_file) != (
                self.config.tls_cert_file, self.config.tls_key_file):
            log.warning("event=reload-partial reason=%r", "database, listen and the TLS files (a renewed "
                        "certificate too) take effect on restart only")
            config = dataclasses.replace(config, database=self.config.database, listen_host=self.config.listen_host,
                                         listen_port=self.config.listen_port, tls_cert_file=self.config.tls_cert_file,
                                         tls_key_file=self.config.tls_key_file)
        self.settings = Settings.of(config)
        listed = {agent.id for agent in config.agents}
        self.silent = {agent: since for agent, since in self.silent.items() if agent in listed}
        log.info("event=reloaded agents=%d contracts=%d", len(config.agents), len(config.contracts))
        self.refresh_blind_spots(log_them=True)
        return True

    # --- what the watchdog knows of agents ------------------------------------------------------

    def read_agents(self) -> None:
        """Refresh `agents` from the database (reader connection; called off the event loop)."""
        with Reader(self.config.database) as reader:
            self.agents = {a.name: a for a in reader.agents()}
            self.outbox_counts = {"pending": 0, "sent": 0, "dead": 0} | reader.outbox_counts()

    def refresh_blind_spots(self, log_them: bool = False) -> None:
        before = set(self.blind_spots)
        self.blind_spots = blind_spots(self.config, self.agents)
        for spot in self.blind_spots:
            if log_them or spot not in before:
                log.warning("event=blind-spot contract=%s service=%s check=%s agents=%d quorum=%d",
                            spot.contract, spot.service, spot.check, spot.agents, spot.quorum)

    async def check_liveness(self) -> None:
        """Mark agents silent after 3 x their shortest interval without a batch, and back again."""
        await asyncio.to_thread(self.read_agents)
        now = now_ms()
        for agent in self.config.agents:
            state = self.agents.get(agent.id)
            limit_ms = SILENT_AFTER_INTERVALS * shortest_interval_s(state) * 1000
            # Since this watchdog started at the earliest: its own downtime is nobody's silence.
            last = max(state.last_seen or 0, self.started_ms) if state else self.started_ms
            was = self.silent.get(agent.id, state.silent_since if state else None)
            if now - last > limit_ms:
                if was is None:
                    since = int(last + limit_ms)
                    # recorded (and its alert queued) first: a failure is tried again next round
                    if state is not None and not await self._told_silent(agent.id, since, state):
                        continue
                    self.silent[agent.id] = since
                    log.warning("event=agent-silent agent=%s last_seen=%s", agent.id,
                                _iso(state.last_seen) if state and state.last_seen else "never")
                else:
                    self.silent[agent.id] = was
            elif was is not None and not (state and state.last_seen and state.last_seen >= was):
                self.silent[agent.id] = was  # still nothing from it (this watchdog just restarted): silent
            else:
                if was is not None:
                    if state is not None and not await self._told_silent(agent.id, None, state):
                        continue
                    log.info("event=agent-back agent=%s silent_s=%.0f", agent.id, (now - was) / 1000)
                self.silent[agent.id] = None
        self.refresh_blind_spots()

    async def _told_silent(self, agent: str, since: int | None, state: AgentState) -> bool:
        """Record an agent silent since `since` (None: back) and queue its alert; False (logged) when
        that failed, for the next round to try again."""
        try:
            await self._alerting().agent_silent(agent, since, state.last_seen, _checks_of(state))
        except Exception:
            log.exception("event=agent-silent-record-failed agent=%s silent=%s action=retry-next-round", agent,
                          since is not None)
            return False
        return True

    def database_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(self.config.database + suffix)
            except FileNotFoundError:
                continue
        return total

    def _writer(self) -> Writer:
        assert self.writer is not None, "the store is not open"
        return self.writer

    def _alerting(self) -> Alerting:
        assert self.alerting is not None, "the store is not open"
        return self.alerting

    def _sender(self) -> Sender:
        assert self.sender is not None, "the store is not open"
        return self.sender

    def notify_urls(self) -> dict[str, str]:
        """Every configured Apprise URL by its hash (what the outbox holds instead of the secret)."""
        return {url_hash(url): url for contract in self.config.contracts
                for party in (contract.client, contract.provider) for url in party.notify}


def _checks_of(state: AgentState) -> list[str]:
    """The checks an agent's manifest lists (empty: unknown, so every contract hears of it)."""
    return [c["id"] for c in (state.manifest or {}).get("checks", [])]


def shortest_interval_s(state: AgentState | None) -> float:
    if state is None or not state.manifest:
        return DEFAULT_INTERVAL_S
    intervals = [c["interval_s"] for c in state.manifest.get("checks", [])]
    return float(min(intervals, default=DEFAULT_INTERVAL_S))


def blind_spots(config: WatchdogConfig, agents: dict[str, AgentState]) -> list[BlindSpot]:
    """Contract checks that no listed agent's manifest covers, or fewer agents than the quorum."""
    covering: dict[str, int] = {}
    for agent in config.agents:
        state = agents.get(agent.id)
        if state is None or not state.manifest:
            continue
        for check in {c["id"] for c in state.manifest.get("checks", [])}:
            covering[check] = covering.get(check, 0) + 1
    spots = []
    for contract in config.contracts:
        for service in contract.services:
            for check in service.checks:
                count = covering.get(check, 0)
                if count < max(1, service.quorum):
                    spots.append(BlindSpot(contract.id, service.id, check, count, service.quorum))
    return spots


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="seconds")


# --- handlers ---------------------------------------------------------------------------------

async def ingest(request: web.Request) -> web.Response:
    return await _receive(request, "readings")


async def manifest(request: web.Request) -> web.Response:
    return await _receive(request, "manifest")


async def _receive(request: web.Request, kind: str) -> web.Response:
    watchdog = request.app[WATCHDOG]
    started = time.perf_counter()
    try:
        stored = await _accept(request, watchdog, kind)
    except Refused as refused:
        watchdog.metrics.refused.labels(refused.code).inc()
        log.info("event=ingest-refused status=%d code=%s agent=%r reason=%r", refused.status, refused.code,
                 request.headers.get("Slawatch-Agent", "")[:64], refused.reason)
        headers = {"Retry-After": str(refused.retry_after)} if isinstance(refused, RateLimited) else {}
        return web.json_response({"error": refused.reason, "code": refused.code}, status=refused.status,
                                 headers=headers)
    watchdog.metrics.batches.labels(kind).inc()
    if not stored.resend:
        watchdog.metrics.readings.inc(stored.ack.get("stored", 0))
        watchdog.metrics.duplicates.inc(stored.ack.get("duplicates", 0))
    watchdog.metrics.latency.observe(time.perf_counter() - started)
    return web.json_response(stored.ack | {"resend": stored.resend})


async def _accept(request: web.Request, watchdog: Watchdog, kind: str) -> Stored:
    settings = watchdog.settings
    # Who, which batch and when are checked before a byte of the body is read, and bodies are read a
    # few at a time: nobody gets the watchdog to buffer megabytes without naming a known agent. The
    # signature is checked once the body is in, and anyone can name a listed agent: so bodies naming
    # one agent are read a few at a time too, and each must arrive within body_timeout, or uploads
    # that never finish would hold every place and stop all ingest.
    envelope = check_envelope(request.headers, settings.keys, max_skew_s=settings.config.max_clock_skew)
    body = await _body(request, watchdog, envelope.agent)
    if watchdog.settings is not settings:  # reloaded while the body came: the keys in force now decide
        settings = watchdog.settings
        envelope = check_envelope(request.headers, settings.keys, max_skew_s=settings.config.max_clock_skew)
    body_sha256 = verify_signature(envelope, request.path, body, settings.keys)
    wait = settings.limiter.allow(envelope.agent)
    if wait:
        raise RateLimited(envelope.agent, wait)
    incoming = _incoming(request, envelope, body, kind, settings, body_sha256)
    try:
        stored = await watchdog._writer().submit(incoming)
    except Conflict as conflict:
        raise Refused(409, f"{conflict}: a resend must carry the same body", "conflict") from None
    except Refused:
        raise
    except Exception:
        # already logged by the writer; the agent keeps the batch and retries
        raise web.HTTPServiceUnavailable(text=json.dumps({"error": "the store failed; retry later",
                                                          "code": "store-failed"}),
                                         content_type="application/json") from None
    if kind == "readings" and not stored.resend:
        if incoming.dropped:
            _log_dropped(incoming)
        if watchdog.alerting is not None:
            watchdog.alerting.touched({row.check for row in incoming.rows})
    if kind == "manifest" and not stored.resend:
        try:
            await asyncio.to_thread(watchdog.read_agents)
        except Exception:  # stored and acknowledged all the same; liveness reads again in seconds
            log.exception("event=read-agents-failed after=manifest agent=%s", envelope.agent)
        else:
            watchdog.refresh_blind_spots()
    return stored


def _log_dropped(incoming: Incoming) -> None:
    """Readings the agent's spool had to drop are unknown time in every report: say so once, when stored."""
    ranges = incoming.dropped
    log.warning("event=agent-dropped agent=%s batch=%s ranges=%d readings=%d first_seq=%d last_seq=%d",
                incoming.agent, incoming.batch, len(ranges), sum(last - first + 1 for first, last in ranges),
                min(first for first, _ in ranges), max(last for _, last in ranges))


def _incoming(request: web.Request, envelope: Envelope, body: bytes, kind: str, settings: Settings,
              body_sha256: bytes = b"") -> Incoming:
    key = settings.keys[envelope.agent].public_bytes_raw()
    common = dict(agent=envelope.agent, batch=envelope.batch, kind=kind, path=request.path,
                  sent=envelope.sent_text, body=body, signature=envelope.signature, public_key=key,
                  body_sha256=body_sha256)
    if kind == "manifest":
        try:
            data = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise Refused(400, "body is not UTF-8 JSON", "not-json") from None
        return Incoming(**common, manifest=parse_manifest(envelope.agent, data))  # type: ignore[arg-type]
    # No reading is taken after its batch was sent, nor further ahead of this clock than the skew
    # allowed (the send time itself may be that far ahead: the two do not add up).
    latest = min(ts_ms(envelope.sent), now_ms()) + int(settings.config.max_clock_skew * 1000)
    return Incoming(**common, parse=partial(_readings_of, envelope, body, latest))  # type: ignore[arg-type]


def _readings_of(envelope: Envelope, body: bytes, latest: int) -> tuple[list[Row], tuple[tuple[int, int], ...]]:
    """The rows of an authenticated body (on the writer thread); raise Refused naming the problem."""
    made, dropped = rows_of_body(envelope, body)
    for i, row in enumerate(made):
        if row.ts > latest:
            raise Refused(422, f"readings[{i}]: taken after the batch was sent, or further ahead of the "
                               f"clock of the watchdog than max_clock_skew ({row.ts} > {latest} ms)", "invalid-body")
    return made, dropped


async def _body(request: web.Request, watchdog: Watchdog, agent: str) -> bytes:
    config = watchdog.config
    if watchdog.bodies_of[agent] >= BODIES_PER_AGENT:
        raise RateLimited(agent, 1.0, f"{BODIES_PER_AGENT} bodies naming agent {agent} are still arriving; retry "
                                      "when one is in", "bodies-in-progress")
    watchdog.bodies_of[agent] += 1
    try:
        async with watchdog.reading_bodies:
            async with asyncio.timeout(config.body_timeout):
                return await _read_body(request, config.max_batch_size)
    except TimeoutError:
        raise Refused(408, f"the body did not arrive within body_timeout ({config.body_timeout:g} s)",
                      "body-timeout") from None
    finally:
        watchdog.bodies_of[agent] -= 1
        if not watchdog.bodies_of[agent]:
            del watchdog.bodies_of[agent]


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise Refused(413, f"body of {request.content_length} bytes is over the limit of {limit}", "too-large")
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding != "identity":  # the signature is over the bytes as sent; agents never compress them
        raise Refused(415, f"Content-Encoding {encoding[:32]!r} is not accepted: send the body as signed",
                      "unsupported-encoding")
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = await request.content.read(65536)
        except web.RequestPayloadError as exc:
            raise Refused(400, f"the body could not be read ({exc})", "bad-body") from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"body is over the limit of {limit} bytes", "too-large")
        chunks.append(chunk)


async def healthz(request: web.Request) -> web.Response:
    watchdog = request.app[WATCHDOG]
    writer = watchdog.writer
    alive = writer is not None and writer.alive()
    status = ("store writer stopped" if not alive else
              f"{', '.join(watchdog.ended)} stopped" if watchdog.ended else "ok")
    return web.json_response({"status": status,
                              "agents_silent": sorted(a for a, since in watchdog.silent.items() if since),
                              "blind_spots": len(watchdog.blind_spots)}, status=200 if status == "ok" else 503)


async def metrics(request: web.Request) -> web.Response:
    watchdog = request.app[WATCHDOG]
    body = await asyncio.to_thread(generate_latest, watchdog.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


# --- lifecycle --------------------------------------------------------------------------------

async def _store_context(app: web.Application) -> AsyncIterator[None]:
    watchdog = app[WATCHDOG]
    watchdog.writer = await asyncio.to_thread(Writer, watchdog.config.database)
    watchdog.sender = Sender(watchdog.config.database, watchdog.writer.call, watchdog.notify_urls)
    watchdog.alerting = Alerting(lambda: watchdog.config, watchdog.writer.call, watchdog.sender.wake)
    await asyncio.to_thread(watchdog.read_agents)
    watchdog.refresh_blind_spots(log_them=True)
    yield
    writer, watchdog.writer = watchdog.writer, None
    await asyncio.to_thread(writer.close)  # commits what is queued
    log.info("event=store-closed")


async def _background_context(app: web.Application) -> AsyncIterator[None]:
    watchdog = app[WATCHDOG]
    tasks = [asyncio.create_task(_every(LIVENESS_EVERY_S, watchdog.check_liveness), name="liveness"),
             asyncio.create_task(_every(PURGE_EVERY_S, lambda: _purge(watchdog)), name="purge"),
             asyncio.create_task(_every(COMPACT_EVERY_S, lambda: _compact(watchdog)), name="compact"),
             asyncio.create_task(_every(FREEZE_EVERY_S, lambda: _freeze(watchdog)), name="freeze"),
             asyncio.create_task(_owned(watchdog._alerting().run), name="alerting"),
             asyncio.create_task(_owned(watchdog._sender().run), name="sender")]
    for task in tasks:
        task.add_done_callback(lambda done: _ended(watchdog, done))
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _owned(job: Any) -> None:
    """A task that runs for the daemon's life: if it ever ends, the daemon must not go on without it."""
    await job()
    raise RuntimeError(f"background task {getattr(job, '__qualname__', job)} ended")


def _ended(watchdog: Watchdog, task: asyncio.Task[None]) -> None:
    """A background task ended before shutdown: the daemon is unhealthy (/healthz answers 503, and
    systemd's watchdog, no longer pinged, restarts it) and says why."""
    if task.cancelled():
        return  # shutdown
    watchdog.ended.append(task.get_name())
    log.error("event=background-task-ended task=%s action=healthz-503-stop-pinging-systemd", task.get_name(),
              exc_info=task.exception())


async def _every(seconds: float, job: Any) -> None:
    while True:
        try:
            await job()
        except Exception:  # a failed round is logged and tried again next time
            log.exception("event=background-job-failed job=%s", getattr(job, "__name__", job))
        await asyncio.sleep(seconds)


async def _purge(watchdog: Watchdog) -> None:
    config, now = watchdog.config, now_ms()
    readings_before = now - int(config.readings_retention * 1000)
    history_before = now - int(config.history_retention * 1000)
    total = 0
    while True:
        deleted = await watchdog._writer().call(lambda s: s.purge(readings_before, history_before))
        total += deleted
        if deleted == 0:
            break
        await asyncio.sleep(0.05)  # let batches in between slices
    if total:
        log.info("event=purged rows=%d", total)


async def _compact(watchdog: Watchdog) -> None:
    """Daily rollups for days over an hour ago, two days a writer call so batches get in between."""
    before = now_ms() - 3600_000
    while await watchdog._writer().call(lambda s: s.compact(before, max_days=2)):
        await asyncio.sleep(0.05)


async def _freeze(watchdog: Watchdog) -> None:
    """Freeze each contract's last closed period once its grace is over, and send its report to the
    parties once it is frozen (here, or first by a report or the API)."""
    for contract in watchdog.config.contracts:
        computed = await asyncio.to_thread(due_report, contract, watchdog.config.database, now_ms())
        if computed is not None:
            args = freeze_args(contract, computed)
            if await watchdog._writer().call(lambda s: s.freeze(*args)):
                log.info("event=period-frozen contract=%s period=%s chain_head=%s", contract.id, computed["period"],
                         computed["evidence"]["head"])
        frozen = await asyncio.to_thread(unreported, contract, watchdog.config.database, now_ms())
        if frozen is not None:
            await watchdog._alerting().period_closed(contract, frozen, to_html(frozen | {"frozen_at": None}),
                                                     to_csv(frozen))


async def serve(config_path: str, config: WatchdogConfig) -> int:
    tune_gc()
    watchdog = Watchdog(config_path, Settings.of(config))
    runner = web.AppRunner(watchdog.app(), handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S,
                           access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.listen_host, config.listen_port, ssl_context=tls.server_context(config))
    try:
        await site.start()
    except OSError as exc:
        log.error("event=listen-failed address=%s:%d error=%s", config.listen_host, config.listen_port, exc)
        await runner.cleanup()
        return 1
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, watchdog.reload)
    log.info("event=started listen=%s:%d database=%s agents=%d contracts=%d", config.listen_host,
             config.listen_port, config.database, len(config.agents), len(config.contracts))
    systemd.notify(f"READY=1\nSTATUS=listening on {config.listen_host}:{config.listen_port}")
    pinger = asyncio.create_task(_ping_systemd(watchdog))
    await stopping.wait()
    log.info("event=stopping")
    systemd.notify("STOPPING=1\nSTATUS=stopping: committing")
    pinger.cancel()
    await runner.cleanup()
    log.info("event=stopped")
    return 0


async def _ping_systemd(watchdog: Watchdog) -> None:
    interval = systemd.watchdog_interval()
    while True:
        await asyncio.sleep(interval or 30.0)
        writer = watchdog.writer
        if writer is not None and not writer.alive():
            log.error("event=writer-dead action=stop-pinging-systemd")
            return  # systemd's watchdog restarts a watchdog that can no longer store
        if watchdog.ended:
            log.error("event=background-task-ended tasks=%s action=stop-pinging-systemd", ",".join(watchdog.ended))
            return  # ... or that no longer alerts, delivers, purges or compacts
        if interval:
            systemd.notify("WATCHDOG=1")
        silent = sum(1 for since in watchdog.silent.values() if since)
        systemd.notify(f"STATUS=agents {len(watchdog.config.agents)}, silent {silent}, "
                       f"blind spots {len(watchdog.blind_spots)}")
