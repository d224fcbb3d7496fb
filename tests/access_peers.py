"""A watchdog with three contracts, three users and two agents, for the access and API tests:
`acme-a` (read by alice), `bravo-b` (read by bob), `public-p` (public = true, read by nobody but
admins in full); root is the admin. Plus an HTTP client that does not follow redirects."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.client
import json
import ssl
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from slawatch.agent.protocol import MANIFEST_PATH, canonical_json
from slawatch.config.keys import public_key_line
from slawatch.watchdog.outbox import url_hash
from slawatch.watchdog.passwords import hash_password
from slawatch.watchdog.periods import period_at

from .watchdog_peers import AGENT, KEY, PUBLIC, T0, Client, Served, reading, serving

BRAVO_AGENT = "bravo-probe"
BRAVO_KEY = Ed25519PrivateKey.generate()
BRAVO_PUBLIC = public_key_line(BRAVO_KEY)
PASSWORDS = {"alice": "alice-Pw-1", "bob": "bob-Pw-2", "root": "root-Pw-3", "carol": "carol-Pw-4"}
HASHES = {name: hash_password(password) for name, password in PASSWORDS.items()}
URLS = {c: f"json://hookuser:HookSecret{c[0].upper()}@127.0.0.1:9/{c}" for c in ("acme-a", "bravo-b", "public-p")}
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
RECENT_S = int((NOW - T0).total_seconds())          # `at_s` of readings taken now
PERIOD = period_at("month", "Europe/Amsterdam", int(T0.timestamp() * 1000)).label  # holds the outage
OUTAGE = (300, 600)                                   # acme-a's web check is down [T0+300s, T0+600s)


def _contract(cid: str, client: str, service: str, check: str, extra: str = "", timezone: str = "UTC",
              fee: str = "1000.0", currency: str = "EUR") -> str:
    return (f'[contract]\nid = "{cid}"\nclient = "{client}"\nprovider = "Acme Hosting"\ntimezone = "{timezone}"\n'
            f'fee = {fee}\ncurrency = "{currency}"\n{extra}\n'
            f'[client]\nnotify = ["{URLS[cid]}"]\n[provider]\nnotify = ["{URLS[cid]}/provider"]\n'
            f'[[service]]\nid = "{service}"\nchecks = ["{check}"]\n'
            'objectives = [{ kind = "availability", target = 99.9 }]\n'
            "[[credit]]\nbelow = 99.99\npercent = 10\n")


def _window() -> str:
    start, end = NOW - dt.timedelta(hours=1), NOW + dt.timedelta(hours=1)
    return f'[[maintenance]]\nstart = "{start:%Y-%m-%dT%H:%M}"\nend = "{end:%Y-%m-%dT%H:%M}"\nnote = "swap"\n'


CONTRACTS = {
    "a.toml": _contract("acme-a", "Alpha Client Corp", "shop", "web", timezone="Europe/Amsterdam"),
    "b.toml": _contract("bravo-b", "Bravo Client Corp", "mail", "mail") + _window(),
    "p.toml": _contract("public-p", "Papa Client Corp", "shop", "site", "public = true", fee="7777.5",
                        currency="CHF"),
}


def write_access_config(folder: Path, port: int = 8470, settings: str = "",
                        hashes: dict[str, str] | None = None, agents: dict[str, str] | None = None) -> Path:
    hashes = hashes or HASHES
    (folder / "contracts").mkdir(exist_ok=True)
    for name, text in CONTRACTS.items():
        (folder / "contracts" / name).write_text(text)
    users = "".join(
        f'[[user]]\nname = "{name}"\npassword_hash = "{hashes[name]}"\nrole = "{role}"\n'
        + (f"contracts = {json.dumps(contracts)}\n" if contracts else "")
        for name, role, contracts in (("alice", "viewer", ["acme-a"]), ("bob", "viewer", ["bravo-b"]),
                                      ("root", "admin", []), ("carol", "viewer", ["acme-a"])))
    path = folder / "watchdog.toml"
    path.write_text(f'[watchdog]\nlisten = "127.0.0.1:{port}"\ndatabase = "watchdog.db"\ncontracts = "contracts"\n'
                    f'{settings}\n[[agent]]\nid = "{AGENT}"\npublic_key = "{PUBLIC}"\n'
                    f'[[agent]]\nid = "{BRAVO_AGENT}"\npublic_key = "{BRAVO_PUBLIC}"\n'
                    + "".join(f'[[agent]]\nid = "{a}"\npublic_key = "{k}"\n' for a, k in (agents or {}).items())
                    + users)
    return path


def _manifest(agent: str, version: str, checks: list[str]) -> bytes:
    return canonical_json({"agent": agent, "version": version, "canaries": [], "checks": [
        {"id": c, "type": "tcp", "interval_s": 3600, "timeout_s": 5, "target": f"{c}.example:443"}
        for c in checks]})  # an hour: no agent falls silent while the tests run


def seed(client: Client) -> None:
    """Manifests, an outage of acme-a's web check at T0, public-p's site down now, bob's mail up now."""
    assert client.send(body=_manifest(AGENT, "1.2.3-ams", ["web", "mail", "site"]), path=MANIFEST_PATH).status == 200
    web = [reading(i + 1, "web", 30 * i, "down" if OUTAGE[0] <= 30 * i < OUTAGE[1] else "up", latency_ms=20.0)
           for i in range(40)]
    assert client.send(web).status == 200
    # long intervals: these readings hold (coverage is 1.5 intervals) for as long as the tests run
    now = [reading(101, "site", RECENT_S - 50, interval_s=3600),
           reading(102, "site", RECENT_S - 20, "down", interval_s=3600, error="refused"),
           reading(103, "agent.self", RECENT_S - 20, metrics={"spool.depth": 7})]
    assert client.send(now).status == 200
    bravo = Client(client.base, BRAVO_KEY, BRAVO_AGENT)
    assert bravo.send(body=_manifest(BRAVO_AGENT, "9.9.9-bravo", ["mail"]), path=MANIFEST_PATH).status == 200
    assert bravo.send([reading(1, "mail", RECENT_S - 40, agent=BRAVO_AGENT, interval_s=3600),
                       reading(2, "mail", RECENT_S - 10, agent=BRAVO_AGENT, interval_s=3600)]).status == 200


