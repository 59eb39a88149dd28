"""The landing page over HTTP from a real server: links, every account's state, last poll and last
success as UTC times, names escaped; and a real exporter process on the simulator."""

from __future__ import annotations

import calendar
import time
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from types import MappingProxyType

import httpx
import pytest
from conftest import exporter_process

from exporter.config import Settings
from exporter.snapshot import AccountSnapshot, Snapshot
from exporter.web import WebHandlers, WebServer, landing_page

TAKEN_AT = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC
SUCCESS_AT = TAKEN_AT - 125


class Page(HTMLParser):
    """The links, the table's cells row by row, the summary, and all text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.links: dict[str, str] = {}
        self.rows: list[list[str]] = []
        self.summary = ""
        self._href: str | None = None
        self._cell: list[str] | None = None
        self._in_summary = False
        self.tags: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "a":
            self._href = a.get("href")
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "p" and a.get("id") == "summary":
            self._in_summary = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join(" ".join(self._cell).split()))
            self._cell = None
        elif tag == "p":
            self._in_summary = False

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self.links[data.strip()] = self._href
            self._href = None
        if self._cell is not None:
            self._cell.append(data)
        if self._in_summary:
            self.summary += data


HOSTILE = "<script>alert(1)</script>"
SETTINGS = Settings(kazoo_url="https://admin:hunter2@kazoo.example:8443/v2?x=1", interval=10)
SNAPSHOT = Snapshot(taken_at=TAKEN_AT, accounts=MappingProxyType({
    "a" * 32: AccountSnapshot("a" * 32, up=True, last_success=TAKEN_AT, data_time=TAKEN_AT, queue_count=4),
    "b" * 32: AccountSnapshot("b" * 32, up=False, last_success=SUCCESS_AT, queue_count=3, error="timeout"),
    "c" * 32: AccountSnapshot("c" * 32, up=False, error=HOSTILE),
    "d<img src=x>": AccountSnapshot("d<img src=x>", up=True, last_success=TAKEN_AT, queue_count=0),
}))
NAMES = {"a" * 32: "Support & Sales", "b" * 32: HOSTILE}


@pytest.fixture
async def page_url() -> AsyncIterator[str]:
    handlers = WebHandlers(metrics=lambda accept, encoding: (b"up 1\n", {"Content-Type": "text/plain"}),
                           landing=lambda: landing_page(SETTINGS, SNAPSHOT, names=NAMES, now=TAKEN_AT + 3),
                           healthy=lambda: True, ready=lambda: True)
    server = await WebServer.start(handlers, "127.0.0.1:0")
    host, port = server.bound[0]
    yield f"http://{host}:{port}"
    await server.stop()


async def test_landing_page_links_states_and_times(page_url):
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(page_url + "/")
        assert response.status_code == 200
        page = Page(response.text)
        assert page.links["Metrics"] == "/metrics"
        assert page.links["Wallboard"] == "/wallboard"
        assert page.links["Health"] == "/-/healthy"
        assert page.links["Ready"] == "/-/ready"
        for name in ("Metrics", "Health", "Ready"):  # the wallboard is another module's route
            assert (await client.get(page_url + page.links[name])).status_code == 200, name

    header, *rows = page.rows
    assert header == ["account", "state", "queues", "last poll", "last success"]
    assert rows == [
        ["Support & Sales " + "a" * 32, "up", "4", "2026-09-21 14:13:20 UTC", "2026-09-21 14:13:20 UTC"],
        [HOSTILE + " " + "b" * 32, "down: timeout", "3", "2026-09-21 14:13:20 UTC", "2026-09-21 14:11:15 UTC"],
        ["c" * 32, "down: " + HOSTILE, "-", "2026-09-21 14:13:20 UTC", "never"],
        ["d<img src=x>", "up", "0", "2026-09-21 14:13:20 UTC", "2026-09-21 14:13:20 UTC"],
    ]
    assert page.summary == "Last poll finished 2026-09-21 14:13:20 UTC (3s ago): 2 of 4 accounts up."
    # Hostile names are text, never markup; the Kazoo URL's password stays off the page.
    assert "script" not in page.tags and "img" not in page.tags
    assert "hunter2" not in response.text and "admin" not in response.text
    assert "https://kazoo.example:8443/v2" in response.text
    assert "README.md" in response.text and "docs/runbooks.md" in response.text


async def test_landing_page_before_the_first_poll():
    page = Page(landing_page(Settings(kazoo_url="https://kazoo.example"), Snapshot(taken_at=0.0)))
    assert page.summary == "No poll has finished yet."
    assert page.rows == [["account", "state", "queues", "last poll", "last success"]]


@pytest.mark.e2e
def test_exporter_landing_page_shows_the_last_poll_time():
    """A real exporter on the demo simulator: "last poll" is a time (it once said "up")."""
    started = time.time()
    with exporter_process("--demo", "--interval", "1") as exporter:
        deadline = time.monotonic() + 30
        while True:
            page = Page(exporter.get("/").text)
            if page.summary.endswith("2 of 2 accounts up.") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert page.summary.endswith("2 of 2 accounts up."), page.summary
    rows = page.rows[1:]
    assert len(rows) == 2
    for _account, state, queues, last_poll, last_success in rows:
        assert state == "up" and queues == "4"
        polled = calendar.timegm(time.strptime(last_poll, "%Y-%m-%d %H:%M:%S UTC"))
        assert started - 1 <= polled <= time.time() + 1
        assert last_success != "never"


def test_landing_page_names_accounts_by_their_kazoo_name():
    from dataclasses import replace as with_name

    account = next(iter(SNAPSHOT.accounts.values()))
    named = Snapshot(taken_at=SNAPSHOT.taken_at, accounts=MappingProxyType(
        {account.account_id: with_name(account, name="Acme <Support>")}))
    page = landing_page(SETTINGS, named, now=TAKEN_AT + 3)
    assert "Acme &lt;Support&gt;<br><code>" in page and account.account_id in page
