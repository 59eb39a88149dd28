"""When CPython's cyclic garbage collector runs: rarely over the figures already published.

Every object of a poll's snapshot, the render's rows and the counters' state lives on for at
least a poll; none of them is part of a reference cycle (frozen dataclasses, tuples, dicts). A
full collection walks them all anyway: ~0.4 s at 50,000 queues, during which nothing else runs,
not the event loop, not a scrape (bench/RESULTS.md section 0-1). So after each poll the youngest
generation is collected (what the poll made and dropped in reference cycles: a failed request's
exception and its traceback), then everything alive is moved out of the collector's sight
(gc.freeze: O(1)); the collections during the next poll walk only what it makes. Collecting the
middle generation too walked so much at 50,000 queues that the scrape p99 went from 69 to 188 ms.

A frozen object is still freed the moment nothing refers to it (reference counting is not the
collector); only a frozen reference cycle waits: one that left the youngest generation within a
poll before it was dropped. Every FULL_EVERY polls the freeze is undone and one full collection
runs, right after the poll. That one still stops everything (~0.4 s at 50,000 queues), once every
5 minutes at the default interval, instead of every few polls at any moment.
"""

from __future__ import annotations

import gc

# Polls between two full collections: 5 minutes at the default --interval of 10 s.
FULL_EVERY = 30


def tune_gc() -> None:
    """Fewer cyclic collections: a poll of 10,000 queues allocates ~10^6 short-lived objects, which
    at CPython's default threshold (700) means ~110 collections per poll, each walking the objects
    that live on. With a first threshold of 10,000 it is ~6, and the poll's CPU falls by about a
    quarter (bench/RESULTS.md). The objects made at startup (modules, settings) are frozen: walked
    only by the full collection every FULL_EVERY polls. The older generations keep their default
    ratios (10, 10): rarer collections of them once let the fault soak's RSS grow past its bound
    (tests/test_soak.py), as cycles of failed requests waited longer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


class AfterPoll:
    """Called once a poll's snapshot is published: collects the youngest generation and freezes
    what is alive; every `full_every` polls, unfreezes and collects everything once instead."""

    def __init__(self, full_every: int = FULL_EVERY) -> None:
        self.full_every = full_every
        self.polls = 0
        self.full_collections = 0

    def __call__(self) -> None:
        self.polls += 1
        if self.polls % self.full_every == 0:
            gc.unfreeze()
            gc.collect()
            self.full_collections += 1
        else:
            gc.collect(0)  # cycles the poll made and dropped: frozen, they would wait for the full one
        gc.freeze()
