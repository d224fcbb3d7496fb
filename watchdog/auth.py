"""Who is asking: users of watchdog.toml, by HTTP basic auth or a signed session cookie; CSRF tokens.

INTERFACE (implemented by the access-control work; pages and the API rely on it):
- `VIEWER` request key; `Viewer(name, admin, contracts)`; `viewer(request) -> Viewer`.
- `middleware`: sets request[VIEWER] for every request.
- `need_login(request) -> Viewer`: the logged-in viewer, else 401 (API) / redirect to /login (pages).
- `contract_for(request, contract_id, allow_public=False) -> Contract`: 404 unless the viewer may read it.
- `csrf_token(request) -> str`; `await form_with_csrf(request) -> MultiDictProxy` (403 on a bad token).
- `add_routes(app)`: GET/POST /login, POST /logout.

Policy, enforced here for every route (handlers check again what is theirs to check):
- agents' POST /api/v1/ingest and /api/v1/manifest (signed), /healthz and /static/* are open;
- /metrics is open to loopback clients, else to admins only;
- routes in `ANONYMOUS_ROUTES` (the login form, the public status of `public = true` contracts) are
  reachable without login; every other route needs a logged-in user (401 JSON under /api/, a redirect
  to /login for pages), and every request that is not GET/HEAD/OPTIONS needs the CSRF token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import MultiDictProxy

from slawatch.agent.protocol import INGEST_PATH, MANIFEST_PATH
from slawatch.config.contract import Contract
from slawatch.config.watchdog import User

from . import passwords, sla

if TYPE_CHECKING:
    from slawatch.config import WatchdogConfig

log = logging.getLogger(__name__)

SESSION_COOKIE = "slawatch_session"
CSRF_COOKIE = "slawatch_csrf"
CSRF_FIELD = "csrf"                   # the hidden form field
CSRF_HEADER = "X-CSRF-Token"          # the same token, for scripts that post without a form
SESSION_S = 12 * 3600
VERIFIED_FOR_S = 300.0                # a checked basic-auth password is not run through scrypt again meanwhile
SCRYPT_AT_ONCE = 4                    # each check takes 16 MiB and ~50 ms: bound what bad guesses cost
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REALM = 'Basic realm="slawatch", charset="UTF-8"'
# Routes a request without login may reach; their handlers show only public contracts to it.
ANONYMOUS_ROUTES = frozenset({"/login", "/logout", "/", "/contracts/{contract}", "/api/v1/contracts/{id}/status"})
# A well-formed hash that matches no password: unknown names cost one scrypt run, like known ones.
_NO_USER_HASH = f"scrypt:{passwords.N}:{passwords.R}:{passwords.P}:{'A' * 22}==:{'A' * 43}="
_NEW_CSRF: web.RequestKey[str] = web.RequestKey("csrf-new", str)


@dataclass(frozen=True)
class Viewer:
    """Who is asking: a user of watchdog.toml, or nobody (`name` None)."""

    name: str | None
    admin: bool
    contracts: frozenset[str]

    def may_read(self, contract: Contract | str) -> bool:
        """Everything of the contract: reports, incidents, services (public status aside)."""
        contract_id = contract if isinstance(contract, str) else contract.id
        return self.name is not None and (self.admin or contract_id in self.contracts)

    def may_see_money(self, contract: Contract | str) -> bool:
        """Fee, credits and currency: for the users listed for the contract, and admins."""
        return self.may_read(contract)


ANONYMOUS = Viewer(None, False, frozenset())
VIEWER: web.RequestKey[Viewer] = web.RequestKey("viewer", Viewer)


def viewer_of(user: User) -> Viewer:
    return Viewer(user.name, user.role == "admin", frozenset(user.contracts))


def viewer(request: web.Request) -> Viewer:
    """Who is asking (anonymous when the middleware did not run)."""
    return request.get(VIEWER, ANONYMOUS)


class Access:
    """An app's session key, and the basic-auth passwords verified lately (as keyed MACs, never kept)."""

    def __init__(self) -> None:
        self.key = b""
        self._cache_key = os.urandom(32)
        self._verified: dict[tuple[str, str], tuple[bytes, float]] = {}
        self._slots: asyncio.Semaphore | None = None
        self.logged_out: dict[str, int] = {}   # user -> when (ms): sessions issued before are void

    async def verify(self, user: User | None, password: str) -> bool:
        """The password against the user's hash; a recent success is remembered for a few minutes."""
        stored = user.password_hash if user is not None else _NO_USER_HASH
        remembered = (user.name if user else "", stored)
        proof = hmac.new(self._cache_key, password.encode(errors="surrogatepass"), hashlib.sha256).digest()
        cached = self._verified.get(remembered)
        if user is not None and cached is not None and cached[1] > time.monotonic() \
                and hmac.compare_digest(cached[0], proof):
            return True
        if self._slots is None:
            self._slots = asyncio.Semaphore(SCRYPT_AT_ONCE)
        async with self._slots:
            ok = await asyncio.to_thread(_verify_password, password, stored)
        if ok and user is not None:
            now = time.monotonic()
            self._verified = {k: v for k, v in self._verified.items() if v[1] > now and k[0] != user.name}
            self._verified[remembered] = (proof, now + VERIFIED_FOR_S)
        return ok and user is not None

    def mac(self, purpose: bytes, *parts: str) -> str:
        if len(self.key) != 32:
            raise RuntimeError("the session key is not loaded (auth.add_routes registers its loading at start-up)")
        message = b"\0".join([purpose, *(p.encode(errors="surrogatepass") for p in parts)])
        return _b64(hmac.new(self.key, message, hashlib.sha256).digest())


