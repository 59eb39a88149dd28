"""Figures older than --max-data-age vanish at scrape time, even when no poll completes to say so."""

from __future__ import annotations

import time
from types import MappingProxyType

import pytest
from conftest import exporter_process
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition import Exposition
from exporter.render import render
from exporter.simulator import Faults
from exporter.snapshot import AccountSnapshot, QueueFigures, Snapshot

A = "a" * 32


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def one_queue_snapshot(data_time: float) -> Snapshot:
    queue = QueueFigures(A, "q1", "Sales", "kz1", MappingProxyType({"active_sessions": 2.0}),
                         MappingProxyType({"daily_sessions": 1.0}))
    account = AccountSnapshot(A, up=True, queues=(queue,), data_time=data_time, last_success=data_time,
                              queue_count=1)
    return Snapshot(taken_at=data_time, accounts=MappingProxyType({A: account}))


def queue_series(body: bytes) -> list[str]:
    return [s.name for f in text_string_to_metric_families(body.decode()) for s in f.samples
            if s.name.startswith("qubicle_queue_")]


def exposition(clock: Clock, max_data_age: float = 30.0) -> Exposition:
    return Exposition(CollectorRegistry(), lambda s, now, om: render(s, now, max_data_age=max_data_age, openmetrics=om),
                      max_data_age=max_data_age, clock=clock)


@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_cached_render_expires_with_its_data_without_a_new_snapshot(encoding):
    import gzip

    clock = Clock(1000.0)
    expo = exposition(clock)
    expo.update(one_queue_snapshot(data_time=1000.0))

    def scrape() -> bytes:
        body, _ = expo.render(None, encoding)
        return gzip.decompress(body) if encoding else body

    assert queue_series(scrape())
    clock.now = 1030.0  # exactly --max-data-age old: still shown (the boundary is inclusive)
    assert queue_series(scrape())
    assert expo.renders == 1  # the render made at 1000 was still true: not made again
    clock.now = 1030.5  # no poll came: the same snapshot, now too old
    body = scrape()
    assert queue_series(body) == []
    assert b'qubicle_up{account_id="' + A.encode() + b'"} 1.0' in body  # the account stays, its up as it was
    assert expo.renders == 2
    scrape()
    assert expo.renders == 2  # re-made once, not at every scrape


def test_a_render_without_queues_never_expires():
    clock = Clock(1000.0)
    expo = exposition(clock)
    expo.update(Snapshot(taken_at=1000.0))
    expo.render(None, None)
    clock.now = 10_000.0
    expo.render(None, None)
    assert expo.renders == 1


@pytest.mark.e2e
def test_figures_vanish_while_polls_are_stuck(make_simulator, tmp_path):
    """A Kazoo that stops answering mid-poll: no poll completes, yet the served figures go stale and vanish."""
    sim = make_simulator(accounts=1, queues_per_account=2, seed=4, speed=0)
    key = tmp_path / "key"
    key.write_text(sim.api_key)
    args = ["--kazoo-url", sim.url, "--api-key-file", str(key), "--account-id", sim.account_ids[0],
            "--interval", "1", "--max-data-age", "3", "--poll-timeout", "600", "--read-timeout", "600",
            "--retries", "0"]
    with exporter_process(*args) as exporter:
        assert queue_series(exporter.get().content)
        sim.set_faults(Faults(latency=3600.0))  # every request from now on hangs: the poll in flight never ends
        deadline = time.monotonic() + 60
        while queue_series(exporter.get().content):
            assert time.monotonic() < deadline, "stale figures still served 60 s after Kazoo stopped answering"
            time.sleep(0.2)
        assert exporter.proc.poll() is None
