"""An account's agents by state vanish at scrape time once older than --max-data-age, even when the
account has no queues (it may have agents and no Qubicle queue: the poller then asks only for its
agents) and no poll completes to say so."""

from __future__ import annotations

from types import MappingProxyType

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from test_stale import Clock

from exporter.exposition import Exposition
from exporter.figures import AGENT_STATES
from exporter.render import render
from exporter.snapshot import AccountSnapshot, AgentFigures, Snapshot

A = "a" * 32




def agent_series(body: bytes) -> list[str]:
    return [s.name for f in text_string_to_metric_families(body.decode()) for s in f.samples
            if s.name.startswith(("qubicle_agents", "qubicle_agent_"))]


@pytest.mark.parametrize("agent_metrics", [False, True])
def test_agents_of_an_account_without_queues_vanish_after_max_data_age(agent_metrics):
    agent_list = (AgentFigures(A, "u1", "Ann", "ready", MappingProxyType({"calls": 2.0})),) if agent_metrics else ()
    account = AccountSnapshot(A, up=False, queues=(), data_time=1000.0, last_success=1000.0, queue_count=0,
                              agents=MappingProxyType(dict.fromkeys(AGENT_STATES, 1)), agent_list=agent_list)
    clock = Clock(1000.0)
    expo = Exposition(CollectorRegistry(), lambda s, now, om: render(s, now, max_data_age=30.0, openmetrics=om),
                      max_data_age=30.0, clock=clock)
    expo.update(Snapshot(taken_at=1000.0, accounts=MappingProxyType({A: account})))
    assert len(agent_series(expo.render(None, None)[0])) >= len(AGENT_STATES)
    clock.now = 1030.0  # exactly --max-data-age old: still shown
    assert agent_series(expo.render(None, None)[0])
    clock.now = 1030.5  # no poll came: the same snapshot, now too old
    body, _ = expo.render(None, None)
    assert agent_series(body) == []
    assert b'qubicle_up{account_id="' + A.encode() + b'"} 0.0' in body  # the account itself stays
