"""Agents by state, queue settings and account names: parsing, the poller over the simulator, cost, render."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from test_poller import Harness
from test_poller import harness as harness  # the fixture

from exporter.agents import AgentCarry, agents_by_state
from exporter.collector import SnapshotCollector
from exporter.exposition import joined
from exporter.figures import AGENT_STATES, NOT_LOGGED_IN, agent_state
from exporter.kazoo.qubicle import (
    RecipientStatus,
    parse_queue_document,
    parse_recipient_status,
    recipient_status_answer,
    unix_time,
)
from exporter.render import render
from exporter.simulator import recipients as sim_agents
from exporter.snapshot import AccountSnapshot, AgentFigures, QueueFigures, Snapshot

MORNING = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
# The model's states -> the exporter's labels, written out independently of the exporter's table.
MODEL_TO_LABEL = {"ready": "ready", "away": "away", "ringing": "ringing", "busy": "on_call", "wrapup": "wrapup"}


# ---- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling, label", [
    ("Ready", "ready"), ("ready", "ready"), ("READY", "ready"), ("Away", "away"), ("away", "away"),
    ("Wrapup-Time", "wrapup"), ("wrapup_time", "wrapup"), ("Call-Offer", "ringing"), ("call_offer", "ringing"),
    ("On-A-Call", "on_call"), ("on-a-call", "on_call"), ("on_a_call", "on_call"),
    ("Not-Logged-In", NOT_LOGGED_IN), ("not_logged_in", NOT_LOGGED_IN),
])
def test_every_spelling_of_a_state_is_one_label(spelling, label):
    assert agent_state(spelling) == label


@pytest.mark.parametrize("odd", ["Lunch", "", None, 3, True, ["Ready"]])
def test_an_unknown_state_is_reported_and_never_counted(odd):
    status, bad = parse_recipient_status({"availability_state": odd, "stats": {"total_calls": 1}})
    assert status is None and bad == ["recipient.availability_state"]
    assert parse_recipient_status("Ready") == (None, ["recipient.availability_state"])


def test_missing_or_bad_stats_drop_those_figures_never_zero():
    status, bad = parse_recipient_status({"availability_state": "Ready"})
    assert status is not None and status.stats == {} and bad == ["recipient.stats"]
    status, bad = parse_recipient_status({"availability_state": "On-A-Call",
                                          "stats": {"total_calls": "n/a", "missed_calls": "2", "avg_call_time": 187}})
    assert status is not None and status.stats == {"missed_calls": 2.0, "avg_call_time": 187.0}
    assert bad == ["recipient.stats.total_calls"]
    # A logged-out agent has no stats to miss.
    assert parse_recipient_status({"availability_state": "Not-Logged-In"})[1] == []


def test_queue_availability_as_object_or_list():
    status, _ = parse_recipient_status({"availability_state": "Ready", "queue_availability": {"a": True, "b": False,
                                                                                             "c": "no"}, "stats": {}})
    assert status is not None and status.queue_availability == {"a": True, "b": False}
    status, _ = parse_recipient_status({"availability_state": "Away", "queue_availability": ["a"], "stats": {}})
    assert status is not None and status.queue_availability == {"a": True}


@pytest.mark.parametrize("raw, unix", [
    (1_603_829_149, 1_603_829_149), (63_771_048_349, 1_603_829_149), (1_603_829_149_000, 1_603_829_149),
    (0, None), (None, None), ("soon", None), (5e10, None),
])
def test_timestamps_are_normalised_by_size(raw, unix):
    assert unix_time(raw) == unix


def test_queue_document_current_legacy_strings_and_members():
    current, bad = parse_queue_document({"timeout": 600, "ring_timeout": 20, "agent_wrapup_time": "30",
                                         "timeout_if_size_exceeds": 0, "queue_router": "route_most_idle",
                                         "queue_type": "queue_basic", "members": {"u1": "", "u2": ""}})
    assert current.values == {"timeout": 600.0, "ring_timeout": 20.0, "wrapup": 30.0}  # no size limit: no figure
    assert current.labels == {"queue_type": "queue_basic", "router": "route_most_idle"}
    assert current.members == ("u1", "u2") and bad == []
    legacy, bad = parse_queue_document({"queue_timeout": "2000", "agent_connect_timeout": 15,
                                        "timeout_if_size_exceeds": "12", "members": [{"id": "u3"}, "u4", 5]})
    assert legacy.values == {"timeout": 2000.0, "ring_timeout": 15.0, "max_callers": 12.0}
    assert legacy.labels == {"queue_type": "", "router": ""} and legacy.members == ("u3", "u4")
    odd, bad = parse_queue_document({"timeout": "ten minutes"})
    assert odd.values == {} and bad == ["queue.timeout"] and odd.members is None
    assert parse_queue_document(None)[0].values == {}


def test_recipients_status_answer_as_object_or_list():
    asked = ["u1", "u2"]
    assert recipient_status_answer({"u1": {"x": 1}, "zz": {}}, asked) == {"u1": {"x": 1}}
    assert recipient_status_answer([{"id": "u2", "x": 2}, {"recipient_id": "u1"}, {"id": "zz"}, 7], asked) == \
        {"u2": {"id": "u2", "x": 2}, "u1": {"recipient_id": "u1"}}
    assert recipient_status_answer("nope", asked) is None


def _status(state: str, **availability: bool) -> RecipientStatus:
    return RecipientStatus(state=state, queue_availability=dict(availability), stats={}, login_time=None)


def test_per_queue_availability_counts_an_agent_away_where_it_is_away():
    statuses = {"u1": _status("ready", q1=True, q2=False), "u2": _status("on_call", q2=False),
                "u3": _status(NOT_LOGGED_IN), "u4": _status("away", q1=True)}
    by_queue, account = agents_by_state(statuses, {"q1": ["u1", "u2", "u3", "u4"], "q2": ["u1", "u2", "gone"]})
    assert dict(by_queue["q1"]) == {"ready": 2, "ringing": 0, "on_call": 1, "wrapup": 0, "away": 0}
    assert dict(by_queue["q2"]) == {"ready": 0, "ringing": 0, "on_call": 1, "wrapup": 0, "away": 1}
    assert dict(account) == {"ready": 1, "ringing": 0, "on_call": 1, "wrapup": 0, "away": 1}


def test_agent_counters_survive_new_logins_and_resets_without_a_burst():
    carry = AgentCarry()
    assert carry.update("a", "u", 100.0, {"total_calls": 40, "missed_calls": 3}) == {"calls": 0, "missed_calls": 0}
    assert carry.update("a", "u", 100.0, {"total_calls": 42, "missed_calls": 3}) == {"calls": 2, "missed_calls": 0}
    # A new login starts Kazoo's figures again, even when they are not lower (45 is not 3 more calls).
    assert carry.update("a", "u", 900.0, {"total_calls": 45, "missed_calls": 1})["calls"] == 47
    assert carry.update("a", "u", 900.0, {"total_calls": 1, "missed_calls": 1})["calls"] == 48  # a drop: reset
    assert carry.update("a", "u", 900.0, {}) == {"calls": 48, "missed_calls": 1}  # no figure: the total stays


# ---- the render and its oracle -------------------------------------------------------------------


A, B = "a" * 32, "b" * 32


def _rich_snapshot() -> Snapshot:
    settings = MappingProxyType({"timeout": 600.0, "ring_timeout": 20.0, "wrapup": 0.0, "max_callers": 12.0})
    agents = MappingProxyType({"ready": 2, "ringing": 0, "on_call": 1, "wrapup": 0, "away": 1})
    q1 = QueueFigures(A, "q1", 'Sup"port', "kz1", MappingProxyType({"active_sessions": 2.0}),
                      MappingProxyType({"daily_sessions": 3.0}), settings,
                      MappingProxyType({"queue_type": "queue_basic", "router": "route_round_robin"}), agents)
    q2 = QueueFigures(A, "q2", "Sales", None, MappingProxyType({}), MappingProxyType({}))
    people = (AgentFigures(A, "u1", "Ana \\ Brown", "on_call", MappingProxyType({"calls": 4.0, "missed_calls": 0.0}),
                           187.0),
              AgentFigures(A, "u2", "Ben", NOT_LOGGED_IN, MappingProxyType({})))
    fresh = AccountSnapshot(A, up=True, queues=(q1, q2), data_time=1000.0, last_success=1000.0, queue_count=2,
                            name="Customer \"1\"", agents=agents, agent_list=people)
    # Failed long ago: its name stays, its agents go with its figures.
    stale = AccountSnapshot(B, up=False, queues=(q1,), data_time=1.0, last_success=1.0, queue_count=1,
                            agents=agents, agent_list=people)
    return Snapshot(taken_at=1000.0, accounts=MappingProxyType({A: fresh, B: stale}))


def test_render_of_agents_and_settings_is_byte_for_byte_the_oracle():
    current = _rich_snapshot()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: current, max_data_age=30.0, clock=lambda: 1005.0))
    text = joined(render(current, 1005.0, max_data_age=30.0))
    assert text == generate_latest(registry)
    assert joined(render(current, 1005.0, max_data_age=30.0, openmetrics=True)) + b"# EOF\n" == \
        generate_openmetrics(registry)
    lines = text.decode().splitlines()
    assert f'qubicle_account_info{{account_id="{A}",account_name="Customer \\"1\\""}} 1.0' in lines
    assert f'qubicle_account_info{{account_id="{B}",account_name="{B}"}} 1.0' in lines  # the id until named
    assert f'qubicle_queue_agents{{account_id="{A}",queue_id="q1",queue_name="Sup\\"port",state="away"}} 1.0' in lines
    assert sum(line.startswith("qubicle_queue_agents{") for line in lines) == 5  # q2's agents are not known
    assert sum(line.startswith("qubicle_agents{") for line in lines) == 5  # the stale account's are hidden
    assert f'qubicle_queue_max_callers{{account_id="{A}",queue_id="q1",queue_name="Sup\\"port"}} 12.0' in lines
    assert (f'qubicle_queue_info{{account_id="{A}",node="kz1",queue_id="q1",queue_name="Sup\\"port",'
            'queue_type="queue_basic",router="route_round_robin"} 1.0') in lines
    assert sum(line.startswith("qubicle_agent_state{") for line in lines) == 10
    assert f'qubicle_agent_calls_total{{account_id="{A}",agent_id="u1"}} 4.0' in lines
    assert not any(line.startswith("qubicle_agent_average_call_seconds{") and "u2" in line for line in lines)


def test_without_agent_metrics_no_per_agent_family_is_written():
    current = _rich_snapshot()
    bare = Snapshot(taken_at=1000.0, accounts=MappingProxyType(
        {k: replace(a, agent_list=()) for k, a in current.accounts.items()}))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: bare, max_data_age=30.0, clock=lambda: 1005.0))
    text = joined(render(bare, 1005.0, max_data_age=30.0))
    assert text == generate_latest(registry) and b"qubicle_agent_state" not in text


# ---- the poller over the simulator --------------------------------------------------------------


def expected_from_model(sim, account_id: str) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Agents by state per queue and in the account, read off the simulator's own agent model."""
    state = sim._state
    with state.lock:
        queues = list(state.accounts[account_id].queues.values())
        everyone = sim_agents.recipients(queues)
        per_queue = {}
        for queue in queues:
            counts = dict.fromkeys(AGENT_STATES, 0)
            for user_id in sim_agents.members(queue, everyone):
                recipient = everyone[user_id]
                model_state = recipient.agent.state
                if model_state == "out":
                    continue
                label = MODEL_TO_LABEL[model_state]
                if queue.queue_id in recipient.away_in and label == "ready":
                    label = "away"  # a shared member sets itself away in the other queue
                counts[label] += 1
            per_queue[queue.queue_id] = counts
        account = dict.fromkeys(AGENT_STATES, 0)
        for recipient in everyone.values():
            if recipient.agent.state != "out":
                account[MODEL_TO_LABEL[recipient.agent.state]] += 1
    return per_queue, account


