"""Queue list status: batching, verb tunnelling, absent queues; parse_queue_status's tolerance."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from exporter.kazoo import (
    BadResponseError,
    NotFoundError,
    QueueStatus,
    parse_queue_status,
)

from .fake_crossbar import ACCOUNT, status_object

STATUS_PATH = f"/v2/accounts/{ACCOUNT}/qubicle_queues/status"


async def test_250_ids_in_batches_of_100_are_3_requests_never_one_per_queue(kazoo):
    ids = [f"q{i:03d}" for i in range(250)]
    kazoo.crossbar.queues[ACCOUNT] = ids
    client = kazoo.client(status_batch_size=100)
    result = await client.queue_list_status(ACCOUNT, ids)
    assert set(result) == set(ids)
    requests = kazoo.crossbar.requests("queue_list_status")
    assert len(requests) == 3
    assert sorted(len(r.body["data"]["queue_ids"]) for r in requests) == [50, 100, 100]
    assert sorted(q for r in requests for q in r.body["data"]["queue_ids"]) == ids
    assert all(r.method == "GET" and r.path == STATUS_PATH and r.query == {} for r in requests)
    assert kazoo.codes("queue_list_status") == ["200"] * 3


async def test_default_wire_format_is_get_with_a_json_body(kazoo):
    result = await kazoo.client().queue_list_status(ACCOUNT, ["q001", "q002"])
    assert result == {"q001": status_object(0), "q002": status_object(1)}
    (sent,) = kazoo.crossbar.requests("queue_list_status")
    assert (sent.method, sent.query, sent.body) == ("GET", {}, {"data": {"queue_ids": ["q001", "q002"]}})


async def test_verb_tunnelling_posts_the_same_body_with_verb_get(kazoo):
    client = kazoo.client(status_via_post=True)
    assert set(await client.queue_list_status(ACCOUNT, ["q001", "q002"])) == {"q001", "q002"}
    (sent,) = kazoo.crossbar.requests("queue_list_status")
    assert (sent.method, sent.path, sent.query) == ("POST", STATUS_PATH, {"verb": "GET"})
    assert sent.body == {"data": {"queue_ids": ["q001", "q002"]}}


async def test_a_queue_deleted_between_list_and_status_is_simply_absent(kazoo):
    client = kazoo.client()
    queues = [q.id for q in await client.list_queues(ACCOUNT)]
    kazoo.crossbar.queues[ACCOUNT].remove("q003")  # deleted meanwhile
    result = await client.queue_list_status(ACCOUNT, queues)
    assert set(result) == set(queues) - {"q003"}


async def test_entries_that_are_not_objects_and_ids_not_asked_are_dropped(kazoo):
    async def odd(request: web.Request) -> web.Response:
        return kazoo.crossbar.envelope(request, {"q001": status_object(1), "q002": None, "q003": "down",
                                                 "q004": [1], "unasked": status_object(2)})

    kazoo.crossbar.script["queue_list_status"] = [odd]
    result = await kazoo.client().queue_list_status(ACCOUNT, ["q001", "q002", "q003", "q004"])
    assert result == {"q001": status_object(1)}


async def test_no_ids_means_no_request_and_duplicates_are_asked_once(kazoo):
    client = kazoo.client()
    assert await client.queue_list_status(ACCOUNT, []) == {}
    assert kazoo.crossbar.count("queue_list_status") == 0
    assert set(await client.queue_list_status(ACCOUNT, ["q001", "q001", "q002"])) == {"q001", "q002"}
    (sent,) = kazoo.crossbar.requests("queue_list_status")
    assert sent.body["data"]["queue_ids"] == ["q001", "q002"]


async def test_one_failing_batch_fails_the_call_after_the_others_finish(kazoo):
    kazoo.crossbar.queues[ACCOUNT] = [f"q{i:03d}" for i in range(30)]
    client = kazoo.client(status_batch_size=10, retries=0)
    await client.authenticate()

    async def bad(request: web.Request) -> web.Response:
        return web.json_response({"status": "success", "data": ["not", "an", "object"]})

    kazoo.crossbar.script["queue_list_status"] = [bad]
    error = await kazoo.fails(client.queue_list_status(ACCOUNT, kazoo.crossbar.queues[ACCOUNT]), BadResponseError)
    assert str(error) == f"GET {STATUS_PATH}: 'data' is not an object of queue statuses"
    assert kazoo.codes("queue_list_status") == ["200"] * 3


async def test_status_endpoint_not_served_is_not_found(kazoo):
    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"status": "error", "error": "404", "data": {}}, status=404)

    kazoo.crossbar.script["queue_list_status"] = [missing]
    error = await kazoo.fails(kazoo.client().queue_list_status(ACCOUNT, ["q001"]), NotFoundError)
    assert str(error) == f"GET {STATUS_PATH}: HTTP 404"


# ---- parse_queue_status --------------------------------------------------------------------------

def test_a_complete_status_parses_every_figure():
    raw = status_object(4)
    raw["stats"]["longest_wait"] = 95
    status, problems = parse_queue_status(raw)
    assert problems == []
    assert status == QueueStatus(recipients=5, active_recipients=3, available_recipients=1, active_sessions=4,
                                 estimated_wait=34, average_wait=20, longest_wait=95, daily_sessions=40,
                                 daily_missed_sessions=2, daily_abandoned_sessions=3, node="qubicle@kz0")


def test_missing_null_and_non_numeric_fields_drop_only_that_figure():
    raw = status_object(4)
    del raw["stats"]["average_wait"]
    raw["stats"]["estimated_wait"] = None
    raw["stats"]["missed_sessions"] = "n/a"
    raw["stats"]["abandoned_sessions"] = float("nan")
    raw["stats"]["total_sessions"] = -1
    raw["available_recipient_count"] = True  # a bool is not a count
    status, problems = parse_queue_status(raw)
    assert sorted(problems) == ["available_recipient_count", "stats.abandoned_sessions", "stats.average_wait",
                                "stats.estimated_wait", "stats.missed_sessions", "stats.total_sessions"]
    assert status.active_sessions == 4 and status.recipients == 5 and status.active_recipients == 3
    assert status.average_wait is None and status.available_recipients is None
    assert status.daily_abandoned_sessions is None and status.daily_sessions is None


def test_longest_wait_is_optional_but_reported_when_present_and_bad():
    assert parse_queue_status(status_object(1))[1] == []
    raw = status_object(1)
    raw["stats"]["longest_wait"] = "long"
    assert parse_queue_status(raw)[1] == ["stats.longest_wait"]


def test_numeric_strings_are_numbers_other_strings_are_not():
    raw = status_object(0)
    raw["stats"].update(active_session_count="12", estimated_wait=" 4.5 ", average_wait="1e2",
                        total_sessions="1_000", missed_sessions="inf", abandoned_sessions="0x10")
    status, problems = parse_queue_status(raw)
    assert (status.active_sessions, status.estimated_wait, status.average_wait) == (12, 4.5, 100)
    assert sorted(problems) == ["stats.abandoned_sessions", "stats.missed_sessions", "stats.total_sessions"]


def test_node_is_normalised_to_a_string():
    for node, expected in (("qubicle@kz1", "qubicle@kz1"), (3, "3"), ("", None), (None, None), (True, None),
                           ({"a": 1}, None)):
        raw = status_object(0)
        raw["node"] = node
        assert parse_queue_status(raw)[0].node == expected
    raw = status_object(0)
    del raw["node"]
    assert parse_queue_status(raw)[0].node is None


def test_a_status_that_is_not_an_object_reports_every_required_field():
    raw: object
    for raw in (None, "garbage", [], 3):
        status, problems = parse_queue_status(raw)
        assert status == QueueStatus()
        assert len(problems) == 9 and "stats.longest_wait" not in problems
    status, problems = parse_queue_status({"active_recipient_count": 2, "stats": "broken"})
    assert status.active_recipients == 2 and len(problems) == 8


def test_huge_integers_do_not_crash():
    raw = status_object(0)
    raw["stats"]["total_sessions"] = 10 ** 400
    status, problems = parse_queue_status(raw)
    assert status.daily_sessions is None and problems == ["stats.total_sessions"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
status_like = st.fixed_dictionaries({}, optional={
    "active_recipient_count": json_values, "available_recipient_count": json_values, "node": json_values,
    "stats": st.fixed_dictionaries({}, optional=dict.fromkeys(
        ("estimated_wait", "average_wait", "longest_wait", "recipient_count", "active_session_count", "total_sessions",
         "missed_sessions", "abandoned_sessions"), json_values)) | json_values,
})


@given(st.one_of(json_values, status_like))
def test_parse_queue_status_never_raises_and_only_yields_finite_non_negative_figures(raw: Any):
    status, problems = parse_queue_status(raw)
    for name in ("recipients", "active_recipients", "available_recipients", "active_sessions", "estimated_wait",
                 "average_wait", "longest_wait", "daily_sessions", "daily_missed_sessions",
                 "daily_abandoned_sessions"):
        value = getattr(status, name)
        assert value is None or (isinstance(value, float) and math.isfinite(value) and value >= 0)
    assert status.node is None or isinstance(status.node, str)
    assert len(problems) == len(set(problems)) <= 10
