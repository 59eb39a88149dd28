"""End to end: simulator -> exporter -> real Prometheus with our rules -> real Alertmanager -> webhook.

A burst of abandoned callers on one queue must page QubicleAbandonRateHigh for that queue and
nothing for the healthy queues. The shipped rule files are loaded as they are, except that every
`for:` is shortened so that the test takes seconds, not minutes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, exporter_process
from helpers_alertmanager import alertmanager, webhook_receiver
from helpers_prometheus import prometheus

pytestmark = pytest.mark.e2e  # starts processes or needs Debian's tools

RULE_FILES = [ROOT / "alerts" / "qubicle.rules.yml", ROOT / "alerts" / "qubicle.alerts.yml"]


def shortened_rules(tmp_path: Path) -> list[Path]:
    paths = []
    for source in RULE_FILES:
        text = re.sub(r"^( +)for: \d+[smh]$", r"\1for: 1s", source.read_text(), flags=re.M)
        path = tmp_path / source.name
        path.write_text(text)
        paths.append(path)
    return paths


@contextmanager
def paging_pipeline(sim: Any, account: str, key_file: Path, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """The whole path: the exporter polling `sim` every second, a real Prometheus scraping it with the
    shipped rules (for: shortened) and sending to a real Alertmanager, which posts to a webhook."""
    with webhook_receiver() as receiver, alertmanager(yaml.safe_dump({
        "route": {"receiver": "test", "group_by": ["alertname", "account_id", "queue_id"],
                  "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "test", "webhook_configs": [{"url": receiver.url, "send_resolved": False}]}],
    })) as am_url, exporter_process("--kazoo-url", sim.url, "--account-id", account,
                                    "--api-key-file", str(key_file), "--interval", "1") as exporter:
        host = exporter.url.removeprefix("http://")
        with prometheus(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am_url.removeprefix("http://")]}]}]},
                "rule_files": [str(p) for p in shortened_rules(tmp_path)],
                "scrape_configs": [{"job_name": "qubicle", "static_configs": [{"targets": [host]}]}],
            }
        ) as prom:
            yield receiver, prom


def received_after(receiver: Any, alertname: str) -> list[dict[str, Any]]:
    """Every notification the webhook has, once `alertname` arrived (or after 60 s), plus 3 s of
    room for any wrong notification to arrive too."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(a["labels"].get("alertname") == alertname for a in receiver.alerts()):
            break
        time.sleep(0.5)
    time.sleep(3)
    alerts: list[dict[str, Any]] = receiver.alerts()
    return alerts


def test_abandon_burst_pages_for_that_queue_only(make_simulator, tmp_path):
    # A frozen clock at 10:00 on a weekday: agents are on shift, no caller arrives by itself, so the
    # only traffic is the burst below and the healthy queues stay healthy.
    sim = make_simulator(accounts=1, queues_per_account=3, seed=11, speed=0,
                         start=datetime(2026, 11, 24, 10, 0, tzinfo=UTC))
    account = sim.account_ids[0]
    queues = [q for q, _ in sim.queues(account)]
    target, healthy = queues[0], queues[1:]
    key_file = tmp_path / "api-key"
    key_file.write_text(sim.api_key)

    with paging_pipeline(sim, account, key_file, tmp_path) as (receiver, prom):
        # The exporter's counters start at 0 on the first figure they see: the burst must come
        # after Prometheus has that first sample, or it would be the baseline.
        prom.wait_for(f'qubicle_queue_abandoned_sessions_total{{queue_id="{target}"}}',
                      lambda result: len(result) == 1, timeout=30)
        time.sleep(2)
        sim.burst(account, target, "abandoned", 20)

        alerts = received_after(receiver, "QubicleAbandonRateHigh")

    abandon = [a for a in alerts if a["labels"]["alertname"] == "QubicleAbandonRateHigh"]
    assert abandon, f"no QubicleAbandonRateHigh received; got {[a['labels'] for a in alerts]}"
    assert {a["labels"]["queue_id"] for a in abandon} == {target}
    assert {a["labels"]["severity"] for a in abandon} == {"warning", "critical"}
    first = abandon[0]
    assert first["labels"]["account_id"] == account
    assert first["annotations"]["runbook_url"].endswith("#qubicleabandonratehigh")
    assert dict(sim.queues(account))[target] in first["annotations"]["description"]
    # The summary names the account by its name (qubicle_account_info), not its 32-hex id.
    assert first["annotations"]["summary"] == (
        f"Many callers abandon queue {dict(sim.queues(account))[target]} of account Customer 1.")
    paged_queues = {a["labels"].get("queue_id") for a in alerts} - {None}
    assert paged_queues == {target}, f"healthy queues {set(healthy) & paged_queues} were paged"


def test_callers_near_the_queue_timeout_warn_for_that_queue_only(make_simulator, tmp_path):
    """QubicleCallersNearTimeout from the queue's own timeout, read from its settings by the exporter.

    No agent anywhere and Kazoo sends no longest wait: every queue's estimated wait is one call
    and its wrap-up (210 s). Against a 240 s timeout that is 87 % (>= 80 %): a warning; against
    the default 600 s, 35 %: nothing.
    """
    sim = make_simulator(accounts=1, queues_per_account=2, agents_per_queue=0, seed=11, speed=0,
                         longest_wait=False, queue_timeouts=(240, None),
                         start=datetime(2026, 11, 24, 10, 0, tzinfo=UTC))
    account = sim.account_ids[0]
    (short, short_name), (normal, _) = sim.queues(account)
    key_file = tmp_path / "api-key"
    key_file.write_text(sim.api_key)

    with paging_pipeline(sim, account, key_file, tmp_path) as (receiver, prom):
        prom.wait_for("qubicle_queue_timeout_seconds", lambda result: len(result) == 2, timeout=60)
        alerts = received_after(receiver, "QubicleCallersNearTimeout")

    near = [a for a in alerts if a["labels"]["alertname"] == "QubicleCallersNearTimeout"]
    assert near, f"no QubicleCallersNearTimeout received; got {[a['labels'] for a in alerts]}"
    # Only the queue near its timeout (the estimated wait also pages QubicleEstimatedWaitHigh on both).
    assert {a["labels"]["queue_id"] for a in near} == {short} and normal != short
    assert near[0]["annotations"]["summary"] == (
        f"Callers are about to time out in queue {short_name} of account Customer 1.")
    assert "88%" in near[0]["annotations"]["description"] or "87.5%" in near[0]["annotations"]["description"]
