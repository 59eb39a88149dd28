"""HTTP serving: /metrics, /, /-/healthy, /-/ready, with the exporter-toolkit's TLS and basic auth.

Like Prometheus' exporter-toolkit, basic auth (when configured) protects every path, the health
endpoints included; a container health check then needs the credentials, or should probe the
port instead. /metrics bodies are produced off the event loop, in a worker thread: the first
scrape after a poll renders the whole exposition, which must not stall the poller.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from exporter.webconfig import BasicAuth, WebConfig, load_web_config


@dataclass(frozen=True)
class WebHandlers:
    metrics: Callable[[str | None, str | None], tuple[bytes, dict[str, str]]]
    landing: Callable[[], str]
    healthy: Callable[[], bool]
    ready: Callable[[], bool]


def parse_listen(listen: str) -> tuple[str | None, int]:
    """'host:port', '[::1]:port' or ':port' (every interface) -> (host or None, port)."""
    match = re.fullmatch(r"(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]*)):(\d{1,5})", listen.strip())
    if not match:
        raise ValueError(f"--listen: expected host:port, [ipv6]:port or :port, got {listen!r}")
    host = match.group(1) or match.group(2) or None
    port = int(match.group(3))
    if port > 65535:
        raise ValueError(f"--listen: port {port} is out of range")
    return host, port


def create_app(handlers: WebHandlers, *, metrics_path: str = "/metrics", auth: BasicAuth | None = None,
               headers: dict[str, str] | None = None) -> web.Application:
    middlewares = []
    if auth is not None:

        @web.middleware
        async def basic_auth(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                             ) -> web.StreamResponse:
            if not await asyncio.get_running_loop().run_in_executor(
                None, auth.check, request.headers.get("Authorization")
            ):
                return web.Response(status=401, text="Unauthorized\n",
                                    headers={"WWW-Authenticate": 'Basic realm="qubicle-exporter"'})
            return await handler(request)

        middlewares.append(basic_auth)

    async def metrics(request: web.Request) -> web.Response:
        body, headers = await asyncio.get_running_loop().run_in_executor(
            None, handlers.metrics, request.headers.get("Accept"), request.headers.get("Accept-Encoding")
        )
        return web.Response(body=body, headers=headers)

    async def landing(request: web.Request) -> web.Response:
        return web.Response(text=handlers.landing(), content_type="text/html")

    async def healthy(request: web.Request) -> web.Response:
        return web.Response(text="OK\n") if handlers.healthy() else web.Response(status=503, text="Unhealthy\n")

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="Ready\n") if handlers.ready() else web.Response(status=503, text="Not ready\n")

    app = web.Application(middlewares=middlewares)
    if headers:

        async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
            response.headers.update(headers)

        app.on_response_prepare.append(add_headers)
    # add_get also answers HEAD.
    app.router.add_get(metrics_path, metrics)
    app.router.add_get("/", landing)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    return app


class WebServer:
    def __init__(self, runner: web.AppRunner, bound: list[tuple[str, int]]) -> None:
        self._runner = runner
        self.bound = bound

    @classmethod
    async def start(cls, handlers: WebHandlers, listen: str, web_config_file: str | None = None,
                    *, metrics_path: str = "/metrics") -> WebServer:
        host, port = parse_listen(listen)
        config: WebConfig = load_web_config(web_config_file) if web_config_file else WebConfig()
        app = create_app(handlers, metrics_path=metrics_path, auth=config.basic_auth, headers=config.headers)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, host=host, port=port, ssl_context=config.ssl_context(), reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        bound = [(str(a[0]), int(a[1])) for a in runner.addresses]
        return cls(runner, bound)

    async def stop(self) -> None:
        await self._runner.cleanup()
