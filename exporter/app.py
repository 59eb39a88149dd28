"""Wires the parts together and runs until SIGTERM: client -> poller -> snapshot -> render -> exposition -> web."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from datetime import UTC, datetime

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from exporter import __version__, logs, selfmetrics
from exporter.config import Settings, client_settings
from exporter.demo import demo_kazoo
from exporter.exposition import Chunk, Exposition
from exporter.gcpolicy import AfterPoll, tune_gc
from exporter.kazoo import KazooClient
from exporter.malloctrim import release_free_memory
from exporter.poller import Poller
from exporter.render import LabelCache, render
from exporter.snapshot import Snapshot
from exporter.wallboard.api import DocumentCache
from exporter.wallboard.routes import PAGE_PATH
from exporter.wallboard.thresholds import load_thresholds
from exporter.web import WebHandlers, WebServer, landing_page

log = structlog.get_logger("qubicle")


async def serve(settings: Settings, stop: asyncio.Event, reload: asyncio.Event | None = None) -> None:
    """Runs until `stop` is set; each time `reload` is set (SIGHUP) the web config is read again."""
    metrics = selfmetrics.create()
    client = KazooClient(
        client_settings(settings), on_request=metrics.on_request, on_reauthenticate=metrics.on_reauthenticate,
        on_token_refused=metrics.on_token_refused, on_truncated_name=metrics.on_truncated_name,
    )
    labels = LabelCache()

    def render_snapshot(snapshot: Snapshot, now: float, openmetrics: bool) -> Iterator[Chunk]:
        return render(snapshot, now, max_data_age=settings.max_data_age, openmetrics=openmetrics, labels=labels)

    exposition = Exposition(metrics.registry, render_snapshot, max_data_age=settings.max_data_age, prerender=True)
    after_poll = AfterPoll()

    def on_snapshot(snapshot: Snapshot) -> None:
        after_poll()  # the collector stops walking what is published (gcpolicy)
        release_free_memory()  # what the poll freed, before the render allocates
        exposition.update(snapshot)

    poller = Poller(settings, client, metrics, on_snapshot=on_snapshot)
    thresholds = load_thresholds(settings.alert_thresholds)  # checked at start by config.validate
    documents = DocumentCache(lambda: poller.snapshot, settings.max_data_age, thresholds, interval=settings.interval)

    handlers = WebHandlers(
        metrics=exposition.stream,
        landing=lambda: landing_page(settings, poller.snapshot),
        healthy=lambda: True,
        ready=lambda: poller.snapshot.ever_succeeded,
        queues=documents.json,
    )
    server = await WebServer.start(handlers, settings.listen, settings.web_config_file,
                                   metrics_path=settings.metrics_path)
    log.info("listening", addresses=[f"{h}:{p}" for h, p in server.bound], metrics_path=settings.metrics_path)
    if not settings.web_config_file:  # with a web config the scheme may be https: the path says enough
        host, port = server.bound[0]
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
        log.info("wallboard", url=f"http://{host}:{port}{PAGE_PATH}")

    async def reload_web_config() -> None:
        assert reload is not None
        while True:
            await reload.wait()
            reload.clear()
            await server.reload()  # logs its outcome; never raises

    reloader = asyncio.create_task(reload_web_config()) if reload is not None else None

    polls: set[asyncio.Task[object]] = set()

    async def poll_job() -> None:
        task = asyncio.current_task()
        if task is None:  # never: APScheduler runs coroutine jobs as tasks
            return
        polls.add(task)
        release_free_memory()  # what the last poll's renders freed, before this poll allocates again
        try:
            await poller.poll()
        except asyncio.CancelledError:
            if not stop.is_set():
                raise
            # Cancelled by the stop below (SIGTERM during a slow poll): an expected end, not a
            # job failure for APScheduler to log with a traceback.
            log.info("poll_cancelled", reason="stopping")
        finally:
            polls.discard(task)

    scheduler = AsyncIOScheduler()
    # max_instances=1 + coalesce: a poll slower than the interval skips ticks instead of piling up.
    scheduler.add_job(
        poll_job, "interval", seconds=settings.interval, max_instances=1, coalesce=True,
        next_run_time=_now(), misfire_grace_time=None, id="poll",
    )
    scheduler.start()
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        if reloader is not None:
            reloader.cancel()
        scheduler.shutdown(wait=False)
        for task in list(polls):
            task.cancel()  # a poll stuck on a slow Kazoo must not delay SIGTERM
        await server.stop()
        exposition.close()
        await client.aclose()


def _now() -> datetime:
    return datetime.now(UTC)


def run(settings: Settings) -> int:
    logs.configure(settings.log_level, settings.log_format)
    for secret in (settings.secrets.api_key, settings.secrets.auth_token, settings.secrets.password):
        logs.REDACTOR.add(secret)
    if settings.insecure_skip_verify:
        log.warning("tls_verification_disabled", kazoo_url=settings.kazoo_url,
                    hint="Kazoo's certificate is not checked; use --ca-file instead where possible")
    log.info("startup", version=__version__, interval=settings.interval, shard=str(settings.shard or "") or None,
             demo=settings.demo.enabled)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # SIGHUP reloads the web config, as in the Go exporters; it never ends the process.
        reload = asyncio.Event()
        loop.add_signal_handler(signal.SIGHUP, reload.set)
        with demo_kazoo(settings) as effective:
            if effective is not settings:
                for secret in (effective.secrets.api_key,):
                    logs.REDACTOR.add(secret)
            await serve(effective, stop, reload)

    tune_gc()
    try:
        asyncio.run(main())
    except OSError as exc:
        log.error("startup_failed", error=f"{exc.strerror or exc}")
        return 1
    except ValueError as exc:
        log.error("startup_failed", error=str(exc))
        return 2
    return 0
