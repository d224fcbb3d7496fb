"""Alert delivery: the outbox's sender and the `alerts` / `test-notify` commands, against a real
SMTP server (aiosmtpd) and a real JSON webhook (aiohttp) on 127.0.0.1, with an injected clock."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import hashlib
import json
import logging
import sys
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from slawatch.config import load_watchdog
from slawatch.config.contract import Party
from slawatch.config.values import Secret
from slawatch.watchdog.outbox import Sender, messages_for, redact, shown, url_hash, urls_of
from slawatch.watchdog.store import Message, Reader
from slawatch.watchdog.writer import Writer

from .conftest import free_port

WATCHDOG_BIN = str(Path(sys.executable).parent / "slawatch-watchdog")
EVENTS = ("outage", "recovery", "breach")


class Clock:
    """Simulated time, in seconds like time.time(); set to a stored instant (ms) exactly."""

    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t

    def at_ms(self, instant: int) -> None:
        self.t = (instant + 0.5) / 1000  # +0.5: the sender's int(t * 1000) lands on `instant`, not 1 ms short


@dataclass
class Webhook:
    """A JSON receiver on a fixed port that can be down (port closed) and up again."""

    port: int
    posts: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)  # path, JSON, Authorization
    runner: web.AppRunner | None = None

    def url(self, path: str = "hook", auth: str = "") -> str:
        return f"json://{auth}127.0.0.1:{self.port}/{path}"

    async def up(self) -> None:
        async def receive(request: web.Request) -> web.Response:
            self.posts.append((request.path, await request.json(), request.headers.get("Authorization", "")))
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/{path:.*}", receive)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


class Mailbox:
    """An SMTP server (no AUTH) on a fixed port that can be down and up again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mails: list[EmailMessage] = []
        self.controller: Controller | None = None

    def url(self, to: str = "client@example.com", auth: str = "") -> str:
        return f"mailto://{auth}127.0.0.1:{self.port}?from=watch@example.com&to={to}&secure=no"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.mails.append(message)
        return "250 OK"

    def up(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def down(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook(free_port())
    await hook.up()
    yield hook
    await hook.down()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(free_port())
    box.up()
    yield box
    box.down()


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Writer]:
    w = Writer(tmp_path / "watchdog.db")
    yield w
    w.close()


def party(*urls: str, events: tuple[str, ...] = EVENTS) -> Party:
    return Party(tuple(Secret(u) for u in urls), events, 4 * 3600.0)


def sender_for(writer: Writer, clock: Clock, *urls: str, **settings: Any) -> Sender:
    return Sender(writer.store.path, writer.call, lambda: {url_hash(u): u for u in urls}, clock, **settings)


async def record(writer: Writer, messages: list[Message], clock: Clock) -> list[int]:
    now = int(clock() * 1000)
    return await writer.call(lambda store: store.record_decisions({}, messages, now))


def outbox(writer: Writer) -> dict[int, Any]:
    with Reader(writer.store.path) as reader:
        return {row.id: row for row in reader.outbox()}


def attempts(writer: Writer, message_id: int) -> list[tuple[int, bool, str | None]]:
    with Reader(writer.store.path) as reader:
        return reader.attempts(message_id)


def next_due(writer: Writer) -> int | None:
    with Reader(writer.store.path) as reader:
        return reader.next_due()


def write_config(folder: Path, database: Path, client: list[str], provider: list[str]) -> Path:
    (folder / "contracts").mkdir(exist_ok=True)
    (folder / "contracts" / "shop.toml").write_text(
        '[contract]\nid = "shop-2026"\nclient = "Example Corp"\nprovider = "Acme Hosting"\n'
        'timezone = "Europe/Amsterdam"\n'
        f"[client]\nnotify = {json.dumps(client)}\n[provider]\nnotify = {json.dumps(provider)}\n"
        '[[service]]\nid = "shop"\nchecks = ["web"]\nobjectives = [{ kind = "availability", target = 99.9 }]\n')
    path = folder / "watchdog.toml"
    path.write_text(f'[watchdog]\ndatabase = "{database}"\ncontracts = "contracts"\n')
    return path


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


async def watchdog(*args: str) -> Ran:
    """The installed CLI in a subprocess, so that the receivers on this loop keep answering."""
    process = await asyncio.create_subprocess_exec(WATCHDOG_BIN, *args, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


def urls_of_config(config: Path) -> dict[str, str]:
    """url_hash -> URL as the daemon looks them up: from the config as it is now."""
    return urls_of(load_watchdog(config).contracts)


async def until_dead_or_sent(sender: Sender, writer: Writer, clock: Clock, until_s: float | None = None) -> int:
    """Run rounds, stepping the clock to each next due time; return the rounds run."""
    rounds = 0
    while (due := next_due(writer)) is not None and (until_s is None or due / 1000 < until_s):
        clock.at_ms(max(due, int(clock() * 1000)))
        assert await sender.deliver_due() > 0
        rounds += 1
        assert rounds < 1000
    return rounds


@pytest.fixture(autouse=True)
def apprise_loaded() -> None:
    """apprise set up before the test runs, so that caplog also sees what its own logger keeps."""
    shown("json://127.0.0.1/")


def test_urls_are_named_by_hash_and_shown_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    url = "json://hookuser:T0kenXYZ123@127.0.0.1:8080/hook"
    assert url_hash(url) == hashlib.sha256(url.encode()).hexdigest()
    assert shown(url).startswith("json://hookuser:****@127.0.0.1:8080/hook")
    assert "T0kenXYZ123" not in shown(url)
    assert shown("nosuchscheme://user:pw0rd@host/x") == "nosuchscheme://***"
    assert "Unparseable URL nosuchscheme://***" in caplog.text and "pw0rd" not in caplog.text
    assert shown("json://127.0.0.1:8080/hook?+X-Token=abc123secret").endswith("&%2BX-Token=****")
    assert redact(f"failed: {url} said T0kenXYZ123", url) == f"failed: {shown(url)} said ****"
    encoded = "json://hookuser:s3cr%40t@127.0.0.1:8080/hook"
    assert redact("login s3cr@t refused (s3cr%40t)", encoded) == "login **** refused (****)"


async def test_messages_reach_each_party_with_its_own_title_and_body(
        writer: Writer, webhook: Webhook, mailbox: Mailbox) -> None:
    clock = Clock()
    client, provider = party(mailbox.url()), party(webhook.url("provider"), events=EVENTS + ("budget",))
    csv = json.dumps([{"name": "report.csv", "mime": "text/csv", "content": base64.b64encode(b"a,b\n1,2\n").decode()}])
    messages = (messages_for("client", client, "shop-2026", "outage", "outage|shop|1", "Web shop is down",
                             "The contract promises 99.9 %; measured so far: 99.7 %.", attachments=csv)
                + messages_for("provider", provider, "shop-2026", "outage", "outage|shop|1", "shop: web down",
                               "check web down since 12:00 on 2 agents; last error: timeout", attachments=csv))
    assert messages_for("client", client, "shop-2026", "budget", "budget|shop|1", "t", "b") == []
    assert [m.key for m in messages] == [f"outage|shop|1|client|{url_hash(mailbox.url())}",
                                         f"outage|shop|1|provider|{url_hash(webhook.url('provider'))}"]
    ids = await record(writer, messages, clock)
    sender = sender_for(writer, clock, mailbox.url(), webhook.url("provider"))

    assert await sender.deliver_due() == 2

    [mail] = mailbox.mails
    assert mail["Subject"] == "Web shop is down" and mail["To"] == "client@example.com"
    body = mail.get_body(("plain",))
    assert body is not None and "measured so far: 99.7 %" in body.get_content()
    [attached] = list(mail.iter_attachments())
    assert attached.get_filename() == "report.csv" and attached.get_content().replace("\r\n", "\n") == "a,b\n1,2\n"
    [(path, post, _)] = webhook.posts
    assert path == "/provider" and post["title"] == "shop: web down" and post["type"] == "failure"
    assert post["message"] == "check web down since 12:00 on 2 agents; last error: timeout"
    assert [(a["filename"], base64.b64decode(a["base64"])) for a in post["attachments"]] == [("report.csv", b"a,b\n1,2\n")]
    rows = outbox(writer)
    assert [rows[i].status for i in ids] == ["sent", "sent"] and sender.sent == 2
    assert all(len(attempts(writer, i)) == 1 and attempts(writer, i)[0][1] for i in ids)


async def test_a_receiver_down_for_an_hour_gets_every_message_once_after_capped_backoff(
        writer: Writer, webhook: Webhook, mailbox: Mailbox) -> None:
    clock = Clock()
    start = clock()
    await webhook.down()
    mailbox.down()
    urls = [webhook.url("client"), webhook.url("provider"), mailbox.url()]
    messages = [m for i, u in enumerate(urls) for m in messages_for(
        ("client", "provider", "client")[i], party(u), "shop-2026", "outage", "outage|shop|7", f"down {i}", f"body {i}")]
    ids = await record(writer, messages, clock)
    sender = sender_for(writer, clock, *urls, max_backoff_s=300)

    await until_dead_or_sent(sender, writer, clock, until_s=start + 3600)
    await webhook.up()
    mailbox.up()
    await until_dead_or_sent(sender, writer, clock)

    assert sorted(post["title"] for _, post, _ in webhook.posts) == ["down 0", "down 1"]
    assert [mail["Subject"] for mail in mailbox.mails] == ["down 2"]
    for message_id in ids:
        tried = attempts(writer, message_id)
        assert [ok for _, ok, _ in tried] == [False] * (len(tried) - 1) + [True]
        assert all("Connection refused" in (error or "") for _, ok, error in tried if not ok)
        gaps = [later - earlier for (earlier, _, _), (later, _, _) in zip(tried, tried[1:])]
        for failures_before, gap in enumerate(gaps):
            cap_ms = min(300, 2 ** failures_before) * 1000
            assert 0.9 * cap_ms - 1 <= gap <= cap_ms, (failures_before, gap)
        assert tried[-1][0] - tried[0][0] >= 3600 * 1000 - 300 * 1000
        assert len(tried) >= 17  # 1 + 2 + ... + 256 s, then every 5 min (less jitter) for the rest of the hour
        assert outbox(writer)[message_id].status == "sent"

    for _ in range(3):  # sent is sent: later rounds, hours later, find nothing to do
        clock.t += 3 * 3600
        assert await sender.deliver_due() == 0
    assert len(webhook.posts) == 2 and len(mailbox.mails) == 1


async def test_a_sent_message_is_never_sent_again(writer: Writer, webhook: Webhook) -> None:
    clock = Clock()
    message = messages_for("client", party(webhook.url()), "shop-2026", "outage", "outage|shop|9", "down", "b")
    [message_id] = await record(writer, message, clock)
    sender = sender_for(writer, clock, webhook.url())

    assert await asyncio.gather(sender.deliver_due(), sender.deliver_due()) in ([1, 0], [0, 1])
    for _ in range(3):
        clock.t += 600
        assert await sender.deliver_due() == 0
    assert await record(writer, message, clock) == []  # the same decision again: its key is taken
    assert await sender.deliver_due() == 0
    assert len(webhook.posts) == 1
    assert len(attempts(writer, message_id)) == 1


async def test_a_url_gone_from_the_config_fails_clearly_and_is_retried(writer: Writer, webhook: Webhook) -> None:
    clock = Clock()
    [message_id] = await record(writer, messages_for("provider", party(webhook.url()), "shop-2026", "breach",
                                                     "breach|shop|1", "breach", "b"), clock)
    sender = sender_for(writer, clock)  # the config no longer has the URL

    assert await sender.deliver_due() == 1

    row = outbox(writer)[message_id]
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error.startswith("the URL is no longer in the configuration (contract shop-2026, party provider)")
    assert 900 <= row.next_attempt_at - int(clock() * 1000) <= 1000
    assert webhook.posts == []


async def test_given_up_messages_are_dead_listed_and_sent_after_retry(
        tmp_path: Path, writer: Writer, webhook: Webhook) -> None:
    clock = Clock()
    await webhook.down()
    url = webhook.url("client")
    config = write_config(tmp_path, Path(writer.store.path), [url], [])
    [message_id] = await record(writer, messages_for("client", party(url), "shop-2026", "outage", "outage|shop|3",
                                                     "Web shop is down", "b"), clock)
    created = int(clock() * 1000)
    sender = Sender(writer.store.path, writer.call, lambda: urls_of_config(config), clock, give_up_after_s=1800)

    await until_dead_or_sent(sender, writer, clock)

    row = outbox(writer)[message_id]
    tried = attempts(writer, message_id)
    assert row.status == "dead" and sender.dead == 1 and next_due(writer) is None
    assert tried[-1][0] - created >= 1800 * 1000 > tried[-2][0] - created  # the first failure past the limit
    listed = await watchdog("alerts", "--dead", "-c", str(config))
    assert listed.returncode == 0, listed.stderr
    header, line = listed.stdout.splitlines()
    assert header.split()[:8] == ["ID", "CREATED", "EVENT", "CONTRACT", "PARTY", "URL", "STATUS", "ATTEMPTS"]
    assert line.split()[:5] == [str(message_id), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created / 1000)),
                                "outage", "shop-2026", "client"]
    assert f" {shown(url)} " in line and " dead " in line and f" {len(tried)} " in line
    assert line.endswith("Socket Exception: [Errno 111] Connection refused")
    assert (await watchdog("alerts", "--pending", "-c", str(config))).stdout == "no pending messages in the outbox\n"

    retried = await watchdog("alerts", "retry", str(message_id), "-c", str(config))
    assert retried.returncode == 0, retried.stderr
    again = await watchdog("alerts", "retry", str(message_id), "-c", str(config))
    assert again.returncode == 1
    assert again.stderr.strip() == f"alerts retry: message {message_id} is pending, not dead; only dead messages are retried"
    unknown = await watchdog("alerts", "retry", "999", "-c", str(config))
    assert (unknown.returncode, unknown.stderr.strip()) == (1, "alerts retry: no message 999 in the outbox")

    await webhook.up()
    clock.t = max(clock.t, time.time())
    assert await sender.deliver_due() == 1
    assert [post["title"] for _, post, _ in webhook.posts] == ["Web shop is down"]
    assert outbox(writer)[message_id].status == "sent"
    assert (await watchdog("alerts", "-c", str(config))).stdout.splitlines()[1].split()[6:8] == ["sent", "1"]