def by_state(h: Harness, name: str, **match: str) -> dict[str, float]:
    return {dict(labels)["state"]: v for (n, labels), v in h.samples().items()
            if n == name and all(dict(labels).get(k) == want for k, want in match.items())}


async def settle(h: Harness, polls: int = 3) -> None:
    for _ in range(polls):
        await h.poller.poll()


@pytest.mark.parametrize("config", [
    {},
    {"recipient_state_case": "lower", "recipient_status_as_list": True, "queue_document_style": "legacy",
     "recipient_timestamps": "unix"},
    {"recipient_state_case": "snake", "queue_document_style": "strings", "recipient_timestamps": "milliseconds",
     "page_size": 2},
])
async def test_agents_by_state_per_queue_and_account_are_the_models(harness, make_simulator, config):
    sim = make_simulator(accounts=2, queues_per_account=3, agents_per_queue=8, seed=7, speed=0, start=MORNING,
                         **config)
    h = harness(sim)
    sim.advance(3 * 3600)  # a busy morning: agents ready, ringing, on calls, in wrap-up, away
    await settle(h)
    seen_states: set[str] = set()
    shared = 0
    for account in sim.account_ids:
        per_queue, totals = expected_from_model(sim, account)
        for queue_id, counts in per_queue.items():
            assert by_state(h, "qubicle_queue_agents", account_id=account, queue_id=queue_id) == counts
            seen_states |= {s for s, n in counts.items() if n}
        assert by_state(h, "qubicle_agents", account_id=account) == totals
        with sim._state.lock:
            shared += sum(bool(r.away_in) for r in sim_agents.recipients(
                list(sim._state.accounts[account].queues.values())).values())
    assert {"ready", "on_call"} <= seen_states and shared > 0  # the test saw real work and shared agents


