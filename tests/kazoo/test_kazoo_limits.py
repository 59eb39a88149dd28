"""Issue 12, Kazoo client side: never silently wrong, never stuck.

Unknown accounts are errors (not "no queues"), --kazoo-url works with /v2, a 404 that is not
Crossbar's does not blame the credential, and hostile answers (a byte a second, endless pages, huge
or gzip-bombed bodies, JSON nested 100,000 deep, kilobyte names) end in a bounded time and memory
with a clear error.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import uuid

from aiohttp import web

from exporter.kazoo import BadResponseError, CredentialError, NotFoundError, RateLimitedError, TransportError

from .fake_crossbar import ACCOUNT, CHILD, NO_QUBICLE, error_answer

UNKNOWN = "0123456789abcdef" * 2


# ---- unknown account vs. no Qubicle ------------------------------------------------------------

async def test_an_unknown_account_is_not_found_naming_it(kazoo):
    client = kazoo.client()
    error = await kazoo.fails(client.list_queues(UNKNOWN), NotFoundError)
    assert str(error) == f"account {UNKNOWN} does not exist or is not visible to these credentials (HTTP 404)"
    assert error.reason == "not_found"
    assert kazoo.codes("queues") == ["404"] and kazoo.codes("account") == ["404"]


async def test_an_account_without_qubicle_or_without_queues_is_still_no_queues(kazoo):
    client = kazoo.client()
    assert await client.list_queues(NO_QUBICLE) == []  # listing 404, account readable
    assert await client.list_queues(CHILD) == []       # listing empty: no second request
    assert kazoo.codes("account") == ["200"]


async def test_descendants_of_an_unknown_account_name_it_too(kazoo):
    error = await kazoo.fails(kazoo.client().list_descendants(UNKNOWN), NotFoundError)
    assert str(error) == f"account {UNKNOWN} does not exist or is not visible to these credentials (HTTP 404)"


# ---- the URL -------------------------------------------------------------------------------------

async def test_kazoo_url_may_end_in_v2_with_or_without_a_slash(kazoo):
    for suffix in ("/v2", "/v2/", "/"):
        client = kazoo.client(base_url=kazoo.crossbar.url + suffix)
        assert len(await client.list_queues(ACCOUNT)) == 8
    assert {s.path for s in kazoo.crossbar.seen if "/v2/v2" in s.path} == set()


async def test_a_404_from_something_that_is_not_crossbar_does_not_blame_the_api_key(kazoo):
    # A web server with no routes: aiohttp's own "404: Not Found" text page, as any server at a wrong URL.
    runner = web.AppRunner(web.Application(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        client = kazoo.client(base_url=f"http://127.0.0.1:{runner.addresses[0][1]}/v2")
        error = await kazoo.fails(client.authenticate(), BadResponseError)
    finally:
        await runner.cleanup()
    assert str(error) == ("PUT /v2/api_auth: HTTP 404 without Crossbar's error envelope: this URL does not look "
                          "like Crossbar's API (check --kazoo-url, e.g. http://kazoo:8000 or .../v2)")


async def test_a_404_listing_without_an_envelope_is_not_no_queues(kazoo):
    client = kazoo.client()
    kazoo.crossbar.script["queues"] = [web.Response(status=404, text="<html>Not Found</html>",
                                                    content_type="text/html")]
    error = await kazoo.fails(client.list_queues(ACCOUNT), BadResponseError)
    assert "does not look like Crossbar's API" in str(error)


# ---- 429 -------------------------------------------------------------------------------------------

async def test_a_429_says_how_long_to_wait(kazoo):
    client = kazoo.client(retries=0)
    await client.authenticate()
    kazoo.crossbar.script["queues"] = [error_answer(429, message="too_many_requests")]
    error = await kazoo.fails(client.list_queues(ACCOUNT), RateLimitedError)
    assert str(error).endswith("HTTP 429 (rate limited); wait 10 s before trying again")


# ---- a total deadline per request ----------------------------------------------------------------

async def _trickle(request: web.Request) -> web.StreamResponse:
    """A 200 whose body comes one byte every 0.2 s, for ever: no read ever times out."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    while True:
        await response.write(b" ")
        await asyncio.sleep(0.2)


async def test_a_body_sent_a_byte_at_a_time_hits_the_request_deadline(kazoo):
    client = kazoo.client(read_timeout=5.0, request_timeout=1.0, retries=2)
    await client.authenticate()
    kazoo.crossbar.script["queues"] = [_trickle, _trickle, _trickle]
    error = await asyncio.wait_for(kazoo.fails(client.list_queues(ACCOUNT), TransportError), timeout=30)
    assert str(error) == f"GET /v2/accounts/{ACCOUNT}/qubicle_queues: RequestTimeout (no complete answer within 1 s)"
    assert kazoo.codes("queues") == ["error"]  # not retried: it would only multiply the wait


