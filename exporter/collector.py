"""prometheus-client Collector over the current snapshot: a queue gone from the snapshot is gone here.

Exposition it produces (one queue shown):

    qubicle_up{account_id="3f0b..."} 1.0
    qubicle_queue_active_sessions{account_id="3f0b...",queue_id="9a1c...",queue_name="Support"} 2.0
    qubicle_queue_sessions_total{account_id="3f0b...",queue_id="9a1c...",queue_name="Support"} 41.0
    qubicle_queue_info{account_id="3f0b...",node="kz1@ams",queue_id="9a1c...",queue_name="Support"} 1.0
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.snapshot import COUNTERS, GAUGES, Snapshot

QUEUE_LABELS = ["account_id", "queue_id", "queue_name"]

GAUGE_HELP = {
    "recipients": "Agents (recipients) configured on the queue.",
    "active_recipients": "Agents logged in to the queue (ready or away).",
    "available_recipients": "Agents ready to take a call.",
    "active_sessions": "Callers in the queue now.",
    "estimated_wait_seconds": "Estimated wait for a caller entering the queue now.",
    "average_wait_seconds": "Average wait of today's callers, as Kazoo reports it.",
    "longest_wait_seconds": "Wait of the oldest caller in the queue (only where Kazoo sends it).",
    "daily_sessions": "Callers that entered the queue today, as Kazoo reports it (resets daily).",
    "daily_missed_sessions": "Callers that timed out in the queue today (resets daily).",
    "daily_abandoned_sessions": "Callers that hung up before being answered today (resets daily).",
}
COUNTER_HELP = {
    "sessions": "Callers that entered the queue, counted by the exporter across Kazoo's daily resets.",
    "missed_sessions": "Callers that timed out in the queue, counted across Kazoo's daily resets.",
    "abandoned_sessions": "Callers that hung up before being answered, counted across Kazoo's daily resets.",
}


class SnapshotCollector(Collector):
    def __init__(
        self,
        get_snapshot: Callable[[], Snapshot],
        max_data_age: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._get_snapshot = get_snapshot
        self._max_data_age = max_data_age
        self._clock = clock

    def describe(self) -> list[Metric]:
        # An empty describe keeps registration from calling collect() before the first poll.
        return []

    def collect(self) -> Iterator[Metric]:
        snapshot = self._get_snapshot()
        now = self._clock()
        up = GaugeMetricFamily("qubicle_up", "1 if the last poll of the account succeeded, else 0.",
                               labels=["account_id"])
        last = GaugeMetricFamily("qubicle_last_poll_success_timestamp_seconds",
                                 "Unix time of the account's last successful poll.", labels=["account_id"])
        queue_count = GaugeMetricFamily("qubicle_queues",
                                        "Queues discovered in the account (0: no Qubicle or no queues).",
                                        labels=["account_id"])
        gauges = {name: GaugeMetricFamily(f"qubicle_queue_{name}", GAUGE_HELP[name], labels=QUEUE_LABELS)
                  for name, _ in GAUGES}
        counters = {name: CounterMetricFamily(f"qubicle_queue_{name}", COUNTER_HELP[name], labels=QUEUE_LABELS)
                    for name, _ in COUNTERS}
        info = GaugeMetricFamily("qubicle_queue_info", "Queue metadata; node is the Kazoo node running the queue.",
                                 labels=[*QUEUE_LABELS, "node"])

        for account_id, account in sorted(snapshot.accounts.items()):
            up.add_metric([account_id], 1.0 if account.up else 0.0)
            if account.last_success is not None:
                last.add_metric([account_id], account.last_success)
            if account.queue_count is not None:
                queue_count.add_metric([account_id], float(account.queue_count))
            # A wallboard must never show frozen figures as live: once the account's data is older
            # than max_data_age its queues disappear instead of repeating the last values.
            if account.data_time is None or now - account.data_time > self._max_data_age:
                continue
            for queue in account.queues:
                labels = [queue.account_id, queue.queue_id, queue.queue_name]
                for name, value in queue.gauges.items():
                    gauges[name].add_metric(labels, value)
                for name, value in queue.counters.items():
                    counters[name].add_metric(labels, value)
                info.add_metric([*labels, queue.node or ""], 1.0)

        yield up
        yield last
        yield queue_count
        yield from gauges.values()
        yield from counters.values()
        yield info
