"""A minimal loopback HTTP target for the benchmarks: GET /health answers "OK"."""

import sys

from aiohttp import web


async def health(request: web.Request) -> web.Response:
    return web.Response(text="OK")


app = web.Application()
app.router.add_get("/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
