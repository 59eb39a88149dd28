"""The poller against the simulator over real HTTP: figures, batching, deletions, failures, resets."""

from __future__ import annotations

import logging
import subprocess
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import structlog
from conftest import debian_tool
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from served import served_exposition, served_text

from exporter import selfmetrics
from exporter.collector import SnapshotCollector
from exporter.config import Secrets, Settings, client_settings
from exporter.kazoo import KazooClient
from exporter.poller import Poller
from exporter.simulator import Faults

DOTTED_FIELDS = {"active_recipient_count", "available_recipient_count", "stats.recipient_count",
                 "stats.active_session_count", "stats.estimated_wait", "stats.average_wait", "stats.longest_wait",
                 "stats.total_sessions", "stats.missed_sessions", "stats.abandoned_sessions"}
MORNING = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    def __init__(self, sim, **overrides) -> None:
        self.sim = sim
        self.clock = Clock()
        self.settings = replace(
            Settings(), kazoo_url=sim.url, account_ids=tuple(overrides.pop("account_ids", sim.account_ids)),
            secrets=Secrets(api_key=sim.api_key), retries=0, connect_timeout=1, read_timeout=2,
            **overrides,
        )
        self.metrics = selfmetrics.create(process=False)
        self.client = KazooClient(client_settings(self.settings), on_request=self.metrics.on_request,
                                  on_reauthenticate=self.metrics.on_reauthenticate)
        self.poller = Poller(self.settings, self.client, self.metrics, clock=self.clock)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(lambda: self.poller.snapshot, self.settings.max_data_age,
                                                 clock=self.clock))
        self.exposition = served_exposition(lambda: self.poller.snapshot, self.settings.max_data_age,
                                            live_registry=self.metrics.registry, clock=self.clock)

    def text(self) -> str:
        """What /metrics serves now; its snapshot part must equal prometheus-client's own rendering."""
        served = served_text(self.exposition)
        assert served.startswith(generate_latest(self.registry).decode()), "the fast renderer differs"
        return served

    def samples(self) -> dict[tuple[str, tuple], float]:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(self.text()) for s in f.samples}

    def value(self, name: str, account: str, queue: str | None = None) -> float | None:
        for (n, labels), v in self.samples().items():
            d = dict(labels)
            if n == name and d.get("account_id") == account and (queue is None or d.get("queue_id") == queue):
                return v
        return None


@pytest.fixture
async def harness(make_simulator):
    made: list[Harness] = []

    def make(sim=None, **overrides) -> Harness:
        # A fixed start (08:00 on a weekday) so that "a few hours in" is busy whatever the time of the run.
        h = Harness(sim or make_simulator(accounts=2, queues_per_account=3, seed=7, speed=0, start=MORNING),
                    **overrides)
        made.append(h)
        return h

    yield make
    for h in made:
        await h.client.aclose()


async def test_served_figures_are_kazoos_figures(harness):
    h = harness()
    h.sim.advance(3 * 3600)  # a few busy hours in, so the figures are not all zero
    await h.poller.poll()
    checked = 0
    for account in h.sim.account_ids:
        for queue_id, name in h.sim.queues(account):
            status = h.sim.status(account, queue_id)
            stats = status["stats"]
            expected = {
                "qubicle_queue_recipients": stats["recipient_count"],
                "qubicle_queue_active_recipients": status["active_recipient_count"],
                "qubicle_queue_available_recipients": status["available_recipient_count"],
                "qubicle_queue_active_sessions": stats["active_session_count"],
                "qubicle_queue_estimated_wait_seconds": stats["estimated_wait"],
                "qubicle_queue_average_wait_seconds": stats["average_wait"],
                "qubicle_queue_daily_sessions": stats["total_sessions"],
                "qubicle_queue_daily_missed_sessions": stats["missed_sessions"],
                "qubicle_queue_daily_abandoned_sessions": stats["abandoned_sessions"],
            }
            for metric, want in expected.items():
                assert h.value(metric, account, queue_id) == pytest.approx(want), (metric, name)
            assert h.value("qubicle_queue_sessions_total", account, queue_id) == 0  # first figure seen
            checked += 1
    assert checked == 6
    assert sum(h.sim.status(a, q)["stats"]["total_sessions"] for a in h.sim.account_ids
               for q, _ in h.sim.queues(a)) > 0


