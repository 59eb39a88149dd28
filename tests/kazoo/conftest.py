"""Fixtures: the fake Crossbar on a free loopback port, a client harness, and the secret guard."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog
from aiohttp import web

from exporter.kazoo import ClientSettings, Credentials, KazooClient, KazooError
from exporter.kazoo import retry as kazoo_retry

from .fake_crossbar import API_KEY, PASSWORD, USER_MD5, FakeCrossbar


async def start(fake: FakeCrossbar, ssl_context: ssl.SSLContext | None = None) -> web.AppRunner:
    """Serves `fake` on a free loopback port; sets fake.url when plain HTTP."""
    app = web.Application(middlewares=[fake.middleware])
    app.router.add_put("/v2/api_auth", fake.api_auth)
    app.router.add_put("/v2/user_auth", fake.user_auth)
    app.router.add_get("/v2/accounts/{account}", fake.account_doc)
    app.router.add_get("/v2/accounts/{account}/qubicle_queues", fake.list_queues)
    app.router.add_get("/v2/accounts/{account}/descendants", fake.list_descendants)
    app.router.add_get("/v2/accounts/{account}/qubicle_queues/status", fake.list_status)
    app.router.add_post("/v2/accounts/{account}/qubicle_queues/status", fake.list_status)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    if ssl_context is None:
        fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    return runner


@pytest.fixture
async def crossbar() -> AsyncIterator[FakeCrossbar]:
    fake = FakeCrossbar()
    runner = await start(fake)
    yield fake
    await runner.cleanup()


@dataclass
class Harness:
    """Builds clients against the fake and records what they report."""

    crossbar: FakeCrossbar
    events: list[tuple[str, str]] = field(default_factory=list)
    reauths: int = 0
    token_refusals: int = 0
    truncated: list[str] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    clients: list[KazooClient] = field(default_factory=list)

    def client(self, credentials: Credentials | None = None, **overrides: Any) -> KazooClient:
        settings: dict[str, Any] = {"retries": 2, "backoff_base": 0.001, "backoff_max": 0.004, "read_timeout": 5.0,
                                    "connect_timeout": 2.0}
        settings.update(overrides)
        base_url = settings.pop("base_url", self.crossbar.url)
        client = KazooClient(ClientSettings(base_url, credentials or Credentials(api_key=API_KEY), **settings),
                             on_request=lambda endpoint, code: self.events.append((endpoint, code)),
                             on_reauthenticate=self._reauthenticated, on_token_refused=self._refused,
                             on_truncated_name=self.truncated.append)
        self.clients.append(client)
        return client

    def _reauthenticated(self) -> None:
        self.reauths += 1

    def _refused(self) -> None:
        self.token_refusals += 1

    async def fails(self, awaitable: Awaitable[Any], kind: type[KazooError]) -> KazooError:
        """Awaits, expects `kind`, and keeps the message and repr for the secret guard."""
        with pytest.raises(kind) as info:
            await awaitable
        self.messages += [str(info.value), repr(info.value)]
        assert "\n" not in str(info.value), "error messages are one line"
        return info.value

    def codes(self, endpoint: str) -> list[str]:
        return [code for e, code in self.events if e == endpoint]


@pytest.fixture
def captured_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every structlog event of the test, whatever an earlier test configured (level included)."""
    old = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    with structlog.testing.capture_logs() as events:
        yield events
    structlog.configure(**old)


@pytest.fixture
async def kazoo(crossbar: FakeCrossbar, captured_logs: list[MutableMapping[str, Any]], caplog: pytest.LogCaptureFixture,
                capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    """The harness; afterwards, no secret may appear in any message, repr, log event or output."""
    caplog.set_level(logging.DEBUG)  # the HTTP library too
    harness = Harness(crossbar)
    real_pause = kazoo_retry.pause

    async def recorded_pause(seconds: float) -> None:
        harness.delays.append(seconds)
        await real_pause(min(seconds, 0.01))  # the delay is asserted, not waited for

    monkeypatch.setattr(kazoo_retry, "pause", recorded_pause)
    yield harness
    for client in harness.clients:
        await client.aclose()
    out = capsys.readouterr()
    haystack = "\n".join([*harness.messages, *(repr(e) for e in captured_logs), caplog.text, out.out, out.err,
                          *(repr(c) for c in harness.clients)])
    secrets = crossbar.secrets_seen | {API_KEY, PASSWORD, USER_MD5}
    leaked = [s[:6] + "..." for s in secrets if s and s in haystack]
    assert not leaked, f"secrets leaked into messages or logs: {leaked}"
