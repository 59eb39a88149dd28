"""Both formats share one render of each family's lines: a family's lines are made and deflated once
per generation, whichever format is scraped first, and the other format's body differs only in its
headers. Each format's body stays what prometheus-client writes (the oracle), plain and gzip.

At 50,000 queues this is half the render CPU and one deflated copy (~19 MB) instead of two when
Prometheus (OpenMetrics) and a plain-text scraper both scrape (bench/RESULTS.md section 0-1).
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Callable, Iterable
from types import MappingProxyType

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter.collector import SnapshotCollector
from exporter.exposition import Chunk, Exposition, Same
from exporter.render import LabelCache, render
from exporter.snapshot import AccountSnapshot, QueueFigures, Snapshot

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
A = "a" * 32


def snapshot(sessions: float) -> Snapshot:
    queues = tuple(QueueFigures(A, f"q{i}", f'Queue "{i}"', "kz1@node", MappingProxyType({"active_sessions": sessions + i}),
                                MappingProxyType({"daily_sessions": 3.0 + i})) for i in range(3))
    account = AccountSnapshot(A, up=True, queues=queues, data_time=1000.0, last_success=1000.0, queue_count=3,
                              name="Acme")
    return Snapshot(taken_at=1000.0, accounts=MappingProxyType({A: account}))


class CountingRender:
    """The real render, counting each family's lines as they are made."""

    def __init__(self) -> None:
        self.made: Counter[str] = Counter()
        self.labels = LabelCache()

    def __call__(self, snap: Snapshot, now: float, openmetrics: bool) -> Iterable[Chunk]:
        for chunk in render(snap, now, max_data_age=30.0, openmetrics=openmetrics, labels=self.labels):
            yield Same(chunk.key, self._counted(chunk)) if isinstance(chunk, Same) else chunk

    def _counted(self, chunk: Same) -> Callable[[], Iterable[bytes]]:
        def make() -> Iterable[bytes]:
            self.made[chunk.key] += 1
            return chunk.make()
        return make


def oracle(snap: Snapshot, openmetrics: bool) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snap, max_data_age=30.0, clock=lambda: 1005.0))
    return generate_openmetrics(registry) if openmetrics else generate_latest(registry)


def test_each_familys_lines_are_made_once_for_both_formats_and_again_for_a_new_snapshot():
    counting = CountingRender()
    expo = Exposition(CollectorRegistry(), counting, max_data_age=30.0, clock=lambda: 1005.0)
    first = snapshot(1.0)
    expo.update(first)
    bodies = {}
    for accept in (None, OPENMETRICS):
        for encoding in (None, "gzip"):
            body, _ = expo.render(accept, encoding)
            bodies[accept, encoding] = gzip.decompress(body) if encoding else body
    assert counting.made, "the real render gives its families' lines as Same chunks"
    assert set(counting.made.values()) == {1}, counting.made
    for openmetrics, accept in ((False, None), (True, OPENMETRICS)):
        expected = oracle(first, openmetrics)
        assert bodies[accept, None] == expected
        assert bodies[accept, "gzip"] == expected
    assert b"# TYPE qubicle_queue_sessions counter" in bodies[OPENMETRICS, None]
    assert b"# TYPE qubicle_queue_sessions_total counter" in bodies[None, None]

    second = snapshot(5.0)
    expo.update(second)
    for accept in (OPENMETRICS, None):
        body, _ = expo.render(accept, "gzip")
        assert gzip.decompress(body) == oracle(second, accept is not None)
    assert set(counting.made.values()) == {2}, counting.made  # once more: the new generation's lines


def test_a_stale_generation_makes_its_lines_anew():
    """A render past --max-data-age shows no queues: its lines are not the earlier generation's."""
    now = [1005.0]
    counting = CountingRender()
    expo = Exposition(CollectorRegistry(), counting, max_data_age=30.0, clock=lambda: now[0])
    expo.update(snapshot(1.0))
    assert b"qubicle_queue_active_sessions{" in expo.render(None, None)[0]
    now[0] = 1031.0  # the account's figures are now older than --max-data-age
    for accept in (OPENMETRICS, None):
        body, _ = expo.render(accept, None)
        assert b"qubicle_queue_active_sessions{" not in body
        assert b'qubicle_up{account_id="' + A.encode() + b'"} 1.0' in body


def test_families_longer_than_a_slice_are_written_whole_and_in_order():
    """Each family's text comes in slices of rows (render._SLICE): a family is never one string. Over
    several slices of queues, accounts and agents, every body is still the oracle's, byte for byte."""
    from exporter.figures import NOT_LOGGED_IN
    from exporter.render import _SLICE
    from exporter.snapshot import AgentFigures

    count = 2 * _SLICE + 7
    counts = MappingProxyType({"ready": 2, "ringing": 0, "on_call": 1, "wrapup": 0, "away": 1})
    accounts = {}
    for n in range(count):
        account_id = f"{n:032x}"
        queue = QueueFigures(account_id, f"q{n}", f"Queue {n}", "kz1", MappingProxyType({"active_sessions": n % 7}),
                             MappingProxyType({"daily_sessions": float(n)}), agents=counts)
        agent = AgentFigures(account_id, f"u{n}", f"Agent {n}", "ready" if n % 3 else NOT_LOGGED_IN,
                             MappingProxyType({"calls": float(n)} if n % 3 else {}), 60.0 if n % 2 else None)
        accounts[account_id] = AccountSnapshot(account_id, up=True, queues=(queue,), data_time=1000.0,
                                               last_success=1000.0, queue_count=1, agents=counts, agent_list=(agent,))
    big = Snapshot(taken_at=1000.0, accounts=MappingProxyType(accounts))
    expo = Exposition(CollectorRegistry(), CountingRender(), max_data_age=30.0, clock=lambda: 1005.0)
    expo.update(big)
    for openmetrics, accept in ((False, None), (True, OPENMETRICS)):
        expected = oracle(big, openmetrics)
        assert expo.render(accept, None)[0] == expected
        assert gzip.decompress(expo.render(accept, "gzip")[0]) == expected


def test_two_families_with_one_key_fail_the_render_instead_of_sharing_lines():
    """A key names a family's lines within a generation: a second family under the same key would
    silently be served the first one's lines (a figure whose name equals another's, say)."""
    def clashing(snap: Snapshot, now: float, openmetrics: bool) -> Iterable[Chunk]:
        yield b"# TYPE a gauge\n"
        yield Same("a", lambda: (b"a 1.0\n",))
        yield b"# TYPE b gauge\n"
        yield Same("a", lambda: (b"b 2.0\n",))

    expo = Exposition(CollectorRegistry(), clashing, max_data_age=30.0, clock=lambda: 1005.0)
    expo.update(snapshot(1.0))
    with pytest.raises(ValueError, match="share the key 'a'"):
        expo.render(None, None)
