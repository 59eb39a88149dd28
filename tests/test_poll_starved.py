"""More accounts at once only while the event loop has time to spare: a loop short of CPU (here a task
that never lets it wait for I/O) keeps the floor, instead of climbing to the ceiling on wall times
that measure waiting for the loop (bench/RESULTS.md section 0: 64 at once and +70 MB at 1,000 x 50
on a loaded machine). Once the loop has time again, the number follows Kazoo's latency again."""

from __future__ import annotations

import asyncio
import time

from test_poll_concurrency import ACCOUNTS, polled

from exporter.poller import CONCURRENCY_FLOOR
from exporter.simulator import Faults


async def hog(stop: asyncio.Event) -> None:
    """Never idle: a callback is always ready, so the loop never blocks in its selector."""
    while not stop.is_set():
        time.sleep(0.002)
        await asyncio.sleep(0)


async def test_a_loop_short_of_cpu_keeps_the_floor_and_grows_again_once_it_has_time(make_simulator):
    # Half of a 0.2 s interval is 0.1 s; each account takes at least 0.1 s (status at 100 ms): a
    # poll with the loop to spare starts nearly every account at once (tests/test_poll_pace.py).
    sim = make_simulator(accounts=ACCOUNTS, queues_per_account=1, seed=3, speed=0, rate_limit=True)
    sim.set_faults(Faults(latency=0.1))
    poller, _, _, client = await polled(sim, interval=0.2)
    stop = asyncio.Event()
    try:
        await poller.poll()  # the first poll: as fast as the ceiling allows, starved or not
        hogging = asyncio.create_task(hog(stop))
        for _ in range(2):
            await poller.poll()
            assert all(a.up for a in poller.snapshot.accounts.values())
            assert poller.concurrency == CONCURRENCY_FLOOR
        stop.set()
        await hogging
        await poller.poll()
        assert all(a.up for a in poller.snapshot.accounts.values())
        assert poller.concurrency >= ACCOUNTS - CONCURRENCY_FLOOR
    finally:
        stop.set()
        await client.aclose()
