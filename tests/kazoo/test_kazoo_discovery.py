"""Queue and account discovery: pagination with opaque keys, row tolerance, 403/404."""

from __future__ import annotations

import base64

from aiohttp import web

from exporter.kazoo import (
    AccountRef,
    BadResponseError,
    ForbiddenError,
    NotFoundError,
    QueueRef,
)

from .fake_crossbar import ACCOUNT, CHILD, NO_QUBICLE, OTHER, OUTSIDE, error_answer


async def test_pagination_follows_next_start_key_across_pages(kazoo):
    client = kazoo.client()
    queues = await client.list_queues(ACCOUNT)
    assert queues == [QueueRef(f"q{i:03d}", f"Queue q{i:03d}") for i in range(7, -1, -1)]
    pages = kazoo.crossbar.requests("queues")
    assert len(pages) == 3  # 8 queues, pages of 3: the short last page ends it only by lacking a key
    assert "start_key" not in pages[0].query
    assert [p.query["start_key"] for p in pages[1:]] == [base64.b64encode(b"3").decode(),
                                                        base64.b64encode(b"6").decode()]


async def test_page_size_setting_is_sent(kazoo):
    client = kazoo.client(page_size=5)
    assert len(await client.list_queues(ACCOUNT)) == 8
    pages = kazoo.crossbar.requests("queues")
    assert len(pages) == 2 and all(p.query["page_size"] == "5" for p in pages)


async def test_opaque_keys_go_back_exactly_as_received(kazoo):
    key = "g2wAAAACbQAAAAtRdWV1ZSAvICsgPQ==&x=1"  # base64 padding, "+", "/", "&": all must survive

    async def first(request: web.Request) -> web.Response:
        return kazoo.crossbar.envelope(request, [{"id": "q1", "name": "one"}], next_start_key=key)

    async def second(request: web.Request) -> web.Response:
        return kazoo.crossbar.envelope(request, [{"id": "q2", "name": "two"}])

    kazoo.crossbar.script["queues"] = [first, second]
    client = kazoo.client()
    assert [q.id for q in await client.list_queues(ACCOUNT)] == ["q1", "q2"]
    assert kazoo.crossbar.requests("queues")[1].query == {"start_key": key}


async def test_a_non_string_key_goes_back_as_json(kazoo):
    async def first(request: web.Request) -> web.Response:
        return kazoo.crossbar.envelope(request, [{"id": "q1"}], next_start_key=[1700000000, "q1"])

    async def second(request: web.Request) -> web.Response:
        return kazoo.crossbar.envelope(request, [], next_start_key=None)

    kazoo.crossbar.script["queues"] = [first, second]
    assert [q.id for q in await kazoo.client().list_queues(ACCOUNT)] == ["q1"]
    assert kazoo.crossbar.requests("queues")[1].query["start_key"] == '[1700000000,"q1"]'


async def test_a_repeated_pagination_key_is_an_error_not_an_endless_loop(kazoo):
    kazoo.crossbar.repeat_key = True  # page 2 points back at page 1's successor: a cycle
    client = kazoo.client(page_size=2)
    error = await kazoo.fails(client.list_queues(ACCOUNT), BadResponseError)
    assert "repeated a pagination key" in str(error)
    assert kazoo.crossbar.count("queues") <= 4


async def test_rows_without_a_string_id_are_skipped_and_names_fall_back_to_the_id(kazoo):
    kazoo.crossbar.queues[OTHER] = ["named"]
    kazoo.crossbar.extra_rows[OTHER] = [
        {"id": "no-name"}, {"id": "empty-name", "name": ""}, {"id": "blank-name", "name": "  "},
        {"id": "number-name", "name": 42}, {"id": 17, "name": "int id"}, {"name": "no id"}, {"id": ""},
        "not an object", None,
    ]
    queues = await kazoo.client(page_size=50).list_queues(OTHER)
    assert queues == [QueueRef("named", "Queue named"), QueueRef("no-name", "no-name"),
                      QueueRef("empty-name", "empty-name"), QueueRef("blank-name", "blank-name"),
                      QueueRef("number-name", "number-name")]


async def test_an_account_without_qubicle_has_no_queues(kazoo):
    assert await kazoo.client().list_queues(NO_QUBICLE) == []
    assert kazoo.codes("queues") == ["404"]


async def test_an_account_without_queues_has_no_queues(kazoo):
    assert await kazoo.client().list_queues(CHILD) == []
    assert kazoo.codes("queues") == ["200"]


async def test_an_account_outside_the_tree_is_forbidden_naming_the_account(kazoo):
    client = kazoo.client()
    error = await kazoo.fails(client.list_queues(OUTSIDE), ForbiddenError)
    assert str(error) == f"account {OUTSIDE} is outside the credential's account tree (HTTP 403)"
    assert error.reason == "forbidden"
    error = await kazoo.fails(client.list_descendants(OUTSIDE), ForbiddenError)
    assert OUTSIDE in str(error)
    error = await kazoo.fails(client.queue_list_status(OUTSIDE, ["q1"]), ForbiddenError)
    assert OUTSIDE in str(error)


async def test_descendants_are_paginated_the_same_way(kazoo):
    rows = [{"id": f"{i:032x}", "name": f"Sub {i}"} for i in range(7)] + [{"id": "f" * 32}, {"name": "x"}]
    kazoo.crossbar.descendants[ACCOUNT] = rows
    accounts = await kazoo.client().list_descendants(ACCOUNT)
    assert accounts == [AccountRef(f"{i:032x}", f"Sub {i}") for i in range(7)] + [AccountRef("f" * 32, "f" * 32)]
    assert kazoo.crossbar.count("descendants") == 3
    assert kazoo.codes("descendants") == ["200"] * 3


async def test_descendants_of_an_unknown_account_is_not_found(kazoo):
    error = await kazoo.fails(kazoo.client().list_descendants("9" * 32), NotFoundError)
    assert "9" * 32 in str(error) and error.reason == "not_found"


async def test_listing_data_that_is_not_a_list_is_a_bad_response(kazoo):
    kazoo.crossbar.script["queues"] = [lambda r: _object_data(r)]
    error = await kazoo.fails(kazoo.client().list_queues(ACCOUNT), BadResponseError)
    assert "'data' of a listing is not a list" in str(error)


async def _object_data(request: web.Request) -> web.Response:
    return web.json_response({"status": "success", "data": {"id": "q1"}})


async def test_account_ids_cannot_reach_another_path(kazoo):
    await kazoo.fails(kazoo.client().list_queues("../../api_auth?x="), NotFoundError)
    listing, probe = kazoo.crossbar.seen[-2:]
    assert listing.method == "GET" and listing.path.endswith("/qubicle_queues") and listing.query == {}
    assert probe.method == "GET" and probe.path == "/v2/accounts/../../api_auth?x=" and probe.query == {}
    assert kazoo.crossbar.count("api_auth") == 1


async def test_a_404_inside_an_error_envelope_is_still_just_no_queues(kazoo):
    kazoo.crossbar.script["queues"] = [error_answer(404, message="bad identifier", data={"x": 1})]
    assert await kazoo.client().list_queues(ACCOUNT) == []
