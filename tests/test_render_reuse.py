"""The render's LabelCache is used: an unchanged queue's row and a changed queue's label texts are taken
from the last render, not made again, and only where the cache allows it.

Reuse never changes the bytes (tests/test_collector.py holds every render equal to the oracle and
to a render without reuse), so a render that silently stopped reusing would pass every other test
while costing more at every poll (bench/RESULTS.md: 0.63 s against 0.82 s at 50,000 queues). Here
the remembered texts are marked, so the output shows whether they were taken.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest

from exporter.exposition import joined
from exporter.render import LabelCache, render
from exporter.snapshot import AccountSnapshot, QueueFigures, Snapshot

A = "a" * 32
MARK = "marked-by-the-test"


def queue(**values: float) -> QueueFigures:
    return QueueFigures(A, "q1", "Sales", "kz1@node", MappingProxyType(values), MappingProxyType({"daily_sessions": 3.0}))


def snapshot(q: QueueFigures) -> Snapshot:
    account = AccountSnapshot(A, up=True, queues=(q,), data_time=1000.0, last_success=1000.0, queue_count=1)
    return Snapshot(taken_at=1000.0, accounts=MappingProxyType({A: account}))


def text(current: Snapshot, cache: LabelCache, openmetrics: bool = False) -> str:
    return joined(render(current, 1005.0, max_data_age=30.0, openmetrics=openmetrics, labels=cache)).decode()


def mark_row(cache: LabelCache) -> None:
    """The one remembered row, its queue_name label replaced by MARK in every line it gives."""
    ((key, (q, row)),) = cache.lines.items()
    series_labels, info, values, agent_lines = row
    cache.lines = {key: (q, (series_labels.replace("Sales", MARK), info.replace("Sales", MARK), values, agent_lines))}


@pytest.mark.parametrize("openmetrics", [False, True])
def test_the_same_queue_figures_get_their_remembered_row(openmetrics):
    cache = LabelCache()
    current = snapshot(queue(active_sessions=2.0))
    assert MARK not in text(current, cache)  # in the text format: both formats share the rows
    mark_row(cache)
    again = text(current, cache, openmetrics)
    assert f'qubicle_queue_active_sessions{{account_id="{A}",queue_id="q1",queue_name="{MARK}"}} 2.0' in again
    assert f'queue_name="{MARK}",queue_type="",router=""}} 1.0' in again  # the info line too
    # The row is remembered for the next render again, under the same object.
    assert MARK in text(current, cache)


def test_without_reuse_lines_every_row_is_made_again():
    cache = LabelCache(reuse_lines=False)
    current = snapshot(queue(active_sessions=2.0))
    text(current, cache)
    mark_row(cache)
    assert MARK not in text(current, cache)


def test_changed_figures_get_a_new_row_but_the_remembered_label_texts():
    """A queue whose figures changed is a new QueueFigures: its values are written anew (never the
    old ones), while its label texts, keyed by the labels themselves, are taken from the last render."""
    cache = LabelCache()
    text(snapshot(queue(active_sessions=2.0)), cache)
    ((key, (series_labels, info)),) = cache.texts.items()
    cache.texts = {key: (series_labels.replace("Sales", MARK), info)}
    changed = text(snapshot(queue(active_sessions=5.0)), cache)
    assert f'qubicle_queue_active_sessions{{account_id="{A}",queue_id="q1",queue_name="{MARK}"}} 5.0' in changed
    assert " 2.0\n" not in changed


def test_a_renamed_queue_never_gets_the_old_label_texts():
    cache = LabelCache()
    first = queue(active_sessions=2.0)
    text(snapshot(first), cache)
    renamed = text(snapshot(replace(first, queue_name="Support")), cache)
    assert f'qubicle_queue_active_sessions{{account_id="{A}",queue_id="q1",queue_name="Support"}} 2.0' in renamed
    assert "Sales" not in renamed
