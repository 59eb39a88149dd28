"""The poller's log events operators rely on, field by field, against the simulator (or a small
Crossbar on loopback where exact figures are needed): the poll summary, account failures, failed
listings, hidden figures, the wait-unit warning."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import replace
from typing import Any

import pytest
import structlog
from aiohttp import web
from test_poller import MORNING, Harness
from test_poller import harness as harness  # the fixture

from exporter import logs, selfmetrics
from exporter.config import Secrets, Settings, WaitUnit, client_settings
from exporter.kazoo import KazooClient
from exporter.poller import Poller
from exporter.simulator import Faults

Events = list[MutableMapping[str, Any]]


@pytest.fixture
def events() -> Iterator[Events]:
    """Every structlog event of the test, whatever an earlier test configured (level included)."""
    old = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    with structlog.testing.capture_logs() as captured:
        yield captured
    structlog.configure(**old)


def named(events: Events | list[dict[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in events if e["event"] == name]


def summary(events: Events) -> MutableMapping[str, Any]:
    (poll,) = named(events, "poll")
    return poll


def invalid_total(h: Harness) -> float:
    return sum(s.value for family in h.metrics.invalid_fields.collect() for s in family.samples
               if s.name == "qubicle_invalid_fields_total")


# ---- the poll summary ----------------------------------------------------------------------------

def observed_seconds(h: Harness) -> float:
    return next(s.value for family in h.metrics.poll_duration.collect() for s in family.samples
                if s.name.endswith("_sum"))


async def test_the_poll_summary_of_a_healthy_poll(harness, events):
    h = harness()
    for _ in range(3):
        before = observed_seconds(h)
        events.clear()
        await h.poller.poll()
        poll = summary(events)
        duration = poll.pop("duration_seconds")
        # The duration observed in qubicle_poll_duration_seconds, to the millisecond.
        assert isinstance(duration, float) and duration == round(observed_seconds(h) - before, 3)
        assert poll == {"event": "poll", "log_level": "info", "accounts": 2, "accounts_up": 2, "queues": 6,
                        "missing_queues": 0, "invalid_fields": 0, "errors": None, "concurrency": 10}
        # No warning or error on a healthy poll.
        assert [e for e in events if e["log_level"] in ("warning", "error")] == []


async def test_the_poll_summary_counts_failures_missing_queues_and_invalid_fields(harness, make_simulator, events):
    sim = make_simulator(accounts=5, queues_per_account=3, seed=21, speed=0, start=MORNING, empty_accounts=1)
    never_up, down, deleting, bad, fine = sim.account_ids
    (empty,) = sim.empty_account_ids
    h = harness(sim, account_ids=[*sim.account_ids, empty], agent_status=False, queue_settings=False,
                account_names=False)
    sim.set_faults(Faults(error_rate=1.0, accounts=(never_up,)))
    await h.poller.poll()
    poll = summary(events)
    assert (poll["accounts"], poll["accounts_up"], poll["queues"], poll["errors"]) == (6, 5, 12, {"server_error": 1})
    # Down from its first poll: the landing page and the wallboard say why (the wallboard's API
    # passes `up` and `error` through as JSON: false, not null).
    assert h.poller.snapshot.accounts[never_up].error == "server_error"
    assert h.poller.snapshot.accounts[never_up].up is False
    events.clear()
    for account in (deleting, fine):  # discovery is cached: missing from the answer
        sim.delete_queue(account, sim.queues(account)[0][0])
    sim.set_faults(Faults(error_rate=1.0, accounts=(never_up, down)))
    await h.poller.poll()
    poll = summary(events)
    assert (poll["accounts"], poll["accounts_up"], poll["queues"], poll["missing_queues"]) == (6, 4, 2 + 3 + 2, 2)
    assert poll["errors"] == {"server_error": 2} and poll["invalid_fields"] == 0
    assert h.poller.snapshot.accounts[down].up is False and h.poller.snapshot.accounts[down].queues  # kept
    # Invalid fields: as many as the poll counted in qubicle_invalid_fields_total.
    events.clear()
    sim.set_faults(Faults(drop_field_rate=1.0, accounts=(bad,)))
    before = invalid_total(h)
    await h.poller.poll()
    poll = summary(events)
    counted = invalid_total(h) - before
    assert counted >= 2 and poll["invalid_fields"] == counted  # one bad field per status, optional ones aside
    assert poll["errors"] is None and poll["accounts_up"] == 6 and poll["missing_queues"] == 0
    assert fine in h.poller.snapshot.accounts
    # The debug line names the queue and its fields.
    lines = named(events, "invalid_fields")
    assert sum(len(e["fields"]) for e in lines) == counted
    assert {e["account_id"] for e in lines} == {bad}
    assert {e["queue_id"] for e in lines} <= {q for q, _ in sim.queues(bad)} and lines[0]["log_level"] == "debug"


async def test_an_account_without_queues_says_so(harness, make_simulator, events):
    sim = make_simulator(accounts=1, queues_per_account=1, seed=22, speed=0, empty_accounts=1)
    (empty,) = sim.empty_account_ids
    h = harness(sim, account_ids=[sim.account_ids[0], empty])
    await h.poller.poll()
    (line,) = named(events, "no_queues")
    assert (line["account_id"], line["log_level"]) == (empty, "info")


# ---- failures ------------------------------------------------------------------------------------

async def test_a_failed_account_is_logged_with_its_reason_and_error(harness, make_simulator, events):
    sim = make_simulator(accounts=2, queues_per_account=2, seed=23, speed=0)
    failing, fine = sim.account_ids
    h = harness(sim)
    await h.poller.poll()
    sim.set_faults(Faults(error_rate=1.0, accounts=(failing,)))
    events.clear()
    await h.poller.poll()
    (line,) = named(events, "account_poll_failed")
    assert (line["log_level"], line["account_id"], line["reason"]) == ("warning", failing, "server_error")
    assert line["error"].startswith("GET /v2/accounts/") and "HTTP 500" in line["error"], line["error"]
    # The agents' request of that account failed as well: logged on its own, the reason kept.
    details = named(events, "details_failed")
    assert details and all(e["account_id"] == failing and e["reason"] == "server_error" for e in details)
    assert details[0]["log_level"] == "warning" and details[0]["error"].startswith("agent status: "), details
    assert named(events, "poll_internal_error") == []
    assert summary(events)["errors"] == {"server_error": 1}
    # Both failures counted under the account that failed, and nowhere else.
    errors = {tuple(sorted(s.labels.items())): s.value for family in h.metrics.poll_errors.collect()
              for s in family.samples if s.name == "qubicle_poll_errors_total"}
    assert errors == {(("account_id", failing), ("reason", "server_error")): 1 + len(details)}, errors


async def test_a_poll_over_poll_timeout_says_how_long_it_was_allowed(harness, make_simulator, events):
    sim = make_simulator(accounts=1, queues_per_account=1, seed=24, speed=0)
    h = harness(sim, poll_timeout=0.25)
    await h.poller.poll()
    sim.set_faults(Faults(latency=1.0))
    events.clear()
    await h.poller.poll()
    (line,) = named(events, "account_poll_failed")
    assert (line["reason"], line["error"]) == ("timeout", "poll took longer than 0.25s")
    assert summary(events)["errors"] == {"timeout": 1}


async def test_a_failed_descendants_listing_is_logged_for_its_parent(harness, make_simulator, events):
    sim = make_simulator(accounts=1, queues_per_account=1, sub_accounts=1, seed=25, speed=0)
    master = sim.master_account_id
    h = harness(sim, account_ids=[master], discover_descendants=True)
    sim.set_faults(Faults(error_rate=1.0, accounts=(master,)))
    await h.poller.poll()
    (line,) = named(events, "descendants_failed")
    assert (line["log_level"], line["account_id"], line["reason"]) == ("warning", master, "server_error")
    assert "/descendants" in line["error"] and "HTTP 500" in line["error"], line["error"]
    assert h.metrics.poll_errors.labels(account_id=master, reason="server_error")._value.get() == 2  # and its own poll


async def test_a_descendants_listing_over_poll_timeout_says_how_long_it_was_allowed(harness, make_simulator, events):
    sim = make_simulator(accounts=1, queues_per_account=1, sub_accounts=1, seed=35, speed=0)
    master = sim.master_account_id
    h = harness(sim, account_ids=[master], discover_descendants=True, poll_timeout=0.5)
    sim.set_faults(Faults(latency=1.0, accounts=(master,)))  # under the read timeout (2 s)
    await h.poller.poll()
    (line,) = named(events, "descendants_failed")
    assert (line["account_id"], line["reason"]) == (master, "timeout")
    assert line["error"] == "listing descendants took longer than 0.5s"


async def test_a_failing_snapshot_listener_is_logged_and_the_poll_stands(harness, make_simulator, events):
    sim = make_simulator(accounts=1, queues_per_account=1, seed=26, speed=0)
    h = harness(sim)
    seen = []

    def listener(snapshot) -> None:
        seen.append(snapshot)
        raise KeyError("a bug in a listener")

    poller = Poller(h.settings, h.client, h.metrics, on_snapshot=listener, clock=h.clock)
    snapshot = await poller.poll()
    assert seen == [snapshot] and poller.snapshot is snapshot and snapshot.accounts[sim.account_ids[0]].up
    (line,) = named(events, "snapshot_listener_failed")
    assert (line["log_level"], line["exc_type"]) == ("error", "KeyError")
    assert summary(events)["accounts_up"] == 1  # the summary still comes


# ---- figures hidden as stale when published --------------------------------------------------------

async def test_the_hidden_figures_warning_names_exactly_what_it_hid(harness, make_simulator, events):
    """Real time: one empty account answers 1.5 s late; the quick account's figures are older than
    --max-data-age (0.4 s) when the poll ends, the slow one's are not, an empty one counts no figures."""
    sim = make_simulator(accounts=2, queues_per_account=3, seed=27, speed=0, empty_accounts=2)
    quick = sim.account_ids[0]
    slow, idle = sim.empty_account_ids
    h = harness(sim, account_ids=[quick, slow, idle], max_data_age=0.4, poll_timeout=20.0,
                agent_status=False, queue_settings=False, account_names=False)
    h.poller = Poller(h.settings, h.client, h.metrics, clock=time.time)
    sim.set_faults(Faults(latency=1.5, accounts=(slow,)))  # under the read timeout (2 s)
    await h.poller.poll()
    (line,) = named(events, "poll_slower_than_max_data_age")
    assert (line["log_level"], line["accounts"], line["queues"], line["max_data_age"]) == ("warning", 1, 3, 0.4)
    assert line["duration_seconds"] == summary(events)["duration_seconds"] >= 1.5  # the poll's, to the millisecond
    assert line["hint"] == ("these figures were hidden as stale when published; raise --max-concurrency, "
                            "--max-data-age or shard the accounts (--shard)")
    assert h.metrics.hidden_queues._value.get() == 3
    # A poll within --max-data-age again: nothing hidden, no warning, the gauge back to 0.
    sim.set_faults(Faults())
    events.clear()
    await h.poller.poll()
    assert named(events, "poll_slower_than_max_data_age") == []
    assert h.metrics.hidden_queues._value.get() == 0