def _verify_password(password: str, stored: str) -> bool:
    try:
        return passwords.verify_password(password, stored)
    except UnicodeEncodeError:  # a lone surrogate from a form field: matches no stored password
        return False


ACCESS: web.AppKey[Access] = web.AppKey("access", Access)


# --- the session key ---------------------------------------------------------------------------

class SessionKeyError(Exception):
    """The session key file exists but cannot be used."""


def session_key_path(database: str) -> Path:
    return Path(f"{database}.session-key")


def load_session_key(path: Path) -> bytes:
    """The 32-byte key that signs session cookies and CSRF tokens; created (mode 0600) on first use."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
            log.warning("event=session-key-mode-fixed file=%s mode=0600", path)
        key = path.read_bytes()
        if len(key) != 32:
            raise SessionKeyError(f"{path}: expected 32 bytes, found {len(key)}; delete the file and a new "
                                  "key is made at the next start (everyone logs in again)") from None
        return key
    key = os.urandom(32)
    with os.fdopen(fd, "wb") as file:
        file.write(key)
        file.flush()
        os.fsync(file.fileno())
    log.info("event=session-key-created file=%s", path)
    return key


async def _load_key(app: web.Application) -> None:
    app[ACCESS].key = await asyncio.to_thread(load_session_key, session_key_path(_config_of(app).database))


# --- the middleware ----------------------------------------------------------------------------

@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Identify the user, apply the policy of the module docstring, and keep the CSRF cookie."""
    if _open(request):
        request[VIEWER] = ANONYMOUS
        return await handler(request)
    request[VIEWER] = await _identify(request)
    if request.path == "/metrics":
        _metrics_gate(request)
    elif _route(request) not in ANONYMOUS_ROUTES:
        need_login(request)
    if request.method not in SAFE_METHODS and request.match_info.http_exception is None:
        await form_with_csrf(request)  # (no route: its 404/405 says more, and no form is read)
    response = await handler(request)
    nonce = request.get(_NEW_CSRF)
    if nonce and isinstance(response, web.Response) and not response.prepared:
        _set_cookie(request, response, CSRF_COOKIE, nonce)
    return response


def _open(request: web.Request) -> bool:
    path = request.path
    return ((request.method == "POST" and path in (INGEST_PATH, MANIFEST_PATH)) or path == "/healthz"
            or path.startswith("/static/"))