async def test_queue_settings_account_names_and_info_labels(harness, make_simulator):
    sim = make_simulator(accounts=2, queues_per_account=2, seed=3, speed=0, start=MORNING,
                         queue_document_style="legacy")
    account = sim.account_ids[0]
    limited = sim.create_queue(account, "Overflow", timeout=90, ring_timeout=12, agent_wrapup_time=5,
                               timeout_if_size_exceeds=4, queue_router="route_most_idle")
    h = harness(sim)
    await settle(h)
    assert h.value("qubicle_queue_timeout_seconds", account, limited) == 90
    assert h.value("qubicle_queue_ring_timeout_seconds", account, limited) == 12
    assert h.value("qubicle_queue_wrapup_seconds", account, limited) == 5
    assert h.value("qubicle_queue_max_callers", account, limited) == 4
    others = [q for q, _ in sim.queues(account) if q != limited]
    assert h.value("qubicle_queue_timeout_seconds", account, others[0]) == 600
    assert h.value("qubicle_queue_max_callers", account, others[0]) is None  # no limit set: no series
    info = {dict(labels)["queue_id"]: dict(labels) for (n, labels), _ in h.samples().items()
            if n == "qubicle_queue_info"}
    assert info[limited]["router"] == "route_most_idle" and info[limited]["queue_type"] == "queue_basic"
    names = {dict(labels)["account_id"]: dict(labels)["account_name"] for (n, labels), _ in h.samples().items()
             if n == "qubicle_account_info"}
    assert names == {sim.account_ids[0]: "Customer 1", sim.account_ids[1]: "Customer 2"}
    assert {a.name for a in h.poller.snapshot.accounts.values()} == {"Customer 1", "Customer 2"}