async def test_one_status_request_per_account_per_poll(harness):
    # Only the queue figures here; the agents' and settings' requests are counted in test_agents.py.
    h = harness(agent_status=False, queue_settings=False, account_names=False)
    await h.poller.poll()
    before = dict(h.sim.requests_by_endpoint)
    for _ in range(3):
        await h.poller.poll()
    after = h.sim.requests_by_endpoint
    status_calls = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
    # Discovery is cached; three polls of two accounts are six status calls and nothing else.
    assert sum(status_calls.values()) == 6, status_calls


async def test_counters_follow_kazoo_and_survive_a_queue_restart(harness):
    h = harness()
    account = h.sim.account_ids[0]
    queue_id = h.sim.queues(account)[0][0]
    await h.poller.poll()
    h.sim.burst(account, queue_id, "abandoned", 5)
    await h.poller.poll()
    assert h.value("qubicle_queue_abandoned_sessions_total", account, queue_id) == 5
    h.sim.restart_queue(account, queue_id)  # daily figures fall to 0, node changes
    h.sim.burst(account, queue_id, "abandoned", 2)
    await h.poller.poll()
    assert h.sim.status(account, queue_id)["stats"]["abandoned_sessions"] == 2
    assert h.value("qubicle_queue_abandoned_sessions_total", account, queue_id) == 7


async def test_deleted_queue_vanishes(harness):
    h = harness()
    account = h.sim.account_ids[0]
    gone, kept = h.sim.queues(account)[0][0], h.sim.queues(account)[1][0]
    await h.poller.poll()
    assert h.value("qubicle_queue_active_sessions", account, gone) is not None
    h.sim.delete_queue(account, gone)  # between discovery (cached) and the next status call
    await h.poller.poll()
    assert h.value("qubicle_queue_active_sessions", account, gone) is None
    assert h.value("qubicle_queue_active_sessions", account, kept) is not None
    assert h.metrics.missing_queues.labels(account_id=account)._value.get() == 1
    await h.poller.poll()  # rediscovered: no longer listed, so no longer counted as missing
    assert h.metrics.missing_queues.labels(account_id=account)._value.get() == 1
    assert h.value("qubicle_queues", account) == 2


async def test_failed_account_goes_down_at_once_and_its_queues_vanish_after_max_data_age(harness, make_simulator):
    h = harness(max_data_age=30.0)
    account = h.sim.account_ids[0]
    await h.poller.poll()
    assert h.value("qubicle_up", account) == 1
    h.sim.set_faults(Faults(down=True))
    h.clock.now += 10
    await h.poller.poll()
    assert h.value("qubicle_up", account) == 0
    assert h.value("qubicle_queue_active_sessions", account) is not None  # 10 s old: still shown
    h.clock.now += 25
    await h.poller.poll()
    assert h.value("qubicle_up", account) == 0
    assert h.value("qubicle_queue_active_sessions", account) is None  # 35 s old: gone
    assert h.value("qubicle_last_poll_success_timestamp_seconds", account) == h.clock.now - 35
    h.sim.set_faults(Faults())
    h.clock.now += 10
    await h.poller.poll()
    assert h.value("qubicle_up", account) == 1
    assert h.value("qubicle_queue_active_sessions", account) is not None


async def test_one_bad_account_does_not_affect_the_others(harness, make_simulator):
    sim = make_simulator(accounts=2, queues_per_account=2, seed=3, speed=0)
    unknown = "0" * 32
    h = harness(sim, account_ids=[*sim.account_ids, unknown, sim.foreign_account_id])
    await h.poller.poll()
    for account in sim.account_ids:
        assert h.value("qubicle_up", account) == 1
        assert h.value("qubicle_queue_active_sessions", account) is not None
    # An account outside the token's tree is forbidden.
    assert h.value("qubicle_up", sim.foreign_account_id) == 0
    assert h.metrics.poll_errors.labels(account_id=sim.foreign_account_id, reason="forbidden")._value.get() == 1
    assert h.value("qubicle_up", unknown) == 0