def _route(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


def _metrics_gate(request: web.Request) -> None:
    try:
        local = ipaddress.ip_address((request.remote or "").split("%")[0]).is_loopback
    except ValueError:  # a unix socket or an unknown peer
        local = False
    if local:
        return
    if not need_login(request).admin:
        raise refusal(request, web.HTTPForbidden, "/metrics is for admins (or loopback clients)", "admin-only")


async def _identify(request: web.Request) -> Viewer:
    header = request.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        return await _basic(request, header[6:].strip())
    return _session(request)


async def _basic(request: web.Request, encoded: str) -> Viewer:
    try:
        name, sep, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        name, sep, password = "", "", ""
    if not sep:
        raise _unauthorized(request, "malformed basic authorization header")
    found = await check_password(request, name, password, "basic")
    if found is None:
        raise _unauthorized(request, "wrong name or password")
    return found


async def check_password(request: web.Request, name: str, password: str, via: str) -> Viewer | None:
    """The user if the password is theirs; a failure is logged (never the password)."""
    user = _user(request.app, name)
    if await request.app[ACCESS].verify(user, password):
        assert user is not None
        return viewer_of(user)
    log.warning("event=login-failed via=%s user=%r known=%s remote=%s", via, name[:64], user is not None,
                request.remote)
    return None


def _user(app: web.Application, name: str) -> User | None:
    return next((u for u in _config_of(app).users if u.name == name), None)


def _config_of(app: web.Application) -> WatchdogConfig:
    from .server import WATCHDOG  # server imports this module

    return app[WATCHDOG].config


# --- login state -------------------------------------------------------------------------------

def need_login(request: web.Request) -> Viewer:
    """The logged-in viewer; else 401 with a basic-auth challenge (API), or a redirect to /login."""
    who = viewer(request)
    if who.name is not None:
        return who
    if is_api(request):
        raise _unauthorized(request, "log in: HTTP basic auth, or the session cookie of /login")
    target = request.path_qs if request.method == "GET" else "/"
    raise web.HTTPFound("/login?next=" + quote(target, safe="/"))


def contract_for(request: web.Request, contract_id: str, allow_public: bool = False) -> Contract:
    """The contract if the viewer may read it (or it is public and `allow_public`); else 404 for
    users (unknown and forbidden look the same) and the login answer for anonymous requests."""
    who = viewer(request)
    contract = next((c for c in _config_of(request.app).contracts if c.id == contract_id), None)
    if contract is not None and (who.may_read(contract) or (allow_public and contract.public)):
        return contract
    need_login(request)
    raise refusal(request, web.HTTPNotFound, f"no contract {contract_id!r}", "not-found")


def is_api(request: web.Request) -> bool:
    """Answers for programs (JSON errors, basic-auth challenges) rather than for browsers."""
    return request.path.startswith("/api/") or request.path == "/metrics"


def refusal(request: web.Request, kind: type[web.HTTPException], message: str, code: str,
            headers: dict[str, str] | None = None) -> web.HTTPException:
    """An error answer: JSON `{"error", "code"}` under /api/, plain text for pages."""
    if is_api(request):
        return kind(text=json.dumps({"error": message, "code": code}), content_type="application/json",
                    headers=headers)
    return kind(text=message, headers=headers)


def _unauthorized(request: web.Request, message: str) -> web.HTTPException:
    return refusal(request, web.HTTPUnauthorized, message, "login-required", {"WWW-Authenticate": REALM})


def _session(request: web.Request) -> Viewer:
    value = request.cookies.get(SESSION_COOKIE, "")
    body, _, mac = value.partition(".")
    access = request.app[ACCESS]
    if not body or not _same(mac, access.mac(b"session", body)):
        return ANONYMOUS
    try:
        claims = json.loads(_unb64(body))
        name, issued, expires, fingerprint = claims["u"], claims["i"], claims["x"], claims["h"]
    except (ValueError, KeyError, TypeError):
        return ANONYMOUS
    user = _user(request.app, name) if isinstance(name, str) else None
    if user is None or not isinstance(expires, int) or expires <= time.time() or not isinstance(issued, int) \
            or issued <= access.logged_out.get(user.name, -1) or not _same(str(fingerprint), _fingerprint(access, user)):
        return ANONYMOUS
    return viewer_of(user)


def session_cookie(access: Access, user: User, now: float) -> str:
    """`claims.mac`: the user, when issued (ms) and until when (s), and a fingerprint of the password
    hash (a new password or a removed user ends the session; so does logging out, until a restart)."""
    claims = json.dumps({"u": user.name, "i": int(now * 1000), "x": int(now) + SESSION_S,
                         "h": _fingerprint(access, user)}, separators=(",", ":"))
    body = _b64(claims.encode())
    return f"{body}.{access.mac(b'session', body)}"


def _fingerprint(access: Access, user: User) -> str:
    return access.mac(b"user", user.name, user.password_hash)[:22]


def _set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str,
                max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="Strict",
                        secure=request.secure)


