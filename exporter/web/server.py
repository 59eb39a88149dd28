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
  cached verdicts are decided on the loop in microseconds, so a flood of wrong passwords never
  delays a scrape whose credentials are already known. Checks not yet cached pass auth.BcryptGate:
  configured users first, a few places per client address, 429 beyond (see auth.py).

Hostile connections (slow headers, too many sockets, descriptors running out) are handled below
the application, per connection, by connections.ConnectionGuard: the listener is made here with
loop.create_server so that each connection's protocol can be wrapped. WebServer.reload (SIGHUP)
re-reads the web config into the app's LiveConfig and the listening SSLContext.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from aiohttp import web

from exporter.config import parse_listen
from exporter.exposition import Body
from exporter.wallboard.api import Selection
from exporter.wallboard.routes import add_routes as add_wallboard_routes
from exporter.web.auth import BasicAuth, BcryptGate
from exporter.web.config import TLSConfig, WebConfig, WebConfigError, load_web_config
from exporter.web.connections import HEADER_TIMEOUT, AcceptErrorLog, ConnectionGuard
from exporter.web.ratelimit import RateLimiter

log = structlog.get_logger("qubicle.web")

_RENDER_THREADS = 4  # concurrent first scrapes of one format wait on one render anyway
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class WebHandlers:
    metrics: Callable[[str | None, str | None], tuple[bytes | Body, dict[str, str]]]  # Exposition.stream
    landing: Callable[[], str]  # HTML body of "/"
    healthy: Callable[[], bool]
    ready: Callable[[], bool]  # at least one successful poll
    queues: Callable[[Selection], bytes] | None = None  # JSON of /api/v1/queues; with it, /wallboard


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


@dataclass
class LiveConfig:
    """What SIGHUP can change without a restart (WebServer.reload): read by the middlewares at
    every request; reload sets its fields on the event loop, all at once (no await between)."""

    auth: BasicAuth | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    rate_limiter: RateLimiter | None = None
    client_allowed_sans: Sequence[str] = ()


LIVE_CONFIG = web.AppKey("live_config", LiveConfig)


def _settings_of(tls: TLSConfig) -> TLSConfig:
    """The TLS settings but the certificate and key, which a reload may change."""
    return replace(tls, cert_file=None, key_file=None, cert=None, key=None)


def create_app(handlers: WebHandlers, *, metrics_path: str = "/metrics", auth: BasicAuth | None = None,
               headers: Mapping[str, str] | None = None, rate_limiter: RateLimiter | None = None,
               client_allowed_sans: Sequence[str] = (), guard: ConnectionGuard | None = None) -> web.Application:
    """The aiohttp application. Its thread pools shut down with it (AppRunner.cleanup).
    app[LIVE_CONFIG] holds auth, headers, rate limit and allowed SANs, replaceable while serving."""
    render_pool = ThreadPoolExecutor(_RENDER_THREADS, thread_name_prefix="metrics-render")
    auth_pool = ThreadPoolExecutor(1, thread_name_prefix="basic-auth")  # its thread starts at first use
    gate = BcryptGate()
    live = LiveConfig(auth, dict(headers or {}), rate_limiter, tuple(client_allowed_sans))
    middlewares = []
    if guard is not None:
        middlewares.append(guard.middleware)  # outermost: every answer, refusals included, ends a header wait

    @web.middleware
    async def allowed_sans(request: web.Request, handler: _Handler) -> web.StreamResponse:
        allowed = app[LIVE_CONFIG].client_allowed_sans
        if allowed:
            peercert = request.transport.get_extra_info("peercert") if request.transport else None
            if not _san_matches(peercert, allowed):
                return web.Response(status=403, text="Forbidden: client certificate SAN not allowed\n")
        return await handler(request)

    @web.middleware
    async def rate_limit(request: web.Request, handler: _Handler) -> web.StreamResponse:
        limiter = app[LIVE_CONFIG].rate_limiter
        if limiter is not None and not limiter.allow():
            return web.Response(status=429, text="Too Many Requests\n")
        return await handler(request)

    @web.middleware
    async def basic_auth(request: web.Request, handler: _Handler) -> web.StreamResponse:
        auth = app[LIVE_CONFIG].auth
        if auth is None:
            return await handler(request)
        header = request.headers.get("Authorization")
        ok = auth.cached(header)
        if ok is None:
            ok = await gate.run(request.remote or "", auth.known_user(header), lambda: auth.check(header), auth_pool)
        if ok is None:  # too many checks waiting: refused without spending a bcrypt
            return web.Response(status=429, text="Too Many Requests\n", headers={"Retry-After": "1"})
        if not ok:
            return web.Response(status=401, text="Unauthorized\n",
                                headers={"WWW-Authenticate": 'Basic realm="qubicle-exporter", charset="UTF-8"'})
        return await handler(request)

    middlewares += [allowed_sans, rate_limit, basic_auth]

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
    app[LIVE_CONFIG] = live

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(app[LIVE_CONFIG].headers)

    app.on_response_prepare.append(add_headers)

    async def shutdown_pools(app: web.Application) -> None:
        # cancel_futures: scrapes still queued are dropped; a render under way finishes in its thread.
        render_pool.shutdown(wait=False, cancel_futures=True)
        auth_pool.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(shutdown_pools)
    # add_get also answers HEAD.
    app.router.add_get(metrics_path, metrics)
    if metrics_path != "/":
        app.router.add_get("/", landing)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    if handlers.queues is not None:
        add_wallboard_routes(app, handlers.queues, render_pool)
    return app