async def test_an_unknown_account_is_down_not_found_with_a_warning_naming_it(harness, make_simulator):
    # Issue 12: a mistyped account id used to read as "up, 0 queues" with an info log.
    sim = make_simulator(accounts=1, queues_per_account=2, seed=3, speed=0, no_qubicle_accounts=1,
                         empty_accounts=1)
    unknown = "0123456789abcdef" * 2
    known = [sim.account_ids[0], *sim.no_qubicle_account_ids, *sim.empty_account_ids]
    h = harness(sim, account_ids=[*known, unknown])
    old = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))  # whatever ran before
    try:
        with structlog.testing.capture_logs() as events:
            await h.poller.poll()
    finally:
        structlog.configure(**old)
    assert h.value("qubicle_up", unknown) == 0
    assert h.metrics.poll_errors.labels(account_id=unknown, reason="not_found")._value.get() == 1
    (warning,) = [e for e in events if e["event"] == "account_poll_failed" and e["account_id"] == unknown]
    assert warning["log_level"] == "warning" and warning["reason"] == "not_found"
    assert warning["error"] == f"account {unknown} does not exist or is not visible to these credentials (HTTP 404)"
    # An account that exists with no queues, or without Qubicle, stays what it was: up, 0 queues.
    for account in known[1:]:
        assert h.value("qubicle_up", account) == 1, account
        assert h.value("qubicle_queues", account) == 0, account
    assert h.value("qubicle_up", known[0]) == 1 and h.value("qubicle_queues", known[0]) == 2


async def test_wait_unit_milliseconds_converts_to_seconds(harness, make_simulator):
    h = harness(wait_unit="milliseconds")
    h.sim.advance(3 * 3600)
    await h.poller.poll()
    account = h.sim.account_ids[0]
    queue_id = h.sim.queues(account)[0][0]
    raw = h.sim.status(account, queue_id)["stats"]["average_wait"]
    assert h.value("qubicle_queue_average_wait_seconds", account, queue_id) == pytest.approx(raw / 1000)


@pytest.mark.e2e
async def test_odd_queue_names_are_escaped(harness, make_simulator, tmp_path):
    sim = make_simulator(accounts=1, queues_per_account=0, seed=1, speed=0)
    account = sim.account_ids[0]
    names = ['say "hi"', "back\\slash", "new\nline", "Ünïcødé 客服 ☎", "trailing \\"]
    ids = {sim.create_queue(account, name): name for name in names}
    h = harness(sim)
    await h.poller.poll()
    text = h.text()
    got = {s.labels["queue_id"]: s.labels["queue_name"]
           for f in text_string_to_metric_families(text) if f.name == "qubicle_queue_info" for s in f.samples}
    assert got == ids
    path = tmp_path / "metrics.prom"
    path.write_text(text)
    result = subprocess.run([debian_tool("promtool"), "check", "metrics"], stdin=path.open(), capture_output=True,
                            text=True, timeout=30)
    # promtool lints too (exits 3 on lint warnings only); parse errors exit 1.
    assert result.returncode in (0, 3), result.stderr
    assert "error" not in result.stderr.lower(), result.stderr


async def test_descendants_are_discovered_and_empty_accounts_are_no_queues(harness, make_simulator):
    sim = make_simulator(accounts=1, queues_per_account=2, sub_accounts=2, seed=4, speed=0,
                         no_qubicle_accounts=1, empty_accounts=1)
    h = harness(sim, account_ids=[sim.master_account_id], discover_descendants=True)
    await h.poller.poll()
    children = sim.sub_account_ids(sim.master_account_id)
    assert sim.account_ids[0] in children and sim.master_account_id not in children
    for account in children:
        assert h.value("qubicle_up", account) == 1, account
    for account in sim.no_qubicle_account_ids + sim.empty_account_ids:
        assert h.value("qubicle_queues", account) == 0  # "no queues", not a failure
    served = {q for (n, labels), _ in h.samples().items() if n == "qubicle_queue_info"
              for k, q in labels if k == "queue_id"}
    assert len(served) == 2 + 2 * 2  # the account's queues and its two sub-accounts'
    h.clock.now += h.settings.discovery_interval  # the next poll discovers again, and works
    await h.poller.poll()
    assert all(h.value("qubicle_up", account) == 1 for account in children)


