"""`qubicle-exporter --demo` end to end: a real process, the embedded simulator, live figures."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from datetime import time as dt_time
from zoneinfo import ZoneInfo

import httpx
import pytest
from conftest import exporter_process
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import DemoSettings, Settings
from exporter.simulator import Simulator, SimulatorConfig

pytestmark = pytest.mark.e2e  # starts processes or needs Debian's tools

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


# ---- the demo's call center, in process -------------------------------------------------------------

WALL_CLOCKS = [datetime(2026, 3, 10, 23, 30, tzinfo=UTC), datetime(2026, 7, 4, 3, 0, tzinfo=UTC),
               datetime(2026, 12, 31, 19, 59, tzinfo=UTC), datetime(2026, 5, 4, 10, 0, tzinfo=UTC)]


def fake_wall_clock(monkeypatch, when: datetime) -> None:
    from exporter.simulator import state

    monkeypatch.setattr(state, "_wall_clock", lambda tz: when.astimezone(tz))


@pytest.mark.parametrize("wall", WALL_CLOCKS, ids=lambda w: w.strftime("%H:%M"))
def test_demo_starts_at_ten_local_time_today_whatever_the_hour(monkeypatch, wall):
    import exporter.simulator
    from exporter.demo import DEMO_TIMEZONE, demo_kazoo

    fake_wall_clock(monkeypatch, wall)
    started: list = []

    class Recorded(exporter.simulator.Simulator):
        def start(self, *args, **kwargs):
            started.append(self)
            super().start(*args, **kwargs)

    monkeypatch.setattr(exporter.simulator, "Simulator", Recorded)
    with demo_kazoo(Settings(demo=DemoSettings(enabled=True))) as effective:
        (sim,) = started
        now = sim.now()
        assert now.tzinfo is not None and now.utcoffset() == wall.astimezone(ZoneInfo(DEMO_TIMEZONE)).utcoffset()
        assert now.date() == wall.astimezone(ZoneInfo(DEMO_TIMEZONE)).date()
        assert (now.hour, now.minute) in ((10, 0), (10, 1))  # speed 10: a few real seconds at most
        # A busy floor: agents logged in, over the HTTP API the exporter polls.
        token = {"X-Auth-Token": sim.issue_token(ttl=60)}
        account = effective.account_ids[0]
        statuses = httpx.get(f"{effective.kazoo_url}/v2/accounts/{account}/qubicle_queues/status",
                             headers=token).json()["data"]
        assert sum(s["active_recipient_count"] for s in statuses.values()) > 0


def test_start_at_local_takes_today_in_the_simulators_time_zone(monkeypatch):
    # 23:30 UTC on 10 March is already 11 March in Tokyo.
    fake_wall_clock(monkeypatch, datetime(2026, 3, 10, 23, 30, tzinfo=UTC))
    sim = Simulator(SimulatorConfig(accounts=1, queues_per_account=1, seed=1, speed=0, timezone="Asia/Tokyo",
                                    start_at_local=dt_time(10, 0)))
    assert sim.now() == datetime(2026, 3, 11, 10, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    # start wins over start_at_local; neither is real time.
    fixed = datetime(2026, 1, 2, 15, 0, tzinfo=UTC)
    assert Simulator(SimulatorConfig(accounts=0, speed=0, start=fixed, start_at_local=dt_time(10, 0))).now() == fixed
    assert Simulator(SimulatorConfig(accounts=0, speed=0)).now() == datetime(2026, 3, 10, 23, 30, tzinfo=UTC)


def queue_timeout(sim: Simulator, account_id: str, queue_id: str) -> float:
    queue = sim._state.queue(account_id, queue_id)
    assert queue is not None, queue_id
    timeout = queue.settings["timeout"]
    assert isinstance(timeout, (int, float)), timeout
    return timeout


def test_demo_queues_miss_callers_as_well_as_lose_them(monkeypatch):
    from exporter.demo import demo_config

    fake_wall_clock(monkeypatch, WALL_CLOCKS[0])
    sim = Simulator(replace(demo_config(DemoSettings(enabled=True)), speed=0))
    queues = [(a, q) for a in sim.account_ids for q, _ in sim.queues(a)]
    timeouts = {q: queue_timeout(sim, a, q) for a, q in queues}
    short = {q for q, t in timeouts.items() if t < 600}
    assert short and len(short) < len(queues), "some queues, not all, time out early"
    assert all(120 <= timeouts[q] <= 300 for q in short)
    for _ in range(3 * 6):  # 10:00 -> 13:00, polled every 10 simulated minutes
        sim.advance(600)
        for a, q in queues:
            sim.status(a, q)
            assert sim.totals_consistent(a, q)
    stats = {q: sim.status(a, q)["stats"] for a, q in queues}
    assert sum(stats[q]["missed_sessions"] for q in short) >= 5
    assert len([q for q in short if stats[q]["missed_sessions"]]) >= 2
    assert sum(s["abandoned_sessions"] for s in stats.values()) >= 20
    assert all(stats[q]["abandoned_sessions"] for q in short)  # short timeouts still leave callers who hang up


@pytest.mark.e2e
def test_demo_log_shows_the_exporters_own_url_first():
    """The person running the demo opens the first address in the log: it must be the exporter's
    metrics, not the simulator's Crossbar."""
    import re

    with exporter_process("--demo", "--demo-speed", "0") as exporter:
        urls = re.findall(r"https?://[^\s\"',]+", exporter.logs())
    assert urls, exporter.logs()
    assert urls[0] == exporter.url + "/metrics"
    assert any(u != urls[0] for u in urls[1:])  # the simulator's own URL is still there, after it


@pytest.mark.e2e
def test_make_demo_takes_a_port():
    import shutil
    from pathlib import Path

    make = shutil.which("make")
    assert make, "make is not on PATH"
    root = Path(__file__).resolve().parent.parent
    dry = subprocess.run([make, "-n", "demo", "PORT=12345"], cwd=root, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "--demo --listen 127.0.0.1:12345" in dry.stdout
    default = subprocess.run([make, "-n", "demo"], cwd=root, capture_output=True, text=True, timeout=60)
    assert "--demo --listen 127.0.0.1:10147" in default.stdout
