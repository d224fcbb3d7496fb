"""Alert decisions (pure) and live alerting end to end: readings in, Apprise webhooks out, on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from slawatch.config.contract import load_contract
from slawatch.watchdog import alerting
from slawatch.watchdog.alerting import Live
from slawatch.watchdog.intervals import DOWN, UNKNOWN, UP, runs_of
from slawatch.watchdog.store import Reader

from .conftest import free_port
from .watchdog_peers import KEY, PUBLIC, Client, reading, serving, start_daemon, write_config

S, MINUTE, HOUR = 1000, 60_000, 3_600_000
NOW = 1_790_000_000_000


CONTRACT = """\
[contract]
id = "shop-2026"
client = "Example Corp"
provider = "Acme Hosting"
timezone = "UTC"
[client]
notify = ["json://127.0.0.1:{port}/client"]
[provider]
notify = ["json://127.0.0.1:{port}/provider"]
repeat = "1h"
[[service]]
id = "shop"
name = "Web shop"
checks = ["web"]
quorum = 2
min_outage = "1m"
objectives = [{{ kind = "availability", target = 99.9 }}]
"""


@pytest.fixture
def contract(tmp_path: Path) -> Any:
    path = tmp_path / "c.toml"
    path.write_text(CONTRACT.format(port=9))
    return load_contract(path)


def live(status: str, since: int = NOW - 5 * MINUTE, eligible: bool = True) -> Live:
    return Live(status, eligible, since, ("web",), ("ams-probe",))


# --- decisions ------------------------------------------------------------------------------


def test_an_outage_opens_once_repeats_per_party_and_recovers(contract: Any) -> None:
    service = contract.services[0]
    state, events = alerting.decide_service(contract, service, live(DOWN), None, NOW)
    assert [e.kind for e in events] == ["outage"] and events[0].parties == ("client", "provider")
    assert state == {"since": NOW - 5 * MINUTE, "told": NOW, "repeats": {"client": 0, "provider": 0}}
    assert alerting.decide_service(contract, service, live(DOWN), state, NOW + MINUTE) == (state, [])
    assert alerting.decide_service(contract, service, live(DOWN), state, NOW + 59 * MINUTE) == (state, [])
    # an hour after the message: the provider's repeat (1 h) is due, the client's (4 h default) is not
    state2, events = alerting.decide_service(contract, service, live(DOWN), state, NOW + 60 * MINUTE)
    assert [(e.kind, e.parties, e.facts["repeat"]) for e in events] == [("outage", ("provider",), 1)]
    assert state2 is not None and state2["repeats"] == {"client": 0, "provider": 1}
    # unknown, maintenance, outside business hours: neither repeat nor recovery
    assert alerting.decide_service(contract, service, live(UNKNOWN), state2, NOW + 5 * HOUR) == (state2, [])
    assert alerting.decide_service(contract, service, live(DOWN, eligible=False), state2, NOW + 5 * HOUR) == (state2, [])
    closed, events = alerting.decide_service(contract, service, live(UP, since=NOW + 90 * MINUTE), state2,
                                             NOW + 91 * MINUTE)
    assert closed == {"done": NOW + 90 * MINUTE} and [e.kind for e in events] == ["recovery"]
    assert events[0].facts["duration_ms"] == 95 * MINUTE


def test_an_outage_learnt_late_repeats_a_repeat_after_its_message(contract: Any) -> None:
    """Down for 5 hours before anyone could tell (the readings arrive late): the outage message goes
    now, with its real start, and its repeats come every `repeat` after it, not at once."""
    service = contract.services[0]
    state, events = alerting.decide_service(contract, service, live(DOWN, since=NOW - 5 * HOUR), None, NOW)
    assert [(e.kind, e.facts["since"]) for e in events] == [("outage", NOW - 5 * HOUR)]
    assert alerting.decide_service(contract, service, live(DOWN, since=NOW - 5 * HOUR), state, NOW + 10_000) == (
        state, [])
    _, events = alerting.decide_service(contract, service, live(DOWN, since=NOW - 5 * HOUR), state, NOW + HOUR)
    assert [(e.parties, e.facts["repeat"]) for e in events] == [(("provider",), 1)]


def test_no_outage_is_raised_outside_counted_time(contract: Any) -> None:
    assert alerting.decide_service(contract, contract.services[0], live(DOWN, eligible=False), None, NOW) == (None, [])


def runs(*readings: tuple[int, str]) -> list[Any]:
    return runs_of([(ts, status, 30.0) for ts, status in readings])


def test_flapping_faster_than_min_outage_raises_nothing(contract: Any) -> None:
    service = contract.services[0]  # min_outage 1m, quorum 2
    flapping = [(NOW - 10 * MINUTE + i * 30 * S, DOWN if i % 2 else UP) for i in range(20)]
    both = {("a", "web"): runs(*flapping), ("b", "web"): runs(*flapping)}
    now = alerting.service_now(contract, service, both, NOW)
    assert now.status == UP and now.eligible  # each down run lasts 30 s < 1 min
    assert alerting.decide_service(contract, service, now, None, NOW) == (None, [])


def both_agents(*spans: tuple[int, int, str]) -> dict[tuple[str, str], list[Any]]:
    """Both agents' runs of readings every 30 s over each (start, end, status); nothing between."""
    readings = [(ts, status) for start, end, status in spans for ts in range(start, end, 30 * S)]
    return {(agent, "web"): runs(*readings) for agent in ("a", "b")}


