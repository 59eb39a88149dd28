"""A real Prometheus scrapes the exporter; PromQL returns the figures the simulated Kazoo serves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import exporter_process
from helpers_prometheus import prometheus

pytestmark = pytest.mark.e2e  # starts processes or needs Debian's tools

FIELDS = {
    "qubicle_queue_recipients": ("stats", "recipient_count"),
    "qubicle_queue_active_recipients": ("active_recipient_count",),
    "qubicle_queue_available_recipients": ("available_recipient_count",),
    "qubicle_queue_active_sessions": ("stats", "active_session_count"),
    "qubicle_queue_estimated_wait_seconds": ("stats", "estimated_wait"),
    "qubicle_queue_average_wait_seconds": ("stats", "average_wait"),
    "qubicle_queue_longest_wait_seconds": ("stats", "longest_wait"),
    "qubicle_queue_daily_sessions": ("stats", "total_sessions"),
    "qubicle_queue_daily_missed_sessions": ("stats", "missed_sessions"),
    "qubicle_queue_daily_abandoned_sessions": ("stats", "abandoned_sessions"),
}


def dig(status: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = status
    for key in path:
        value = value[key]
    return float(value)


def test_promql_returns_kazoos_figures(make_simulator, tmp_path):
    # Prometheus asks for gzip: this also proves its Go reader takes our one-member gzip body.
    # A frozen clock two busy hours into a weekday, so every figure is there and does not move.
    sim = make_simulator(accounts=2, queues_per_account=3, seed=5, speed=0,
                         start=datetime(2026, 11, 24, 9, 0, tzinfo=UTC))
    sim.advance(2 * 3600)
    key = tmp_path / "key"
    key.write_text(sim.api_key)
    args = ["--kazoo-url", sim.url, "--api-key-file", str(key), "--interval", "1"]
    for account in sim.account_ids:
        args += ["--account-id", account]
    with exporter_process(*args) as exporter:
        target = exporter.url.removeprefix("http://")
        with prometheus({"global": {"scrape_interval": "1s"},
                         "scrape_configs": [{"job_name": "qubicle", "static_configs": [{"targets": [target]}]}]}
                        ) as prom:
            prom.wait_for('up{job="qubicle"}', lambda r: len(r) == 1 and r[0]["value"][1] == "1")
            prom.wait_for("qubicle_queue_info", lambda r: len(r) == 6)
            compared = 0
            for account in sim.account_ids:
                assert prom.query(f'qubicle_up{{account_id="{account}"}}')[0]["value"][1] == "1"
                for queue_id, name in sim.queues(account):
                    status = sim.status(account, queue_id)
                    for metric, path in FIELDS.items():
                        result = prom.query(f'{metric}{{account_id="{account}",queue_id="{queue_id}"}}')
                        assert len(result) == 1, (metric, queue_id)
                        assert result[0]["metric"]["queue_name"] == name
                        assert float(result[0]["value"][1]) == dig(status, path), (metric, name)
                        compared += 1
            assert compared == 60
            busy = prom.query("sum(qubicle_queue_daily_sessions)")
            assert float(busy[0]["value"][1]) > 0  # the figures compared were not all zeros
