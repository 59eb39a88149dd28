"""The web server: endpoints, HEAD, 404, health and readiness, listen addresses, stop."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from helpers_exposition import registry_exposition
from prometheus_client import CollectorRegistry, Gauge

from exporter.exposition import Body
from exporter.web import WebHandlers, WebServer, parse_listen


@dataclass
class State:
    healthy: bool = True
    ready: bool = False
    render_threads: list[threading.Thread] = field(default_factory=list)


@dataclass
class Served:
    url: str
    state: State
    server: WebServer


def make_handlers(state: State) -> WebHandlers:
    snapshot = CollectorRegistry()
    Gauge("qubicle_queue_active_sessions", "Callers.", ["queue_name"], registry=snapshot).labels("Support").set(3)
    live = CollectorRegistry()
    Gauge("qubicle_exporter_up", "The exporter runs.", registry=live).set(1)
    expo = registry_exposition(snapshot, live)

    def metrics(accept: str | None, accept_encoding: str | None) -> tuple[Body, dict[str, str]]:
        state.render_threads.append(threading.current_thread())
        return expo.stream(accept, accept_encoding)  # as served: in pieces

    return WebHandlers(metrics, lambda: "<h1>qubicle-exporter</h1><a href='/metrics'>metrics</a>",
                       lambda: state.healthy, lambda: state.ready)


async def serve(listen: str = "127.0.0.1:0", *, metrics_path: str = "/metrics") -> Served:
    state = State()
    server = await WebServer.start(make_handlers(state), listen, metrics_path=metrics_path)
    host, port = server.bound[0]
    return Served(f"http://{f'[{host}]' if ':' in host else host}:{port}", state, server)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    s = await serve()
    yield s
    await s.server.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


async def test_metrics_are_rendered_off_the_event_loop(served, client):
    response = await client.get(served.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert 'qubicle_queue_active_sessions{queue_name="Support"} 3.0' in response.text
    assert "qubicle_exporter_up 1.0" in response.text
    assert served.state.render_threads and threading.current_thread() not in served.state.render_threads


async def test_metrics_negotiation_over_http(served, client):
    om = await client.get(served.url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert om.text.endswith("# EOF\n")
    decoded = await client.get(served.url + "/metrics", headers={"Accept-Encoding": "gzip"})
    assert decoded.headers["Content-Encoding"] == "gzip"
    assert "qubicle_exporter_up 1.0" in decoded.text  # httpx decodes only a first gzip member: all of it
    async with client.stream("GET", served.url + "/metrics", headers={"Accept-Encoding": "gzip"}) as stream:
        raw = b"".join([chunk async for chunk in stream.aiter_raw()])
    plain = await client.get(served.url + "/metrics", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert gzip.decompress(raw) == plain.content == decoded.content


async def test_landing_page(served, client):
    response = await client.get(served.url + "/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "qubicle-exporter" in response.text


async def test_health_and_readiness(served, client):
    healthy = await client.get(served.url + "/-/healthy")
    assert (healthy.status_code, healthy.text) == (200, "OK\n")
    not_ready = await client.get(served.url + "/-/ready")
    assert (not_ready.status_code, not_ready.text) == (503, "Not ready\n")
    served.state.ready = True
    ready = await client.get(served.url + "/-/ready")
    assert (ready.status_code, ready.text) == (200, "Ready\n")
    served.state.healthy = False
    assert (await client.get(served.url + "/-/healthy")).status_code == 503


@pytest.mark.parametrize("path", ["/", "/metrics", "/-/healthy", "/-/ready"])
async def test_head(served, client, path):
    served.state.ready = True
    get = await client.get(served.url + path)
    head = await client.head(served.url + path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Type"] == get.headers["Content-Type"]


@pytest.mark.parametrize("path", ["/nope", "/metrics/", "/-/", "/favicon.ico"])
async def test_unknown_paths_are_404(served, client, path):
    assert (await client.get(served.url + path)).status_code == 404


async def test_other_methods_are_405(served, client):
    assert (await client.post(served.url + "/metrics", content=b"x")).status_code == 405


async def test_custom_metrics_path(client):
    s = await serve(metrics_path="/probe/qubicle")
    try:
        assert (await client.get(s.url + "/metrics")).status_code == 404
        assert "qubicle_exporter_up" in (await client.get(s.url + "/probe/qubicle")).text
    finally:
        await s.server.stop()


async def test_ipv6_loopback(client):
    s = await serve("[::1]:0")
    try:
        assert s.server.bound[0][0] == "::1"
        assert (await client.get(s.url + "/-/healthy")).status_code == 200
    finally:
        await s.server.stop()


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:80", ("127.0.0.1", 80)), (":9", (None, 9)), (":0", (None, 0)), ("[::1]:10147", ("::1", 10147)),
    ("[::]:1", ("::", 1)), ("host.example:1", ("host.example", 1)), (" localhost:10147 ", ("localhost", 10147)),
])
def test_listen_addresses(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["10147", "host:", "host:99999", "[::1:80", "a:b:c", "::1:80", "[nope]:80",
                                  "host name:80", "host:-1", "host:80x", ""])
def test_bad_listen_addresses(text):
    with pytest.raises(ValueError, match="^--listen: ") as info:
        parse_listen(text)
    assert "\n" not in str(info.value)


async def test_bad_listen_fails_start_cleanly():
    with pytest.raises(ValueError, match="--listen"):
        await WebServer.start(make_handlers(State()), "localhost")


async def test_port_in_use_raises_oserror(served):
    with pytest.raises(OSError):
        await WebServer.start(make_handlers(State()), f"127.0.0.1:{served.server.bound[0][1]}")


async def test_stop_closes_the_port_and_ends_the_threads(client):
    s = await serve()
    port = s.server.bound[0][1]
    assert (await client.get(s.url + "/metrics")).status_code == 200  # leaves a keep-alive connection open
    await asyncio.wait_for(s.server.stop(), 5)  # a guard against hanging, not a timing test
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    for thread in s.state.render_threads:
        thread.join(5)
        assert not thread.is_alive(), "a render thread outlived the server"


async def test_a_large_exposition_is_sent_whole_in_pieces_with_its_length(client):
    """Several pieces (plain text inflated as it is sent, gzip sliced): the same bytes as one render."""
    snapshot = CollectorRegistry()
    gauge = Gauge("qubicle_queue_active_sessions", "Callers.", ["queue_name"], registry=snapshot)
    for i in range(30_000):  # ~1.5 MB of text: six pieces or more
        gauge.labels(f"queue {i} {'x' * (i % 17)}").set(i)
    live = CollectorRegistry()
    Gauge("qubicle_exporter_up", "The exporter runs.", registry=live).set(1)
    expo = registry_exposition(snapshot, live)
    server = await WebServer.start(WebHandlers(expo.stream, lambda: "", lambda: True, lambda: True), "127.0.0.1:0")
    try:
        host, port = server.bound[0]
        for encoding in ("identity", "gzip"):
            response = await client.get(f"http://{host}:{port}/metrics", headers={"Accept-Encoding": encoding})
            assert response.status_code == 200
            assert "chunked" not in response.headers.get("Transfer-Encoding", "")
            whole, _ = expo.render(None, encoding)  # the live part is constant: the same bytes
            assert int(response.headers["Content-Length"]) == len(whole)
            assert response.content == (whole if encoding == "identity" else gzip.decompress(whole))
            assert response.text.count("qubicle_queue_active_sessions{") == 30_000
    finally:
        await server.stop()