async def test_figures_exactly_max_data_age_old_are_not_hidden_nor_are_a_failed_accounts(harness, make_simulator,
                                                                                        events):
    """The collector serves figures exactly --max-data-age old: the poller must not call them hidden.
    A failed account's old figures were not published by this poll: not counted either."""
    sim = make_simulator(accounts=2, queues_per_account=2, seed=28, speed=0)
    failing, fine = sim.account_ids
    h = harness(sim, max_data_age=0.0)  # the harness' clock stands still: every figure is 0 s old
    await h.poller.poll()
    assert named(events, "poll_slower_than_max_data_age") == [] and h.metrics.hidden_queues._value.get() == 0
    assert h.value("qubicle_queue_active_sessions", fine) is not None  # served: not stale
    h2 = harness(sim, max_data_age=30.0)
    await h2.poller.poll()
    sim.set_faults(Faults(error_rate=1.0, accounts=(failing,)))
    h2.clock.now += 100
    events.clear()
    await h2.poller.poll()
    assert not h2.poller.snapshot.accounts[failing].up
    assert named(events, "poll_slower_than_max_data_age") == [] and h2.metrics.hidden_queues._value.get() == 0


# ---- the wait unit ---------------------------------------------------------------------------------

ACCOUNT = "f" * 32


class Crossbar:
    """Queues whose waits the test sets, served over HTTP as Crossbar would."""

    def __init__(self) -> None:
        self.waits: dict[str, tuple[float, float, float]] = {}  # queue id -> estimated, average, longest
        self.url = ""

    def status(self, queue_id: str) -> dict[str, Any]:
        estimated, average, longest = self.waits[queue_id]
        return {"active_recipient_count": 1, "available_recipient_count": 1, "node": "kz1",
                "stats": {"recipient_count": 1, "active_session_count": 0, "estimated_wait": estimated,
                          "average_wait": average, "longest_wait": longest, "total_sessions": 4,
                          "missed_sessions": 0, "abandoned_sessions": 0}}

    async def start(self) -> web.AppRunner:
        async def auth(request: web.Request) -> web.Response:
            return web.json_response({"data": {"account_id": ACCOUNT}, "auth_token": "tok", "status": "success"})

        async def queues(request: web.Request) -> web.Response:
            return web.json_response({"data": [{"id": q, "name": q} for q in self.waits], "status": "success"})

        async def statuses(request: web.Request) -> web.Response:
            return web.json_response({"data": {q: self.status(q) for q in self.waits}, "status": "success"})

        app = web.Application()
        app.router.add_put("/v2/api_auth", auth)
        app.router.add_get(f"/v2/accounts/{ACCOUNT}/qubicle_queues", queues)
        app.router.add_get(f"/v2/accounts/{ACCOUNT}/qubicle_queues/status", statuses)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return runner