async def test_test_notify_reaches_the_webhook_and_the_mail_server(
        tmp_path: Path, webhook: Webhook, mailbox: Mailbox) -> None:
    config = write_config(tmp_path, tmp_path / "watchdog.db", [mailbox.url(), webhook.url("client")], [])

    ok = await watchdog("test-notify", "-c", str(config), "--contract", "shop-2026", "--party", "client")

    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [f"OK      {shown(mailbox.url())}", f"OK      {shown(webhook.url('client'))}"]
    [mail] = mailbox.mails
    [(_, post, _)] = webhook.posts
    assert mail["Subject"] == post["title"] == "slawatch test message: shop-2026, client"
    assert "contract shop-2026 (Example Corp / Acme Hosting)" in post["message"]
    assert not (tmp_path / "watchdog.db").exists()  # not through the outbox

    mailbox.down()
    half = await watchdog("test-notify", "-c", str(config), "--contract", "shop-2026", "--party", "client")
    assert half.returncode == 1
    failed, fine = half.stdout.splitlines()
    assert failed.startswith(f"FAILED  {shown(mailbox.url())}: ") and "Connection refused" in failed
    assert fine == f"OK      {shown(webhook.url('client'))}"
    assert len(webhook.posts) == 2

    nobody = await watchdog("test-notify", "-c", str(config), "--contract", "shop-2026", "--party", "provider")
    assert nobody.returncode == 1 and "has no notify URLs for the provider" in nobody.stderr
    unknown = await watchdog("test-notify", "-c", str(config), "--contract", "shop", "--party", "client")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == f"test-notify: no contract 'shop' in {tmp_path / 'contracts'} (known: shop-2026)"


