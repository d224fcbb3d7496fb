"""The ingest endpoint with nothing behind it: aiohttp and the watchdog's own checks of a request
(envelope, Ed25519 signature over the body's SHA-256), answering a small acknowledgement. What the
HTTP and signature layer of ingest costs before a byte is parsed or stored (bench/ingest.py).

    python signed_target.py PORT AGENTS
"""

import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slawatch.agent.protocol import INGEST_PATH, check_envelope, public_key_from_line, verify_signature  # noqa: E402
from slawatch.config.keys import load_private_key, public_key_line  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KEY = public_key_from_line(public_key_line(load_private_key(
    (ROOT / "config" / "examples" / "secrets" / "agent.key").read_bytes())))
KEYS = {f"bench-{i}": KEY for i in range(int(sys.argv[2]))}


async def ingest(request: web.Request) -> web.Response:
    envelope = check_envelope(request.headers, KEYS)
    body = await request.read()
    verify_signature(envelope, request.path, body, KEYS)
    return web.json_response({"batch": envelope.batch, "stored": body.count(b'"seq":')})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="OK")


app = web.Application(client_max_size=64 << 20)
app.router.add_post(INGEST_PATH, ingest)
app.router.add_get("/healthz", healthz)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