def test_the_request_deadline_defaults_to_three_read_timeouts():
    from exporter.kazoo import ClientSettings, Credentials

    settings = ClientSettings("http://127.0.0.1:1", Credentials(token="t"), read_timeout=4.0)
    assert settings.request_deadline == 12.0
    assert ClientSettings("http://127.0.0.1:1", Credentials(token="t"), request_timeout=2.5).request_deadline == 2.5


# ---- endless pages ---------------------------------------------------------------------------------

def _endless_page(request: web.Request) -> web.Response:
    # A fresh, never repeated key on every page: only a page limit ends this.
    key = base64.b64encode(uuid.uuid4().bytes).decode()
    return web.json_response({"status": "success", "data": [{"id": uuid.uuid4().hex, "name": "x"}],
                              "next_start_key": key})


async def test_a_listing_whose_pages_never_end_stops_at_the_page_limit(kazoo):
    client = kazoo.client(max_pages=25)
    kazoo.crossbar.script["descendants"] = [_endless_async] * 100
    error = await kazoo.fails(client.list_descendants(ACCOUNT), BadResponseError)
    assert str(error) == (f"GET /v2/accounts/{ACCOUNT}/descendants: the listing did not end after 25 pages "
                          "(--max-pages); raise --page-size or --max-pages if it is really that long")
    assert kazoo.crossbar.count("descendants") == 25


async def _endless_async(request: web.Request) -> web.Response:
    return _endless_page(request)


async def test_endless_pages_near_the_answer_cap_stop_at_the_listing_budget(kazoo):
    # Each page passes the per-answer cap, but their rows are kept until the listing ends: all pages
    # together may total 2 x --max-answer-bytes.
    client = kazoo.client(max_answer_bytes=256 * 1024)
    fat_rows = [{"id": f"{i:032x}", "name": "n" * 150} for i in range(1000)]  # ~200 KB a page

    async def fat_page(request: web.Request) -> web.Response:
        key = base64.b64encode(uuid.uuid4().bytes).decode()
        return web.json_response({"status": "success", "data": fat_rows, "next_start_key": key})

    kazoo.crossbar.script["descendants"] = [fat_page] * 20
    error = await kazoo.fails(client.list_descendants(ACCOUNT), BadResponseError)
    assert str(error) == (f"GET /v2/accounts/{ACCOUNT}/descendants: the listing passed 524288 bytes in 3 pages "
                          "(2 x --max-answer-bytes); refused")
    assert kazoo.crossbar.count("descendants") == 3


# ---- answer size -----------------------------------------------------------------------------------

def _listing(size: int) -> bytes:
    row = {"id": "f" * 32, "name": "n" * 200}
    rows = [row] * (size // (len(json.dumps(row)) + 2) + 1)
    return json.dumps({"status": "success", "data": rows}).encode()


async def test_an_answer_larger_than_the_cap_is_refused(kazoo):
    client = kazoo.client(max_answer_bytes=1024 * 1024)
    await client.authenticate()
    big = _listing(2 * 1024 * 1024)

    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=big, content_type="application/json")

    kazoo.crossbar.script["queues"] = [huge]
    error = await kazoo.fails(client.list_queues(ACCOUNT), BadResponseError)
    assert str(error) == (f"GET /v2/accounts/{ACCOUNT}/qubicle_queues: HTTP 200 answer larger than 1048576 "
                          "bytes once decoded (--max-answer-bytes); refused")
    assert error.reason == "bad_response"
    # The same without a Content-Length (chunked): counted as it arrives.
    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(big), 100_000):
            await response.write(big[start:start + 100_000])
        return response

    kazoo.crossbar.script["queues"] = [streamed]
    error = await kazoo.fails(client.list_queues(ACCOUNT), BadResponseError)
    assert "answer larger than 1048576 bytes once decoded" in str(error)
    # The same answer under the cap is fine, with or without a length.
    kazoo.crossbar.script["queues"] = [streamed]
    assert len(await kazoo.client(max_answer_bytes=4 * 1024 * 1024).list_queues(ACCOUNT)) > 1000
    kazoo.crossbar.script["queues"] = [huge]
    assert len(await kazoo.client(max_answer_bytes=4 * 1024 * 1024).list_queues(ACCOUNT)) > 1000


async def test_a_gzip_bomb_stops_at_the_cap(kazoo):
    client = kazoo.client(max_answer_bytes=1024 * 1024)
    await client.authenticate()
    # 256 MiB of spaces inside a JSON string compress to about 250 KB.
    bomb = gzip.compress(b'{"data": "' + b" " * (256 * 1024 * 1024) + b'"}', compresslevel=9)

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    kazoo.crossbar.script["queues"] = [gzipped]
    error = await kazoo.fails(client.list_queues(ACCOUNT), BadResponseError)
    assert "larger than 1048576 bytes once decoded" in str(error)


# ---- deeply nested JSON --------------------------------------------------------------------------

