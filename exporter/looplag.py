"""How late the event loop runs what is due, sampled while a poll runs.

An account's poll measured in wall time is Kazoo's latency plus the time its answer waited for the
loop to get to it, behind the other accounts' callbacks (and renders, scrapes) when the loop has
more to do than its CPU allows. Only Kazoo's latency is what more accounts at once can hide;
counted as latency, the wait for a saturated loop would make the poller add accounts at once to a
loop that is already the bottleneck, which only makes each of them wait longer
(tests/test_poll_concurrency.py: a blocked loop grew to 50 at once). A timer's lateness is what
any callback due at that moment waited: the poller takes it off each account's wall time.

What it does not see: a Kazoo that is slow because it shares a busy machine (the benchmark's
simulator beside CPU hogs, bench/RESULTS.md section 0) is slow from here too; more at once is then
the design (bounded by --max-concurrency, never more requests to any one account).
"""

from __future__ import annotations

import asyncio
import statistics
from collections import deque

# Often enough to follow a poll of a few seconds; each wake-up costs the loop a turn (every 5 ms
# cost 0.03 s of a 0.8 s poll at 50,000 queues, 1,000 accounts: 100 a second is about half that).
PROBE_EVERY = 0.01
SAMPLES = 16
# What a timer is late on an idle loop: epoll's timeout is in whole milliseconds, rounded up.
GRANULARITY = 0.001


class LoopLag:
    """A timer every PROBE_EVERY seconds, between start() and stop(); recent() is the median of
    the last SAMPLES lateness samples beyond GRANULARITY (0 before the first)."""

    def __init__(self, every: float = PROBE_EVERY, samples: int = SAMPLES) -> None:
        self._every = every
        self._late: deque[float] = deque(maxlen=samples)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._probe(), name="loop-lag-probe")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def recent(self) -> float:
        return statistics.median(self._late) if self._late else 0.0

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self._every
            await asyncio.sleep(self._every)
            self._late.append(max(0.0, loop.time() - due - GRANULARITY))
