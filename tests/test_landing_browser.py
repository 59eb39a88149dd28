"""The landing page in a real browser: Debian's chromium driven by Playwright.

A real exporter on the demo simulator: the page shows every account up with a UTC last-poll time,
and its links lead where they say. Hostile account names and reasons render as text: no element,
no script run.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

import pytest
from conftest import exporter_process
from playwright.sync_api import Browser, expect

from exporter.config import Settings
from exporter.snapshot import AccountSnapshot, Snapshot
from exporter.web import landing_page

pytestmark = pytest.mark.e2e

WAIT_MS = 60_000
UTC_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")


def test_landing_page_of_a_running_exporter(browser: Browser):
    with exporter_process("--demo", "--interval", "1") as exporter:
        page = browser.new_page()
        page.goto(exporter.url + "/")
        expect(page).to_have_title("qubicle-exporter")
        summary = page.locator("#summary")
        # Wait on the state (both demo accounts polled and up), reloading: the page is static HTML.
        for _ in range(60):
            if re.search(r"2 of 2 accounts up\.$", summary.inner_text()):
                break
            page.wait_for_timeout(500)
            page.reload()
        expect(summary).to_have_text(re.compile(r"^Last poll finished .* UTC \(\d+s ago\): 2 of 2 accounts up\.$"))
        rows = page.locator("table tbody tr")
        expect(rows).to_have_count(2)
        for n in range(2):
            cells = rows.nth(n).locator("td")
            expect(cells.nth(1)).to_have_text("up")
            expect(cells.nth(3)).to_have_text(UTC_TIME)  # last poll: a time, not "up"
            expect(cells.nth(4)).to_have_text(UTC_TIME)  # last success
        for name, path, text in (("Health", "/-/healthy", "OK"), ("Ready", "/-/ready", "Ready"),
                                 ("Metrics", "/metrics", "qubicle_exporter")):
            page.goto(exporter.url + "/")
            page.get_by_role("link", name=name, exact=True).click()
            page.wait_for_url(exporter.url + path, timeout=WAIT_MS)
            expect(page.locator("body")).to_contain_text(text, timeout=WAIT_MS)
        page.goto(exporter.url + "/")
        expect(page.get_by_role("link", name="Wallboard", exact=True)).to_have_attribute("href", "/wallboard")
        page.close()


def test_hostile_names_render_as_text(browser: Browser):
    hostile = "<img src=x onerror=alert(1)>"
    snapshot = Snapshot(taken_at=1_790_000_000.0, accounts=MappingProxyType({
        "a" * 32: AccountSnapshot("a" * 32, up=False, error=hostile),
        "<script>alert(2)</script>": AccountSnapshot("<script>alert(2)</script>", up=True),
    }))
    html = landing_page(Settings(kazoo_url="https://kazoo.example"), snapshot, names={"a" * 32: hostile})
    page = browser.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.set_content(html)
    expect(page.locator("table tbody tr")).to_have_count(2)
    expect(page.locator("table tbody")).to_contain_text(hostile)
    expect(page.locator("table tbody")).to_contain_text("<script>alert(2)</script>")
    assert page.locator("table img, table script").count() == 0
    page.wait_for_timeout(500)  # an onerror would have fired by now; a guard, not a measurement
    assert dialogs == []
    page.close()
