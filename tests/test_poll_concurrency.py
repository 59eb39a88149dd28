"""How many accounts a poll runs at once follows Kazoo's latency; a poll too slow for --max-data-age says so."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from helpers_loop import hog
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from exporter import selfmetrics
from exporter.config import Secrets, Settings, client_settings
from exporter.exposition import joined
from exporter.kazoo import KazooClient
from exporter.poller import CONCURRENCY_FLOOR, Poller
from exporter.render import render
from exporter.simulator import Faults

ACCOUNTS = 60


async def polled(sim, **overrides: Any) -> tuple[Poller, Counter[str], selfmetrics.SelfMetrics, KazooClient]:
    # Queue figures only: the requests per account counted here are the queue status's (the agents'
    # and settings' requests per poll are tests/test_agents.py's).
    settings = replace(Settings(), **{"kazoo_url": sim.url, "account_ids": tuple(sim.account_ids),
                                      "secrets": Secrets(api_key=sim.api_key), "retries": 0, "read_timeout": 30,
                                      "poll_timeout": 60, "agent_status": False, "queue_settings": False,
                                      "account_names": False, **overrides})
    metrics = selfmetrics.create(process=False)
    requests: Counter[str] = Counter()

    def on_request(endpoint: str, code: str) -> None:
        requests[endpoint] += 1
        metrics.on_request(endpoint, code)

    client = KazooClient(client_settings(settings), on_request=on_request)
    return Poller(settings, client, metrics), requests, metrics, client


@pytest.fixture
def sim(make_simulator):
    return make_simulator(accounts=ACCOUNTS, queues_per_account=1, seed=3, speed=0, rate_limit=True)


async def test_a_slow_kazoo_gets_more_accounts_at_once_without_more_requests_per_account(sim):
    # 60 accounts x 2 requests (discovery, status) x 100 ms = 12 s of latency; half of a 2 s
    # interval is 1 s: more than the floor of 10 is needed, even though each request is slow.
    sim.set_faults(Faults(latency=0.1))
    poller, requests, _, client = await polled(sim, interval=2.0)
    try:
        await poller.poll()
        first = poller.concurrency
        assert first > CONCURRENCY_FLOOR
        # Discovery cached: one status request per account, 60 x 250 ms = 15 s of latency, still
        # more than 10 at once can do in 1 s. The first poll ran at the ceiling, so this one
        # measures its own pace from the floor up.
        sim.set_faults(Faults(latency=0.25))
        before = Counter(requests)
        await poller.poll()
        assert poller.concurrency > CONCURRENCY_FLOOR
        assert requests - before == Counter({"queue_list_status": ACCOUNTS})
        assert all(a.up for a in poller.snapshot.accounts.values())  # the simulator's rate limit is on
    finally:
        await client.aclose()


async def test_a_fast_kazoo_keeps_the_floor_and_the_ceiling_is_respected(sim):
    poller, _, _, client = await polled(sim, interval=10.0)
    try:
        await poller.poll()
        await poller.poll()
        assert poller.concurrency == CONCURRENCY_FLOOR  # 60 quick accounts fit in 5 s at 10 at once
    finally:
        await client.aclose()
    sim.set_faults(Faults(latency=0.1))
    poller, _, _, client = await polled(sim, interval=2.0, max_concurrency=12)
    try:
        await poller.poll()
        assert poller.concurrency == 12
    finally:
        await client.aclose()


async def test_the_first_poll_runs_at_the_ceiling_to_be_ready_soon_and_later_ones_at_their_pace(sim):
    # Nothing is shown before the first poll succeeds: it goes as fast as --max-concurrency lets it,
    # where later polls of the same quick accounts settle at the floor (done well within the interval).
    poller, requests, _, client = await polled(sim, interval=10.0, max_concurrency=30)
    try:
        await poller.poll()
        assert poller.concurrency == 30
        before = Counter(requests)
        await poller.poll()
        assert poller.concurrency == CONCURRENCY_FLOOR
        assert requests - before == Counter({"queue_list_status": ACCOUNTS})  # still one request per account
    finally:
        await client.aclose()


async def test_a_poll_slower_than_max_data_age_says_which_figures_it_hid(sim):
    """What served 9,960 of 10,000 queues: the accounts fetched first in a poll that took longer than
    --max-data-age were already stale when the snapshot was published, and hidden without a word."""
    sim.set_faults(Faults(latency=0.05))
    # One account at a time, 60 x 2 x 50 ms = 6 s: longer than a --max-data-age of 2 s.
    poller, _, metrics, client = await polled(sim, interval=1.0, max_data_age=2.0, max_concurrency=1)
    try:
        with capture_logs() as events:
            snapshot = await poller.poll()
        shown = joined(render(snapshot, snapshot.taken_at, max_data_age=2.0)).count(b"\nqubicle_queue_info{")
        hidden = metrics.registry.get_sample_value("qubicle_poll_hidden_queues")
        assert 0 < shown < ACCOUNTS and hidden is not None and shown + hidden == ACCOUNTS
        warnings = [e for e in events if e["event"] == "poll_slower_than_max_data_age"]
        assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
        assert warnings[0]["queues"] == hidden and "hint" in warnings[0]
        assert b"qubicle_poll_hidden_queues " in generate_latest(metrics.registry)
    finally:
        await client.aclose()


async def test_a_poll_within_max_data_age_hides_nothing_and_says_nothing(sim):
    poller, _, metrics, client = await polled(sim, interval=10.0)
    try:
        with capture_logs() as events:
            await poller.poll()
        assert metrics.registry.get_sample_value("qubicle_poll_hidden_queues") == 0
        assert not [e for e in events if e["event"] == "poll_slower_than_max_data_age"]
    finally:
        await client.aclose()


async def test_a_loop_that_is_itself_the_bottleneck_gets_no_more_accounts_at_once(sim):
    """Answers that wait for a busy event loop (our CPU, or a machine busy with other work) are not
    Kazoo's latency: more accounts at once would only wait longer. Here Kazoo answers at once while
    the loop is kept busy: each account's wall time (~0.1 s) would ask for ~24 at once to be done in
    a quarter second, but almost all of it is waiting for the loop."""
    poller, _, _, client = await polled(sim, interval=0.5)
    try:
        await poller.poll()  # the rushed first poll: at the ceiling, its pace not kept
        busy = asyncio.get_running_loop().create_task(hog(0.06))
        try:
            await poller.poll()
        finally:
            busy.cancel()
        assert poller.concurrency == CONCURRENCY_FLOOR
    finally:
        await client.aclose()
