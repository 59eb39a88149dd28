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

from exporter.figures import (
    ACCOUNT_AGENTS,
    ACCOUNT_AGENTS_HELP,
    ACCOUNT_INFO,
    ACCOUNT_INFO_HELP,
    ACCOUNT_METRICS,
    AGENT_AVERAGE_CALL,
    AGENT_AVERAGE_CALL_HELP,
    AGENT_COUNTERS,
    AGENT_STATE,
    AGENT_STATE_HELP,
    AGENT_STATES,
    COUNTED,
    FIGURES,
    QUEUE_AGENTS,
    QUEUE_AGENTS_HELP,
    QUEUE_INFO,
    QUEUE_INFO_HELP,
    QUEUE_LABELS,
    SETTING_LABELS,
    SETTINGS,
)
from exporter.render import account_values
from exporter.snapshot import Snapshot, is_fresh, visible


def families(snapshot: Snapshot, now: float, max_data_age: float) -> Iterator[Metric]:
    accounts = [GaugeMetricFamily(name, help_text, labels=["account_id"]) for name, help_text in ACCOUNT_METRICS]
    account_info = GaugeMetricFamily(ACCOUNT_INFO, ACCOUNT_INFO_HELP, labels=["account_id", "account_name"])
    account_agents = GaugeMetricFamily(ACCOUNT_AGENTS, ACCOUNT_AGENTS_HELP, labels=["account_id", "state"])
    gauges = [GaugeMetricFamily(f.metric, f.help, labels=list(QUEUE_LABELS)) for f in FIGURES]
    settings = [GaugeMetricFamily(s.metric, s.help, labels=list(QUEUE_LABELS)) for s in SETTINGS]
    queue_agents = GaugeMetricFamily(QUEUE_AGENTS, QUEUE_AGENTS_HELP, labels=[*QUEUE_LABELS, "state"])
    counters = [CounterMetricFamily(f.counter or "", f.counter_help, labels=list(QUEUE_LABELS)) for f in COUNTED]
    info = GaugeMetricFamily(QUEUE_INFO, QUEUE_INFO_HELP,
                             labels=[*QUEUE_LABELS, "node", *(label for label, _ in SETTING_LABELS)])
    agent_state = GaugeMetricFamily(AGENT_STATE, AGENT_STATE_HELP,
                                    labels=["account_id", "agent_id", "agent_name", "state"])
    agent_counters = [CounterMetricFamily(metric, help_text, labels=["account_id", "agent_id"])
                      for _, metric, help_text in AGENT_COUNTERS]
    agent_average = GaugeMetricFamily(AGENT_AVERAGE_CALL, AGENT_AVERAGE_CALL_HELP, labels=["account_id", "agent_id"])
    any_agent = False

    for account, queues in visible(snapshot, now, max_data_age):
        for family, value in zip(accounts, account_values(account), strict=True):
            if value is not None:
                family.add_metric([account.account_id], value)
        account_info.add_metric([account.account_id, account.name or account.account_id], 1.0)
        fresh = bool(queues) or is_fresh(account, now, max_data_age)
        if fresh and account.agents is not None:
            for state in AGENT_STATES:
                account_agents.add_metric([account.account_id, state], account.agents.get(state, 0))
        for queue in queues:
            labels = [queue.account_id, queue.queue_id, queue.queue_name]
            for family, figure in zip(gauges, FIGURES, strict=True):
                if (value := queue.values.get(figure.key)) is not None:
                    family.add_metric(labels, value)
            for family, setting in zip(settings, SETTINGS, strict=True):
                if (value := queue.settings.get(setting.key)) is not None:
                    family.add_metric(labels, value)
            if queue.agents is not None:
                for state in AGENT_STATES:
                    queue_agents.add_metric([*labels, state], queue.agents.get(state, 0))
            for counter, figure in zip(counters, COUNTED, strict=True):
                if (value := queue.counters.get(figure.key)) is not None:
                    counter.add_metric(labels, value)
            info.add_metric([*labels, queue.node or "", *(queue.labels.get(label, "") for label, _ in SETTING_LABELS)],
                            1.0)
        for agent in account.agent_list if fresh else ():
            any_agent = True
            for state in AGENT_STATES:
                agent_state.add_metric([agent.account_id, agent.agent_id, agent.agent_name, state],
                                       1.0 if agent.state == state else 0.0)
            for counter, (key, _, _) in zip(agent_counters, AGENT_COUNTERS, strict=True):
                if (value := agent.counters.get(key)) is not None:
                    counter.add_metric([agent.account_id, agent.agent_id], value)
            if agent.average_call is not None:
                agent_average.add_metric([agent.account_id, agent.agent_id], agent.average_call)

    yield from accounts
    yield account_info
    yield account_agents
    yield from gauges
    yield from settings
    yield queue_agents
    yield from counters
    yield info
    if any_agent:
        yield agent_state
        yield from agent_counters
        yield agent_average


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
