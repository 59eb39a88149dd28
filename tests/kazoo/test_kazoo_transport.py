"""HTTP behaviour: retries and backoff, Retry-After, bad bodies, timeouts, TLS, limits, settings."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import ssl
import time
from collections.abc import AsyncIterator

import pytest
import trustme
from aiohttp import web

from exporter.kazoo import (
    BadResponseError,
    ClientSettings,
    Credentials,
    KazooClient,
    RateLimitedError,
    ServerError,
    TransportError,
)
from exporter.kazoo import retry as kazoo_retry

from .conftest import start
from .fake_crossbar import ACCOUNT, API_KEY, closed_port, error_answer


def limited(retry_after: str | None = None) -> web.Response:
    answer = error_answer(429, message="too_many_requests")
    if retry_after is not None:
        answer.headers["Retry-After"] = retry_after
    return answer


# ---- 429 -----------------------------------------------------------------------------------------

async def test_429_with_retry_after_seconds_is_honoured(kazoo):
    client = kazoo.client(backoff_max=0.004)
    await client.authenticate()
    kazoo.crossbar.script["queue_list_status"] = [limited("7")]
    assert len(await client.queue_list_status(ACCOUNT, ["q001"])) == 1
    assert kazoo.delays == [7.0]  # what the proxy asked, not our (tiny) backoff
    assert kazoo.codes("queue_list_status") == ["429", "200"]


async def test_429_with_retry_after_http_date_is_honoured(kazoo):
    client = kazoo.client()
    await client.authenticate()
    kazoo.crossbar.script["queue_list_status"] = [limited(email.utils.formatdate(time.time() + 12, usegmt=True))]
    assert len(await client.queue_list_status(ACCOUNT, ["q001"])) == 1
    (delay,) = kazoo.delays
    assert 9 <= delay <= 12


async def test_429_asking_longer_than_the_cap_fails_now_instead_of_waiting(kazoo):
    client = kazoo.client(retries=3)
    await client.authenticate()
    kazoo.crossbar.script["queue_list_status"] = [limited("3600")]
    error = await kazoo.fails(client.queue_list_status(ACCOUNT, ["q001"]), RateLimitedError)
    assert str(error) == (f"GET /v2/accounts/{ACCOUNT}/qubicle_queues/status: HTTP 429 (rate limited); "
                          "wait 3600 s before trying again")
    assert kazoo.delays == [] and kazoo.codes("queue_list_status") == ["429"]
    assert error.reason == "rate_limited"


async def test_429_without_retry_after_backs_off_exponentially_with_jitter_then_gives_up(kazoo):
    client = kazoo.client(retries=3, backoff_base=0.5, backoff_max=1.5)
    await client.authenticate()
    kazoo.crossbar.script["queue_list_status"] = [limited() for _ in range(4)]
    error = await kazoo.fails(client.queue_list_status(ACCOUNT, ["q001"]), RateLimitedError)
    # Crossbar sends no Retry-After: its bucket refills 10 tokens a second, full in 10 s.
    assert str(error) == (f"GET /v2/accounts/{ACCOUNT}/qubicle_queues/status: HTTP 429 (rate limited) "
                          "after 4 attempts; wait 10 s before trying again")
    assert len(kazoo.delays) == 3
    for delay, ceiling in zip(kazoo.delays, (0.5, 1.0, 1.5), strict=True):
        assert 0 <= delay <= ceiling


def test_backoff_ceiling_doubles_up_to_the_maximum_and_jitters():
    import random
    rng = random.Random(7)
    samples = [[kazoo_retry.backoff_delay(a, 0.2, 5.0, rng) for _ in range(300)] for a in range(8)]
    for attempt, values in enumerate(samples):
        ceiling = min(5.0, 0.2 * 2 ** attempt)
        assert all(0 <= v <= ceiling for v in values)
        assert max(values) > ceiling * 0.9 and min(values) < ceiling * 0.1  # full jitter spans the range
    assert kazoo_retry.backoff_delay(10_000, 0.2, 5.0) <= 5.0


@pytest.mark.parametrize("header, expected", [
    ("5", 5.0), (" 2 ", 2.0), ("0", 0.0), ("-3", 0.0), ("soon", None), ("", None), (None, None), ("nan", None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
])
def test_retry_after_parsing(header, expected):
    assert kazoo_retry.retry_after(header, now=time.time()) == expected


# ---- 5xx, bad bodies -----------------------------------------------------------------------------

async def test_5xx_then_success(kazoo):
    client = kazoo.client(retries=3)
    await client.authenticate()
    kazoo.crossbar.script["queue_list_status"] = [error_answer(503), error_answer(500)]
    assert len(await client.queue_list_status(ACCOUNT, ["q001"])) == 1
    assert kazoo.codes("queue_list_status") == ["503", "500", "200"]
    assert len(kazoo.delays) == 2


async def test_exhausted_retries_name_the_request_the_code_and_the_attempts(kazoo):
    client = kazoo.client(retries=3)
    await client.authenticate()
    kazoo.crossbar.script["queues"] = [error_answer(503) for _ in range(4)]
    error = await kazoo.fails(client.list_queues(ACCOUNT), ServerError)
    assert str(error) == f"GET /v2/accounts/{ACCOUNT}/qubicle_queues: HTTP 503 after 4 attempts"
    assert error.reason == "server_error"
    assert kazoo.codes("queues") == ["503"] * 4


async def test_a_proxys_html_5xx_is_a_bad_response_after_retries(kazoo):
    client = kazoo.client(retries=1)
    await client.authenticate()
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    kazoo.crossbar.script["queue_list_status"] = [web.Response(status=502, text=html, content_type="text/html")
                                                  for _ in range(2)]
    error = await kazoo.fails(client.queue_list_status(ACCOUNT, ["q001"]), BadResponseError)
    assert str(error) == (f"GET /v2/accounts/{ACCOUNT}/qubicle_queues/status: HTTP 502 with a body that is not JSON"
                          " after 2 attempts")
    assert kazoo.codes("queue_list_status") == ["502", "502"]


@pytest.mark.parametrize("answer, message", [
    (lambda: web.Response(status=200, text="OK", content_type="text/plain"), "HTTP 200 with a body that is not JSON"),
    (lambda: web.Response(status=200, body=b"\xff\xfe{", content_type="application/json"), "not JSON"),
    (lambda: web.json_response({"status": "success", "auth_token": "x"}), "not a Crossbar envelope"),
    (lambda: web.json_response([1, 2, 3]), "not a Crossbar envelope"),
    (lambda: web.json_response({"data": "nope", "status": "success"}), "'data' is not an object"),
    (lambda: web.json_response({"data": [], "status": "success"}), "'data' is not an object"),
])
async def test_bodies_that_are_not_crossbar_envelopes_are_bad_responses(kazoo, answer, message):
    client = kazoo.client()
    await client.authenticate()
    kazoo.crossbar.script["queue_list_status"] = [answer()]
    error = await kazoo.fails(client.queue_list_status(ACCOUNT, ["q001"]), BadResponseError)
    assert message in str(error) and error.reason == "bad_response"
    assert kazoo.codes("queue_list_status") == ["200"]  # a 200 is not retried


async def test_an_error_body_with_the_token_echoed_never_reaches_the_message(kazoo):
    client = kazoo.client(retries=0)
    await client.authenticate()
    kazoo.crossbar.script["queue_list_status"] = [lambda r: _echo(r, 500)]
    error = await kazoo.fails(client.queue_list_status(ACCOUNT, ["q001"]), ServerError)
    assert kazoo.crossbar.issued[0] not in str(error)  # the guard checks every other place


async def _echo(request: web.Request, code: int) -> web.Response:
    return error_answer(code, request, message=f"echo {request.headers.get('X-Auth-Token')}")


async def test_unexpected_4xx_is_a_bad_response_naming_the_code(kazoo):
    client = kazoo.client()
    await client.authenticate()
    kazoo.crossbar.script["queue_list_status"] = [error_answer(400)]
    error = await kazoo.fails(client.queue_list_status(ACCOUNT, ["q001"]), BadResponseError)
    assert str(error) == f"GET /v2/accounts/{ACCOUNT}/qubicle_queues/status: HTTP 400"


# ---- no answer -----------------------------------------------------------------------------------

async def test_connection_refused_is_a_transport_error_after_retries(kazoo):
    client = kazoo.client(base_url=f"http://127.0.0.1:{closed_port()}", retries=2)
    error = await kazoo.fails(client.list_queues(ACCOUNT), TransportError)
    assert str(error).startswith("PUT /v2/api_auth: ConnectError")
    assert str(error).endswith("after 3 attempts")
    assert kazoo.events == [("api_auth", "error")] * 3 and len(kazoo.delays) == 2
    assert error.reason == "transport"


async def test_read_timeout_is_retried_then_a_transport_error(kazoo):
    client = kazoo.client(read_timeout=0.2, retries=1)
    await client.authenticate()
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await release.wait()  # answers only once the client has given up
        return error_answer(500)

    kazoo.crossbar.script["queues"] = [stall, stall]
    try:
        error = await kazoo.fails(client.list_queues(ACCOUNT), TransportError)
    finally:
        release.set()
    assert str(error).startswith(f"GET /v2/accounts/{ACCOUNT}/qubicle_queues: ReadTimeout")
    assert str(error).endswith("after 2 attempts")
    assert kazoo.codes("queues") == ["error", "error"]


def test_the_client_gets_explicit_timeouts():
    client = KazooClient(ClientSettings("http://127.0.0.1:1", Credentials(api_key=API_KEY), connect_timeout=1.5,
                                        read_timeout=7.0))
    timeout = client._settings.timeout
    assert timeout.sock_connect == 1.5 and timeout.sock_read == 7.0 and timeout.total is None
    asyncio.run(client.aclose())


async def test_max_connections_bounds_concurrent_requests(kazoo):
    kazoo.crossbar.queues[ACCOUNT] = [f"q{i:03d}" for i in range(12)]
    client = kazoo.client(max_connections=2, status_batch_size=1)
    await client.authenticate()
    in_flight, peak = 0, 0
    two_in_flight = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 2:
            two_in_flight.set()
        try:
            # Each answer waits until two requests are in flight at once, whatever the machine's
            # speed (a bound of 1 fails here after 10 s); then a moment more, where a third request
            # would show up if the bound leaked (that can only miss a leak under load, never fail wrongly).
            await asyncio.wait_for(two_in_flight.wait(), 10)
            await asyncio.sleep(0.02)
        finally:
            in_flight -= 1
        return await kazoo.crossbar.list_status(request)

    kazoo.crossbar.script["queue_list_status"] = [slow] * 12
    assert len(await client.queue_list_status(ACCOUNT, kazoo.crossbar.queues[ACCOUNT])) == 12
    assert peak == 2


# ---- TLS -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_url(ca: trustme.CA, crossbar) -> AsyncIterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    runner = await start(crossbar, context)
    yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_tls_with_a_private_ca_file(kazoo, ca, tls_url, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client = kazoo.client(base_url=tls_url, ca_file=str(ca_file))
    assert len(await client.list_queues(ACCOUNT)) == 8


async def test_tls_verification_is_on_by_default_and_not_retried(kazoo, tls_url):
    client = kazoo.client(base_url=tls_url, retries=3)
    error = await kazoo.fails(client.list_queues(ACCOUNT), TransportError)
    assert str(error).startswith("PUT /v2/api_auth: TLS certificate verification failed")
    assert kazoo.events == [("api_auth", "error")]  # the same certificate fails the same way
    assert kazoo.crossbar.seen == []


async def test_tls_verification_can_be_turned_off(kazoo, tls_url):
    client = kazoo.client(base_url=tls_url, verify_tls=False)
    assert len(await client.list_queues(ACCOUNT)) == 8


# ---- settings ------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    ({"base_url": "kazoo.example.net:8000"}, "kazoo base url: expected http(s)://host[:port]"),
    ({"base_url": "ftp://kazoo.example.net"}, "kazoo base url"),
    ({"base_url": "http://admin:hunter2@kazoo.example.net"}, "must not carry a user or password"),
    ({"retries": -1}, "retries: expected an integer >= 0, got -1"),
    ({"retries": 1.5}, "retries: expected an integer"),
    ({"status_batch_size": 0}, "status_batch_size: expected an integer >= 1, got 0"),
    ({"max_connections": 0}, "max_connections"),
    ({"page_size": 0}, "page_size"),
    ({"read_timeout": 0}, "read_timeout: must be greater than 0"),
    ({"connect_timeout": float("nan")}, "connect_timeout: expected a finite number"),
    ({"backoff_base": -1}, "backoff_base"),
    ({"renew_before": True}, "renew_before"),
    ({"ca_file": "/nonexistent/ca.pem"}, "ca_file: /nonexistent/ca.pem: no such file"),
])
def test_bad_settings_are_one_line_value_errors(overrides, message):
    values = {"base_url": "http://kazoo.example.net:8000", "credentials": Credentials(api_key=API_KEY), **overrides}
    with pytest.raises(ValueError) as info:
        ClientSettings(**values)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_ca_file_that_is_not_pem_is_rejected(tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError, match="not a readable PEM certificate bundle"):
        ClientSettings("https://kazoo.example.net", Credentials(api_key=API_KEY), ca_file=str(bad))


# ---- proxies -------------------------------------------------------------------------------------

async def test_the_proxy_of_the_environment_is_used_unless_no_proxy_says_otherwise(kazoo, monkeypatch):
    proxy = f"http://127.0.0.1:{closed_port()}"
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    client = kazoo.client(retries=0)
    error = await kazoo.fails(client.list_queues(ACCOUNT), TransportError)
    assert str(error).startswith("PUT /v2/api_auth: ConnectError")  # the request went to the dead proxy
    assert kazoo.crossbar.seen == []
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    assert len(await kazoo.client().list_queues(ACCOUNT)) == 8


def test_an_https_proxy_is_refused_at_start_in_one_line(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, "https://user:hunter2@proxy.example.net:3129")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError) as info:
        ClientSettings("https://kazoo.example.net:8443", Credentials(api_key=API_KEY))
    assert str(info.value) == "https_proxy: only http:// proxies are supported, got https://"
    assert "hunter2" not in str(info.value)


def test_proxy_credentials_go_to_the_proxy_only(monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://squid:hunter2@127.0.0.1:3128")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    settings = ClientSettings("http://kazoo.example.net:8000", Credentials(api_key=API_KEY))
    assert settings.proxy is not None
    url, auth = settings.proxy
    assert url == "http://127.0.0.1:3128"
    assert auth == "Basic " + base64.b64encode(b"squid:hunter2").decode()  # sent to the proxy, not in its URL
    assert "hunter2" not in repr(settings) and "c3F1aWQ6aHVudGVyMg" not in repr(settings)


async def test_netrc_credentials_are_never_sent_to_kazoo(kazoo, monkeypatch, tmp_path):
    """aiohttp's trust_env would add ~/.netrc's login as Basic auth to every Kazoo request."""
    (tmp_path / ".netrc").write_text("default login netrcuser password netrcsecret\n")
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    headers: list[str | None] = []

    async def record(request: web.Request) -> web.StreamResponse:
        headers.append(request.headers.get("Authorization"))
        return await kazoo.crossbar.list_queues(request)

    kazoo.crossbar.script["queues"] = [record]
    assert len(await kazoo.client().list_queues(ACCOUNT)) == 8
    assert headers == [None]
