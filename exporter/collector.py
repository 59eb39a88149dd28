"""The snapshot as prometheus-client metric families: the reference that render.py must equal.

Production never serves from here: /metrics is written by exporter/render.py. These families,
put through prometheus-client's own generate_latest, are the oracle the tests hold the fast path
to, byte for byte, in both formats (and the baseline bench/ measures against). They follow
prometheus-client's Collector pattern: families made anew from the snapshot at each collect(),
so a queue gone from the snapshot is gone here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.figures import ACCOUNT_METRICS, COUNTED, FIGURES, QUEUE_INFO, QUEUE_INFO_HELP, QUEUE_LABELS
from exporter.render import account_values
from exporter.snapshot import Snapshot, visible


def families(snapshot: Snapshot, now: float, max_data_age: float) -> Iterator[Metric]:
    accounts = [GaugeMetricFamily(name, help_text, labels=["account_id"]) for name, help_text in ACCOUNT_METRICS]
    gauges = [GaugeMetricFamily(f.metric, f.help, labels=list(QUEUE_LABELS)) for f in FIGURES]
    counters = [CounterMetricFamily(f.counter or "", f.counter_help, labels=list(QUEUE_LABELS)) for f in COUNTED]
    info = GaugeMetricFamily(QUEUE_INFO, QUEUE_INFO_HELP, labels=[*QUEUE_LABELS, "node"])

    for account, queues in visible(snapshot, now, max_data_age):
        for family, value in zip(accounts, account_values(account), strict=True):
            if value is not None:
                family.add_metric([account.account_id], value)
        for queue in queues:
            labels = [queue.account_id, queue.queue_id, queue.queue_name]
            for family, figure in zip(gauges, FIGURES, strict=True):
                if (value := queue.values.get(figure.key)) is not None:
                    family.add_metric(labels, value)
            for counter, figure in zip(counters, COUNTED, strict=True):
                if (value := queue.counters.get(figure.key)) is not None:
                    counter.add_metric(labels, value)
            info.add_metric([*labels, queue.node or ""], 1.0)

    yield from accounts
    yield from gauges
    yield from counters
    yield info


class SnapshotCollector(Collector):
    """families() of whatever snapshot `get_snapshot` returns, registrable on a CollectorRegistry."""

    def __init__(self, get_snapshot: Callable[[], Snapshot], max_data_age: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._get_snapshot = get_snapshot
        self._max_data_age = max_data_age
        self._clock = clock

    def describe(self) -> list[Metric]:
        # An empty describe keeps registration from calling collect() before the first poll.
        return []

    def collect(self) -> Iterator[Metric]:
        return families(self._get_snapshot(), self._clock(), self._max_data_age)