async def test_secrets_in_urls_never_reach_logs_output_or_the_database(
        tmp_path: Path, writer: Writer, webhook: Webhook, mailbox: Mailbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    password, token, path_token = "Pa55w0rdSecret", "T0kenXYZ123", "PathT0kenQRS789"
    mail_url = mailbox.url(auth=f"watch:{password}@")  # the server has no AUTH: every attempt fails
    hook_url = webhook.url("provider", auth=f"hookuser:{token}@")
    mattermost_url = f"mmost://127.0.0.1:{webhook.port}/{path_token}"  # posts to /hooks/TOKEN
    config = write_config(tmp_path, Path(writer.store.path), [mail_url], [hook_url, mattermost_url])
    clock = Clock()
    provider = party(hook_url, mattermost_url)
    ids = await record(writer, messages_for("client", party(mail_url), "shop-2026", "outage", "o|1", "down", "b")
                       + messages_for("provider", provider, "shop-2026", "outage", "o|1", "down", "b"), clock)
    sender = sender_for(writer, clock, mail_url, hook_url, mattermost_url, give_up_after_s=60)

    await until_dead_or_sent(sender, writer, clock)
    outputs = [await watchdog("alerts", "-c", str(config)),
               await watchdog("test-notify", "-c", str(config), "--contract", "shop-2026", "--party", "client"),
               await watchdog("test-notify", "-c", str(config), "--contract", "shop-2026", "--party", "provider")]

    assert [outbox(writer)[i].status for i in ids] == ["dead", "sent", "sent"]
    basic = "Basic " + base64.b64encode(f"hookuser:{token}".encode()).decode()
    assert sorted((path, auth) for path, _, auth in webhook.posts) == [(f"/hooks/{path_token}", "")] * 2 + [
        ("/provider", basic)] * 2
    logged = caplog.text
    for line in ("event=alert-sent", "event=alert-failed", "event=alert-dead", "hookuser:****@", "watch:****@",
                 "SMTP AUTH extension not supported"):
        assert line in logged
    assert [o.returncode for o in outputs] == [0, 1, 0]
    assert "watch:****@" in outputs[0].stdout and "SMTP AUTH extension not supported" in outputs[1].stdout
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("watchdog.db*"))
    for secret in (password, token, path_token):
        assert secret not in logged
        assert all(secret not in o.stdout + o.stderr for o in outputs)
        assert secret.encode() not in stored


