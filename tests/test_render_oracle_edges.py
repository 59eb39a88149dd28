"""The render equals prometheus-client's output (the oracle, exporter/collector.py) on inputs the other
byte-identity tests do not hold: partial agent and label mappings, help texts that need escaping."""

from __future__ import annotations

from types import MappingProxyType

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter import collector, figures
from exporter import render as render_module
from exporter.collector import SnapshotCollector
from exporter.exposition import joined
from exporter.render import render
from exporter.snapshot import AccountSnapshot, QueueFigures, Snapshot

A = "a" * 32


def snapshot(*queues: QueueFigures, agents: dict[str, int] | None = None) -> Snapshot:
    account = AccountSnapshot(A, up=True, queues=queues, data_time=1000.0, last_success=1000.0,
                              queue_count=len(queues), agents=None if agents is None else MappingProxyType(agents))
    return Snapshot(taken_at=1000.0, accounts=MappingProxyType({A: account}))


def both_formats(current: Snapshot) -> tuple[str, str]:
    """The render in both formats, each asserted equal to the oracle's."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: current, max_data_age=30.0, clock=lambda: 1005.0))
    text = joined(render(current, 1005.0, max_data_age=30.0))
    om = joined(render(current, 1005.0, max_data_age=30.0, openmetrics=True)) + b"# EOF\n"
    assert text == generate_latest(registry)
    assert om == generate_openmetrics(registry)
    return text.decode(), om.decode()


def test_states_and_labels_missing_from_a_mapping_are_written_as_zero_and_empty():
    """The poller always fills every state and label, but the render must not depend on it: a state
    missing from an agents mapping is 0 agents, a label missing from the labels mapping is ""."""
    q = QueueFigures(A, "q1", "Sales", "kz1", MappingProxyType({"active_sessions": 1.0}), MappingProxyType({}),
                     labels=MappingProxyType({"queue_type": "premium"}), agents=MappingProxyType({"away": 2}))
    text, _ = both_formats(snapshot(q, agents={"ready": 3}))
    lines = text.splitlines()
    assert f'qubicle_agents{{account_id="{A}",state="ready"}} 3.0' in lines
    assert f'qubicle_agents{{account_id="{A}",state="ringing"}} 0.0' in lines
    assert f'qubicle_queue_agents{{account_id="{A}",queue_id="q1",queue_name="Sales",state="away"}} 2.0' in lines
    assert f'qubicle_queue_agents{{account_id="{A}",queue_id="q1",queue_name="Sales",state="ready"}} 0.0' in lines
    assert (f'qubicle_queue_info{{account_id="{A}",node="kz1",queue_id="q1",queue_name="Sales",'
            'queue_type="premium",router=""} 1.0') in lines


def test_help_texts_are_escaped_as_each_format_requires(monkeypatch):
    """Help texts are constants today, without a backslash, newline or quote; a contributor adding a
    figure may write one (CONTRIBUTING.md "Add a queue figure"): the text format escapes backslash
    and newline, OpenMetrics also the double quote."""
    help_text = 'Queue "metadata": C:\\kazoo\nsecond line'
    monkeypatch.setattr(render_module, "QUEUE_INFO_HELP", help_text)
    monkeypatch.setattr(collector, "QUEUE_INFO_HELP", help_text)
    q = QueueFigures(A, "q1", "Sales", "kz1", MappingProxyType({"active_sessions": 1.0}), MappingProxyType({}))
    text, om = both_formats(snapshot(q))
    assert '# HELP qubicle_queue_info Queue "metadata": C:\\\\kazoo\\nsecond line\n' in text
    assert '# HELP qubicle_queue_info Queue \\"metadata\\": C:\\\\kazoo\\nsecond line\n' in om


@pytest.mark.parametrize("name", [
    *(f.metric for f in figures.FIGURES), *(s.metric for s in figures.SETTINGS),
    *(name for name, _ in figures.ACCOUNT_METRICS), figures.ACCOUNT_INFO, figures.ACCOUNT_AGENTS,
    figures.QUEUE_AGENTS, figures.QUEUE_INFO, figures.AGENT_STATE, figures.AGENT_AVERAGE_CALL,
])
def test_no_gauge_is_named_like_a_counter(name):
    """Prometheus' naming rule (promtool check metrics warns), on which the render relies: OpenMetrics
    drops "_total" from a counter's family name only, and no gauge has one to drop."""
    assert not name.endswith("_total")
