"""A poll already past its target share of --interval starts every account left at once."""

from __future__ import annotations

from test_poll_concurrency import ACCOUNTS, polled

from exporter.poller import CONCURRENCY_FLOOR
from exporter.simulator import Faults


async def test_a_poll_past_its_target_starts_every_waiting_account_at_once(make_simulator):
    # Half of a 0.2 s interval is 0.1 s; each account takes at least 0.3 s (authentication, listing,
    # status at 100 ms each). When the first account ends the target is already missed: the 50
    # accounts not yet begun all start then, not a share of them spread over the time "left".
    sim = make_simulator(accounts=ACCOUNTS, queues_per_account=1, seed=3, speed=0, rate_limit=True)
    sim.set_faults(Faults(latency=0.1))
    poller, _, _, client = await polled(sim, interval=0.2)
    try:
        # The first poll (nothing shown yet) has no target at all: it is past it from the start.
        await poller.poll()
        assert all(a.up for a in poller.snapshot.accounts.values())
        # (ceil(50 x pace / pace) may round up to 51: one permit more, never a request more.)
        assert ACCOUNTS - CONCURRENCY_FLOOR <= poller.concurrency <= ACCOUNTS - CONCURRENCY_FLOOR + 1
        # A later poll (status only, 100 ms an account) has its target, 0.1 s, and misses it too.
        await poller.poll()
        assert all(a.up for a in poller.snapshot.accounts.values())
        assert ACCOUNTS - CONCURRENCY_FLOOR <= poller.concurrency <= ACCOUNTS - CONCURRENCY_FLOOR + 1
    finally:
        await client.aclose()
