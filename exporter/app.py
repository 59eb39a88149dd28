"""Wires the parts together and runs until SIGTERM: client -> poller -> snapshot -> render -> exposition -> web."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import signal
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from exporter import __version__, logs, selfmetrics
from exporter.config import Settings, client_settings
from exporter.demo import demo_kazoo
from exporter.exposition import Exposition
from exporter.kazoo import KazooClient
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

    def render_snapshot(snapshot: Snapshot, now: float, openmetrics: bool) -> Iterator[bytes]:
        return render(snapshot, now, max_data_age=settings.max_data_age, openmetrics=openmetrics, labels=labels)

    exposition = Exposition(metrics.registry, render_snapshot, max_data_age=settings.max_data_age, prerender=True)
    poller = Poller(settings, client, metrics, on_snapshot=exposition.update)
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
        release_free_memory()  # what the last poll and its renders freed, before this poll allocates again
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


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None (musl, macOS: nothing to call)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Hands the free pages of glibc's heap back to the system (malloc_trim(0)).

    A poll and the renders after it allocate and free tens of megabytes of buffers above
    pymalloc's 512 bytes (answers, family texts, deflate parts, dict and list tables). glibc keeps
    what they freed inside its heap unless it is at the top, and raises its mmap threshold as big
    blocks are freed, so more of them land in the heap: at 5,000 accounts x 2 queues the main
    heap's free space grew by ~4 MB per poll (12.6 -> 41 MB over 8 polls, with 15 MB in use),
    and RSS with it. malloc_trim(0) returns every whole free page in the heap, not only its top
    (~1 ms). Not a limit: what is in use stays; RSS shows what is used instead of what was.
    """
    if _TRIM is not None:
        _TRIM(0)


def tune_gc() -> None:
    """Fewer cyclic collections: a poll of 10,000 queues allocates ~10^6 short-lived objects, which
    at CPython's default threshold (700) means ~110 collections per poll, each walking the objects
    that live on (the snapshot, the counters' state). With a first threshold of 10,000 it is ~6
    (a full one every ~20 polls), and the poll's CPU falls by about a quarter (bench/RESULTS.md).
    The objects made at startup (modules, settings) are frozen: never walked again. The older
    generations keep their default ratios (10, 10), so cyclic garbage (exceptions of failed
    requests, above all) is still reclaimed within a few polls: the fault soak holds RSS within
    10 % of its warm-up value with them, and did not always with rarer full collections."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


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
