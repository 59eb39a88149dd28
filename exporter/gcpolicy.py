"""When CPython's cyclic garbage collector runs: rarely, and never over the figures already published.

Every object of a poll's snapshot, the render's rows and the counters' state lives on for at
least a poll; none of them is part of a reference cycle (frozen dataclasses, tuples, dicts). A
full collection walks them all anyway: ~0.4 s at 50,000 queues, during which nothing else runs,
not the event loop, not a scrape (bench/RESULTS.md section 0). So after each poll everything
alive is moved out of the collector's sight (gc.freeze: O(1)), and the collections that still
run (the young generations, several per poll) walk only what that poll made.

A frozen object is still freed the moment nothing refers to it (reference counting is not the
collector); only a frozen reference cycle waits. Every FULL_EVERY polls the freeze is undone and
one full collection runs, right after the poll, so such cycles (a failed request's exception and
its traceback, kept alive across a poll) live a few minutes at most.
"""

from __future__ import annotations

import gc

# Polls between two full collections: 5 minutes at the default --interval of 10 s.
FULL_EVERY = 30


def tune_gc() -> None:
    """Fewer cyclic collections: a poll of 10,000 queues allocates ~10^6 short-lived objects, which
    at CPython's default threshold (700) means ~110 collections per poll, each walking the objects
    that live on. With a first threshold of 10,000 it is ~6, and the poll's CPU falls by about a
    quarter (bench/RESULTS.md). The objects made at startup (modules, settings) are frozen: never
    walked again. The older generations keep their default ratios (10, 10), so cyclic garbage
    made during a poll (exceptions of failed requests, above all) is still reclaimed within it."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


class AfterPoll:
    """Called once a poll's snapshot is published: freezes what is alive, or every `full_every`
    polls, unfreezes and collects everything once."""

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
        gc.freeze()
