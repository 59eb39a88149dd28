"""Property-based: arbitrary JSON and wrong types as Crossbar's answers never escape the poller,
every bad field is counted, and the exposition stays valid for promtool and the parser."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, TypeGuard

import pytest
from aiohttp import web
from conftest import debian_tool
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client import Metric
from prometheus_client.parser import text_string_to_metric_families
from served import served_exposition, served_text

from exporter import selfmetrics
from exporter.config import Secrets, Settings, client_settings
from exporter.kazoo import KazooClient
from exporter.poller import Poller
from exporter.snapshot import Snapshot

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
        "stats": st.fixed_dictionaries({}, optional=dict.fromkeys(
            ("estimated_wait", "average_wait", "recipient_count", "active_session_count", "total_sessions",
             "missed_sessions", "abandoned_sessions", "longest_wait"), figure)) | junk,
    },
)
answer = st.dictionaries(st.sampled_from(QUEUES + ["unknown"]), status_object | junk, max_size=4) | junk


def valid(value: Any) -> TypeGuard[int | float]:
    """An independent statement of what a usable figure is."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def expected_bad_fields(data: Any) -> Counter[str]:
    """How many times each field (dotted, as the `field` label spells it) is unusable in `data`."""
    bad: Counter[str] = Counter()
    if not isinstance(data, dict):
        return bad
    for queue_id in QUEUES:
        status = data.get(queue_id)
        if not isinstance(status, dict):
            continue
        for path in REQUIRED:
            holder = status if len(path) == 1 else status.get("stats")
            if not (isinstance(holder, dict) and valid(holder.get(path[-1]))):
                bad[".".join(path)] += 1
        stats = status.get("stats")
        if isinstance(stats, dict) and "longest_wait" in stats and not valid(stats["longest_wait"]):
            bad["stats.longest_wait"] += 1
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
            self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"

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


def invalid_by_field(families: list[Metric]) -> dict[str, float]:
    """qubicle_invalid_fields_total as served, by its `field` label (one account only)."""
    found: dict[str, float] = {}
    for family in families:
        for s in family.samples:
            if s.name == "qubicle_invalid_fields_total":
                assert s.labels["account_id"] == ACCOUNT, s.labels
                found[s.labels["field"]] = s.value
    return found


def poll_once(crossbar: FakeCrossbar, data: Any) -> tuple[Any, Poller, selfmetrics.SelfMetrics]:
    """One poll of ACCOUNT with `data` as the status answer's data: (snapshot, poller, metrics)."""
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
    return snapshot, poller, metrics


@pytest.mark.e2e
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=answer)
@example(data={"q1": {"node": -2**63 - 1}, "q2": {"node": 2**64 - 1}})  # beyond 64 bits, and just within
def test_any_answer_is_survived_counted_and_exposed_validly(crossbar, data, tmp_path_factory):
    snapshot, poller, metrics = poll_once(crossbar, data)
    account = snapshot.accounts[ACCOUNT]
    # What /metrics serves (the fast renderer, the exporter's own metrics after it), not
    # prometheus-client's rendering of the collector: a node or name escaped wrongly there breaks this parse.
    text = served_text(served_exposition(lambda: poller.snapshot, max_data_age=60, live_registry=metrics.registry))
    families = list(text_string_to_metric_families(text))
    if isinstance(data, dict):
        assert account.up
        # Label values, not only the sum: each unusable field is counted under its own name.
        assert invalid_by_field(families) == {f: float(n) for f, n in expected_bad_fields(data).items()}
    else:
        assert not account.up and account.error == "bad_response"

    served = {(s.name, s.labels.get("queue_id")): s.value for f in families for s in f.samples}
    assert all(math.isfinite(v) for v in served.values())  # never NaN or inf
    nodes = {s.labels["queue_id"]: s.labels["node"] for f in families for s in f.samples
             if s.name == "qubicle_queue_info"}
    for queue_id in QUEUES:
        status = data.get(queue_id) if isinstance(data, dict) else None
        if not isinstance(status, dict):
            assert ("qubicle_queue_info", queue_id) not in served  # no figures, not zeros
            continue
        node = status.get("node")
        # An integer beyond 64 bits reaches the parser as the float orjson reads (kazoo/envelope.py
        # _loads: the one difference from json.loads): not a node name.
        readable_int = isinstance(node, int) and not isinstance(node, bool) and -2**63 <= node < 2**64
        usable_node = (isinstance(node, str) or readable_int) and str(node) != ""
        assert nodes[queue_id] == (str(node) if usable_node else ""), (node, nodes[queue_id])
        for path in REQUIRED:
            holder = status if len(path) == 1 else status.get("stats")
            raw = holder.get(path[-1]) if isinstance(holder, dict) else None
            got = served.get((METRIC[path[-1]], queue_id))
            # A usable figure is served as it came; junk drops that one sample, never a made-up 0.
            assert got == (float(raw) if valid(raw) else None), (path, raw, got)
    path = tmp_path_factory.mktemp("expo") / "metrics.prom"
    path.write_text(text)
    result = subprocess.run([debian_tool("promtool"), "check", "metrics"], stdin=path.open(), capture_output=True,
                            text=True, timeout=30)
    assert result.returncode in (0, 3) and "error" not in result.stderr.lower(), result.stderr


