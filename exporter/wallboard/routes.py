"""HTTP routes of the wallboard: the page (/wallboard, its script and style) and /api/v1/queues.

They join the exporter's application, so the web config's TLS, basic auth and headers cover them
as they cover /metrics. The page's three files are package data, read once: no build step, no CDN,
nothing fetched from anywhere but this exporter (the Content-Security-Policy says so to the browser).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from importlib.resources import files
from typing import Any

from aiohttp import web

from exporter.wallboard.api import Selection

PAGE_PATH = "/wallboard"
API_PATH = "/api/v1/queues"

# Only this exporter's own script, style and API; no inline code, no frames, no forms.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
API_CSP = "default-src 'none'; frame-ancestors 'none'"
_COMMON = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _static(name: str) -> bytes:
    return files("exporter.wallboard").joinpath("static", name).read_bytes()


def add_routes(app: web.Application, queues: Callable[[Selection], bytes],
               executor: Executor | None = None) -> None:
    """Adds GET (and HEAD) /wallboard, /wallboard/wallboard.{js,css} and /api/v1/queues.

    `queues(selection)` returns the API document as JSON (DocumentCache.json); it runs in
    `executor`: at 10,000 queues a build takes ~0.5 s, far too long for the event loop that polls."""
    assets = {
        PAGE_PATH: (_static("wallboard.html"), "text/html", PAGE_CSP),
        f"{PAGE_PATH}/wallboard.js": (_static("wallboard.js"), "text/javascript", PAGE_CSP),
        f"{PAGE_PATH}/wallboard.css": (_static("wallboard.css"), "text/css", PAGE_CSP),
    }

    def asset(body: bytes, content_type: str, csp: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type=content_type, charset="utf-8",
                                headers={**_COMMON, "Content-Security-Policy": csp, "Cache-Control": "no-cache"})

        return handler

    async def api(request: web.Request) -> web.Response:
        selection = Selection.of(request.query.getall("account", []), request.query.getall("queue", []))
        body = await asyncio.get_running_loop().run_in_executor(executor, queues, selection)
        return web.Response(body=body, content_type="application/json", charset="utf-8",
                            headers={**_COMMON, "Content-Security-Policy": API_CSP, "Cache-Control": "no-store"})

    for path, (body, content_type, csp) in assets.items():
        app.router.add_get(path, asset(body, content_type, csp))
    app.router.add_get(API_PATH, api)