# --- CSRF --------------------------------------------------------------------------------------

def csrf_token(request: web.Request) -> str:
    """The token forms must send back (field `csrf`): bound to this browser's CSRF cookie and user."""
    nonce = request.get(_NEW_CSRF) or request.cookies.get(CSRF_COOKIE, "")
    if len(nonce) < 16:
        nonce = request[_NEW_CSRF] = secrets.token_urlsafe(24)
    return _csrf_for(request, nonce)


def _csrf_for(request: web.Request, nonce: str) -> str:
    return request.app[ACCESS].mac(b"csrf", nonce, viewer(request).name or "")


async def form_with_csrf(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """The posted form, once its CSRF token checked out; else 403."""
    form = await request.post()
    sent = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    nonce = request.cookies.get(CSRF_COOKIE, "")
    if not isinstance(sent, str) or len(nonce) < 16 or not _same(sent, _csrf_for(request, nonce)):
        log.warning("event=csrf-refused method=%s path=%s user=%r remote=%s", request.method, request.path,
                    viewer(request).name, request.remote)
        raise refusal(request, web.HTTPForbidden, "missing or wrong CSRF token: reload the page and send the "
                      "form again", "csrf")
    return form


# --- /login and /logout ------------------------------------------------------------------------

def add_routes(app: web.Application) -> None:
    app[ACCESS] = Access()
    app.on_startup.append(_load_key)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("slawatch.watchdog", "templates/ui"), autoescape=True,
                              undefined=jinja2.StrictUndefined)


def _login_page(request: web.Request, next_path: str, error: str | None = None, status: int = 200) -> web.Response:
    text = _templates().get_template("login.html").render(
        viewer=viewer(request), csrf=csrf_token(request), rules_version=sla.RULES_VERSION, next=next_path,
        error=error)
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8", headers={
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
        "Content-Security-Policy": "default-src 'self'; style-src 'self'; frame-ancestors 'none'"})


def _local_path(value: Any) -> str:
    """Where to go after logging in: a path of this site only (no open redirect)."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//") and "\\" not in value \
            and all(c.isprintable() for c in value):
        return value
    return "/"


async def login_form(request: web.Request) -> web.Response:
    return _login_page(request, _local_path(request.query.get("next")))


async def login(request: web.Request) -> web.Response:
    form = await form_with_csrf(request)
    name, password, next_path = form.get("name"), form.get("password"), _local_path(form.get("next"))
    if not isinstance(name, str) or not isinstance(password, str) or not name or not password:
        return _login_page(request, next_path, "Give your name and password.", 400)
    found = await check_password(request, name, password, "form")
    if found is None:
        return _login_page(request, next_path, "Wrong name or password.", 401)
    user = _user(request.app, name)
    assert user is not None
    log.info("event=login user=%s via=form remote=%s", user.name, request.remote)
    response = _see_other(next_path)
    _set_cookie(request, response, SESSION_COOKIE, session_cookie(request.app[ACCESS], user, time.time()), SESSION_S)
    # a new CSRF cookie with the new session: a token seen before login is worth nothing after it
    _set_cookie(request, response, CSRF_COOKIE, secrets.token_urlsafe(24))
    return response


async def logout(request: web.Request) -> web.Response:
    await form_with_csrf(request)
    who = viewer(request)
    if who.name is not None:
        # every session of the user issued until now ends (in memory: a restart forgets this)
        request.app[ACCESS].logged_out[who.name] = int(time.time() * 1000)
        log.info("event=logout user=%s remote=%s", who.name, request.remote)
    response = _see_other("/login")
    response.del_cookie(SESSION_COOKIE, path="/", secure=request.secure, httponly=True, samesite="Strict")
    return response


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two texts (any characters)."""
    return hmac.compare_digest(a.encode(errors="surrogatepass"), b.encode(errors="surrogatepass"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
