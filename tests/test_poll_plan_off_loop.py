"""The plan of a poll's discovery requests is made off the event loop: while it is being made (~0.1 s at
50,000 queues in the first minutes, when most queue documents are still due), the loop goes on
serving, and the poll then fetches what the plan chose."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from test_poll_concurrency import polled

DEADLINE = 30.0


async def test_the_event_loop_runs_while_the_plan_is_made_and_the_poll_uses_it(make_simulator):
    sim = make_simulator(accounts=3, queues_per_account=2, seed=3, speed=0)
    poller, requests, _, client = await polled(sim, queue_settings=True)
    details = poller._details
    made = details.plan
    entered, release = threading.Event(), threading.Event()
    plans = []

    def held_plan(*args: Any, **kwargs: Any) -> Any:  # the real plan, held until released
        entered.set()
        assert release.wait(DEADLINE), "never released"
        plans.append(made(*args, **kwargs))
        return plans[-1]

    try:
        await poller.poll()  # discovery: the queues are known from now on, their documents due
        details.plan = held_plan  # type: ignore[method-assign]
        polling = asyncio.create_task(poller.poll())
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, entered.wait, DEADLINE)
        # The plan is held in its thread; the loop still runs everything else.
        for _ in range(3):
            await asyncio.sleep(0.01)
        assert not polling.done()
        release.set()
        snapshot = await asyncio.wait_for(polling, DEADLINE)
        assert all(a.up for a in snapshot.accounts.values())
        (plan,) = plans
        planned = sum(1 for items in plan.values() for _, kind, _ in items if kind == "queue")
        assert planned == 6  # every queue's document, due since discovery
        assert requests["queue"] == planned  # fetched as planned, no more
    finally:
        release.set()
        await client.aclose()
