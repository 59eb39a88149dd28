"""A queue family's slice whose text would be the same as at the last render is not written nor
deflated again: the render hands the exposition the block it made last time (LabelCache.blocks).

Kept blocks never change the bytes (the sequence below holds every render, through the deflate
and back, equal to prometheus-client's output), so a render that silently stopped keeping them
would pass every other test while costing more at every poll (bench/RESULTS.md: the render of
50,000 queues with nothing changed, 0.45 s before and 0.09 s after). Here kept blocks are
replaced by marked ones, so the output shows which were taken, and which were made again.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from types import MappingProxyType

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter import render as render_module
from exporter.collector import SnapshotCollector
from exporter.exposition import Chunk, Same, _Block, _Deflated
from exporter.render import LabelCache, render
from exporter.snapshot import AccountSnapshot, QueueFigures, Snapshot

A = "a" * 32
SESSIONS = "qubicle_queue_active_sessions"


def queue(queue_id: str, name: str = "Sales", **values: float) -> QueueFigures:
    return QueueFigures(A, queue_id, name, "kz1@node", MappingProxyType(values),
                        MappingProxyType({"daily_sessions": 3.0}))


def snapshot(*queues: QueueFigures, data_time: float = 1000.0) -> Snapshot:
    account = AccountSnapshot(A, up=True, queues=queues, data_time=data_time, last_success=data_time,
                              queue_count=len(queues))
    return Snapshot(taken_at=1000.0, accounts=MappingProxyType({A: account}))


def deflated_text(current: Snapshot, cache: LabelCache, openmetrics: bool = False) -> str:
    """The render as the exposition makes it (kept blocks used and kept again), inflated."""
    chunks = render(current, 1005.0, max_data_age=30.0, openmetrics=openmetrics, labels=cache)
    return b"".join(_Deflated.of(chunks).plain_pieces()).decode()


def mark_blocks(cache: LabelCache) -> None:
    """Every kept block replaced by one whose text names its key: '<key> marked'."""
    cache.blocks = {key: (rows, _Block.of([f"{key} marked\n".encode()])) for key, (rows, _) in cache.blocks.items()}


def marked(text: str) -> set[str]:
    return {line.removesuffix(" marked") for line in text.splitlines() if line.endswith(" marked")}


@pytest.mark.parametrize("openmetrics", [False, True])
def test_an_unchanged_snapshot_is_given_every_kept_block(openmetrics):
    cache = LabelCache()
    current = snapshot(queue("q1", active_sessions=2.0), queue("q2", active_sessions=0.0))
    first = deflated_text(current, cache)
    assert f"{SESSIONS}/0" in cache.blocks and "qubicle_queue_info/0" in cache.blocks
    mark_blocks(cache)
    again = deflated_text(current, cache, openmetrics)
    assert marked(again) == set(cache.blocks)  # every queue family, none made again
    assert f'{SESSIONS}{{account_id="{A}",queue_id="q1"' not in again
    assert 'qubicle_up{account_id="' in again  # the account families are not kept: made every time
    # Kept again for the next render, under the same keys.
    assert marked(deflated_text(current, cache)) == set(cache.blocks)
    assert not marked(first)


def test_a_changed_value_makes_only_its_familys_slice_again():
    cache = LabelCache()
    q1, q2 = queue("q1", active_sessions=2.0, longest_wait=4.0), queue("q2", active_sessions=1.0, longest_wait=4.0)
    deflated_text(snapshot(q1, q2), cache)
    mark_blocks(cache)
    changed = deflated_text(snapshot(q1, replace(q2, values=MappingProxyType({"active_sessions": 5.0,
                                                                              "longest_wait": 4.0}))), cache)
    assert f"{SESSIONS}/0" not in marked(changed)
    assert f'{SESSIONS}{{account_id="{A}",queue_id="q2",queue_name="Sales"}} 5.0' in changed
    assert f'{SESSIONS}{{account_id="{A}",queue_id="q1",queue_name="Sales"}} 2.0' in changed
    # A new QueueFigures that prints the same in every other family: those are still kept.
    assert {"qubicle_queue_longest_wait_seconds/0", "qubicle_queue_info/0"} <= marked(changed)


@pytest.mark.parametrize("change", ["rename", "node", "removed", "added"])
def test_labels_or_rows_that_moved_make_every_slice_again(change):
    """A renamed queue prints new labels in every family; a queue on another node, a new info
    line; a queue removed or added shifts the rows: nothing of the kept text may be served."""
    cache = LabelCache()
    q1, q2 = queue("q1", active_sessions=2.0), queue("q2", active_sessions=1.0)
    deflated_text(snapshot(q1, q2), cache)
    mark_blocks(cache)
    after = {"rename": (q1, replace(q2, queue_name="Support")), "node": (q1, replace(q2, node="kz2@node")),
             "removed": (q2,), "added": (q1, q2, queue("q3"))}[change]
    text = deflated_text(snapshot(*after), cache)
    if change == "node":  # only the info line prints the node
        assert marked(text) == set(cache.blocks) - {"qubicle_queue_info/0"}
        assert 'node="kz2@node",queue_id="q2"' in text
    else:
        assert not marked(text)


def test_without_reuse_lines_nothing_is_kept():
    cache = LabelCache(reuse_lines=False)
    current = snapshot(queue("q1", active_sessions=2.0))
    deflated_text(current, cache)
    assert cache.blocks == {}
    cache.blocks = {f"{SESSIONS}/0": ((), _Block.of([b"x marked\n"]))}
    assert not marked(deflated_text(current, cache))


def test_a_kept_object_that_is_not_a_block_is_made_again():
    """What a render hands back is opaque to it: anything the exposition did not make is ignored."""
    chunks: list[Chunk] = [b"# TYPE a gauge\n", Same("a", lambda: (b"a 1.0\n",), kept=b"a 666.0\n")]
    assert b"".join(_Deflated.of(chunks).plain_pieces()) == b"# TYPE a gauge\na 1.0\n"


def oracle(current: Snapshot, openmetrics: bool) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(partial(lambda s: s, current), max_data_age=30.0, clock=lambda: 1005.0))
    return generate_openmetrics(registry) if openmetrics else generate_latest(registry)


def test_kept_slices_through_a_sequence_stay_prometheus_clients_output(monkeypatch):
    """Slices of two rows, so that a family has several, some kept and some made again; queues
    unchanged, changed in one family, renamed, removed, added, hidden as stale and shown again;
    both formats through one cache. Every render, deflated and inflated, equals the oracle's."""
    monkeypatch.setattr(render_module, "_SLICE", 2)
    qs = [queue(f"q{i}", f"Queue {i}", active_sessions=float(i), longest_wait=30.0) for i in range(7)]
    busier = replace(qs[3], values=MappingProxyType({"active_sessions": 9.0, "longest_wait": 30.0}))
    sequence = [
        snapshot(*qs),
        snapshot(*qs),
        snapshot(*qs[:3], busier, *qs[4:]),
        snapshot(*qs[:3], busier, *qs[4:6], replace(qs[6], queue_name='say "hi"')),
        snapshot(*qs[:3], busier, *qs[4:6]),
        snapshot(*qs[:3], busier, *qs[4:6], data_time=900.0),  # hidden as stale: no queue shown
        snapshot(*qs),
        snapshot(queue("q0", "Queue 0"), *qs),
    ]
    cache = LabelCache()
    kept_any = False
    for i, current in enumerate(sequence):
        before = dict(cache.blocks)
        for openmetrics in (False, True):
            text = deflated_text(current, cache, openmetrics).encode()
            assert text + (b"# EOF\n" if openmetrics else b"") == oracle(current, openmetrics), (i, openmetrics)
        kept_any = kept_any or any(cache.blocks.get(k, (None, None))[1] is block for k, (_, block) in before.items())
    assert kept_any  # some block was carried from one render to the next


def test_changed_agent_counts_make_the_agents_slice_again():
    cache = LabelCache()
    q1 = replace(queue("q1", active_sessions=2.0), agents=MappingProxyType({"ready": 1}))
    deflated_text(snapshot(q1), cache)
    mark_blocks(cache)
    text = deflated_text(snapshot(replace(q1, agents=MappingProxyType({"ready": 2}))), cache)
    assert "qubicle_queue_agents/0" not in marked(text)
    assert f'qubicle_queue_agents{{account_id="{A}",queue_id="q1",queue_name="Sales",state="ready"}} 2.0' in text
    assert f"{SESSIONS}/0" in marked(text)