def test_an_outage_over_before_its_readings_came_is_told_with_its_recovery(contract: Any) -> None:
    """Two hours of readings in one burst (the agents could not reach the watchdog): down 30 minutes,
    up since. The outage and its recovery are told now, once, with their real times."""
    service = contract.services[0]
    seen = both_agents((NOW - 2 * HOUR, NOW - 90 * MINUTE, UP), (NOW - 90 * MINUTE, NOW - HOUR, DOWN),
                       (NOW - HOUR, NOW, UP))
    live_now = alerting.service_now(contract, service, seen, NOW)
    state, events = alerting.decide_service(contract, service, live_now, None, NOW)
    assert [(e.kind, e.facts["since"], e.facts["duration_ms"]) for e in events] == [
        ("outage", NOW - 90 * MINUTE, 30 * MINUTE), ("recovery", NOW - 90 * MINUTE, 30 * MINUTE)]
    assert events[1].facts["until"] == NOW - HOUR and state == {"done": NOW - HOUR}
    later = alerting.service_now(contract, service, seen, NOW + MINUTE)
    assert alerting.decide_service(contract, service, later, state, NOW + MINUTE) == (state, [])  # told once


def test_a_recovery_counts_the_down_time_not_the_time_without_data(contract: Any) -> None:
    """Down 30 minutes, then no data for 90 (the agents silent), then up: the outage lasted 30
    minutes, as the report's incident does; the time without data is unknown, not down."""
    service = contract.services[0]
    start = NOW - 3 * HOUR
    opened = alerting.service_now(contract, service, both_agents((start, start + 30 * MINUTE, DOWN)),
                                  start + 30 * MINUTE)
    state, events = alerting.decide_service(contract, service, opened, None, start + 30 * MINUTE)
    assert [e.kind for e in events] == ["outage"] and state is not None
    seen = both_agents((start, start + 30 * MINUTE, DOWN), (start + 2 * HOUR, NOW, UP))
    state, events = alerting.decide_service(contract, service, alerting.service_now(contract, service, seen, NOW),
                                            state, NOW)
    assert [(e.kind, e.facts["until"], e.facts["duration_ms"]) for e in events] == [
        ("recovery", start + 2 * HOUR, 30 * MINUTE + 15 * S)]  # the last down reading holds 1.5 intervals


def test_a_second_outage_learnt_late_is_told_apart_from_the_first(contract: Any) -> None:
    """An outage is open; the agents go silent; their readings come later: up for 30 minutes, then
    down again until now. The first outage recovered, and a second began: each is told."""
    service = contract.services[0]
    start = NOW - 3 * HOUR
    opened = alerting.service_now(contract, service, both_agents((start, start + 10 * MINUTE, DOWN)),
                                  start + 10 * MINUTE)
    state, _ = alerting.decide_service(contract, service, opened, None, start + 10 * MINUTE)
    seen = both_agents((start, start + 10 * MINUTE, DOWN), (start + HOUR, start + 90 * MINUTE, UP),
                       (start + 90 * MINUTE, NOW, DOWN))
    state, events = alerting.decide_service(contract, service, alerting.service_now(contract, service, seen, NOW),
                                            state, NOW)
    assert [(e.kind, e.facts["since"]) for e in events] == [("recovery", start), ("outage", start + 90 * MINUTE)]
    assert events[0].facts["until"] == start + HOUR and events[0].facts["duration_ms"] == 10 * MINUTE + 15 * S
    assert state is not None and state["since"] == start + 90 * MINUTE and state["done"] == start + HOUR


def test_quorum_two_needs_two_agents_to_see_it_down(contract: Any) -> None:
    service = contract.services[0]
    down = [(NOW - 5 * MINUTE + i * 30 * S, DOWN) for i in range(10)]
    up = [(NOW - 5 * MINUTE + i * 30 * S, UP) for i in range(10)]
    one = alerting.service_now(contract, service, {("a", "web"): runs(*down), ("b", "web"): runs(*up)}, NOW)
    assert one.status == UP
    two = alerting.service_now(contract, service, {("a", "web"): runs(*down), ("b", "web"): runs(*down)}, NOW)
    assert two.status == DOWN and two.since == NOW - 5 * MINUTE and two.agents_down == ("a", "b")
    # the other agent silent: n = 1, d = 1 >= min(2, 1): down
    alone = alerting.service_now(contract, service, {("a", "web"): runs(*down)}, NOW)
    assert alone.status == DOWN