def secrets_of(served: Served) -> dict[str, str]:
    """Text that no answer of any route may hold, for anyone: keys, Apprise secrets, hashes, the session key."""
    key = Path(f"{served.database}.session-key").read_bytes()
    found = {"session key (hex)": key.hex(), "session key (base64)": base64.b64encode(key).decode().rstrip("="),
             "session key (base64url)": base64.urlsafe_b64encode(key).decode().rstrip("=")}
    for agent, line in ((AGENT, PUBLIC), (BRAVO_AGENT, BRAVO_PUBLIC)):
        found[f"public key of {agent}"] = line.split(":", 1)[1]
        found[f"public key of {agent} (hex)"] = base64.b64decode(line.split(":", 1)[1]).hex()
    for contract, url in URLS.items():
        for variant in (url, f"{url}/provider"):
            found[f"Apprise URL hash of {variant}"] = url_hash(variant)
        found[f"Apprise secret of {contract}"] = f"HookSecret{contract[0].upper()}"
    for name, stored in HASHES.items():
        found[f"password hash of {name}"] = stored
        found[f"password salt of {name}"] = stored.split(":")[4]
        found[f"password digest of {name}"] = stored.split(":")[5]
        found[f"password of {name}"] = PASSWORDS[name]
    return found


@contextmanager
def seeded(folder: Path, settings: str = "", agents: dict[str, str] | None = None) -> Iterator[Served]:
    with serving(write_access_config(folder, settings=settings, agents=agents)) as served:
        seed(served.client)
        yield served


# --- HTTP without following redirects ----------------------------------------------------------

@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def cookies(self) -> dict[str, str]:
        """Set-Cookie headers by cookie name (the whole header, attributes included)."""
        return {h.split("=", 1)[0]: h for h in self.headers.get_all("Set-Cookie") or []}


@dataclass
class Browser:
    """Requests to one server, keeping cookies like a browser would (only what Set-Cookie says)."""

    base: str
    cookies: dict[str, str] = field(default_factory=dict)
    context: ssl.SSLContext | None = None

    def request(self, method: str, path: str, *, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None, keep: bool = True) -> Reply:
        parts = urllib.parse.urlsplit(self.base)
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(parts.hostname or "", parts.port,
                                                                            timeout=30, context=self.context)
        else:
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            reply = Reply(response.status, response.headers, response.read())
        finally:
            conn.close()
        if keep:
            for header in reply.headers.get_all("Set-Cookie") or []:
                name, _, rest = header.partition("=")
                value = rest.split(";", 1)[0].strip('"')
                if value and "max-age=0" not in header.lower():
                    self.cookies[name] = value
                else:
                    self.cookies.pop(name, None)
        return reply

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, form: dict[str, str], **kwargs: Any) -> Reply:
        return self.request("POST", path, form=form, **kwargs)

    def login(self, name: str, password: str | None = None, next_path: str = "/") -> Reply:
        token = form_fields(self.get("/login").text)["csrf"]
        return self.post("/login", {"csrf": token, "name": name, "password": password or PASSWORDS[name],
                                    "next": next_path})


def basic(name: str, password: str | None = None) -> dict[str, str]:
    pair = f"{name}:{PASSWORDS[name] if password is None else password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


class _Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("name"):
            self.fields[values["name"] or ""] = values.get("value") or ""


def form_fields(html: str) -> dict[str, str]:
    """The named inputs of a page's forms (the last one wins)."""
    parser = _Inputs()
    parser.feed(html)
    return parser.fields


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
