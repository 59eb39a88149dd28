"""Benchmark 3: CPU and memory of the exporter process at 10,000 queues, --interval 10.

A simulator process serves 1,000 accounts x 10 queues; the exporter (its own process, discovering
the accounts under the reseller) is scraped every 10 s with gzip, as Prometheus would.
Targets: average CPU <= 10 % of one core after warm-up; peak RSS (VmHWM) <= 150 MB.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx

from bench.common import table
from bench.procs import cpu_seconds, exporter, memory_kib, simulator

CPU_TARGET, RSS_TARGET_MB = 0.10, 150


def run(accounts: int = 1000, queues: int = 10, warmup: float = 30, measure: float = 120) -> dict[str, float]:
    with simulator(accounts, queues) as sim, tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "key"
        key.write_text(sim.api_key)
        # The queue figures alone, as first measured; what agents and settings add: bench/agents.py.
        with exporter(sim, key, "--interval", "10", "--max-concurrency", "10", "--no-agent-status",
                      "--no-queue-settings", "--no-account-names") as (url, proc):
            with httpx.Client(timeout=30, headers={"Accept-Encoding": "gzip"}) as client:
                def scrape_for(seconds: float) -> int:
                    deadline, count = time.monotonic() + seconds, 0
                    while time.monotonic() < deadline:
                        client.get(url + "/metrics").raise_for_status()
                        count += 1
                        time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
                    return count

                scrape_for(warmup)
                cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
                scrapes = scrape_for(measure)
                cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
                body = client.get(url + "/metrics").text
                served = body.count("\nqubicle_queue_info{")
                return {"queues": served, "cpu": cpu, "rss_mb": memory_kib(proc.pid, "VmRSS") / 1024,
                        "hwm_mb": memory_kib(proc.pid, "VmHWM") / 1024, "scrapes": scrapes, "seconds": measure}


def report(r: dict[str, float]) -> str:
    rows = [[f"{int(r['queues']):,}", f"{r['seconds']:.0f} s", int(r["scrapes"]), f"{r['cpu'] * 100:.1f} %",
             f"{r['rss_mb']:.0f} MB", f"{r['hwm_mb']:.0f} MB"]]
    return "\n".join([
        "Exporter resources (--interval 10, scraped every 10 s with gzip)",
        table(["queues", "measured", "scrapes", "avg CPU (one core)", "RSS", "peak RSS"], rows),
        f"target: average CPU <= {CPU_TARGET * 100:.0f} % of one core: {r['cpu'] * 100:.1f} % "
        f"-> {'MET' if r['cpu'] <= CPU_TARGET else 'MISSED'}",
        f"target: peak RSS <= {RSS_TARGET_MB} MB: {r['hwm_mb']:.0f} MB -> {'MET' if r['hwm_mb'] <= RSS_TARGET_MB else 'MISSED'}",
    ])


if __name__ == "__main__":
    print(report(run()))
