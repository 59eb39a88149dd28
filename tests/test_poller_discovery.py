"""Discovery timing at its boundary, and an account that leaves the descendants and comes back."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_poller import MORNING, Clock, Harness

from exporter import selfmetrics
from exporter.config import Secrets, Settings
from exporter.kazoo import QueueRef
from exporter.poller import Poller


@pytest.fixture
async def harness(make_simulator):
    made: list[Harness] = []

    def make(sim=None, **overrides) -> Harness:
        h = Harness(sim or make_simulator(accounts=1, queues_per_account=2, seed=31, speed=0, start=MORNING),
                    **overrides)
        made.append(h)
        return h

    yield make
    for h in made:
        await h.client.aclose()


def listings(h: Harness, endpoint: str) -> int:
    return h.sim.requests_by_endpoint.get(endpoint, 0)


async def test_queues_are_listed_again_exactly_one_discovery_interval_later(harness):
    h = harness(discovery_interval=60.0, agent_status=False, queue_settings=False, account_names=False)
    await h.poller.poll()
    assert listings(h, "queues") == 1
    h.clock.now += 59.5
    await h.poller.poll()
    assert listings(h, "queues") == 1  # within the interval: the cached listing
    h.clock.now += 0.5  # exactly --discovery-interval after the listing
    await h.poller.poll()
    assert listings(h, "queues") == 2
    await h.poller.poll()
    assert listings(h, "queues") == 2  # and from then on, cached again


async def test_descendants_are_listed_again_exactly_one_discovery_interval_later(harness, make_simulator):
    sim = make_simulator(accounts=2, queues_per_account=1, seed=32, speed=0)
    h = harness(sim, account_ids=[sim.master_account_id], discover_descendants=True, discovery_interval=60.0,
                agent_status=False, queue_settings=False, account_names=False)
    await h.poller.poll()
    assert listings(h, "descendants") == 1
    h.clock.now += 59.5
    await h.poller.poll()
    assert listings(h, "descendants") == 1
    h.clock.now += 0.5
    await h.poller.poll()
    assert listings(h, "descendants") == 2
    await h.poller.poll()
    assert listings(h, "descendants") == 2


async def test_an_account_that_left_and_came_back_starts_its_counters_at_zero(harness, make_simulator):
    """While it was away nobody watched its daily figures (a reset could have come and gone): like
    any account seen for the first time, its counters start at 0 on its first figures, not where
    they stood when it left."""
    sim = make_simulator(accounts=2, queues_per_account=2, sub_accounts=1, seed=33, speed=0, start=MORNING)
    home, other = sim.account_ids
    (site,) = sim.sub_account_ids(home)
    queue_id = sim.queues(site)[0][0]
    h = harness(sim, account_ids=[home], discover_descendants=True, discovery_interval=1.0, agent_metrics=True)
    await h.poller.poll()  # the agents are listed
    await h.poller.poll()  # and their figures first seen
    sim.burst(site, queue_id, "abandoned", 4)
    sim.advance(4 * 3600)  # the agents take calls
    await h.poller.poll()
    assert h.value("qubicle_queue_abandoned_sessions_total", site, queue_id) >= 4
    assert sum(agent_calls(h, site).values()) > 0
    sim.move_account(site, other)  # out of the watched tree
    h.clock.now += 2
    await h.poller.poll()
    assert site not in h.poller.snapshot.accounts
    assert h.value("qubicle_queue_abandoned_sessions_total", site, queue_id) is None
    assert agent_calls(h, site) == {}
    sim.burst(site, queue_id, "abandoned", 3)  # unseen
    sim.advance(3600)
    sim.move_account(site, home)  # back
    h.clock.now += 2
    await h.poller.poll()
    assert h.poller.snapshot.accounts[site].up
    assert h.value("qubicle_queue_abandoned_sessions_total", site, queue_id) == 0
    sim.burst(site, queue_id, "abandoned", 2)
    await h.poller.poll()  # its agents listed again: from now on, their figures too
    assert h.value("qubicle_queue_abandoned_sessions_total", site, queue_id) == 2
    calls = agent_calls(h, site)
    assert calls and set(calls.values()) == {0}, calls  # the agents' counters start afresh as well


def agent_calls(h: Harness, account: str) -> dict[str, float]:
    return {dict(labels)["agent_id"]: v for (n, labels), v in h.samples().items()
            if n == "qubicle_agent_calls_total" and dict(labels)["account_id"] == account}


async def test_a_queue_that_left_the_listing_and_came_back_starts_its_counters_at_zero():
    """Dropped from one listing (its state forgotten), listed again later: its daily figure moved
    meanwhile, unseen; its counters start afresh from the figure it comes back with."""

    def status(total: int) -> dict[str, object]:
        return {"active_recipient_count": 1, "available_recipient_count": 1, "node": "kz1",
                "stats": {"recipient_count": 2, "active_session_count": 0, "estimated_wait": 0, "average_wait": 5,
                          "total_sessions": total, "missed_sessions": 0, "abandoned_sessions": 0}}

    class Kazoo:  # stands in for KazooClient: the simulator cannot leave a queue out of one listing
        listing, total = [QueueRef("X", "X"), QueueRef("Y", "Y")], 5

        async def list_queues(self, account_id: str) -> list[QueueRef]:
            return list(self.listing)

        async def queue_list_status(self, account_id: str, queue_ids: list[str]) -> dict[str, object]:
            return {q: status(self.total) for q in queue_ids}

    kazoo = Kazoo()
    settings = replace(Settings(), kazoo_url="http://127.0.0.1:1", account_ids=("acct",),
                       secrets=Secrets(api_key="k" * 64), discovery_interval=1, agent_status=False,
                       queue_settings=False, account_names=False)
    clock = Clock()
    poller = Poller(settings, kazoo, selfmetrics.create(process=False), clock=clock)  # type: ignore[arg-type]

    def sessions() -> dict[str, float]:
        return {q.queue_id: q.counters["daily_sessions"] for q in poller.snapshot.accounts["acct"].queues}

    await poller.poll()
    kazoo.total = 7
    clock.now += 2
    await poller.poll()
    assert sessions() == {"X": 2, "Y": 2}
    kazoo.listing = [QueueRef("Y", "Y")]
    clock.now += 2
    await poller.poll()
    kazoo.listing, kazoo.total = [QueueRef("X", "X"), QueueRef("Y", "Y")], 10
    clock.now += 2
    await poller.poll()
    assert sessions() == {"X": 0, "Y": 5}
