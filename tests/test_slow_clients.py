"""Slowloris and file-descriptor exhaustion (issue 12 item 9): sockets trickling their headers are
closed after the header timeout, a flood of them cannot lock a scrape out, and running out of file
descriptors is logged once a while in JSON, not per accept."""

from __future__ import annotations

import asyncio
import errno
import json
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
from conftest import exporter_process
from structlog.testing import capture_logs

from exporter.web import WebHandlers, WebServer
from exporter.web.connections import HEADER_TIMEOUT, AcceptErrorLog

REQUEST = b"GET /metrics HTTP/1.1\r\nHost: exporter\r\nUser-Agent: slowloris\r\nX-Padding: " + b"a" * 200


class SlowClients:
    """N connections sending their request headers one byte a second, never finishing them."""

    def __init__(self, port: int, count: int) -> None:
        self.sockets: list[socket.socket] = []
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setblocking(False)
            self.sockets.append(s)
        self.closed: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        offset = 0
        while not self._stop.is_set():
            for n, s in enumerate(self.sockets):
                if n in self.closed:
                    continue
                try:
                    if s.recv(4096) == b"":
                        self.closed.add(n)  # the server closed it
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed.add(n)
                    continue
                try:
                    s.send(REQUEST[offset % len(REQUEST):][:1])
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed.add(n)
            offset += 1
            self._stop.wait(1.0)

    def all_closed(self) -> bool:
        return len(self.closed) == len(self.sockets)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for s in self.sockets:
            s.close()


@contextmanager
def slow_clients(port: int, count: int) -> Iterator[SlowClients]:
    clients = SlowClients(port, count)
    try:
        yield clients
    finally:
        clients.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:g}s: {what}"
        time.sleep(0.2)


def handlers() -> WebHandlers:
    return WebHandlers(lambda accept, encoding: (b"up 1\n", {"Content-Type": "text/plain"}),
                       lambda: "", lambda: True, lambda: True)


async def test_slow_headers_are_closed_and_a_flood_cannot_lock_a_scrape_out():
    server = await WebServer.start(handlers(), "127.0.0.1:0", header_timeout=1.0, max_connections=20)
    port = server.bound[0][1]
    try:
        clients = await asyncio.to_thread(SlowClients, port, 60)  # three times the connection limit
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                for _ in range(3):
                    response = await client.get(f"http://127.0.0.1:{port}/metrics")
                    assert response.status_code == 200 and response.text == "up 1\n"
            await asyncio.to_thread(wait_for, clients.all_closed, 30, "every slow connection closed")
        finally:
            await asyncio.to_thread(clients.close)
        assert server.guard.open_connections <= 20
        assert server.guard.evicted >= 40 and server.guard.timed_out >= 1
    finally:
        await server.stop()


async def test_a_request_after_a_pause_on_a_kept_alive_connection_is_served():
    server = await WebServer.start(handlers(), "127.0.0.1:0", header_timeout=1.0)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            url = f"http://127.0.0.1:{server.bound[0][1]}/metrics"
            assert (await client.get(url)).status_code == 200
            await asyncio.sleep(1.5)  # idle, not slow: the header timeout starts at the next request's first byte
            assert (await client.get(url)).status_code == 200
    finally:
        await server.stop()


def test_running_out_of_descriptors_is_logged_once_a_while():
    loop = asyncio.new_event_loop()
    now = [0.0]
    try:
        handler = AcceptErrorLog(loop, interval=60, clock=lambda: now[0])
        context = {"message": "socket.accept() out of system resource", "exception": OSError(errno.EMFILE, "x")}
        with capture_logs() as logs:
            for _ in range(1000):
                handler(loop, dict(context))
            now[0] = 61.0
            handler(loop, dict(context))
        assert [entry["event"] for entry in logs] == ["accept_failed", "accept_failed"]
        assert logs[0]["error"] == "EMFILE" and logs[1]["suppressed_since_last"] == 999
    finally:
        loop.close()


def _open_files(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


def json_lines(text: str) -> list[dict[str, object]]:
    lines = text.splitlines()
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"a line of the JSON log is not JSON: {line[:300]!r}") from None
    return parsed


@pytest.mark.e2e
def test_slowloris_against_a_256_file_limit():
    """The issue's case: 300 slow sockets against a 256-file limit, default settings. Scrapes
    still succeed, the slow sockets are closed after the header timeout, the log stays quiet."""
    with exporter_process("--demo", "--interval", "5", preexec_fn=_open_files(256)) as exporter:
        port = int(exporter.url.rsplit(":", 1)[1])
        with slow_clients(port, 300) as clients:
            for _ in range(3):
                assert exporter.get("/metrics").status_code == 200
            wait_for(clients.all_closed, HEADER_TIMEOUT + 30, "every slow connection closed")
            assert exporter.get("/metrics").status_code == 200
        entries = json_lines(exporter.logs())
    assert len(entries) < 40, entries[-5:]  # startup, a poll line every 5 s; nothing per connection


@pytest.mark.e2e
def test_descriptor_exhaustion_is_logged_at_a_bounded_rate():
    """32 files: the exporter's own (~17) and 16 connections do not fit. Accepts fail for a while;
    the log says so once, in JSON, and the exporter serves again once the slow sockets are gone."""
    with exporter_process("--demo", "--interval", "5", preexec_fn=_open_files(32)) as exporter:
        port = int(exporter.url.rsplit(":", 1)[1])
        with slow_clients(port, 100) as clients:
            wait_for(lambda: "accept_failed" in exporter.logs(), 30, "the exhaustion logged")
            wait_for(clients.all_closed, HEADER_TIMEOUT + 30, "every slow connection closed")
        wait_for(lambda: _scrapes(exporter.url), 30, "a scrape succeeds again")
        entries = json_lines(exporter.logs())
    failures = [e for e in entries if e.get("event") == "accept_failed"]
    assert 1 <= len(failures) <= 2, failures  # at most one a minute; the test lasts well under two
    assert failures[0]["error"] == "EMFILE" and failures[0]["open_files_limit"] == 32


def _scrapes(url: str) -> bool:
    try:
        return httpx.get(url + "/metrics", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
