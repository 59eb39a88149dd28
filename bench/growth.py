"""Benchmark 4: how the exporter's cost grows with queues and accounts, every kind of scraper active.

For each size, a simulator process (latency 20 ms) and an exporter process with default flags
(--interval 10; the number of accounts polled at once adapts, up to --max-concurrency 64). While
the polls run, three scrapers (curl): Prometheus (OpenMetrics, gzip) every second, whose
latencies (time to the whole body) are the p50/p99; a plain-text scraper and an OpenMetrics
plain scraper, each every 5 s. Figures per
size: poll wall / bound (bound = requests x latency / accounts polled at once, read from the
exporter's log), exporter CPU per poll, the text's size, scrape p50/p99, peak RSS (VmHWM), and the
time to ready against its latency floor: the Kazoo requests made until ready (read from
qubicle_api_requests_total at that moment), authentication and the descendants' pages one after
another, every account's requests (listings, status, agents, settings, names) at the first
poll's concurrency.

The machine's cores are shared (with the simulator, the scrapers, other work): each size is run
`repeat` times; the report gives the median and the spread (min-max).
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench.common import percentile, table
from bench.procs import cpu_seconds, exporter, memory_kib, simulator

LATENCY = 0.02
PAGE = 50  # Crossbar's default page: the descendants listing is accounts / 50 requests in a row
SIZES = ((100, 10), (1000, 10), (1000, 50), (5000, 2))  # accounts x queues per account
OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
RSS_TARGETS_MB = {10_000: 150, 50_000: 400}
SCRAPE_P99_TARGET = 0.100  # at 50,000 queues


def _scraper(url: str, headers: dict[str, str], every: float, stop: threading.Event,
             times: list[float], sizes: list[int]) -> None:
    """Scrapes with curl, a process of its own per scrape: reading 100 MB bodies in this Python
    process would hold its GIL and add the plain scrapers' reading time to the gzip latencies."""
    header_args = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    while not stop.is_set():
        started = time.perf_counter()
        done = subprocess.run(["curl", "-s", "-o", "/dev/null", "--max-time", "120", "-w",
                               "%{http_code} %{time_total} %{size_download}", *header_args, url],
                              capture_output=True, text=True, check=False)
        code, seconds, size = (done.stdout.split() + ["0", "inf", "0"])[:3]
        # A failed scrape is counted, as the worst latency there is.
        times.append(float(seconds) if code == "200" else math.inf)
        sizes.append(int(float(size)))
        stop.wait(max(0.0, every - (time.perf_counter() - started)))


def _polls(log_file: Path) -> list[dict[str, float]]:
    polls = []
    for line in log_file.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "poll":
            polls.append(event)
    return polls


def _requests_so_far(metrics_url: str) -> tuple[int, int]:
    """Kazoo requests made until now (read at ready: discovery and the first poll), as (one after
    another: authentication and the descendants' pages; side by side: every account's requests)."""
    with urllib.request.urlopen(metrics_url, timeout=60) as answer:
        text = answer.read().decode()
    sequential = parallel = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != "qubicle_api_requests_total":
                continue
            if sample.labels["endpoint"] in ("descendants", "api_auth", "user_auth"):
                sequential += int(sample.value)
            else:
                parallel += int(sample.value)
    return sequential, parallel


def run_one(accounts: int, queues: int, measure: float = 60.0) -> dict[str, float]:
    with simulator(accounts, queues, latency=LATENCY) as sim, tempfile.TemporaryDirectory() as tmp:
        key, log_file = Path(tmp) / "key", Path(tmp) / "exporter.log"
        key.write_text(sim.api_key)
        started = time.monotonic()
        with exporter(sim, key, "--interval", "10", log_file=log_file) as (url, proc):
            ready = time.monotonic() - started
            sequential, parallel = _requests_so_far(url + "/metrics")
            while not _polls(log_file):  # ready comes with the snapshot, the poll's log line just after
                time.sleep(0.1)
            first = _polls(log_file)[0]
            metrics = url + "/metrics"
            stop = threading.Event()
            gz_times: list[float] = []
            gz_sizes: list[int] = []
            plain_times: list[float] = []
            plain_sizes: list[int] = []
            om_times: list[float] = []
            threads = [
                threading.Thread(target=_scraper, args=(metrics, {"Accept": OPENMETRICS, "Accept-Encoding": "gzip"},
                                                        1.0, stop, gz_times, gz_sizes)),
                threading.Thread(target=_scraper, args=(metrics, {"Accept-Encoding": "identity"}, 5.0, stop,
                                                        plain_times, plain_sizes)),
                threading.Thread(target=_scraper, args=(metrics, {"Accept": OPENMETRICS, "Accept-Encoding": "identity"},
                                                        5.0, stop, om_times, [])),
            ]
            for thread in threads:
                thread.start()
            time.sleep(10)  # every scraper has scraped: the formats are pre-rendered from now on
            gz_times.clear()
            polls_before = len(_polls(log_file))
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(measure)
            cpu, seconds = cpu_seconds(proc.pid) - cpu0, time.monotonic() - t0
            stop.set()
            for thread in threads:
                thread.join(130)
            polls = _polls(log_file)[polls_before:] or _polls(log_file)[-1:]
            hwm = memory_kib(proc.pid, "VmHWM") / 1024
    served = statistics.median(plain_sizes) if plain_sizes else 0.0
    walls = [p["duration_seconds"] for p in polls]
    bounds = [p["accounts"] * LATENCY / max(1, p.get("concurrency", 1)) for p in polls]
    first_at_once = max(1, first.get("concurrency", 1))
    ready_floor = sequential * LATENCY + parallel * LATENCY / first_at_once
    return {
        "accounts": accounts, "queues": accounts * queues, "polls": len(polls),
        "wall": statistics.median(walls), "bound": statistics.median(bounds),
        "ratio": statistics.median(w / b for w, b in zip(walls, bounds, strict=True)),
        "concurrency": statistics.median(p.get("concurrency", 0) for p in polls),
        # A poll every 10 s, or back to back when one takes longer (APScheduler skips the ticks).
        "cpu_per_poll": cpu * max(10.0, statistics.median(walls)) / seconds, "bytes": served,
        "gz_p50": percentile(gz_times, 50), "gz_p99": percentile(gz_times, 99), "gz_scrapes": len(gz_times),
        "plain_p50": percentile(plain_times, 50) if plain_times else math.nan,
        "hwm_mb": hwm, "ready": ready, "ready_floor": ready_floor,
    }


