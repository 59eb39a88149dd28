"""HTTP serving: /metrics, /, /-/healthy, /-/ready, with the exporter-toolkit's TLS, basic auth and headers.

Authentication covers every path, the health endpoints included, exactly as Prometheus'
exporter-toolkit does: an unauthenticated /-/healthy would let anyone probe the exporter, and
operators expect the same behaviour as from node_exporter. Consequence for the Dockerfile's
HEALTHCHECK (plain HTTP, no credentials): it works with the default (no web config); once a web
config turns on TLS or basic auth the image's HEALTHCHECK must be overridden (e.g. a probe with
the credentials and the CA), or rely on the orchestrator's own probes with credentials.

Keeping the event loop free: the loop also runs the poller, so nothing long runs on it.
- /metrics bodies come from a small dedicated thread pool: the first scrape after a poll renders
  the whole exposition (~20 MB at 10,000 queues, CPU-bound), later ones copy cached bytes. A
  dedicated pool (not the loop's default executor) keeps a burst of scrapes from taking every
  default worker, and its threads end with the server.
- bcrypt (~70 ms at cost 10) runs in a one-thread pool, only for credentials not yet cached;
  cached verdicts are decided on the loop in microseconds, so a flood of wrong passwords queues
  behind itself and never delays a scrape whose credentials are already known.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from exporter.config import parse_listen
from exporter.exposition import Body
from exporter.webconfig import BasicAuth, RateLimiter, WebConfig, load_web_config

_RENDER_THREADS = 4  # concurrent first scrapes of one format wait on one render anyway
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class WebHandlers:
    metrics: Callable[[str | None, str | None], tuple[bytes | Body, dict[str, str]]]  # Exposition.stream
    landing: Callable[[], str]  # HTML body of "/"
    healthy: Callable[[], bool]
    ready: Callable[[], bool]  # at least one successful poll


def _san_matches(peercert: Mapping[str, Any] | None, allowed: Sequence[str]) -> bool:
    """The toolkit's client_allowed_sans: one of the certificate's DNS, IP, e-mail or URI SANs is listed."""

    def norm(value: str) -> str:
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            return value.strip()

    wanted = {norm(a) for a in allowed}
    sans = (peercert or {}).get("subjectAltName", ())
    return any(kind in ("DNS", "IP Address", "email", "URI") and norm(value) in wanted for kind, value in sans)


def create_app(handlers: WebHandlers, *, metrics_path: str = "/metrics", auth: BasicAuth | None = None,
               headers: Mapping[str, str] | None = None, rate_limiter: RateLimiter | None = None,
               client_allowed_sans: Sequence[str] = ()) -> web.Application:
    """The aiohttp application. Its thread pools shut down with it (AppRunner.cleanup)."""
    render_pool = ThreadPoolExecutor(_RENDER_THREADS, thread_name_prefix="metrics-render")
    auth_pool = ThreadPoolExecutor(1, thread_name_prefix="basic-auth") if auth is not None else None
    middlewares = []

    if client_allowed_sans:

        @web.middleware
        async def allowed_sans(request: web.Request, handler: _Handler) -> web.StreamResponse:
            peercert = request.transport.get_extra_info("peercert") if request.transport else None
            if not _san_matches(peercert, client_allowed_sans):
                return web.Response(status=403, text="Forbidden: client certificate SAN not allowed\n")
            return await handler(request)

        middlewares.append(allowed_sans)

    if rate_limiter is not None:

        @web.middleware
        async def rate_limit(request: web.Request, handler: _Handler) -> web.StreamResponse:
            if not rate_limiter.allow():
                return web.Response(status=429, text="Too Many Requests\n")
            return await handler(request)

        middlewares.append(rate_limit)

    if auth is not None:

        @web.middleware
        async def basic_auth(request: web.Request, handler: _Handler) -> web.StreamResponse:
            header = request.headers.get("Authorization")
            ok = auth.cached(header)
            if ok is None:
                ok = await asyncio.get_running_loop().run_in_executor(auth_pool, auth.check, header)
            if not ok:
                return web.Response(status=401, text="Unauthorized\n",
                                    headers={"WWW-Authenticate": 'Basic realm="qubicle-exporter", charset="UTF-8"'})
            return await handler(request)

        middlewares.append(basic_auth)

    async def metrics(request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        body, response_headers = await loop.run_in_executor(
            render_pool, handlers.metrics, request.headers.get("Accept"), request.headers.get("Accept-Encoding")
        )
        if isinstance(body, bytes):
            return web.Response(body=body, headers=response_headers)
        # Sent piece by piece (plain text is inflated as it goes, in the pool): a scrape never
        # holds the whole exposition, and the loop never inflates.
        response = web.StreamResponse(headers=response_headers)
        response.content_length = body.length
        await response.prepare(request)
        if request.method != "HEAD" and body.costly:
            while (piece := await loop.run_in_executor(render_pool, next, body.pieces, None)) is not None:
                await response.write(piece)
        elif request.method != "HEAD":
            for piece in body.pieces:  # slices of bytes already made: nothing to compute
                await response.write(piece)
        await response.write_eof()
        return response

    async def landing(request: web.Request) -> web.Response:
        return web.Response(text=handlers.landing(), content_type="text/html", charset="utf-8")

    async def healthy(request: web.Request) -> web.Response:
        return web.Response(text="OK\n") if handlers.healthy() else web.Response(status=503, text="Unhealthy\n")

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="Ready\n") if handlers.ready() else web.Response(status=503, text="Not ready\n")

    app = web.Application(middlewares=middlewares)
    if headers:
        extra = dict(headers)

        async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
            response.headers.update(extra)

        app.on_response_prepare.append(add_headers)

    async def shutdown_pools(app: web.Application) -> None:
        # cancel_futures: scrapes still queued are dropped; a render under way finishes in its thread.
        render_pool.shutdown(wait=False, cancel_futures=True)
        if auth_pool is not None:
            auth_pool.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(shutdown_pools)
    # add_get also answers HEAD.
    app.router.add_get(metrics_path, metrics)
    if metrics_path != "/":
        app.router.add_get("/", landing)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    return app


class WebServer:
    """The HTTP(S) server on the current asyncio loop."""

    def __init__(self, runner: web.AppRunner, bound: list[tuple[str, int]]) -> None:
        self._runner = runner
        self.bound = bound

    def __repr__(self) -> str:
        return f"WebServer(bound={self.bound})"

    @classmethod
    async def start(cls, handlers: WebHandlers, listen: str, web_config_file: str | None = None,
                    *, metrics_path: str = "/metrics") -> WebServer:
        """Listens on `listen` (port 0: a free port; see `bound`). A bad listen address or web
        config raises ValueError (WebConfigError) with one line; a port in use raises OSError."""
        if not metrics_path.startswith("/"):
            raise ValueError(f"--web.telemetry-path: must start with '/', got {metrics_path!r}")
        host, port = parse_listen(listen)
        config = load_web_config(web_config_file) if web_config_file else WebConfig()
        limiter = RateLimiter(*config.rate_limit) if config.rate_limit else None
        app = create_app(handlers, metrics_path=metrics_path, auth=config.basic_auth, headers=config.headers,
                         rate_limiter=limiter, client_allowed_sans=config.tls.client_allowed_sans if config.tls else ())
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, host=host, port=port, ssl_context=config.ssl_context(), reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        bound = [(str(a[0]), int(a[1])) for a in runner.addresses]
        return cls(runner, bound)

    async def stop(self) -> None:
        """Stops listening and closes connections; in-flight requests get at most 0.5 s."""
        await self._runner.cleanup()