async def test_descendants_names_need_no_account_request(harness, make_simulator):
    sim = make_simulator(accounts=1, queues_per_account=1, sub_accounts=2, seed=3, speed=0, start=MORNING)
    h = harness(sim, discover_descendants=True)
    await settle(h, 2)
    names = {dict(labels)["account_name"] for (n, labels), _ in h.samples().items() if n == "qubicle_account_info"}
    assert names == {"Customer 1", "Customer 1 site 1", "Customer 1 site 2"}
    assert sim.requests_by_endpoint.get("account") == 1  # the configured account only


async def test_one_agent_status_request_per_account_per_poll_and_discovery_stays_within_its_budget(
        harness, make_simulator):
    sim = make_simulator(accounts=3, queues_per_account=40, agents_per_queue=3, seed=5, speed=0, start=MORNING)
    h = harness(sim, agent_status_batch_size=1000)
    per_poll = []
    for _ in range(14):
        before = sim.requests_by_endpoint
        await h.poller.poll()
        after = sim.requests_by_endpoint
        per_poll.append({k: after.get(k, 0) - before.get(k, 0) for k in after})
    # Every queue's document arrives, never more than 20 of one account in one poll.
    assert sum(p.get("queue", 0) for p in per_poll) == 120
    # Once the members are known, one agent status request per account per poll, whatever the agents.
    assert all(p.get("recipients_status", 0) == 3 for p in per_poll[2:])
    # The agents' listing (paged: 50 rows a page here) and the account names come once, in the first poll.
    assert per_poll[0].get("recipients", 0) >= 3 and sum(p.get("recipients", 0) for p in per_poll[1:]) == 0
    assert sum(p.get("account", 0) for p in per_poll) == 3
    # The first fill is spread: never more discovery requests in one poll than the budget, which is
    # 10 + ceil(1.5 x 126 items x 10 s / 600 s) = 14 here.
    discovery = [p.get("queue", 0) + p.get("account", 0) + (p.get("recipients", 0) and 3) for p in per_poll]
    assert max(discovery) <= 14 and sum(discovery) == 126
    # Nothing more until --settings-interval has passed; then the refresh is spread the same way.
    assert sum(discovery[11:]) == 0
    h.clock.now += h.settings.settings_interval
    before = sim.requests_by_endpoint
    await h.poller.poll()
    after = sim.requests_by_endpoint
    assert 0 < sum(after.get(k, 0) - before.get(k, 0) for k in ("queue", "account")) <= 14


