"""rate_limit as the exporter-toolkit defines it: `burst` requests at once, then one more per `interval`.

Through the server for what a scraper sees (429), and the bucket itself on a clock the test moves,
so that its boundaries (exactly one token, exactly one interval) do not depend on the machine's speed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from helpers_web import served_with_web_config

from exporter.web import RateLimiter

DEADLINE = 30.0


@asynccontextmanager
async def server(tmp_path: Path, rate_limit: dict[str, Any]) -> AsyncIterator[str]:
    async with served_with_web_config(tmp_path, {"rate_limit": rate_limit}) as port:
        yield f"http://127.0.0.1:{port}/metrics"


async def test_a_burst_of_one_lets_one_request_through(tmp_path):
    async with server(tmp_path, {"interval": "1h", "burst": 1}) as url, httpx.AsyncClient() as client:
        statuses = [(await client.get(url)).status_code for _ in range(3)]
    assert statuses == [200, 429, 429]


async def test_a_refused_client_is_let_in_again_after_the_interval(tmp_path):
    async with server(tmp_path, {"interval": "2s", "burst": 1}) as url, httpx.AsyncClient() as client:
        assert (await client.get(url)).status_code == 200
        refused = (await client.get(url)).status_code
        deadline = time.monotonic() + DEADLINE
        while (status := (await client.get(url)).status_code) != 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    # The second request came well within 2 s on any machine this runs on, the last after it.
    assert (refused, status) == (429, 200)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def allowed(limiter: RateLimiter, n: int) -> list[bool]:
    return [limiter.allow() for _ in range(n)]


def test_the_burst_is_exact():
    assert allowed(RateLimiter(10.0, 3, Clock()), 5) == [True, True, True, False, False]
    assert allowed(RateLimiter(10.0, 1, Clock()), 2) == [True, False]


def test_one_request_more_per_interval_and_never_more_than_the_burst():
    clock = Clock()
    limiter = RateLimiter(10.0, 2, clock)
    assert allowed(limiter, 3) == [True, True, False]
    clock.now += 9.0  # 0.9 of a token
    assert allowed(limiter, 1) == [False]
    clock.now += 1.0  # exactly one token (0.9 + 0.1): refusals do not lose what had refilled
    assert allowed(limiter, 2) == [True, False]
    clock.now += 15.0  # one and a half tokens
    assert allowed(limiter, 2) == [True, False]
    clock.now += 5.0  # the half left plus half a token: one
    assert allowed(limiter, 2) == [True, False]
    clock.now += 3600.0  # a long quiet time refills the burst, no more
    assert allowed(limiter, 3) == [True, True, False]