@pytest.fixture
async def waits():
    """make(unit) -> (crossbar, poller): one account whose queues' waits the test sets."""
    crossbar = Crossbar()
    runner = await crossbar.start()
    clients: list[KazooClient] = []

    def make(unit: WaitUnit) -> tuple[Crossbar, Poller]:
        settings = replace(Settings(), kazoo_url=crossbar.url, account_ids=(ACCOUNT,), secrets=Secrets(api_key="k" * 64),
                           retries=0, wait_unit=unit, discovery_interval=0.0, agent_status=False,
                           queue_settings=False, account_names=False)
        clients.append(KazooClient(client_settings(settings)))
        return crossbar, Poller(settings, clients[-1], selfmetrics.create(process=False))

    yield make
    for client in clients:
        await client.aclose()
    await runner.cleanup()


def unit_warnings(events: Events) -> list[MutableMapping[str, Any]]:
    return named(events, "wait_unit_suspicious")


async def test_seconds_above_a_day_look_like_milliseconds(waits, events):
    crossbar, poller = waits("seconds")
    crossbar.waits = {"a": (86_400, 5, 0), "b": (12, 86_400, 3)}  # exactly a day: still plausible
    await poller.poll()
    assert unit_warnings(events) == []
    crossbar.waits["c"] = (0, 86_401, 7)
    await poller.poll()
    (line,) = unit_warnings(events)
    assert (line["log_level"], line["wait_unit"], line["largest"]) == ("warning", "seconds", 86_401)
    assert line["hint"] == "wait figures above a day look like milliseconds; consider --wait-unit milliseconds"
    crossbar.waits["d"] = (90_000, 0, 0)
    await poller.poll()
    assert len(unit_warnings(events)) == 1  # once per process


