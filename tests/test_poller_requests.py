"""An account's poll ends only when every request it started has ended."""

from __future__ import annotations

import asyncio

from test_poller import Harness

from exporter.simulator import Faults


async def test_a_failed_status_call_waits_for_the_agents_call_beside_it(make_simulator):
    """The queues' status and the agents' status go out side by side; when the first fails, the
    account's poll still waits for the second: no request of it is left running into the next poll
    (nor counted against the account after the poll said what failed)."""
    sim = make_simulator(accounts=1, queues_per_account=2, seed=34, speed=0)
    (account,) = sim.account_ids
    h = Harness(sim)
    try:
        await h.poller.poll()
        await h.poller.poll()  # the agents are known: the agents' status is asked from now on
        real = h.client.recipients_status
        ended: list[bool] = []

        async def slow(*args, **kwargs):
            try:
                await asyncio.sleep(2.0)  # well after the status call's 500
                return await real(*args, **kwargs)
            finally:
                ended.append(True)

        h.client.recipients_status = slow  # type: ignore[method-assign]
        sim.set_faults(Faults(error_rate=1.0, accounts=(account,)))
        await h.poller.poll()
        assert ended == [True]
        assert h.poller.snapshot.accounts[account].error == "server_error"
        # Both failures counted by the time the poll ends: the status call's and the agents' call's.
        assert h.metrics.poll_errors.labels(account_id=account, reason="server_error")._value.get() == 2
    finally:
        await h.client.aclose()