def run(sizes: tuple[tuple[int, int], ...] = SIZES, repeat: int = 3, measure: float = 60.0
        ) -> list[list[dict[str, float]]]:
    return [[run_one(accounts, queues, measure) for _ in range(repeat)] for accounts, queues in sizes]


def _spread(runs: list[dict[str, float]], key: str, fmt: str, scale: float = 1.0) -> str:
    values = [r[key] * scale for r in runs]
    mid = statistics.median(values)
    if len(values) == 1:
        return format(mid, fmt)
    return f"{format(mid, fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def report(results: list[list[dict[str, float]]]) -> str:
    rows = []
    for runs in results:
        r = runs[0]
        rows.append([f"{int(r['accounts']):,} x {int(r['queues'] / r['accounts'])}", f"{int(r['queues']):,}",
                     _spread(runs, "concurrency", ".0f"), _spread(runs, "ratio", ".2f"),
                     _spread(runs, "wall", ".1f"), _spread(runs, "cpu_per_poll", ".2f"),
                     f"{statistics.median(x['bytes'] for x in runs) / 1e6:.1f} MB",
                     _spread(runs, "gz_p50", ".0f", 1e3), _spread(runs, "gz_p99", ".0f", 1e3),
                     _spread(runs, "plain_p50", ".0f", 1e3), _spread(runs, "hwm_mb", ".0f"),
                     _spread(runs, "ready", ".1f"), f"{statistics.median(x['ready_floor'] for x in runs):.1f}"])
    lines = [
        f"Growth (simulator latency {LATENCY * 1000:.0f} ms, default flags, --interval 10; gzip+OpenMetrics "
        "scraped every 1 s, plain text and OpenMetrics plain every 5 s; median (min-max) of "
        f"{len(results[0])} runs)",
        table(["accounts x queues", "queues", "at once", "wall/bound", "poll wall s", "CPU/poll s", "text",
               "gzip p50 ms", "gzip p99 ms", "plain p50 ms", "peak RSS MB", "ready s", "floor s"], rows),
    ]
    for runs in results:
        queues = int(runs[0]["queues"])
        hwm = statistics.median(r["hwm_mb"] for r in runs)
        if queues in RSS_TARGETS_MB:
            lines.append(f"target: peak RSS at {queues:,} queues <= {RSS_TARGETS_MB[queues]} MB: {hwm:.0f} MB "
                         f"(worst {max(r['hwm_mb'] for r in runs):.0f}) -> "
                         f"{'MET' if hwm <= RSS_TARGETS_MB[queues] else 'MISSED'}")
        if queues == 50_000:
            p99 = statistics.median(r["gz_p99"] for r in runs)
            lines.append(f"target: gzip scrape p99 at 50,000 queues <= {SCRAPE_P99_TARGET * 1e3:.0f} ms while polls "
                         f"run: {p99 * 1e3:.0f} ms -> {'MET' if p99 <= SCRAPE_P99_TARGET else 'MISSED'}")
        if runs[0]["accounts"] == 5000:
            wall = statistics.median(r["wall"] for r in runs)
            ready = statistics.median(r["ready"] / r["ready_floor"] for r in runs)
            lines.append(f"target: 5,000 accounts polled within the 10 s interval: {wall:.1f} s -> "
                         f"{'MET' if wall <= 10 else 'MISSED'}")
            lines.append(f"target: ready within 1.5x the latency floor: {ready:.2f}x -> "
                         f"{'MET' if ready <= 1.5 else 'MISSED'}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(run()))