async def test_agent_status_is_batched_by_the_batch_size(harness, make_simulator):
    sim = make_simulator(accounts=1, queues_per_account=2, agents_per_queue=6, seed=5, speed=0, start=MORNING)
    h = harness(sim, agent_status_batch_size=4)
    await settle(h, 2)
    agents = len(sim_agents.recipients(list(sim._state.accounts[sim.account_ids[0]].queues.values())))
    before = sim.requests_by_endpoint.get("recipients_status", 0)
    await h.poller.poll()
    assert sim.requests_by_endpoint["recipients_status"] - before == math.ceil(agents / 4)


async def test_every_new_request_kind_can_be_turned_off(harness, make_simulator):
    sim = make_simulator(accounts=2, queues_per_account=2, seed=5, speed=0, start=MORNING)
    h = harness(sim, agent_status=False, queue_settings=False, account_names=False)
    await settle(h)
    calls = sim.requests_by_endpoint
    assert not {"recipients_status", "recipients", "queue", "account"} & set(calls), calls
    assert by_state(h, "qubicle_queue_agents") == {} and h.value("qubicle_queue_timeout_seconds", sim.account_ids[0]) \
        is None
    # The account still has its info series (named by its id), so joins on it never drop an alert.
    ids = {dict(labels)["account_name"] for (n, labels), _ in h.samples().items() if n == "qubicle_account_info"}
    assert ids == set(sim.account_ids)


async def test_bad_agent_answers_are_counted_never_crash_and_never_count_as_agents(harness, make_simulator):
    from exporter.simulator import Faults

    sim = make_simulator(accounts=1, queues_per_account=3, agents_per_queue=8, seed=9, speed=0, start=MORNING)
    h = harness(sim)
    sim.advance(3 * 3600)
    await settle(h, 2)
    sim.set_faults(Faults(drop_field_rate=1.0))
    await h.poller.poll()
    text = generate_latest(h.metrics.registry).decode()
    assert 'field="recipient.availability_state"' in text
    account = sim.account_ids[0]
    counted = sum(by_state(h, "qubicle_agents", account_id=account).values())
    _, truth = expected_from_model(sim, account)
    assert counted <= sum(truth.values())  # an unreadable state is never guessed into a state
    assert h.poller.snapshot.accounts[account].up