async def test_invalid_fields_drop_only_their_sample_and_are_counted(harness, make_simulator):
    from exporter.simulator import Faults

    sim = make_simulator(accounts=1, queues_per_account=20, seed=9, speed=0)
    sim.set_faults(Faults(drop_field_rate=1.0))
    h = harness(sim)
    await h.poller.poll()
    account = sim.account_ids[0]
    samples = h.samples()
    invalid = {dict(labels)["field"]: v for (n, labels), v in samples.items() if n == "qubicle_invalid_fields_total"}
    assert sum(invalid.values()) >= 15  # one bad field in every status (some are dropped optional fields)
    # The label names the field, as Kazoo spells it (the dashboards and the runbook show it).
    assert set(invalid) <= DOTTED_FIELDS and invalid, invalid
    assert {dict(labels)["account_id"] for (n, labels) in samples if n == "qubicle_invalid_fields_total"} == {account}
    for queue_id, _ in sim.queues(account):
        present = {n for (n, labels), _ in samples.items() if ("queue_id", queue_id) in labels}
        # The queue is still served: at most one of its figures is missing.
        assert "qubicle_queue_info" in present
        assert len({m for m in present if m.startswith("qubicle_queue_") and not m.endswith("_total")}) >= 9


async def test_milliseconds_look_suspicious_when_every_wait_is_under_a_second(harness):
    from structlog.testing import capture_logs

    h = harness(wait_unit="milliseconds")
    h.sim.advance(4 * 3600)
    with capture_logs() as events:
        await h.poller.poll()
    assert any(e["event"] == "wait_unit_suspicious" for e in events), [e["event"] for e in events]
    poll = next(e for e in events if e["event"] == "poll")
    assert poll["accounts_up"] == 2 and poll["queues"] == 6  # one summary line, not one per queue


async def test_unchanged_statuses_reuse_their_figures_and_changed_ones_are_read_again(harness):
    h = harness()
    h.sim.advance(2 * 3600)
    account = h.sim.account_ids[0]
    queue_id = h.sim.queues(account)[0][0]
    for _ in range(3):  # the first polls also fetch the queues' settings, which the next ones show
        await h.poller.poll()
    first = {q.queue_id: q for a in h.poller.snapshot.accounts.values() for q in a.queues}
    await h.poller.poll()  # the simulated clock stands still: every answer is the same
    second = {q.queue_id: q for a in h.poller.snapshot.accounts.values() for q in a.queues}
    assert len(second) == 6 and all(second[q] is first[q] for q in first)
    h.sim.burst(account, queue_id, "abandoned", 3)
    await h.poller.poll()
    third = {q.queue_id: q for a in h.poller.snapshot.accounts.values() for q in a.queues}
    assert third[queue_id] is not first[queue_id]
    assert third[queue_id].counters["daily_abandoned_sessions"] == first[queue_id].counters["daily_abandoned_sessions"] + 3
    assert third[queue_id].values["daily_abandoned_sessions"] == h.sim.status(account, queue_id)["stats"]["abandoned_sessions"]
    assert all(third[q] is first[q] for q in first if q != queue_id)
    assert h.value("qubicle_queue_abandoned_sessions_total", account, queue_id) == 3


async def test_a_status_with_a_bad_field_is_read_and_counted_at_every_poll():
    """Kazoo's answer is the same twice, but a bad field is counted per poll, so it is never reused."""
    from exporter.kazoo import QueueRef

    class SameAnswer:  # stands in for KazooClient: the simulator cannot keep one field bad
        async def list_queues(self, account_id: str) -> list[QueueRef]:
            return [QueueRef("q-bad", "Bad"), QueueRef("q-good", "Good")]

        async def queue_list_status(self, account_id: str, queue_ids: list[str]) -> dict[str, object]:
            good = {"active_recipient_count": 1, "available_recipient_count": 1, "node": "kz1",
                    "stats": {"recipient_count": 2, "active_session_count": 0, "estimated_wait": 0,
                              "average_wait": 5, "total_sessions": 3, "missed_sessions": 0, "abandoned_sessions": 1}}
            bad = {**good, "available_recipient_count": "n/a"}
            return {"q-bad": bad, "q-good": good}

    settings = replace(Settings(), kazoo_url="http://127.0.0.1:1", account_ids=("acct",),
                       secrets=Secrets(api_key="k" * 64), agent_status=False, queue_settings=False,
                       account_names=False)
    metrics = selfmetrics.create(process=False)
    poller = Poller(settings, SameAnswer(), metrics)  # type: ignore[arg-type]

    def counted() -> float:
        return sum(s.value for family in metrics.invalid_fields.collect() for s in family.samples
                   if s.name == "qubicle_invalid_fields_total")

    await poller.poll()
    good_before = {q.queue_id: q for q in poller.snapshot.accounts["acct"].queues}["q-good"]
    assert counted() == 1
    await poller.poll()
    assert counted() == 2
    assert {q.queue_id: q for q in poller.snapshot.accounts["acct"].queues}["q-good"] is good_before