async def test_milliseconds_all_under_a_second_look_like_seconds(waits, events):
    crossbar, poller = waits("milliseconds")
    crossbar.waits = {"a": (1000, 0, 0), "b": (5, 0, 0), "c": (7, 0, 0)}  # one wait of a whole second
    await poller.poll()
    crossbar.waits = {"a": (0, 0, 0), "b": (999, 0, 0)}  # under a second, but only one nonzero wait
    await poller.poll()
    crossbar.waits = {"a": (0, 0, 0), "b": (999, 4, 0)}  # two
    await poller.poll()
    crossbar.waits = {"b": (0, 0, 0)}  # no wait at all
    await poller.poll()
    assert unit_warnings(events) == []
    crossbar.waits = {"a": (999, 0, 0), "b": (3, 1, 0)}  # three, all under a second
    await poller.poll()
    (line,) = unit_warnings(events)
    assert (line["log_level"], line["wait_unit"], line["largest"]) == ("warning", "milliseconds", 999)
    assert line["hint"] == "every wait is under one second in milliseconds; consider --wait-unit seconds"
    await poller.poll()
    assert len(unit_warnings(events)) == 1  # once per process


async def test_reused_figures_still_count_towards_the_unit_check(waits, events):
    """A queue whose answer did not change has its figures reused: its waits still count."""
    crossbar, poller = waits("milliseconds")
    crossbar.waits = {"a": (5, 0, 0)}
    await poller.poll()
    crossbar.waits = {"a": (5, 0, 0), "b": (6, 7, 0)}  # a's answer is the same: reused
    await poller.poll()
    assert poller.snapshot.accounts[ACCOUNT].queues[0].values["estimated_wait"] == 0.005
    (line,) = unit_warnings(events)
    assert line["largest"] == 7