def test_burn_rate_rules_fire_once_per_period_until_they_clear(contract: Any) -> None:
    service = contract.services[0]
    burning = replace(live(DOWN), burn={"1h": 20.0, "5m": 1000.0, "6h": 3.0, "30m": 40.0})
    changes, events = alerting.decide_budget(contract, service, burning, {}, "2026-10", NOW)
    assert [e.facts["rule"] for e in events] == ["page"]          # warn needs 6 over 6 h too
    key = "budget|shop-2026|shop|page"
    assert changes == {key: {"period": "2026-10", "since": NOW}}
    assert alerting.decide_budget(contract, service, burning, changes, "2026-10", NOW + MINUTE) == ({}, [])
    _, events = alerting.decide_budget(contract, service, burning, changes, "2026-11", NOW + MINUTE)
    assert [e.facts["rule"] for e in events] == ["page"]          # a new period: once more
    calm = replace(burning, burn={"1h": 20.0, "5m": 0.0, "6h": 3.0, "30m": 1.0})
    assert alerting.decide_budget(contract, service, calm, changes, "2026-10", NOW)[0] == {key: None}
    both = replace(burning, burn={"1h": 14.4, "5m": 14.4, "6h": 6.0, "30m": 6.0})   # exactly at the thresholds
    assert sorted(e.facts["rule"] for e in alerting.decide_budget(contract, service, both, {}, "p", NOW)[1]) == [
        "page", "warn"]


def test_a_certificate_below_its_minimum_is_reported_once_until_renewed(contract: Any) -> None:
    stats = [("a", "web", {"tls.days_left": [4, 5, 5, 20], "tls.min_days": [4, 14, 14, 56]})]
    changes, events = alerting.decide_tls(contract, stats, {}, NOW)
    assert [(e.kind, e.facts["days_left"], e.facts["min_days"]) for e in events] == [("tls-expiring", 5, 14)]
    assert alerting.decide_tls(contract, stats, changes, NOW + HOUR) == ({}, [])
    renewed = [("a", "web", {"tls.days_left": [4, 89, 89, 356], "tls.min_days": [4, 14, 14, 56]})]
    assert alerting.decide_tls(contract, renewed, changes, NOW + 2 * HOUR) == ({"tls|shop-2026|web": None}, [])
    # the next certificate, months later, at the same days left: its own warning, not a duplicate key
    _, again = alerting.decide_tls(contract, stats, {}, NOW + 90 * 24 * HOUR)
    assert len(again) == 1 and again[0].key != events[0].key


# --- end to end: readings in, webhooks out ----------------------------------------------------