async def test_a_queue_forgotten_at_rediscovery_starts_its_counters_afresh_when_it_returns():
    """Listed, then not (its counters are forgotten) while the status call fails, then listed again
    with the very same answer: its old figures must not be reused without their counter state."""
    from exporter.kazoo import QueueRef, TransportError

    def status(total: int) -> dict[str, object]:
        return {"active_recipient_count": 1, "available_recipient_count": 1, "node": "kz1",
                "stats": {"recipient_count": 2, "active_session_count": 0, "estimated_wait": 0, "average_wait": 5,
                          "total_sessions": total, "missed_sessions": 0, "abandoned_sessions": 0}}

    class Kazoo:  # stands in for KazooClient: the simulator cannot fail one call on cue
        listing, fail, total = [QueueRef("X", "X")], False, 5

        async def list_queues(self, account_id: str) -> list[QueueRef]:
            return list(self.listing)

        async def queue_list_status(self, account_id: str, queue_ids: list[str]) -> dict[str, object]:
            if self.fail:
                raise TransportError("GET .../status: ConnectError")
            return {"X": status(self.total)} if "X" in queue_ids else {}

    kazoo = Kazoo()
    settings = replace(Settings(), kazoo_url="http://127.0.0.1:1", account_ids=("acct",),
                       secrets=Secrets(api_key="k" * 64), discovery_interval=1)
    clock = Clock()
    poller = Poller(settings, kazoo, selfmetrics.create(process=False), clock=clock)  # type: ignore[arg-type]
    await poller.poll()
    kazoo.listing, kazoo.fail = [QueueRef("Y", "Y")], True
    clock.now += 2
    await poller.poll()
    kazoo.listing, kazoo.fail = [QueueRef("X", "X")], False
    clock.now += 2
    await poller.poll()
    kazoo.total = 8
    clock.now += 2
    await poller.poll()
    (queue,) = poller.snapshot.accounts["acct"].queues
    assert queue.counters["daily_sessions"] == 3


async def test_an_account_no_longer_polled_loses_its_own_series(harness, make_simulator):
    """A descendant removed in Kazoo: its error, missing-queue and invalid-field series go with it
    (they would otherwise stay forever, frozen, in every scrape)."""
    sim = make_simulator(accounts=1, queues_per_account=2, sub_accounts=2, seed=5, speed=0)
    parent = sim.account_ids[0]
    child, sibling = sim.sub_account_ids(parent)[:2]
    h = harness(sim, account_ids=[parent], discover_descendants=True, discovery_interval=1.0)
    sim.set_faults(Faults(drop_field_rate=1.0, accounts=(child,)))
    await h.poller.poll()
    assert child in h.poller.snapshot.accounts and sibling in h.poller.snapshot.accounts
    sim.set_faults(Faults(error_rate=1.0, accounts=(child,)))
    await h.poller.poll()

    def series_of(account: str) -> list[tuple[str, dict[str, str]]]:
        return [(s.name, s.labels) for family in h.metrics.registry.collect() for s in family.samples
                if s.labels.get("account_id") == account]

    names = {name for name, _ in series_of(child)}
    assert {"qubicle_poll_errors_total", "qubicle_invalid_fields_total"} <= names, names
    sibling_before = series_of(sibling)
    sim.set_faults(Faults())
    sim.delete_account(child)
    h.clock.now += 2  # past --discovery-interval: the descendants are listed again
    await h.poller.poll()
    assert child not in h.poller.snapshot.accounts
    assert series_of(child) == []
    assert series_of(sibling) == sibling_before  # only the account that left
    assert h.value("qubicle_up", child) is None


KNOWN_REASONS = {"error", "auth", "forbidden", "not_found", "rate_limited", "server_error", "bad_response", "transport",
                 "timeout", "internal"}


def poll_errors(h: Harness) -> dict[tuple[str, str], float]:
    return {(dict(labels)["account_id"], dict(labels)["reason"]): v for (n, labels), v in h.samples().items()
            if n == "qubicle_poll_errors_total"}


