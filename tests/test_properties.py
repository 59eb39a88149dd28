"""Property-based: arbitrary JSON and wrong types as Crossbar's answers never escape the poller,
every bad field is counted, and the exposition stays valid for promtool and the parser."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conftest import debian_tool
from exporter import selfmetrics
from exporter.app import client_settings
from exporter.collector import SnapshotCollector
from exporter.config import Secrets, Settings
from exporter.kazoo import KazooClient
from exporter.poller import Poller

ACCOUNT = "b" * 32
QUEUES = ["q1", "q2", "q3"]
METRIC = {"active_recipient_count": "qubicle_queue_active_recipients",
          "available_recipient_count": "qubicle_queue_available_recipients",
          "estimated_wait": "qubicle_queue_estimated_wait_seconds", "average_wait": "qubicle_queue_average_wait_seconds",
          "recipient_count": "qubicle_queue_recipients", "active_session_count": "qubicle_queue_active_sessions",
          "total_sessions": "qubicle_queue_daily_sessions", "missed_sessions": "qubicle_queue_daily_missed_sessions",
          "abandoned_sessions": "qubicle_queue_daily_abandoned_sessions"}
REQUIRED = [("active_recipient_count",), ("available_recipient_count",), ("stats", "estimated_wait"),
            ("stats", "average_wait"), ("stats", "recipient_count"), ("stats", "active_session_count"),
            ("stats", "total_sessions"), ("stats", "missed_sessions"), ("stats", "abandoned_sessions")]

junk = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet="abcxyz \"\\\n☎", max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
figure = st.integers(0, 10_000) | junk
status_object = st.fixed_dictionaries(
    {},
    optional={
        "active_recipient_count": figure, "available_recipient_count": figure,
        "node": st.text(max_size=10) | st.integers() | st.none(),
        "stats": st.fixed_dictionaries({}, optional={k: figure for k in (
            "estimated_wait", "average_wait", "recipient_count", "active_session_count", "total_sessions",
            "missed_sessions", "abandoned_sessions", "longest_wait")}) | junk,
    },
)
answer = st.dictionaries(st.sampled_from(QUEUES + ["unknown"]), status_object | junk, max_size=4) | junk


def valid(value: Any) -> bool:
    """An independent statement of what a usable figure is."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def expected_bad_fields(data: Any) -> int:
    if not isinstance(data, dict):
        return 0
    bad = 0
    for queue_id in QUEUES:
        status = data.get(queue_id)
        if not isinstance(status, dict):
            continue
        for path in REQUIRED:
            holder = status if len(path) == 1 else status.get("stats")
            bad += not (isinstance(holder, dict) and valid(holder.get(path[-1])))
        stats = status.get("stats")
        if isinstance(stats, dict) and "longest_wait" in stats:
            bad += not valid(stats["longest_wait"])
    return bad


class FakeCrossbar:
    def __init__(self) -> None:
        self.body = b"{}"
        self.loop = asyncio.new_event_loop()
        self.url = ""

    async def auth(self, request: web.Request) -> web.Response:
        return web.json_response({"data": {}, "auth_token": "tok", "status": "success"})

    async def queues(self, request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": q, "name": f"Queue {q}"} for q in QUEUES], "status": "success"})

    async def status(self, request: web.Request) -> web.Response:
        return web.Response(body=self.body, content_type="application/json")

    def start(self) -> None:
        app = web.Application()
        app.router.add_put("/v2/api_auth", self.auth)
        app.router.add_get(f"/v2/accounts/{ACCOUNT}/qubicle_queues", self.queues)
        app.router.add_get(f"/v2/accounts/{ACCOUNT}/qubicle_queues/status", self.status)
        runner = web.AppRunner(app, access_log=None)

        async def go() -> None:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.url = "http://127.0.0.1:%d" % runner.addresses[0][1]

        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(go(), self.loop).result(10)
        self.runner = runner

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def crossbar() -> Iterator[FakeCrossbar]:
    fake = FakeCrossbar()
    fake.start()
    yield fake
    fake.stop()


def invalid_total(metrics: selfmetrics.SelfMetrics) -> float:
    return sum(child._value.get() for child in metrics.invalid_fields._metrics.values())


@pytest.mark.e2e
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=answer)
def test_any_answer_is_survived_counted_and_exposed_validly(crossbar, data, tmp_path_factory):
    crossbar.body = json.dumps({"data": data, "status": "success"}, allow_nan=True).encode()
    settings_ = replace(Settings(), kazoo_url=crossbar.url, account_ids=(ACCOUNT,),
                        secrets=Secrets(api_key="k" * 64), retries=0)
    metrics = selfmetrics.create(process=False)

    async def poll() -> Any:
        client = KazooClient(client_settings(settings_), on_request=metrics.on_request)
        try:
            poller = Poller(settings_, client, metrics)
            return await poller.poll(), poller  # must never raise, whatever the answer
        finally:
            await client.aclose()

    snapshot, poller = asyncio.run(poll())
    account = snapshot.accounts[ACCOUNT]
    if isinstance(data, dict):
        assert account.up
        assert invalid_total(metrics) == expected_bad_fields(data)
    else:
        assert not account.up and account.error == "bad_response"

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: poller.snapshot, max_data_age=60))
    text = generate_latest(registry).decode()
    families = list(text_string_to_metric_families(text))
    served = {(s.name, s.labels.get("queue_id")): s.value for f in families for s in f.samples}
    assert all(math.isfinite(v) for v in served.values())  # never NaN or inf
    for queue_id in QUEUES:
        status = data.get(queue_id) if isinstance(data, dict) else None
        if not isinstance(status, dict):
            assert ("qubicle_queue_info", queue_id) not in served  # no figures, not zeros
            continue
        for path in REQUIRED:
            holder = status if len(path) == 1 else status.get("stats")
            raw = holder.get(path[-1]) if isinstance(holder, dict) else None
            got = served.get((METRIC[path[-1]], queue_id))
            # A usable figure is served as it came; junk drops that one sample, never a made-up 0.
            assert got == (float(raw) if valid(raw) else None), (path, raw, got)
    path = tmp_path_factory.mktemp("expo") / "metrics.prom"
    path.write_text(text)
    result = subprocess.run([debian_tool("promtool"), "check", "metrics"], stdin=path.open(), capture_output=True, text=True)
    assert result.returncode in (0, 3) and "error" not in result.stderr.lower(), result.stderr