async def test_agents_vanish_with_the_accounts_figures_after_max_data_age(harness, make_simulator):
    sim = make_simulator(accounts=1, queues_per_account=2, seed=9, speed=0, start=MORNING)
    h = harness(sim, interval=10.0, max_data_age=30.0)
    sim.advance(3 * 3600)
    await settle(h)
    account = sim.account_ids[0]
    assert len(by_state(h, "qubicle_agents", account_id=account)) == 5
    from exporter.simulator import Faults

    sim.set_faults(Faults(error_rate=1.0))
    h.clock.now += 10
    await h.poller.poll()
    assert len(by_state(h, "qubicle_agents", account_id=account)) == 5  # within --max-data-age: still shown
    h.clock.now += 31
    await h.poller.poll()
    assert by_state(h, "qubicle_agents") == {} and by_state(h, "qubicle_queue_agents") == {}
    assert h.value("qubicle_queue_timeout_seconds", account) is None
    assert h.value("qubicle_account_info", account) == 1  # the name is no figure: it stays


async def test_opt_in_agent_series_follow_the_model_and_never_burst(harness, make_simulator):
    sim = make_simulator(accounts=1, queues_per_account=2, agents_per_queue=5, seed=11, speed=0, start=MORNING)
    account = sim.account_ids[0]
    plain = harness(sim)
    await settle(plain)
    assert not any(n.startswith("qubicle_agent_") for n, _ in plain.samples())
    h = harness(sim, agent_metrics=True)
    sim.advance(2 * 3600)
    await settle(h)
    with sim._state.lock:
        everyone = sim_agents.recipients(list(sim._state.accounts[account].queues.values()))
        truth = {u: (r.agent.state, r.agent.calls, r.agent.login_at) for u, r in everyone.items()}
    states: dict[str, dict[str, float]] = {}
    for (n, labels), v in h.samples().items():
        d = dict(labels)
        if n == "qubicle_agent_state":
            states.setdefault(d["agent_id"], {})[d["state"]] = v
            assert d["agent_name"] == sim_agents.agent_name(d["agent_id"])
    assert set(states) == set(truth)
    for user_id, (model_state, _, _) in truth.items():
        ones = [s for s, v in states[user_id].items() if v == 1]
        assert ones == ([] if model_state == "out" else [MODEL_TO_LABEL[model_state]])
        assert len(states[user_id]) == 5
    calls_before = {dict(labels)["agent_id"]: v for (n, labels), v in h.samples().items()
                    if n == "qubicle_agent_calls_total"}
    assert calls_before and all(v == 0 for v in calls_before.values())  # first sight: 0, not today's calls
    sim.advance(3 * 3600)  # more calls, and shift changes: new logins
    await h.poller.poll()
    with sim._state.lock:
        after = {u: (r.agent.state, r.agent.calls, r.agent.login_at) for u, r in
                 sim_agents.recipients(list(sim._state.accounts[account].queues.values())).items()}
    calls_after = {dict(labels)["agent_id"]: v for (n, labels), v in h.samples().items()
                   if n == "qubicle_agent_calls_total"}
    grew = relogged = 0
    for user_id, total in calls_after.items():
        _, calls, login = after[user_id]
        if user_id not in calls_before:
            assert total == 0  # logged in since: first sight
        elif login == truth[user_id][2]:
            assert total == calls - truth[user_id][1]  # the same login: what it handled since
        else:
            assert total == calls  # a new login: its calls, never the old login's total again
            relogged += 1
        grew += total > 0
    assert grew > 0


def test_flags_and_environment_turn_each_request_kind_off():
    from exporter.cli import parse_args
    from exporter.config import ConfigError

    _, settings = parse_args(["--demo", "--no-agent-status", "--no-queue-settings", "--agent-metrics",
                              "--settings-interval", "300", "--agent-status-batch-size", "50"], environ={})
    assert (settings.agent_status, settings.queue_settings, settings.account_names, settings.agent_metrics) == \
        (False, False, True, True)
    assert settings.settings_interval == 300 and settings.agent_status_batch_size == 50
    _, settings = parse_args(["--demo"], environ={"QUBICLE_ACCOUNT_NAMES": "false"})
    assert not settings.account_names and settings.agent_status and not settings.agent_metrics
    with pytest.raises(ConfigError, match="--agent-status-batch-size"):
        parse_args(["--demo", "--agent-status-batch-size", "0"], environ={})
    with pytest.raises(ConfigError, match="--settings-interval"):
        parse_args(["--demo", "--settings-interval", "0"], environ={})