@dataclass
class Receiver:
    """An Apprise json:// receiver: every POST it got, by path."""

    port: int
    got: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def wait_for(self, path: str, count: int, seconds: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if len(self.got.get(path, [])) >= count:
                return self.got[path]
            time.sleep(0.05)
        raise AssertionError(f"{path}: expected {count} messages, got {self.got.get(path)}")


@contextmanager
def receiver(port: int | None = None) -> Iterator[Receiver]:
    found = Receiver(port or free_port())

    async def record(request: web.Request) -> web.Response:
        message = await request.json()
        kind = "/anchor" if message["title"].startswith("[slawatch] Evidence chain head") else ""
        found.got.setdefault(kind + request.path, []).append(message)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/{name}", record)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", found.port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def recent(agent: str, seq: int, base: dt.datetime, ago_s: float, status: str) -> Any:
    """A reading `ago_s` before `base` (the same instant for the same `ago_s`)."""
    r = reading(seq, status=status, interval_s=30, agent=agent, error="HTTP 503" if status == DOWN else None,
                latency_ms=None if status == DOWN else 40.0)
    return replace(r, ts=base - dt.timedelta(seconds=ago_s))


def test_outage_and_recovery_reach_both_parties_in_their_wording(tmp_path: Path) -> None:
    with receiver() as hooks:
        config = write_config(tmp_path, agents=[("ams-probe", PUBLIC), ("fra-probe", PUBLIC)],
                              contracts={"shop.toml": CONTRACT.format(port=hooks.port)},
                              settings='public_url = "https://watchdog.example.net"')
        with serving(config) as served:
            ams, fra = served.client, Client(served.client.base, KEY, "fra-probe")
            base = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
            # one agent sees it down for 3 minutes: quorum 2 of 2 is not met (the other's up readings go
            # first: with none of them stored yet, only one agent would have data, and it says down)
            assert fra.send([recent("fra-probe", i + 1, base, 180 - 30 * i, UP) for i in range(7)]).status == 200
            assert ams.send([recent("ams-probe", i + 1, base, 180 - 30 * i, DOWN) for i in range(7)]).status == 200
            time.sleep(1.0)
            assert "/provider" not in hooks.got and "/client" not in hooks.got
            # the second agent agrees for the last 2 minutes (> min_outage 1m): readings at the same
            # instants as its up ones, sent later, replace them (rule 1): an outage
            assert fra.send([recent("fra-probe", 8 + i, base, 120 - 30 * i, DOWN) for i in range(5)]).status == 200
            provider = hooks.wait_for("/provider", 1)[0]
            client = hooks.wait_for("/client", 1)[0]
            assert provider["title"].startswith("[shop-2026] DOWN: shop (web)")
            assert "Seen down by agents: ams-probe, fra-probe" in provider["message"]
            assert "Last error: HTTP 503" in provider["message"]
            assert "https://watchdog.example.net/contracts/shop-2026/services/shop" in provider["message"]
            assert client["title"] == "Outage: Web shop (Acme Hosting)"
            assert "The contract promises 99.9 % availability per month" in client["message"]
            assert "Measured by slawatch's own agents so far this month" in client["message"]
            # both agents see it up again: recovery, once
            later = dt.datetime.now(dt.timezone.utc)
            for agent in (ams, fra):
                assert agent.send([recent(agent.agent, 20, later, 0, UP)]).status == 200
            recovered = hooks.wait_for("/provider", 2)[1]
            assert recovered["title"].startswith("[shop-2026] RECOVERED: shop after")
            assert hooks.wait_for("/client", 2)[1]["title"] == "Recovered: Web shop (Acme Hosting)"
            time.sleep(0.5)
            assert len(hooks.got["/provider"]) == 2 and len(hooks.got["/client"]) == 2
            with Reader(served.database) as reader:
                sent = reader.outbox("sent")
            assert sorted((m.event, m.party) for m in sent if m.event != "anchor") == [
                ("outage", "client"), ("outage", "provider"), ("recovery", "client"), ("recovery", "provider")]
            anchors = [m for m in sent if m.event == "anchor"]
            assert sorted(m.party for m in anchors) == ["client", "provider"]   # the day's chain head, once each
            with Reader(served.database) as reader:
                anchored = reader.alert_states("anchor|")["anchor|shop-2026"]
            assert anchored["day"] == dt.datetime.now(dt.timezone.utc).date().isoformat()
            for party in ("client", "provider"):
                assert anchored["head"] in hooks.wait_for(f"/anchor/{party}", 1)[0]["message"]



def test_an_alert_decided_before_kill_9_is_delivered_once_after_restart(tmp_path: Path) -> None:
    """The receiver is down when the outage is decided; the watchdog is killed; both come back:
    each party gets the outage exactly once, and the URL's secret is never logged."""
    hook_port, port = free_port(), free_port()
    secret = "s3cr3t-token"
    contract = CONTRACT.format(port=hook_port).replace(
        f"json://127.0.0.1:{hook_port}/provider", f"json://watch:{secret}@127.0.0.1:{hook_port}/provider")
    config = write_config(tmp_path, port=port, agents=[("ams-probe", PUBLIC)], contracts={"shop.toml": contract})
    daemon = start_daemon(config, port)
    try:
        base = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        assert daemon.client.send([recent("ams-probe", i + 1, base, 150 - 30 * i, DOWN)
                                   for i in range(6)]).status == 200
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with Reader(tmp_path / "watchdog.db") as reader:
                outbox = reader.outbox()
            waiting = [m for m in outbox if m.event == "outage" and m.status == "pending"]
            # each party's first message (the day's anchor) tried and failed; its outage waits behind it
            if len(waiting) == 2 and sum(1 for m in outbox if m.event == "anchor" and m.attempts >= 1) == 2:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the outage was not queued behind a failed message: {outbox}")
    finally:
        os.kill(daemon.process.pid, signal.SIGKILL)  # killed mid-flight, as the test means, or on its failure
        daemon.process.wait(10)
    with receiver(hook_port) as hooks:
        restarted = start_daemon(config, port)
        try:
            provider = hooks.wait_for("/provider", 3, seconds=30)  # the outage, and the page and warn budget rules
            client = hooks.wait_for("/client", 1, seconds=30)
            time.sleep(1.5)  # anything sent twice would have arrived by now
            deadline = time.monotonic() + 15  # /metrics counts the outbox as of its last liveness round (5 s)
            while time.monotonic() < deadline:
                metrics = restarted.client.get("/metrics")[1]
                if 'slawatch_alerts{status="pending"} 0.0' in metrics:
                    break
                time.sleep(0.5)
            assert 'slawatch_alerts{status="pending"} 0.0' in metrics and 'slawatch_alerts{status="dead"} 0.0' in metrics
            sent = float(metrics.split('slawatch_alerts{status="sent"} ')[1].split()[0])
            assert sent >= 6  # outage x2, page, warn, the day's anchor x2
        finally:
            restarted.process.terminate()
            restarted.process.wait(30)
    assert [m["title"] for m in provider if "DOWN" in m["title"]] == ["[shop-2026] DOWN: shop (web)"]
    assert [m["title"] for m in client if m["title"].startswith("Outage")] == ["Outage: Web shop (Acme Hosting)"]
    # the same periodic round found the budget burning (100 % down): the provider hears of that too
    assert sorted(m["title"].split(":")[0] for m in provider if "budget" in m["title"]) == [
        "[shop-2026] Error budget burning fast (page)", "[shop-2026] Error budget burning fast (warn)"]
    assert len(provider) == 3 and len(client) == 1
    with Reader(tmp_path / "watchdog.db") as reader:
        outages = [m for m in reader.outbox() if m.event == "outage"]
    assert sorted(m.status for m in outages) == ["sent", "sent"]
    logs = daemon.log_text() + restarted.log_text()
    assert "event=alert-failed" in logs and "event=alert-sent" in logs
    assert secret not in logs and secret not in json.dumps([m.url_shown for m in outages])


def test_periodic_round_decides_breach_and_certificate_with_their_wording(tmp_path: Path) -> None:
    """An hour down this month (budget 0.1 % of it is ~44 min): breach, once; a certificate under its
    minimum: tls-expiring, once; both worded from the built-in templates."""
    from slawatch.config import load_watchdog
    from slawatch.watchdog.live import Alerting
    from slawatch.watchdog.store import Row, Store, now_ms

    from .test_store import incoming

    config_path = write_config(tmp_path, contracts={"shop.toml": CONTRACT.format(port=9).replace(
        '[provider]', '[provider]\nevents = ["breach", "tls-expiring"]')})
    now = now_ms()
    store = Store(tmp_path / "watchdog.db")
    start = now - 2 * HOUR
    rows = [Row(i + 1, "web", start + i * 30 * S, DOWN if i < 120 else UP, 30.0, None if i < 120 else 40.0,
                {"tls.days_left": 5, "tls.min_days": 14}, None if i >= 120 else "HTTP 503") for i in range(240)]
    for agent in ("ams-probe", "fra-probe"):
        store.store([incoming(rows, agent=agent, received_at=now)])
    store.close()
    config = load_watchdog(config_path)
    alerts = Alerting(lambda: config, call=None, wake=lambda: None, clock=lambda: now)  # type: ignore[arg-type]
    decided = alerts.decide(None, periodic=True, now=now)
    by_kind = {(m.event, m.party): m for m in decided.messages}
    breach = by_kind[("breach", "provider")]
    assert breach.title == "[shop-2026] Objective can no longer be met: Web shop"
    assert "has spent its whole error budget" in breach.body and "99.9 % availability objective" in breach.body
    assert ("breach", "client") in by_kind  # the client's default events include breach
    tls = by_kind[("tls-expiring", "provider")]
    assert tls.title == "[shop-2026] Certificate expiring: web in 5 days"
    assert "fewer than the 14 days the check requires (seen by ams-probe, fra-probe)" in tls.body
    assert ("tls-expiring", "client") not in by_kind  # not among the client's default events
    assert any(key.startswith("breach|shop-2026|shop|") for key in decided.states)
    # recorded, the next round decides neither again
    store = Store(tmp_path / "watchdog.db")
    store.record_decisions(decided.states, decided.messages, now, decided.silent)
    store.close()
    again = alerts.decide(None, periodic=True, now=now + MINUTE)
    assert not [m for m in again.messages if m.event in ("breach", "tls-expiring")]


def test_a_broken_custom_template_falls_back_to_the_built_in_wording(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A typo in one custom template must not stop alerting: that message goes out in the built-in
    wording, the error is logged, and every other decision of the round stands."""
    from slawatch.config import load_watchdog
    from slawatch.watchdog.live import Alerting
    from slawatch.watchdog.store import Row, Store, now_ms

    from .test_store import incoming

    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "anchor.txt").write_text("Head {{ head_short }}\n")             # no such name
    (templates / "breach.provider.txt").write_text("Breach {{ service.id }\n")   # a syntax error
    config_path = write_config(tmp_path, contracts={"shop.toml": CONTRACT.format(port=9).replace(
        '[provider]', '[provider]\nevents = ["breach"]')}, settings=f'templates = "{templates}"')
    now = now_ms()
    store = Store(tmp_path / "watchdog.db")
    rows = [Row(i + 1, "web", now - 2 * HOUR + i * 30 * S, DOWN if i < 120 else UP, 30.0, None, {},
                "HTTP 503" if i < 120 else None) for i in range(240)]
    for agent in ("ams-probe", "fra-probe"):
        store.store([incoming(rows, agent=agent, received_at=now)])
    store.close()
    config = load_watchdog(config_path)
    alerts = Alerting(lambda: config, call=None, wake=lambda: None, clock=lambda: now)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="slawatch.watchdog.live"):
        decided = alerts.decide(None, periodic=True, now=now)
    by_kind = {(m.event, m.party): m for m in decided.messages}
    assert by_kind[("breach", "provider")].title == "[shop-2026] Objective can no longer be met: Web shop"
    assert by_kind[("anchor", "client")].title.startswith("[slawatch] Evidence chain head")
    assert "event=alert-template-failed kind=anchor party=client" in caplog.text
    assert "event=alert-template-failed kind=breach party=provider" in caplog.text
    assert any(key.startswith("anchor|") for key in decided.states)


def test_a_service_whose_decision_fails_does_not_hold_up_the_rest(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from slawatch.config import load_watchdog
    from slawatch.watchdog.live import Alerting
    from slawatch.watchdog.store import migrate, now_ms

    config = load_watchdog(write_config(tmp_path, contracts={"shop.toml": CONTRACT.format(port=9)}))
    migrate(config.database)

    def broken(*args: object) -> None:
        raise RuntimeError("a bug in one service's decision")

    monkeypatch.setattr(Alerting, "_decide_service", broken)
    alerts = Alerting(lambda: config, call=None, wake=lambda: None)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="slawatch.watchdog.live"):
        decided = alerts.decide(None, periodic=True, now=now_ms())
    assert "event=alert-decision-failed contract=shop-2026 service=shop" in caplog.text
    assert {m.event for m in decided.messages} == {"anchor"}  # the contract's own decisions stand


def test_a_templates_dir_replaces_a_built_in_wording(tmp_path: Path) -> None:
    from slawatch.watchdog.live import Wording

    (tmp_path / "outage.provider.txt").write_text("PAGE {{ service.id }} since {{ since }}\nChecks: {{ checks|join(',') }}\n")
    facts = {"service": {"id": "shop", "name": "Web shop"}, "since": "2026-11-26 10:00:00", "checks": ["web", "db"]}
    assert Wording(str(tmp_path)).render("outage", "provider", facts) == ("PAGE shop since 2026-11-26 10:00:00",
                                                                         "Checks: web,db\n")
    wording = Wording(str(tmp_path))
    assert wording.env.loader is not None
    client_source, _, _ = wording.env.loader.get_source(wording.env, "outage.client.txt")
    assert "The contract promises" in client_source  # the other wordings stay the built-in ones


def test_during_maintenance_or_outside_business_hours_no_outage_is_raised(tmp_path: Path) -> None:
    at = dt.datetime.fromtimestamp(NOW / 1000, dt.timezone.utc)
    window = (f'[[maintenance]]\nstart = "{(at - dt.timedelta(minutes=30)):%Y-%m-%dT%H:%M}"\n'
              f'end = "{(at + dt.timedelta(minutes=30)):%Y-%m-%dT%H:%M}"\n')
    path = tmp_path / "c.toml"
    path.write_text(CONTRACT.format(port=9) + window)
    contract = load_contract(path)
    service = contract.services[0]
    down = {(a, "web"): runs(*[(NOW - 10 * MINUTE + i * 30 * S, DOWN) for i in range(100)]) for a in ("a", "b")}
    now = alerting.service_now(contract, service, down, NOW)
    assert now.status == DOWN and not now.eligible
    assert alerting.decide_service(contract, service, now, None, NOW) == (None, [])
    after = alerting.service_now(contract, service, down, NOW + 31 * MINUTE)   # maintenance over, still down
    assert after.eligible and alerting.decide_service(contract, service, after, None, NOW + 31 * MINUTE)[1]
    weekend = dt.datetime.fromtimestamp(NOW / 1000, dt.timezone.utc).strftime("%a").lower()
    hours = CONTRACT.format(port=9) + (f'[business_hours]\ndays = ["{"mon" if weekend != "mon" else "tue"}"]\n'
                                       'start = "08:00"\nend = "18:00"\n')
    path.write_text(hours)
    off_hours = alerting.service_now(load_contract(path), service, down, NOW)
    assert off_hours.status == DOWN and not off_hours.eligible


def test_a_recovery_learnt_long_after_it_happened_reports_its_real_time(tmp_path: Path) -> None:
    """An outage is open; the watchdog hears nothing more for hours (stopped, say), then learns in one
    ingest that the service has been up for the last 2 hours: the recovery (decided after that
    ingest, whose quick look covers only 15 minutes) names the real instant it came back."""
    from slawatch.config import load_watchdog
    from slawatch.watchdog.live import Alerting
    from slawatch.watchdog.store import Row, Store, now_ms

    from .test_store import incoming

    config = load_watchdog(write_config(tmp_path, contracts={"shop.toml": CONTRACT.format(port=9)}))
    now = now_ms() // MINUTE * MINUTE
    down_from, up_from = now - 3 * HOUR, now - 2 * HOUR
    alerts = Alerting(lambda: config, call=None, wake=lambda: None, clock=lambda: now)  # type: ignore[arg-type]

    def readings(first: int, last: int, status: str, seq: int) -> list[Row]:
        return [Row(seq + i, "web", ts, status, 30.0, 40.0 if status == UP else None, {},
                    None if status == UP else "HTTP 503") for i, ts in enumerate(range(first, last, 30 * S))]

    store = Store(tmp_path / "watchdog.db")
    for agent in ("ams-probe", "fra-probe"):
        store.store([incoming(readings(down_from, down_from + 10 * MINUTE, DOWN, 1), agent=agent, received_at=now)])
    opened = alerts.decide({"web"}, periodic=False, now=down_from + 10 * MINUTE)
    assert [(m.event, m.party) for m in opened.messages] == [("outage", "client"), ("outage", "provider")]
    store.record_decisions(opened.states, opened.messages, down_from + 10 * MINUTE, opened.silent)
    for agent in ("ams-probe", "fra-probe"):
        store.store([incoming(readings(down_from + 10 * MINUTE, up_from, DOWN, 100)
                              + readings(up_from, now, UP, 1000), agent=agent, received_at=now)])
    store.close()
    recovered = alerts.decide({"web"}, periodic=False, now=now)
    recovery = [m for m in recovered.messages if m.event == "recovery"]
    assert sorted(m.party for m in recovery) == ["client", "provider"]
    since, until = (dt.datetime.fromtimestamp(t / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
                    for t in (down_from, up_from))
    provider = next(m for m in recovery if m.party == "provider")
    assert provider.title == "[shop-2026] RECOVERED: shop after 01:00:00"
    assert f"is up again since {until} (UTC); it was down from {since} for 01:00:00." in provider.body


def _stored_both(store: Any, seq: int, *spans: tuple[int, int, str]) -> None:
    """Both agents' readings every 30 s over each (start, end, status), numbered from `seq`."""
    from slawatch.watchdog.store import Row

    from .test_store import incoming

    rows = [Row(seq + i, "web", ts, status, 30.0, 40.0 if status == UP else None, {},
                None if status == UP else "HTTP 503")
            for i, (ts, status) in enumerate((ts, status) for a, b, status in spans for ts in range(a, b, 30 * S))]
    for agent in ("ams-probe", "fra-probe"):
        store.store([incoming(rows, agent=agent, received_at=spans[-1][1])])


def _decided(tmp_path: Path, now: int, periodic: bool, states: dict[str, Any] | None = None) -> Any:
    from slawatch.config import load_watchdog
    from slawatch.watchdog.live import Alerting

    config = load_watchdog(tmp_path / "watchdog.toml")
    alerts = Alerting(lambda: config, call=None, wake=lambda: None, clock=lambda: now)  # type: ignore[arg-type]
    return alerts.decide({"web"}, periodic=periodic, now=now)


def _opened(tmp_path: Path, store: Any, since: int) -> None:
    """Both agents see it down for 5 minutes from `since`: the outage is decided and recorded."""
    _stored_both(store, 1, (since, since + 5 * MINUTE, DOWN))
    opened = _decided(tmp_path, since + 5 * MINUTE, periodic=False)
    store.record_decisions(opened.states, opened.messages, since + 5 * MINUTE, opened.silent)


def test_the_recovery_of_a_long_outage_counts_all_of_it(tmp_path: Path) -> None:
    """Told 10 hours ago; up a minute ago: the recovery decided right after that ingest (whose quick
    look covers 15 minutes) says 10 hours less a minute, not the 15 minutes it looked at."""
    from slawatch.watchdog.store import Store, now_ms

    write_config(tmp_path, contracts={"shop.toml": CONTRACT.format(port=9)})
    now = now_ms() // MINUTE * MINUTE
    store = Store(tmp_path / "watchdog.db")
    _opened(tmp_path, store, now - 10 * HOUR)
    _stored_both(store, 10_000, (now - 10 * HOUR + 5 * MINUTE, now - MINUTE, DOWN), (now - MINUTE, now, UP))
    store.close()
    recovered = _decided(tmp_path, now, periodic=False)
    recovery = next(m for m in recovered.messages if m.event == "recovery" and m.party == "provider")
    assert recovery.title == "[shop-2026] RECOVERED: shop after 09:59:00"


def test_an_outage_begun_unseen_with_a_gap_in_its_data_is_told(tmp_path: Path) -> None:
    """Down for 8 hours, 10 minutes of them without data, before the watchdog heard of it (it was
    stopped): the outage is told from its real start, not skipped as begun before the window."""
    from slawatch.watchdog.store import Store, now_ms

    write_config(tmp_path, contracts={"shop.toml": CONTRACT.format(port=9)})
    now = now_ms() // MINUTE * MINUTE
    store = Store(tmp_path / "watchdog.db")
    _stored_both(store, 1, (now - 8 * HOUR, now - 3 * HOUR, DOWN), (now - 3 * HOUR + 10 * MINUTE, now, DOWN))
    store.close()
    decided = _decided(tmp_path, now, periodic=True)
    assert [(m.event, m.party) for m in decided.messages if m.event == "outage"] == [("outage", "client"),
                                                                                    ("outage", "provider")]
    assert decided.states["service|shop-2026|shop"]["since"] == now - 8 * HOUR


def test_an_outage_that_recovered_long_ago_and_a_later_one_are_each_told(tmp_path: Path) -> None:
    """Told 9 hours ago; the watchdog then heard nothing until now: up after 30 minutes, down again
    an hour ago for 50 minutes, up since. The first recovered 8.5 hours ago after 30 minutes, and
    the second is told apart, outage and recovery."""
    from slawatch.watchdog.store import Store, now_ms

    write_config(tmp_path, contracts={"shop.toml": CONTRACT.format(port=9)})
    now = now_ms() // MINUTE * MINUTE
    store = Store(tmp_path / "watchdog.db")
    _opened(tmp_path, store, now - 9 * HOUR)
    _stored_both(store, 10_000, (now - 9 * HOUR + 5 * MINUTE, now - 9 * HOUR + 30 * MINUTE, DOWN),
                 (now - 9 * HOUR + 30 * MINUTE, now - HOUR, UP), (now - HOUR, now - 10 * MINUTE, DOWN),
                 (now - 10 * MINUTE, now, UP))
    store.close()
    decided = _decided(tmp_path, now, periodic=False)
    told = [(m.event, m.title) for m in decided.messages if m.party == "provider"]
    assert [event for event, _ in told] == ["recovery", "outage", "recovery"]
    assert told[0][1] == "[shop-2026] RECOVERED: shop after 00:30:00"
    assert told[2][1] == "[shop-2026] RECOVERED: shop after 00:50:00"


def test_a_closed_period_sends_its_report_and_a_breach_for_each_missed_objective(tmp_path: Path) -> None:
    from slawatch.config import load_watchdog
    from slawatch.watchdog.live import Alerting

    config = load_watchdog(write_config(tmp_path, contracts={"shop.toml": CONTRACT.format(port=9)}))
    recorded: list[Any] = []

    async def call(function: Any) -> Any:
        recorded.append(function)
        return [1]

    alerts = Alerting(lambda: config, call=call, wake=lambda: None, clock=lambda: NOW)
    computed = {"period": "2026-10", "credit": 120.0, "currency": "EUR", "services": [
        {"id": "shop", "name": "Web shop", "objectives": [
            {"kind": "availability", "target": 99.9, "measured": 99.5, "met": False},
            {"kind": "latency", "percentile": 95.0, "max_ms": 800.0, "measured": 912.0, "met": False},
            {"kind": "latency", "percentile": 99.0, "max_ms": 1500.0, "measured": 2100.0, "met": False}]}]}
    asyncio.run(alerts.period_closed(config.contracts[0], computed, "<p>report</p>", "a,b\n"))

    class Capture:
        def record_decisions(self, states: Any, messages: Any, now: int, silent: Any) -> list[int]:
            self.messages = messages
            return []

    capture = Capture()
    recorded[0](capture)
    kinds = sorted((m.event, m.party) for m in capture.messages)
    assert kinds == [("breach", "client")] * 3 + [("breach", "provider")] * 3 + [("report", "client"),
                                                                              ("report", "provider")]
    assert len({m.key for m in capture.messages}) == 8  # one per objective missed: none is dropped as a repeat
    report = next(m for m in capture.messages if m.event == "report")
    assert report.title == "SLA report shop-2026 2026-10: credit 120.00 EUR" and report.body_format == "html"
    assert json.loads(report.attachments or "[]")[0]["name"] == "shop-2026-2026-10.csv"
    breach = next(m for m in capture.messages if m.event == "breach")
    assert breach.title == "[shop-2026] Objective missed: Web shop"
    assert "availability at least 99.9 %; measured 99.500 %" in breach.body


def test_a_period_frozen_by_a_report_first_still_sends_its_report_once(tmp_path: Path) -> None:
    """`slawatch-watchdog report` (or the API) froze last month before the daemon did: the daemon
    still sends its report to both parties, once (the state saying so is written with the messages)."""
    from slawatch.config import load_watchdog
    from slawatch.watchdog.live import Alerting
    from slawatch.watchdog.report import unreported
    from slawatch.watchdog.writer import Writer

    config = load_watchdog(write_config(tmp_path, contracts={"shop.toml": CONTRACT.format(port=9)}))
    contract = config.contracts[0]
    figures = {"period": "2026-08", "credit": 0.0, "currency": "EUR", "services": []}
    writer = Writer(config.database)
    try:
        assert writer.store.freeze(contract.id, "2026-08", "1", 1, "00", json.dumps(figures))  # as a report does
        assert unreported(contract, config.database, NOW) == figures
        alerts = Alerting(lambda: config, writer.call, lambda: None, clock=lambda: NOW)
        asyncio.run(alerts.period_closed(contract, figures, "<p>report</p>", "a,b\n"))
        assert unreported(contract, config.database, NOW) is None
        asyncio.run(alerts.period_closed(contract, figures, "<p>report</p>", "a,b\n"))  # again: nothing new
    finally:
        writer.close()
    with Reader(config.database) as reader:
        assert sorted(m.party for m in reader.outbox() if m.event == "report") == ["client", "provider"]
