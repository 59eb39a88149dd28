"""Benchmark 1: scrape cost of /metrics at 100, 1,000 and 10,000 queues.

Ours: the exposition rendered once per poll (Exposition.update) and served from memory by
exporter.web. Baseline, measured in the same run on the same samples: prometheus-client's own
HTTP server with the same Collector registered, which renders at every scrape.
Target: at 10,000 queues ours is at least 20x faster, and its latency grows no faster than the
bytes served.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import httpx
from prometheus_client import CollectorRegistry, start_http_server

from bench.common import median, percentile, synthetic_snapshot, table
from exporter.collector import SnapshotCollector
from exporter.exposition import Exposition
from exporter.render import render
from exporter.snapshot import Snapshot
from exporter.web import WebHandlers, WebServer

SIZES = (100, 1_000, 10_000)
TARGET_RATIO = 20.0


@contextmanager
def our_server(snapshot: Snapshot) -> Iterator[str]:
    exposition = Exposition(CollectorRegistry(), lambda s, now, om: render(s, now, max_data_age=3600, openmetrics=om))
    exposition.update(snapshot)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, object] = {}

    async def start() -> None:
        handlers = WebHandlers(metrics=exposition.stream, landing=lambda: "", healthy=lambda: True,
                               ready=lambda: True)
        server = await WebServer.start(handlers, "127.0.0.1:0")
        holder["server"] = server
        host, port = server.bound[0]
        holder["url"] = f"http://{host}:{port}/metrics"
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    started.wait()
    try:
        yield str(holder["url"])
    finally:
        asyncio.run_coroutine_threadsafe(holder["server"].stop(), loop).result(timeout=10)  # type: ignore[attr-defined]
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


@contextmanager
def baseline_server(registry: CollectorRegistry) -> Iterator[str]:
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def measure(url: str, scrapes: int, gzip: bool) -> tuple[list[float], int]:
    headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
    times: list[float] = []
    size = 0
    with httpx.Client(timeout=120) as client:
        client.get(url, headers=headers)  # warm-up: ours renders lazily on the first scrape
        for _ in range(scrapes):
            started = time.perf_counter()
            response = client.get(url, headers=headers)
            response.read()
            times.append(time.perf_counter() - started)
            size = len(response.content)
    return times, size


def _same(snapshot: Snapshot) -> Snapshot:
    return snapshot


def run(scrapes: int = 30) -> list[dict[str, float]]:
    results = []
    for queues in SIZES:
        snapshot = synthetic_snapshot(queues)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(partial(_same, snapshot), max_data_age=3600))
        with our_server(snapshot) as url:
            ours, size = measure(url, scrapes, gzip=False)
        base_scrapes = max(5, scrapes // (queues // 1000 + 1))
        with baseline_server(registry) as url:
            base, _ = measure(url, base_scrapes, gzip=False)
        results.append({"queues": queues, "bytes": size, "ours_p50": median(ours), "ours_p99": percentile(ours, 99),
                        "base_p50": median(base), "base_p99": percentile(base, 99)})
    return results


def report(results: list[dict[str, float]]) -> str:
    rows = []
    for r in results:
        rows.append([f"{int(r['queues']):,}", f"{r['bytes'] / 1e6:.2f} MB", f"{r['ours_p50'] * 1e3:.1f}",
                     f"{r['ours_p99'] * 1e3:.1f}", f"{r['base_p50'] * 1e3:.1f}", f"{r['base_p99'] * 1e3:.1f}",
                     f"{r['base_p50'] / r['ours_p50']:.1f}x"])
    small, large = results[0], results[-1]
    latency_growth = large["ours_p50"] / small["ours_p50"]
    bytes_growth = large["bytes"] / small["bytes"]
    ratio = large["base_p50"] / large["ours_p50"]
    lines = [
        "Scrape cost of /metrics (milliseconds; baseline = prometheus-client rendering at scrape time)",
        table(["queues", "served", "ours p50", "ours p99", "base p50", "base p99", "speed-up"], rows),
        f"target: >= {TARGET_RATIO:.0f}x at {int(large['queues']):,} queues: {ratio:.1f}x "
        f"-> {'MET' if ratio >= TARGET_RATIO else 'MISSED'}",
        f"target: latency grows no faster than bytes ({int(small['queues']):,} -> {int(large['queues']):,} queues): "
        f"latency x{latency_growth:.1f}, bytes x{bytes_growth:.1f} "
        f"-> {'MET' if latency_growth <= bytes_growth else 'MISSED'}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(run()))
