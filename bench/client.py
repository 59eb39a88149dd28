"""Benchmark: CPU per Kazoo request, the exporter's client against a bare baseline, on the same requests.

Every poll pays for its HTTP exchanges whatever reuse saves: at 50,000 queues (1,000 accounts)
that is nearly half of the floor of bench/poll.py's reuse ratio. This measures how much of it is
the client. One poll of the exporter's Kazoo client is recorded (its requests after discovery:
URL, headers, body), then the same requests are sent to the same simulator (20 ms latency), 10
at once on kept-alive connections opened beforehand, each answer read whole, in turn by:

- kazoo client: the exporter's own KazooClient (aiohttp), one exchange each as a poll makes it
  (its deadline, its slots, its capped read), without the retry and envelope logic around it;
- bare: asyncio streams, each request written as bytes and its answer read by Content-Length.
  No timeouts, redirects, decompression, chunked answers or error handling: a baseline of what
  any HTTP exchange costs from Python's event loop on this machine, not a client.

CPU of this process per request (time.process_time), median of the rounds, with the ratio.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from yarl import URL

from bench.common import median, table
from bench.poll import _settings
from bench.procs import simulator
from exporter import selfmetrics
from exporter.config import Settings, client_settings
from exporter.kazoo import KazooClient
from exporter.poller import Poller

LATENCY = 0.02
AT_ONCE = 10

_Request = tuple[str, URL, dict[str, str], Any]


async def _recorded(client: KazooClient, settings: Settings) -> list[_Request]:
    """The requests of one poll after discovery, exactly as the client sends them."""
    poller = Poller(settings, client, selfmetrics.create(process=False))
    requests: list[_Request] = []
    send = client._attempt

    async def record(method: str, target: URL, headers: dict[str, str], body: Any) -> tuple[int, bytes | None, str | None]:
        requests.append((method, target, dict(headers), body))
        return await send(method, target, headers, body)

    await poller.poll()  # discovery, cached afterwards: the next poll is the usual one
    client._attempt = record  # type: ignore[method-assign, assignment]
    try:
        await poller.poll()
    finally:
        client._attempt = send  # type: ignore[method-assign]
    return requests


async def _client_round(client: KazooClient, requests: list[_Request]) -> None:
    slots = asyncio.Semaphore(AT_ONCE)

    async def one(method: str, target: URL, headers: dict[str, str], body: Any) -> None:
        async with slots:
            code, content, _ = await client._attempt(method, target, headers, body)
        assert code == 200 and content, f"kazoo client: HTTP {code} for {method} {target}"

    await asyncio.gather(*(one(*r) for r in requests))


def _as_bytes(requests: list[_Request], session_headers: dict[str, str]) -> list[bytes]:
    """Each request as the bytes of an HTTP/1.1 request with the client's headers (the body as aiohttp's json=)."""
    written = []
    for method, target, headers, body in requests:
        data = b"" if body is None else json.dumps(body).encode()
        fields = {"Host": f"{target.host}:{target.port}", **session_headers, **headers, "Content-Length": str(len(data))}
        if body is not None:
            fields["Content-Type"] = "application/json"
        head = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        written.append(f"{method} {target.raw_path_qs} HTTP/1.1\r\n{head}\r\n".encode() + data)
    return written


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _bare_exchange(connection: Connection, request: bytes) -> None:
    reader, writer = connection
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status, *fields = head.split(b"\r\n")
    assert status.split(b" ")[1] == b"200", f"bare: {status.decode(errors='replace')}"
    lengths = [int(line.split(b":", 1)[1]) for line in fields if line.lower().startswith(b"content-length:")]
    assert lengths, "bare: an answer without Content-Length (this baseline reads no chunked answer)"
    answer = await reader.readexactly(lengths[0])  # read outside the assert: python -O drops asserts
    assert answer, "bare: an empty answer"


async def _bare_round(connections: list[Connection], requests: list[bytes]) -> None:
    pending = iter(requests)  # shared: each connection takes the next request when its answer is read

    async def serve(connection: Connection) -> None:
        for request in pending:
            await _bare_exchange(connection, request)

    await asyncio.gather(*(serve(c) for c in connections))


async def _rounds(url: str, key: str, master: str, rounds: int) -> tuple[int, dict[str, list[float]]]:
    settings = _settings(url, key, master)
    client = KazooClient(client_settings(settings))
    connections: list[Connection] = []
    try:
        requests = await _recorded(client, settings)
        written = _as_bytes(requests, dict(client._session().headers))
        base = URL(url)
        connections = [await asyncio.open_connection(base.host, base.port) for _ in range(AT_ONCE)]
        # A first round of each, not timed: every connection opened and used once on both sides.
        await _client_round(client, requests[:AT_ONCE])
        await _bare_round(connections, written[:AT_ONCE])
        per_request: dict[str, list[float]] = {"kazoo client": [], "bare": []}
        exchanges: dict[str, Callable[[], Awaitable[None]]] = {
            "kazoo client": lambda: _client_round(client, requests), "bare": lambda: _bare_round(connections, written)}
        for _ in range(rounds):  # in turn, so that both see the same spells of the machine
            for name, exchange in exchanges.items():
                used = time.process_time()
                await exchange()
                per_request[name].append((time.process_time() - used) / len(requests))
        return len(requests), per_request
    finally:
        for _, writer in connections:
            writer.close()
        await client.aclose()


def run(accounts: int = 1000, queues: int = 50, rounds: int = 5) -> dict[str, float]:
    with simulator(accounts, queues, latency=LATENCY) as sim:
        requests, per_request = asyncio.run(_rounds(sim.url, sim.api_key, sim.master_account_id, rounds))
    client, bare = per_request["kazoo client"], per_request["bare"]
    return {"queues": accounts * queues, "requests": requests, "client": median(client), "client_min": min(client),
            "client_max": max(client), "bare": median(bare), "bare_min": min(bare), "bare_max": max(bare),
            "ratio": median([a / b for a, b in zip(client, bare, strict=True)])}


def report(r: dict[str, float]) -> str:
    us = 1e6
    rows = [[label, f"{r[key] * us:.0f} ({r[key + '_min'] * us:.0f}-{r[key + '_max'] * us:.0f})",
             f"{r[key] * r['requests']:.2f}"] for label, key in (("kazoo client (aiohttp)", "client"), ("bare", "bare"))]
    return "\n".join([
        f"CPU per Kazoo request ({int(r['requests']):,} requests of a poll of {int(r['queues']):,} queues; simulator "
        f"latency {LATENCY * 1000:.0f} ms, {AT_ONCE} at once; median (min-max) of the rounds)",
        table(["client", "CPU per request us", "CPU per poll s"], rows),
        f"kazoo client / bare, round by round: {r['ratio']:.1f}x (median)",
    ])


if __name__ == "__main__":
    print(report(run()))
