"""How long the event loop has waited for I/O with nothing else to run: its spare capacity.

The poller runs more accounts at once when Kazoo is slow (their wall time is mostly waiting).
That only helps while the loop has time to spare. When the process is short of CPU (its own work
at 50,000 queues, or other processes on the same cores), an account's wall time is mostly waiting
for the loop, not for Kazoo, and running more at once only queues more work behind it: measured
at 1,000 x 50 on a loaded machine, 64 accounts at once instead of 10, +70 MB, and slower scrapes
(bench/RESULTS.md section 0). The one direct measure of spare capacity is the time the loop spends
blocked in its selector, which asyncio does not expose: it is read by wrapping the selector's
select() of the running loop (asyncio's selector loops; any other loop gives None, and the
poller then adapts as before).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from typing import Any

_METERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, IdleMeter] = weakref.WeakKeyDictionary()


class IdleMeter:
    """Seconds the loop spent blocked in select() since it was installed (`idle`, only grows)."""

    def __init__(self, select: Callable[..., Any]) -> None:
        self.idle = 0.0
        self._select = select

    def select(self, timeout: float | None = None) -> Any:
        started = time.perf_counter()
        try:
            return self._select(timeout)
        finally:
            self.idle += time.perf_counter() - started


def idle_meter(loop: asyncio.AbstractEventLoop) -> IdleMeter | None:
    """The loop's meter, installed on first use; None where the loop has no selector to measure."""
    meter = _METERS.get(loop)
    if meter is None:
        selector = getattr(loop, "_selector", None)
        select = getattr(selector, "select", None)
        if select is None:
            return None
        meter = _METERS[loop] = IdleMeter(select)
        selector.select = meter.select  # type: ignore[union-attr]
    return meter