async def test_run_waits_for_a_wake_or_the_next_due_time_without_spinning(writer: Writer, webhook: Webhook) -> None:
    sender = sender_for(writer, Clock(), webhook.url())
    sender.clock = time.time
    rounds = 0
    start_due = sender.start_due

    async def counted() -> list[asyncio.Task[int]]:
        nonlocal rounds
        rounds += 1
        return await start_due()

    sender.start_due = counted  # type: ignore[method-assign]
    task = asyncio.create_task(sender.run())
    try:
        await asyncio.sleep(0.5)
        assert rounds == 1  # nothing due: one round, then sleep (poll_s is 60 s)
        await record(writer, messages_for("client", party(webhook.url()), "shop-2026", "outage", "o|2", "down", "b"),
                     Clock())
        sender.wake()
        for _ in range(100):
            if webhook.posts:
                break
            await asyncio.sleep(0.05)
        assert [post["title"] for _, post, _ in webhook.posts] == ["down"]
        await asyncio.sleep(0.3)
        assert rounds <= 3  # woken by the message, and by its lane's end; then asleep again
        settled = rounds
        await asyncio.sleep(0.5)
        assert rounds == settled
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_receiver_that_hangs_holds_only_its_own_messages(writer: Writer, webhook: Webhook) -> None:
    """40 messages to a receiver that takes connections and never answers, queued first, then one to
    a healthy URL: the healthy one is delivered while the first attempt to the hung one still waits,
    and after that attempt fails the hung URL's other messages wait for its retry (one attempt per
    backoff, not one each)."""
    stalled: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, stream: asyncio.StreamWriter) -> None:
        stalled.append(stream)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    hung = f"json://127.0.0.1:{server.sockets[0].getsockname()[1]}/hung"
    clock = Clock()
    clock.t = time.time()
    hung_ids = await record(writer, [m for i in range(40) for m in messages_for(
        "provider", party(hung), "shop-2026", "outage", f"o|{i}", f"hung {i}", "b")], clock)
    await record(writer, messages_for("client", party(webhook.url()), "shop-2026", "outage", "o|ok", "healthy", "b"),
                 clock)
    sender = sender_for(writer, time.time, hung, webhook.url(), max_backoff_s=300)
    task = asyncio.create_task(sender.run())
    try:
        for _ in range(400):
            if webhook.posts:
                break
            await asyncio.sleep(0.05)
        assert [post["title"] for _, post, _ in webhook.posts] == ["healthy"]
        assert sum(len(attempts(writer, i)) for i in hung_ids) == 0  # its first attempt still hangs
        for _ in range(600):
            if sum(len(attempts(writer, i)) for i in hung_ids):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        assert sum(len(attempts(writer, i)) for i in hung_ids) == 1  # the rest wait for its retry
        assert all(outbox(writer)[i].status == "pending" for i in hung_ids)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        server.close()
        for stream in stalled:
            stream.close()


