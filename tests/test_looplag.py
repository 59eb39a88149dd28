"""The loop-lag probe: what a callback due now waits for the event loop, 0 on a loop with nothing to do."""

from __future__ import annotations

import asyncio

from helpers_loop import hog

from exporter.looplag import LoopLag


async def test_a_timer_waits_for_a_busy_loop_and_not_for_an_idle_one():
    lag = LoopLag()
    assert lag.recent() == 0.0  # nothing sampled yet
    lag.start()
    try:
        await asyncio.sleep(0.2)
        idle = lag.recent()
        busy = asyncio.get_running_loop().create_task(hog(0.05))
        await asyncio.sleep(1.2)  # ~20 samples, each due while the loop was blocked
        busy.cancel()
        late = lag.recent()
    finally:
        lag.stop()
    assert late >= 0.02, late  # ~45 ms late, give or take the machine
    assert idle < late / 2, (idle, late)


async def test_stop_ends_the_probe():
    lag = LoopLag()
    lag.start()
    await asyncio.sleep(0.05)
    lag.stop()
    await asyncio.sleep(0)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "loop-lag-probe" and not t.done()]
