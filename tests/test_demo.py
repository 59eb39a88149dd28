"""`qubicle-exporter --demo` end to end: a real process, the embedded simulator, live figures."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

from conftest import exporter_process

QUEUE_METRICS = [
    "qubicle_queue_recipients", "qubicle_queue_active_recipients", "qubicle_queue_available_recipients",
    "qubicle_queue_active_sessions", "qubicle_queue_estimated_wait_seconds",
    "qubicle_queue_average_wait_seconds", "qubicle_queue_longest_wait_seconds",
    "qubicle_queue_daily_sessions", "qubicle_queue_daily_missed_sessions",
    "qubicle_queue_daily_abandoned_sessions", "qubicle_queue_sessions_total",
    "qubicle_queue_missed_sessions_total", "qubicle_queue_abandoned_sessions_total", "qubicle_queue_info",
]
# Configuration, not activity: present for every queue, but the demo does not change them.
STATIC = {"qubicle_queue_recipients", "qubicle_queue_info"}


def scrape(exporter) -> dict[str, dict[tuple, float]]:
    by_metric: dict[str, dict[tuple, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(exporter.get("/metrics").text):
        for s in family.samples:
            by_metric[s.name][(s.labels.get("account_id"), s.labels.get("queue_id"))] = s.value
    return by_metric


def test_demo_serves_every_queue_metric_moving():
    # 3000x: a simulated day in under 30 s, so every figure moves whatever the hour of the run.
    with exporter_process("--demo", "--demo-speed", "3000", "--interval", "1") as exporter:
        first = scrape(exporter)
        queues = set(first["qubicle_queue_info"])
        assert len(queues) == 8  # 2 accounts x 4 queues by default
        moved: set[str] = set()
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and moved != set(QUEUE_METRICS) - STATIC:
            time.sleep(1)
            now = scrape(exporter)
            for metric in QUEUE_METRICS:
                assert set(now[metric]) == queues, f"{metric} is not served for every queue"
                if any(now[metric][q] != first[metric][q] for q in queues):
                    moved.add(metric)
        assert moved == set(QUEUE_METRICS) - STATIC, f"never moved: {set(QUEUE_METRICS) - STATIC - moved}"
        assert all(v == 1 for v in now["qubicle_up"].values())
        landing = exporter.get("/").text
        assert "qubicle-exporter" in landing and "/metrics" in landing


def test_sigterm_stops_cleanly_and_quickly():
    with exporter_process("--demo", "--interval", "1") as exporter:
        started = time.monotonic()
        exporter.proc.send_signal(signal.SIGTERM)
        try:
            code = exporter.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            raise AssertionError("still running 2 s after SIGTERM") from None
        assert code == 0, exporter.logs()[-2000:]
        assert time.monotonic() - started < 2
        assert '"event": "stopping"' in exporter.logs()