async def test_a_urls_messages_go_in_the_order_they_were_decided(writer: Writer, webhook: Webhook) -> None:
    """The outage fails (the receiver is down); its recovery is decided during the backoff, due
    before the outage's retry: it waits for the outage, even for a sender just restarted (which
    holds nothing in memory), and the receiver gets the outage first."""
    clock = Clock()
    await webhook.down()
    await record(writer, messages_for("client", party(webhook.url()), "shop-2026", "outage", "o|1", "OUTAGE", "b"),
                 clock)
    assert await sender_for(writer, clock, webhook.url()).deliver_due() == 1  # failed: retried in ~1 s
    clock.t += 0.5
    await record(writer, messages_for("client", party(webhook.url()), "shop-2026", "recovery", "r|1", "RECOVERY",
                                      "b"), clock)
    await webhook.up()
    restarted = sender_for(writer, clock, webhook.url())
    assert await restarted.deliver_due() == 0  # the recovery waits for the outage's retry
    await until_dead_or_sent(restarted, writer, clock)
    assert [post["title"] for _, post, _ in webhook.posts] == ["OUTAGE", "RECOVERY"]


async def test_a_store_that_fails_to_record_an_attempt_does_not_make_the_sender_spin(
        writer: Writer, webhook: Webhook, monkeypatch: pytest.MonkeyPatch) -> None:
    """The message was sent but its attempt could not be recorded (a full disk): it is sent again
    only after the next look (poll_s), not over and over at once."""
    await record(writer, messages_for("client", party(webhook.url()), "shop-2026", "outage", "o|s", "down", "b"),
                 Clock())
    sender = sender_for(writer, time.time, webhook.url(), poll_s=60)  # type: ignore[arg-type]

    async def failing(function: Any) -> Any:
        raise sqlite3.OperationalError("database or disk is full")

    sender.call = failing  # type: ignore[assignment]
    task = asyncio.create_task(sender.run())
    try:
        await asyncio.sleep(2.0)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(webhook.posts) == 1
