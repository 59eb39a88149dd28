"""Basic auth under a flood of wrong passwords (issue 12 item 10): a good credential not yet cached
is still answered within Prometheus' default scrape timeout, and failures never evict a success."""

from __future__ import annotations

import asyncio
import base64
import itertools
from pathlib import Path

import bcrypt
import httpx
import yaml

from exporter.web import BasicAuth, WebHandlers, WebServer

PASSWORD = "scrape-secret"
SCRAPE_TIMEOUT = 10.0  # Prometheus' default scrape_timeout
FLOOD = 200


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_failures_never_evict_a_cached_success():
    auth = BasicAuth({"prometheus": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()})
    good = basic("prometheus", PASSWORD)
    assert auth.check(good)
    for n in range(1100):  # more distinct failures than the cache holds
        assert not auth.check(basic("prometheus" if n % 2 else f"user{n}", f"wrong-{n}"))
    assert auth.cached(good) is True  # answered without a bcrypt


async def test_a_good_credential_is_answered_within_a_scrape_timeout_under_a_flood(tmp_path: Path):
    # Cost 10, what htpasswd -B and the toolkit's docs use: ~70 ms a check, 14 s for 200 in a row.
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    config = tmp_path / "web.yml"
    config.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": hashed}}))
    handlers = WebHandlers(lambda accept, encoding: (b"up 1\n", {"Content-Type": "text/plain"}),
                           lambda: "", lambda: True, lambda: True)
    server = await WebServer.start(handlers, "127.0.0.1:0", str(config))
    url = f"http://127.0.0.1:{server.bound[0][1]}/metrics"
    passwords = itertools.count()
    statuses: list[int] = []
    stop = asyncio.Event()

    async def attacker(client: httpx.AsyncClient, n: int) -> None:
        user = "prometheus" if n % 2 else f"intruder{n}"  # known and unknown users alike
        while not stop.is_set():
            try:
                response = await client.get(url, headers={"Authorization": basic(user, f"guess-{next(passwords)}")})
                statuses.append(response.status_code)
            except httpx.HTTPError:
                statuses.append(0)
            if statuses[-1] != 401:
                await asyncio.sleep(0.25)  # refused at once: come back, as a flood does

    # The flood comes from another loopback address than the scrape, as it would from another host.
    flood_transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2",
                                               limits=httpx.Limits(max_connections=FLOOD))
    try:
        async with httpx.AsyncClient(transport=flood_transport, timeout=120) as flood_client, \
                httpx.AsyncClient(timeout=SCRAPE_TIMEOUT) as prometheus:
            flood = [asyncio.create_task(attacker(flood_client, n)) for n in range(FLOOD)]
            while len(statuses) < FLOOD:  # the flood is under way: every attacker has had an answer
                await asyncio.sleep(0.05)
            # httpx raises ReadTimeout past SCRAPE_TIMEOUT: the scrape would have failed.
            response = await prometheus.get(url, auth=("prometheus", PASSWORD))
            assert response.status_code == 200 and response.text == "up 1\n"
            stop.set()
            await asyncio.gather(*flood)
    finally:
        await server.stop()
    assert 401 in statuses and 429 in statuses  # wrong ones were checked; the excess refused unchecked