# Node values as a Kazoo cluster could name its nodes, or a broken proxy could send them.
HOSTILE_NODES = ['kz"1', "back\\slash@kz", "new\nline", "trailing\\", 'a="b",c="d"', "Ünïcødé ☎ 客服"]


def hostile_node_answer(nodes: list[str]) -> dict[str, Any]:
    figures = {"estimated_wait": 30, "average_wait": 20, "recipient_count": 5, "active_session_count": 1,
               "total_sessions": 40, "missed_sessions": 2, "abandoned_sessions": 3}
    return {q: {"active_recipient_count": 3, "available_recipient_count": 1, "node": node, "stats": figures}
            for q, node in zip(QUEUES, nodes, strict=True)}


def served_nodes(text: str, parse: Any) -> dict[str, str]:
    return {s.labels["queue_id"]: s.labels["node"] for f in parse(text) for s in f.samples
            if s.name == "qubicle_queue_info"}


def test_hostile_node_values_are_escaped_in_the_served_exposition(crossbar):
    """The `node` label comes from Kazoo: whatever it holds, /metrics stays parseable and says it exactly."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

    for chunk in (HOSTILE_NODES[:3], HOSTILE_NODES[3:]):
        _, poller, metrics = poll_once(crossbar, hostile_node_answer(chunk))

        def snapshot(poller: Poller = poller) -> Snapshot:
            return poller.snapshot

        exposition = served_exposition(snapshot, max_data_age=60, live_registry=metrics.registry)
        expected = dict(zip(QUEUES, chunk, strict=True))
        assert served_nodes(served_text(exposition), text_string_to_metric_families) == expected
        assert served_nodes(served_text(exposition, openmetrics=True), parse_openmetrics) == expected


@pytest.mark.e2e
def test_hostile_node_values_pass_promtool(crossbar, tmp_path):
    for i, chunk in enumerate((HOSTILE_NODES[:3], HOSTILE_NODES[3:])):
        _, poller, metrics = poll_once(crossbar, hostile_node_answer(chunk))

        def snapshot(poller: Poller = poller) -> Snapshot:
            return poller.snapshot

        text = served_text(served_exposition(snapshot, max_data_age=60, live_registry=metrics.registry))
        path = tmp_path / f"metrics-{i}.prom"
        path.write_text(text)
        result = subprocess.run([debian_tool("promtool"), "check", "metrics"], stdin=path.open(), capture_output=True,
                                text=True, timeout=30)
        assert result.returncode in (0, 3) and "error" not in result.stderr.lower(), result.stderr


def test_queues_missing_from_the_answer_are_counted_and_the_others_still_served(crossbar):
    # Kazoo lists q1, q2, q3 but the status answer has q2 only.
    _, poller, metrics = poll_once(crossbar, {"q2": hostile_node_answer(["kz1", "kz1", "kz1"])["q2"]})
    text = served_text(served_exposition(lambda: poller.snapshot, max_data_age=60, live_registry=metrics.registry))
    samples = {(s.name, s.labels.get("queue_id")): s.value for f in text_string_to_metric_families(text)
               for s in f.samples}
    assert samples[("qubicle_status_missing_queues_total", None)] == 2
    assert ("qubicle_queue_info", "q2") in samples
    assert not [q for n, q in samples if n == "qubicle_queue_info" and q != "q2"]