async def test_json_nested_100000_deep_is_a_bad_response(kazoo):
    client = kazoo.client()
    await client.authenticate()
    nested = b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    async def deep(request: web.Request) -> web.Response:
        return web.Response(body=nested, content_type="application/json")

    async def deep_error(request: web.Request) -> web.Response:
        return web.Response(status=500, body=nested, content_type="application/json")

    kazoo.crossbar.script["queues"] = [deep]
    error = await kazoo.fails(client.list_queues(ACCOUNT), BadResponseError)
    assert str(error) == f"GET /v2/accounts/{ACCOUNT}/qubicle_queues: HTTP 200 with a body that is not JSON"
    kazoo.crossbar.script["queues"] = [deep_error] * 3
    error = await kazoo.fails(client.list_queues(ACCOUNT), BadResponseError)
    assert error.reason == "bad_response"
    # A 404 so deep is not Crossbar's envelope either.
    kazoo.crossbar.script["queues"] = [web.Response(status=404, body=nested, content_type="application/json")]
    await kazoo.fails(client.list_queues(ACCOUNT), BadResponseError)


# ---- names ---------------------------------------------------------------------------------------

async def test_names_longer_than_the_limit_are_cut_and_counted(kazoo):
    kazoo.crossbar.names = {"q000": "N" * 1024, "q001": "M" * 256, "q002": "é" * 300}
    queues = {q.id: q.name for q in await kazoo.client().list_queues(ACCOUNT)}
    assert queues["q000"] == "N" * 255 + "\u2026"
    assert queues["q001"] == "M" * 256  # at the limit: untouched
    assert queues["q002"] == "é" * 255 + "\u2026"
    assert kazoo.truncated == ["queue", "queue"]
    kazoo.crossbar.descendants = {ACCOUNT: [{"id": CHILD, "name": "A" * 5000}]}
    (child,) = await kazoo.client().list_descendants(ACCOUNT)
    assert len(child.name) == 256
    assert kazoo.truncated[-1] == "account"


# ---- the credential ------------------------------------------------------------------------------

async def test_a_refused_fresh_token_is_a_credential_error(kazoo):
    client = kazoo.client()
    await client.authenticate()
    kazoo.crossbar.refuse_tokens = True
    error = await kazoo.fails(client.list_queues(ACCOUNT), CredentialError)
    assert "HTTP 401 again with a token just issued" in str(error)
    assert kazoo.token_refusals == 1


# ---- the poller over it ----------------------------------------------------------------------------

async def test_a_trickling_descendants_listing_no_longer_stops_the_poll(crossbar):
    from dataclasses import replace

    from exporter import selfmetrics
    from exporter.config import Secrets, Settings, client_settings
    from exporter.kazoo import KazooClient
    from exporter.poller import Poller

    from .fake_crossbar import API_KEY

    settings = replace(Settings(), kazoo_url=crossbar.url, account_ids=(ACCOUNT, UNKNOWN), discover_descendants=True,
                       secrets=Secrets(api_key=API_KEY), retries=0, read_timeout=5.0, request_timeout=1.0,
                       poll_timeout=20.0)
    metrics = selfmetrics.create(process=False)
    async with KazooClient(client_settings(settings), on_request=metrics.on_request) as client:
        poller = Poller(settings, client, metrics)
        crossbar.script["descendants"] = [_trickle, _trickle]
        snapshot = await asyncio.wait_for(poller.poll(), timeout=60)
    assert snapshot.accounts[ACCOUNT].up and snapshot.accounts[ACCOUNT].queue_count == 8
    assert metrics.poll_errors.labels(account_id=ACCOUNT, reason="transport")._value.get() == 1
    # The unknown account is down with its reason, whatever discovery did.
    assert not snapshot.accounts[UNKNOWN].up and snapshot.accounts[UNKNOWN].error == "not_found"


async def test_descendants_discovery_is_bounded_by_the_poll_timeout_too(crossbar):
    """A listing that would stay within the request deadline, but not within --poll-timeout: the
    poll goes on at --poll-timeout with the configured accounts, as it does for one account's poll."""
    from dataclasses import replace

    from exporter import selfmetrics
    from exporter.config import Secrets, Settings, client_settings
    from exporter.kazoo import KazooClient
    from exporter.poller import Poller

    from .fake_crossbar import API_KEY

    settings = replace(Settings(), kazoo_url=crossbar.url, account_ids=(ACCOUNT,), discover_descendants=True,
                       secrets=Secrets(api_key=API_KEY), retries=0, read_timeout=60.0, request_timeout=120.0,
                       poll_timeout=1.0)
    metrics = selfmetrics.create(process=False)
    async with KazooClient(client_settings(settings), on_request=metrics.on_request) as client:
        poller = Poller(settings, client, metrics)
        crossbar.script["descendants"] = [_trickle]
        snapshot = await asyncio.wait_for(poller.poll(), timeout=60)
    assert snapshot.accounts[ACCOUNT].up and snapshot.accounts[ACCOUNT].queue_count == 8
    assert metrics.registry.get_sample_value("qubicle_poll_errors_total",
                                             {"account_id": ACCOUNT, "reason": "timeout"}) == 1
