"""What one hostile answer costs the exporter's Kazoo client: peak memory and the longest stall of the
event loop (what a scrape would wait), each case in a fresh process, over loopback.

Cases (issue 12): a listing just under the answer cap (decoded in full: the largest stall there is),
a 200 MB JSON body with and without a Content-Length, and a 1 GiB gzip bomb (refused at the cap).

    python -m bench.hostile
"""

from __future__ import annotations

import asyncio
import gzip
import json
import multiprocessing
import resource
import time
from dataclasses import dataclass

from aiohttp import web

from exporter.kazoo import ClientSettings, Credentials, KazooClient, KazooError
from exporter.kazoo.client import MAX_ANSWER_BYTES

ACCOUNT = "a" * 32


@dataclass
class Result:
    case: str
    body_mb: float
    outcome: str
    seconds: float
    longest_stall_ms: float
    peak_rss_mb: float


def _rows(size: int) -> bytes:
    rows, total, i = [], 40, 0
    while True:
        row = {"id": f"{i:032x}", "name": f"Queue number {i}", "queue_type": "queue_basic"}
        total += len(json.dumps(row)) + 2
        if total > size:
            break
        rows.append(row)
        i += 1
    return json.dumps({"status": "success", "data": rows}).encode()


def _body(case: str) -> tuple[bytes, dict[str, str]]:
    if case == "listing at the cap":
        return _rows(MAX_ANSWER_BYTES - 1024), {}
    if case.startswith("200 MB JSON"):
        return _rows(200 * 1000 * 1000), {}
    # 1 GiB of spaces in a JSON string, about 1 MB compressed.
    return gzip.compress(b'{"data": "' + b" " * (1024 ** 3) + b'"}', compresslevel=9), {"Content-Encoding": "gzip"}


def _serve(case: str, ports: multiprocessing.Queue) -> None:
    """The hostile server, in its own process: its work must not count as the client's."""
    body, headers = _body(case)

    async def answer(request: web.Request) -> web.StreamResponse:
        if not case.endswith("chunked"):
            return web.Response(body=body, headers={"Content-Type": "application/json", **headers})
        response = web.StreamResponse(headers={"Content-Type": "application/json"})  # no Content-Length
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 1 << 20):
            await response.write(body[start:start + (1 << 20)])
        return response

    async def main() -> None:
        app = web.Application()
        app.router.add_get(f"/v2/accounts/{ACCOUNT}/qubicle_queues", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        ports.put((runner.addresses[0][1], len(body)))
        await asyncio.Event().wait()

    asyncio.run(main())


async def _measure(case: str, port: int, size: int) -> Result:
    stalls: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:  # what a scrape would see: the loop's longest absence
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            stalls.append(now - last - 0.005)
            last = now

    tick = asyncio.create_task(ticker())
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    settings = ClientSettings(f"http://127.0.0.1:{port}", Credentials(token="bench"), retries=0, read_timeout=60)
    started = time.perf_counter()
    async with KazooClient(settings) as client:
        try:
            queues = await client.list_queues(ACCOUNT)
            outcome = f"{len(queues)} queues"
        except KazooError as exc:
            outcome = f"refused ({exc.reason})"
    seconds = time.perf_counter() - started
    done.set()
    await tick
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return Result(case, size / 1e6, outcome, seconds, max(stalls, default=0) * 1000, (peak - base) / 1024)


def _client(case: str, port: int, size: int, results: multiprocessing.Queue) -> None:
    results.put(asyncio.run(_measure(case, port, size)))


def run() -> list[Result]:
    results = []
    context = multiprocessing.get_context("spawn")
    for case in ("listing at the cap", "200 MB JSON", "200 MB JSON, chunked", "1 GiB gzip bomb"):
        ports, answers = context.Queue(), context.Queue()
        server = context.Process(target=_serve, args=(case, ports), daemon=True)
        server.start()
        try:
            port, size = ports.get(timeout=600)
            client = context.Process(target=_client, args=(case, port, size, answers))
            client.start()
            results.append(answers.get(timeout=600))
            client.join()
        finally:
            server.terminate()
            server.join()
    return results


def report(results: list[Result]) -> str:
    lines = [f"answer cap {MAX_ANSWER_BYTES / 2**20:g} MiB",
             "| case | body offered (MB) | outcome | seconds | longest loop stall (ms) | RSS growth (MB) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r.case} | {r.body_mb:.1f} | {r.outcome} | {r.seconds:.2f} | {r.longest_stall_ms:.0f} | "
              f"{r.peak_rss_mb:.0f} |" for r in results]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(run()))