class WebServer:
    """The HTTP(S) server on the current asyncio loop."""

    def __init__(self, runner: web.AppRunner, listener: asyncio.Server, guard: ConnectionGuard,
                 accept_errors: AcceptErrorLog, config: WebConfig, ssl_context: ssl.SSLContext | None,
                 web_config_file: str | None) -> None:
        self._runner = runner
        self._listener = listener
        self._accept_errors = accept_errors
        self._config = config
        self._ssl_context = ssl_context
        self._web_config_file = web_config_file
        self.guard = guard
        self.bound = [(str(s.getsockname()[0]), int(s.getsockname()[1])) for s in listener.sockets]

    def __repr__(self) -> str:
        return f"WebServer(bound={self.bound})"

    @classmethod
    async def start(cls, handlers: WebHandlers, listen: str, web_config_file: str | None = None,
                    *, metrics_path: str = "/metrics", header_timeout: float = HEADER_TIMEOUT,
                    max_connections: int | None = None) -> WebServer:
        """Listens on `listen` (port 0: a free port; see `bound`). A bad listen address or web
        config raises ValueError (WebConfigError) with one line; a port in use raises OSError.
        max_connections None: from the open-files limit (connections.default_max_connections)."""
        if not metrics_path.startswith("/"):
            raise ValueError(f"--web.telemetry-path: must start with '/', got {metrics_path!r}")
        host, port = parse_listen(listen)
        config = load_web_config(web_config_file) if web_config_file else WebConfig()
        limiter = RateLimiter(*config.rate_limit) if config.rate_limit else None
        guard = ConnectionGuard(header_timeout, max_connections)
        app = create_app(handlers, metrics_path=metrics_path, auth=config.basic_auth, headers=config.headers,
                         rate_limiter=limiter, client_allowed_sans=config.tls.client_allowed_sans if config.tls else (),
                         guard=guard)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        assert runner.server is not None
        ssl_context = config.ssl_context()
        loop = asyncio.get_running_loop()
        accept_errors = AcceptErrorLog(loop, on_exhausted=guard.shed)
        try:
            # Not web.TCPSite: each connection's protocol is wrapped by the guard (connections.py).
            # The same listening options as TCPSite, plus a TLS handshake bounded like the headers.
            listener = await loop.create_server(
                guard.protocol_factory(runner.server), host=host, port=port, ssl=ssl_context, backlog=128,
                reuse_address=True, ssl_handshake_timeout=header_timeout if ssl_context else None,
            )
        except BaseException:
            await runner.cleanup()
            raise
        accept_errors.install()
        return cls(runner, listener, guard, accept_errors, config, ssl_context, web_config_file)

    async def reload(self) -> bool:
        """Reads --web.config.file again (SIGHUP), as the Go exporters do: certificate and key,
        users, headers and rate limit apply to new connections and requests. Anything wrong (bad
        file, TLS turned on or off, another tls_server_config change) leaves the running
        configuration in force and logs one line; nothing raises."""
        path = self._web_config_file
        if path is None:
            log.info("sighup_ignored", reason="no --web.config.file to reload")
            return False
        old = self._config
        try:
            config = await asyncio.to_thread(load_web_config, path)  # reads, bcrypt, loads certificates
            if (config.tls is None) != (old.tls is None):
                raise WebConfigError("turning TLS on or off needs a restart")
            if config.tls is not None and old.tls is not None:
                if _settings_of(config.tls) != _settings_of(old.tls):
                    raise WebConfigError("tls_server_config: only certificates and keys are reloaded; "
                                         "restart for other changes")
                assert self._ssl_context is not None
                config.load_certificate(self._ssl_context)
        except (WebConfigError, OSError) as exc:
            log.error("web_config_reload_failed", file=path, error=str(exc),
                      hint="the previous web configuration stays in force")
            return False
        live = self._runner.app[LIVE_CONFIG]
        live.auth = config.basic_auth
        live.headers = config.headers
        if config.rate_limit != old.rate_limit:
            live.rate_limiter = RateLimiter(*config.rate_limit) if config.rate_limit else None
        self._config = config
        log.info("web_config_reloaded", file=path, tls=config.tls is not None,
                 basic_auth_users=config.basic_auth.user_count if config.basic_auth else 0)
        return True

    async def stop(self) -> None:
        """Stops listening and closes connections; in-flight requests get at most 0.5 s."""
        self._listener.close()
        await self._runner.cleanup()
        self._accept_errors.uninstall()