# ---- the discovery data's share of --poll-timeout --------------------------------------------------

async def test_discovery_data_that_does_not_fit_in_poll_timeout_is_left_for_later(harness, make_simulator, events):
    """The account's requests take 2 s each: listing and status (4 s) fit in a --poll-timeout of
    5 s, the discovery data after them (6 s) does not: cut at the deadline, said at debug level, the
    account up with its figures."""
    sim = make_simulator(accounts=1, queues_per_account=2, seed=30, speed=0)
    (account,) = sim.account_ids
    h = harness(sim, poll_timeout=5.0, agent_status=False)
    await h.client.aclose()
    h.settings = replace(h.settings, read_timeout=10.0)  # the harness' 2 s would cut the requests
    h.client = KazooClient(client_settings(h.settings))
    h.poller = Poller(h.settings, h.client, h.metrics, clock=h.clock)
    sim.set_faults(Faults(latency=2.0, accounts=(account,)))
    await h.poller.poll()
    (line,) = named(events, "details_timeout")
    assert (line["log_level"], line["account_id"]) == ("debug", account)
    assert line["items"] == 1  # the first poll knows no queue yet: only the account's name was due
    assert named(events, "account_poll_failed") == [] and h.poller.snapshot.accounts[account].up
    assert h.value("qubicle_queues", account) == 2


# ---- a bug while polling one account ---------------------------------------------------------------

@pytest.fixture
def json_log() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The exporter's own JSON log configuration (account ids bound per account included), to a buffer."""
    old, root = structlog.get_config(), logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    logs.configure("debug", "json", stream=stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    structlog.configure(**old)
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_a_bug_while_polling_one_account_is_an_internal_failure_of_that_account(harness, make_simulator,
                                                                                       json_log):
    """No answer of Kazoo reaches this path (test_properties.py feeds arbitrary JSON and JSON nested
    to the parser's limit goes out as bad_response): it is the net for the exporter's own bugs. One
    is planted in the real client for one account; the others are polled as usual."""
    sim = make_simulator(accounts=2, queues_per_account=2, seed=29, speed=0)
    buggy, fine = sim.account_ids
    h = harness(sim)
    await h.poller.poll()
    real = h.client.queue_list_status

    async def planted(account_id: str, queue_ids):
        if account_id == buggy:
            raise ZeroDivisionError("a bug")
        return await real(account_id, queue_ids)

    h.client.queue_list_status = planted
    await h.poller.poll()
    events = json_log()
    (error,) = named(events, "poll_internal_error")
    assert (error["level"], error["exc_type"], error["account_id"]) == ("error", "ZeroDivisionError", buggy)
    (line,) = named(events, "account_poll_failed")
    assert (line["account_id"], line["reason"], line["error"]) == (buggy, "internal", "ZeroDivisionError while polling")
    poll = named(events, "poll")[-1]  # unbound: the summary names no account
    assert poll["errors"] == {"internal": 1} and poll["accounts_up"] == 1 and "account_id" not in poll
    assert h.value("qubicle_up", buggy) == 0 and h.value("qubicle_up", fine) == 1
    assert h.metrics.poll_errors.labels(account_id=buggy, reason="internal")._value.get() == 1
    assert h.poller.snapshot.accounts[buggy].error == "internal"
    assert h.value("qubicle_queue_active_sessions", buggy) is not None  # what was known stays, until max-data-age
