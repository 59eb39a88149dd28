"""The Kazoo client against a real local HTTP server that behaves like Crossbar, scripted per test."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from exporter.kazoo import (
    BadResponseError,
    ClientSettings,
    CredentialError,
    Credentials,
    ForbiddenError,
    KazooClient,
    RateLimitedError,
    ServerError,
    TransportError,
    parse_queue_status,
)

ACCOUNT = "a" * 32
API_KEY = "K" * 64


def jwt(exp: float, n: int) -> str:
    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'HS256'})}.{b64({'exp': int(exp), 'n': n})}.c2ln"


def status(n: int) -> dict[str, Any]:
    return {"active_recipient_count": 2, "available_recipient_count": 1, "node": "kz@1",
            "stats": {"estimated_wait": 30, "average_wait": 20, "recipient_count": 3, "active_session_count": n,
                      "total_sessions": 10, "missed_sessions": 1, "abandoned_sessions": 2}}


@dataclass
class FakeCrossbar:
    """Crossbar's habits: envelopes that echo the token, 401 on a stale token, opaque page keys."""

    url: str = ""
    queues: list[str] = field(default_factory=lambda: [f"q{i:03d}" for i in range(7)])
    page_size: int = 3
    token_ttl: float = 3600.0
    valid: set[str] = field(default_factory=set)
    script: dict[str, list[web.Response]] = field(default_factory=dict)  # endpoint -> canned answers first
    calls: dict[str, int] = field(default_factory=dict)
    bodies: list[Any] = field(default_factory=list)
    auth_delay: float = 0.0
    reject_auth: bool = False
    repeat_key: bool = False

    def envelope(self, request: web.Request, data: Any, **extra: Any) -> web.Response:
        return web.json_response({"data": data, "status": "success", "request_id": "r",
                                  "auth_token": request.headers.get("X-Auth-Token", ""), **extra})

    def scripted(self, endpoint: str) -> web.Response | None:
        self.calls[endpoint] = self.calls.get(endpoint, 0) + 1
        answers = self.script.get(endpoint)
        return answers.pop(0) if answers else None

    def authorized(self, request: web.Request) -> bool:
        return request.headers.get("X-Auth-Token") in self.valid

    async def api_auth(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        if (canned := self.scripted("api_auth")) is not None:
            return canned
        await asyncio.sleep(self.auth_delay)
        if self.reject_auth or body["data"].get("api_key") != API_KEY:
            # Crossbar echoes the unknown key: the client must not repeat it anywhere.
            return web.json_response({"status": "error", "error": "404", "data": {"api_key": body["data"].get("api_key")}},
                                     status=404)
        token = jwt(time.time() + self.token_ttl, len(self.valid))
        self.valid.add(token)
        return web.json_response({"data": {"account_id": ACCOUNT}, "auth_token": token, "status": "success"},
                                 status=201)

    async def user_auth(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        self.calls["user_auth"] = self.calls.get("user_auth", 0) + 1
        token = jwt(time.time() + self.token_ttl, len(self.valid))
        self.valid.add(token)
        return web.json_response({"data": {}, "auth_token": token, "status": "success"})

    async def list_queues(self, request: web.Request) -> web.Response:
        if (canned := self.scripted("queues")) is not None:
            return canned
        if not self.authorized(request):
            return web.json_response({"status": "error", "error": "401", "message": "invalid credentials",
                                      "auth_token": request.headers.get("X-Auth-Token", "")}, status=401)
        rows = sorted(self.queues, reverse=True)
        start = 0
        if "start_key" in request.query:
            start = rows.index(base64.b64decode(request.query["start_key"]).decode())
        chunk = rows[start:start + self.page_size]
        extra: dict[str, Any] = {"page_size": len(chunk)}
        if start + self.page_size < len(rows):
            nxt = rows[start + self.page_size] if not self.repeat_key else rows[0]
            extra["next_start_key"] = base64.b64encode(nxt.encode()).decode()
        return self.envelope(request, [{"id": q, "name": f"Queue {q}"} for q in chunk], **extra)

    async def list_status(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append({"method": request.method, "query": dict(request.query), **body})
        if (canned := self.scripted("queue_list_status")) is not None:
            return canned
        if not self.authorized(request):
            return web.json_response({"status": "error", "error": "401"}, status=401)
        ids = body["data"]["queue_ids"]
        return self.envelope(request, {q: status(i) for i, q in enumerate(ids) if q in self.queues})


@pytest.fixture
async def crossbar() -> AsyncIterator[FakeCrossbar]:
    fake = FakeCrossbar()
    app = web.Application()
    app.router.add_put("/v2/api_auth", fake.api_auth)
    app.router.add_put("/v2/user_auth", fake.user_auth)
    app.router.add_get(f"/v2/accounts/{ACCOUNT}/qubicle_queues", fake.list_queues)
    app.router.add_get(f"/v2/accounts/{ACCOUNT}/qubicle_queues/status", fake.list_status)
    app.router.add_post(f"/v2/accounts/{ACCOUNT}/qubicle_queues/status", fake.list_status)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = "http://127.0.0.1:%d" % runner.addresses[0][1]
    yield fake
    await runner.cleanup()


@pytest.fixture
async def client_for(crossbar):
    made: list[KazooClient] = []
    events: list[tuple[str, str]] = []
    reauths: list[int] = []

    def make(credentials: Credentials | None = None, **settings: Any) -> KazooClient:
        defaults: dict[str, Any] = {"retries": 2, "backoff_base": 0.001, "backoff_max": 0.01, "read_timeout": 2}
        client = KazooClient(ClientSettings(crossbar.url, credentials or Credentials(api_key=API_KEY),
                                            **{**defaults, **settings}),
                             on_request=lambda e, c: events.append((e, c)), on_reauthenticate=lambda: reauths.append(1))
        made.append(client)
        return client

    make.events = events  # type: ignore[attr-defined]
    make.reauths = reauths  # type: ignore[attr-defined]
    yield make
    for client in made:
        await client.aclose()


def crossbar_error(code: int, **extra: Any) -> web.Response:
    return web.json_response({"status": "error", "error": str(code), "message": "x", "data": {}, **extra}, status=code)


async def test_pagination_follows_opaque_keys_across_pages(crossbar, client_for):
    client = client_for()
    queues = await client.list_queues(ACCOUNT)
    assert [q.id for q in queues] == sorted(crossbar.queues, reverse=True)
    assert queues[0].name == "Queue q006"
    assert crossbar.calls["queues"] == 3  # 7 queues, pages of 3


async def test_a_repeated_pagination_key_is_an_error_not_a_loop(crossbar, client_for):
    crossbar.repeat_key = True
    client = client_for()
    with pytest.raises(BadResponseError, match="repeated a pagination key"):
        await client.list_queues(ACCOUNT)
    assert crossbar.calls["queues"] <= 3


async def test_an_account_without_qubicle_has_no_queues(crossbar, client_for):
    crossbar.script["queues"] = [crossbar_error(404)]
    client = client_for()
    assert await client.list_queues(ACCOUNT) == []


async def test_forbidden_account_is_a_clear_error(crossbar, client_for):
    crossbar.script["queues"] = [crossbar_error(403)]
    client = client_for()
    with pytest.raises(ForbiddenError, match=f"account {ACCOUNT} is outside"):
        await client.list_queues(ACCOUNT)


async def test_token_expiry_mid_poll_reauthenticates_once_and_retries(crossbar, client_for):
    client = client_for()
    assert len(await client.queue_list_status(ACCOUNT, ["q001"])) == 1
    crossbar.valid.clear()  # the token expired between two requests
    assert len(await client.queue_list_status(ACCOUNT, ["q001", "q002"])) == 2
    assert crossbar.calls["api_auth"] == 2
    assert client_for.reauths == [1]


async def test_concurrent_401s_share_one_reauthentication(crossbar, client_for):
    client = client_for(status_batch_size=1)
    await client.authenticate()
    crossbar.valid.clear()
    crossbar.auth_delay = 0.05  # the failures all arrive while the re-authentication runs
    result = await client.queue_list_status(ACCOUNT, crossbar.queues)  # 7 batches at once
    assert len(result) == 7
    assert crossbar.calls["api_auth"] == 2  # the first authentication, then ONE for all seven 401s
    assert client_for.reauths == [1]


async def test_token_is_renewed_before_it_expires(crossbar, client_for):
    crossbar.token_ttl = 30  # expires within renew_before (60 s)
    client = client_for()
    await client.queue_list_status(ACCOUNT, ["q001"])
    await client.queue_list_status(ACCOUNT, ["q001"])
    # Each request found the token about to expire and renewed it first: no 401 was needed.
    assert crossbar.calls["api_auth"] == 2
    assert ("queue_list_status", "401") not in client_for.events


async def test_rejected_credentials_back_off_instead_of_looping(crossbar, client_for):
    crossbar.reject_auth = True
    client = client_for()
    for _ in range(5):
        with pytest.raises(CredentialError, match="rejected the API key"):
            await client.queue_list_status(ACCOUNT, ["q001"])
    assert crossbar.calls["api_auth"] == 1  # each authentication costs 35 of 100 rate-limit tokens


async def test_a_fixed_token_that_is_rejected_is_a_credential_error(crossbar, client_for):
    client = client_for(Credentials(token="fixed-token-value"))
    with pytest.raises(CredentialError, match="fixed auth token"):
        await client.list_queues(ACCOUNT)
    assert "api_auth" not in crossbar.calls


async def test_429_with_retry_after_is_honoured(crossbar, client_for):
    limited = crossbar_error(429)
    limited.headers["Retry-After"] = "0.3"
    crossbar.script["queue_list_status"] = [limited]
    client = client_for()
    await client.authenticate()
    started = time.monotonic()
    assert len(await client.queue_list_status(ACCOUNT, ["q001"])) == 1
    assert time.monotonic() - started >= 0.3
    assert client_for.events.count(("queue_list_status", "429")) == 1


async def test_429_without_retry_after_backs_off_then_gives_up(crossbar, client_for):
    crossbar.script["queue_list_status"] = [crossbar_error(429) for _ in range(3)]
    client = client_for()
    with pytest.raises(RateLimitedError, match="after 3 attempts"):
        await client.queue_list_status(ACCOUNT, ["q001"])


async def test_5xx_then_success(crossbar, client_for):
    crossbar.script["queue_list_status"] = [crossbar_error(503), crossbar_error(500)]
    client = client_for()
    assert len(await client.queue_list_status(ACCOUNT, ["q001"])) == 1
    assert [c for e, c in client_for.events if e == "queue_list_status"] == ["503", "500", "200"]


async def test_5xx_exhausted_and_html_bodies(crossbar, client_for):
    crossbar.script["queue_list_status"] = [crossbar_error(500) for _ in range(3)]
    client = client_for()
    with pytest.raises(ServerError, match="HTTP 500 after 3 attempts"):
        await client.queue_list_status(ACCOUNT, ["q001"])
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    crossbar.script["queue_list_status"] = [web.Response(status=502, text=html, content_type="text/html")
                                            for _ in range(3)]
    with pytest.raises(BadResponseError, match="not JSON"):
        await client.queue_list_status(ACCOUNT, ["q001"])
    crossbar.script["queue_list_status"] = [web.Response(status=200, text="OK", content_type="text/plain")]
    with pytest.raises(BadResponseError, match="not JSON"):
        await client.queue_list_status(ACCOUNT, ["q001"])
    crossbar.script["queue_list_status"] = [web.json_response({"status": "success"})]
    with pytest.raises(BadResponseError, match="not a Crossbar envelope"):
        await client.queue_list_status(ACCOUNT, ["q001"])


async def test_connection_refused_is_a_transport_error(client_for, crossbar):
    client = KazooClient(ClientSettings("http://127.0.0.1:9", Credentials(token="t"), retries=1, backoff_base=0.001))
    with pytest.raises(TransportError, match="after 2 attempts"):
        await client.list_queues(ACCOUNT)
    await client.aclose()


async def test_status_is_batched_and_a_deleted_queue_is_simply_absent(crossbar, client_for):
    crossbar.queues = [f"q{i:03d}" for i in range(250)]
    client = client_for(status_batch_size=100)
    ids = list(crossbar.queues) + ["deleted-meanwhile"]
    result = await client.queue_list_status(ACCOUNT, ids)
    assert len(result) == 250 and "deleted-meanwhile" not in result
    assert crossbar.calls["queue_list_status"] == 3  # 251 ids in batches of 100, never one per queue


async def test_verb_tunnelling_sends_the_same_body_as_post(crossbar, client_for):
    client = client_for(status_via_post=True)
    assert len(await client.queue_list_status(ACCOUNT, ["q001", "q002"])) == 2
    sent = [b for b in crossbar.bodies if "method" in b][-1]
    assert sent["method"] == "POST" and sent["query"] == {"verb": "GET"}
    assert sent["data"] == {"queue_ids": ["q001", "q002"]}


async def test_user_credentials_send_the_md5_and_account_name(crossbar, client_for):
    client = client_for(Credentials(username="Alice", password="s3cret!", account_name="ACME"))
    await client.authenticate()
    expected = hashlib.md5(b"alice:s3cret!").hexdigest()
    assert crossbar.bodies[-1] == {"data": {"credentials": expected, "account_name": "ACME"}}


def test_missing_and_odd_fields_drop_only_that_figure():
    raw = status(4)
    del raw["stats"]["average_wait"]
    raw["stats"]["estimated_wait"] = None
    raw["stats"]["missed_sessions"] = "n/a"
    raw["available_recipient_count"] = True
    raw["node"] = 17
    parsed, bad = parse_queue_status(raw)
    assert sorted(bad) == ["available_recipient_count", "stats.average_wait", "stats.estimated_wait",
                           "stats.missed_sessions"]
    assert parsed.active_sessions == 4 and parsed.daily_sessions == 10
    assert parsed.average_wait is None and parsed.available_recipients is None
    assert parsed.node == "17"
    assert parse_queue_status("garbage")[0].active_sessions is None
    assert parse_queue_status({"stats": {"longest_wait": float("nan")}})[0].longest_wait is None


def test_api_key_length_is_checked_without_echoing_it():
    with pytest.raises(ValueError) as info:
        Credentials(api_key="short-secret")
    assert "exactly 64 characters, got 12" in str(info.value)
    assert "short-secret" not in str(info.value)
    assert "K" * 64 not in repr(Credentials(api_key=API_KEY))


async def test_no_secret_in_any_error_message(crossbar, client_for):
    crossbar.reject_auth = True
    wrong_key = "W" * 64
    messages = []
    client = client_for(Credentials(api_key=wrong_key))
    for _ in range(2):
        try:
            await client.list_queues(ACCOUNT)
        except Exception as exc:  # noqa: BLE001 - collecting every message
            messages.append(str(exc))
    crossbar.reject_auth = False
    good = client_for()
    await good.authenticate()
    token = next(iter(crossbar.valid))
    crossbar.script["queue_list_status"] = [crossbar_error(500, auth_token=token) for _ in range(3)]
    try:
        await good.queue_list_status(ACCOUNT, ["q001"])
    except Exception as exc:  # noqa: BLE001
        messages.append(str(exc))
    assert len(messages) == 3
    for message in messages:
        assert wrong_key not in message and API_KEY not in message and token not in message
        assert "\n" not in message
