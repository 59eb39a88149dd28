"""After each poll the collector stops walking what is alive; every FULL_EVERY polls it looks at
everything once, so a reference cycle frozen with the rest is reclaimed within minutes, not never.

(A full collection over a 50,000-queue snapshot stalls the event loop ~0.4 s: bench/RESULTS.md.)
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from exporter.gcpolicy import FULL_EVERY, AfterPoll


class Node:
    def __init__(self) -> None:
        self.me: Node | None = None


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """The collector's generations are the process's: the tests' objects go back as they were."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_what_a_poll_leaves_alive_is_out_of_the_collectors_sight():
    alive = [Node() for _ in range(100)]
    after = AfterPoll()
    assert any(o is alive[0] for o in gc.get_objects())
    after()
    assert gc.get_freeze_count() >= len(alive)
    assert not any(o is alive[0] for o in gc.get_objects())  # in no generation: never walked
    made_since = Node()
    assert any(o is made_since for o in gc.get_objects())  # the next poll's objects are walked as usual


def test_a_frozen_cycle_is_reclaimed_at_the_next_full_collection_not_before():
    after = AfterPoll(full_every=3)
    cycle = Node()
    cycle.me = cycle
    ref = weakref.ref(cycle)
    after()  # poll 1: the cycle is alive, frozen with the rest
    del cycle
    gc.collect()
    assert ref() is not None  # no collection looks at frozen objects
    after()  # poll 2
    gc.collect()
    assert ref() is not None and after.full_collections == 0
    after()  # poll 3: unfrozen and collected
    assert ref() is None
    assert after.full_collections == 1


def test_full_collections_come_every_full_every_polls():
    after = AfterPoll()
    for _ in range(2 * FULL_EVERY + 1):
        after()
    assert after.full_collections == 2


def test_a_cycle_the_poll_dropped_is_reclaimed_before_the_freeze():
    """A failed request's exception and traceback, dropped during the poll: collected, not frozen."""
    after = AfterPoll(full_every=3)
    cycle = Node()
    cycle.me = cycle
    ref = weakref.ref(cycle)
    del cycle  # dropped within the poll, still in the youngest generation
    after()
    assert ref() is None