async def test_a_poll_slower_than_poll_timeout_fails_as_timeout_and_keeps_what_was_known(harness, make_simulator):
    from exporter.simulator import Faults

    sim = make_simulator(accounts=1, queues_per_account=3, seed=12, speed=0)
    h = harness(sim, poll_timeout=0.3)  # read timeout 2 s
    account = sim.account_ids[0]
    await h.poller.poll()
    assert h.value("qubicle_up", account) == 1 and h.value("qubicle_queues", account) == 3
    sim.set_faults(Faults(latency=1.5))  # under the read timeout, over the poll timeout
    await h.poller.poll()
    assert h.value("qubicle_up", account) == 0
    assert poll_errors(h) == {(account, "timeout"): 1}
    assert h.poller.snapshot.accounts[account].error == "timeout"
    assert h.value("qubicle_queues", account) == 3  # what discovery found stays known


async def test_a_shard_polls_its_accounts_only(harness, make_simulator):
    from exporter.config import Shard
    from exporter.shard import in_shard

    sim = make_simulator(accounts=9, queues_per_account=1, seed=13, speed=0)
    h = harness(sim, shard=Shard(2, 3))
    await h.poller.poll()
    mine = {a for a in sim.account_ids if in_shard(a, Shard(2, 3))}
    assert mine and mine != set(sim.account_ids)
    served = {dict(labels)["account_id"] for (n, labels), _ in h.samples().items() if n == "qubicle_up"}
    assert served == mine


async def test_a_failed_descendants_listing_is_counted_for_its_parent(harness, make_simulator):
    from exporter.simulator import Faults

    sim = make_simulator(accounts=1, queues_per_account=1, sub_accounts=2, seed=14, speed=0)
    master = sim.master_account_id
    h = harness(sim, account_ids=[master], discover_descendants=True)
    sim.set_faults(Faults(error_rate=1.0, accounts=(master,)))
    await h.poller.poll()
    errors = poll_errors(h)
    # The listing failed (and the master's own poll): both counted under the master, by reason.
    assert {a for a, _ in errors} == {master} and {r for _, r in errors} <= KNOWN_REASONS, errors
    assert errors[master, "server_error"] >= 2, errors


async def test_poll_duration_is_observed_in_seconds(harness):
    h = harness()
    await h.poller.poll()
    samples = h.samples()
    assert samples[("qubicle_poll_duration_seconds_count", ())] == 1
    assert 0 < samples[("qubicle_poll_duration_seconds_sum", ())] < 60  # one poll of a local simulator


async def test_a_queue_moved_to_another_node_restarts_its_counters_even_if_the_figure_grew(harness, make_simulator):
    sim = make_simulator(accounts=1, queues_per_account=1, seed=15, speed=0, start=MORNING)
    account = sim.account_ids[0]
    (queue_id, _), = sim.queues(account)
    h = harness(sim)
    sim.burst(account, queue_id, "abandoned", 5)
    await h.poller.poll()
    before = sim.status(account, queue_id)
    assert h.value("qubicle_queue_abandoned_sessions_total", account, queue_id) == 0  # first figure seen
    # The queue restarts on another node (its daily figures from 0) and gets more callers than
    # it had before the next poll: only the node change tells the exporter it was reset.
    sim.restart_queue(account, queue_id)
    sim.burst(account, queue_id, "abandoned", 8)
    after = sim.status(account, queue_id)
    assert after["node"] != before["node"]
    assert after["stats"]["abandoned_sessions"] > before["stats"]["abandoned_sessions"]
    await h.poller.poll()
    assert h.value("qubicle_queue_abandoned_sessions_total", account, queue_id) == after["stats"]["abandoned_sessions"]


async def test_a_failed_descendants_listing_is_tried_again_at_the_next_poll(harness, make_simulator):
    """Not only after --discovery-interval: until then the exporter would watch the parent alone
    (a reseller with no queues of its own: nothing), while saying it is up."""
    sim = make_simulator(accounts=3, queues_per_account=1, seed=4, speed=0)
    h = harness(sim, account_ids=[sim.master_account_id], discover_descendants=True, discovery_interval=3600)
    sim.set_faults(Faults(error_rate=1.0, accounts=(sim.master_account_id,)))
    await h.poller.poll()
    assert all(h.value("qubicle_up", a) is None for a in sim.account_ids)
    sim.set_faults(Faults())
    await h.poller.poll()  # the clock has not moved: far from the discovery interval
    assert all(h.value("qubicle_up", a) == 1 for a in sim.account_ids)
