"""The wallboard in a real browser: Debian's chromium driven by Playwright, against `--demo`.

Every wait is on a state of the page with a generous deadline (a loaded 2-core machine), never a
count of updates within a time window.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from conftest import ExporterProcess, exporter_process
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

pytestmark = pytest.mark.e2e

XSS = "<img src=x onerror=alert(1)>"
WAIT_MS = 60_000


def new_page(browser: Browser, width: int = 1920, height: int = 1080) -> tuple[Page, list[str]]:
    page = browser.new_page(viewport={"width": width, "height": height})
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return page, dialogs


def simulator_url(exporter: ExporterProcess) -> str:
    for line in exporter.logs().splitlines():
        if '"demo_simulator"' in line:
            return str(json.loads(line)["url"])
    raise AssertionError("the demo logged no simulator URL")


def queues(exporter: ExporterProcess) -> list[tuple[str, str, str]]:
    doc = exporter.get("/api/v1/queues").json()
    return [(a["id"], q["id"], q["name"]) for a in doc["accounts"] for q in a["queues"]]


ROWS = "#board tbody tr"


SPILL = """() => [...document.querySelectorAll('#board tbody td')].flatMap(td => {
        const box = td.getBoundingClientRect();
        // Text cut with an ellipsis (a long queue name) is shown as cut, on purpose; text running
        // past its box is not.
        return [td, ...td.querySelectorAll('span')].filter(s => {
            const r = s.getBoundingClientRect(), runs = getComputedStyle(s).overflowX === 'visible';
            return r.right > box.right + 0.5 || r.bottom > box.bottom + 0.5 || r.left < box.left - 0.5
                || (runs && s.scrollWidth > s.clientWidth + 0.5);
        }).map(s => s === td ? `cell: ${td.textContent}` : s.textContent);
    })"""


def assert_cells_hold_their_text(page: Page) -> None:
    """Nothing in a cell runs into the next column or row (the agents' line under "Ready / in")."""
    try:  # the page fits its rows to the screen at its next draw (every second)
        page.wait_for_function(f"() => ({SPILL})().length === 0", timeout=15_000)
    except PlaywrightTimeoutError:
        pass
    spill = page.evaluate(SPILL)
    assert spill == [], f"{page.viewport_size}: {spill}"


def assert_fits(page: Page, rows: int | None = None) -> None:
    """No scrollbar, and every row inside the viewport."""
    fit = page.evaluate("""() => {
        const main = document.querySelector('main'), root = document.documentElement;
        const rows = [...document.querySelectorAll('#board tbody tr')].map(r => r.getBoundingClientRect().bottom);
        return {rootScroll: root.scrollHeight - root.clientHeight, mainScroll: main.scrollHeight - main.clientHeight,
                lowest: Math.max(0, ...rows), height: innerHeight, rows: rows.length};
    }""")
    assert rows is None or fit["rows"] == rows, fit
    assert fit["rootScroll"] <= 0 and fit["mainScroll"] <= 0 and fit["lowest"] <= fit["height"], fit


def test_wallboard_live_in_chromium(browser):
    # 15 s of max-data-age: the stale banner shows for ~14 s (the page reads the API every second)
    # before the figures go; a generous window on a loaded machine.
    args = ("--demo", "--demo-speed", "60", "--interval", "1", "--discovery-interval", "1", "--max-data-age", "15")
    with exporter_process(*args) as exporter:
        page, dialogs = new_page(browser)
        page.goto(exporter.url + "/wallboard")

        # Rows for every queue appear (2 accounts x 4 queues), each with its account and queue name.
        expect(page.locator(ROWS)).to_have_count(8, timeout=WAIT_MS)
        listed = queues(exporter)
        for account_id, queue_id, name in listed:
            row = page.locator(f'{ROWS}[data-queue="{queue_id}"]')
            expect(row.locator(".name")).to_have_text(name)
            expect(row.locator(".account")).to_have_text(account_id)  # the name seam: ids until names exist
        # Waits read m:ss.
        expect(page.locator(f"{ROWS} td:nth-child(4)").first).to_have_text(re.compile(r"^\d+:\d\d$"))
        # Under "Ready / in", the queue's logged-in agents by state, once Kazoo's agent status is read.
        expect(page.locator(f"{ROWS} td:nth-child(5) .sub").first).to_have_text(
            re.compile(r"^\d+\s(ready|ringing|on\scall|wrapup|away)( · \d+\s(ready|ringing|on\scall|wrapup|away))*$"),
            timeout=WAIT_MS)

        # Figures change after a poll, without a reload.
        before = page.locator("#board tbody").inner_text()
        page.wait_for_function("t => document.querySelector('#board tbody').innerText !== t", arg=before,
                               timeout=WAIT_MS)
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1

        # Colour where an alert stands behind a figure: a burst of abandons pushes the share over
        # the critical threshold (25 %, with at least 10 callers); the calls beside it stay plain.
        sim = simulator_url(exporter)
        account_id, queue_id, _ = listed[0]
        httpx.post(f"{sim}/sim/burst", json={"account_id": account_id, "queue_id": queue_id,
                                             "outcome": "abandoned", "count": 500}, timeout=10).raise_for_status()
        row = page.locator(f'{ROWS}[data-queue="{queue_id}"]')
        expect(row.locator("td:nth-child(9)")).to_have_class(re.compile(r"\bcritical\b"), timeout=WAIT_MS)
        expect(row.locator("td:nth-child(6)")).not_to_have_class(re.compile(r"warning|critical"))

        # A queue named with markup is shown as that text: no element, no dialog.
        xss_account, xss_queue, _ = [q for q in listed if q[2] == "Reception"][-1]
        httpx.post(f"{sim}/sim/rename", json={"account_id": xss_account, "queue_id": xss_queue, "name": XSS},
                   timeout=10).raise_for_status()
        expect(page.locator(f'{ROWS}[data-queue="{xss_queue}"] .name')).to_have_text(XSS, timeout=WAIT_MS)
        assert page.locator("#board img").count() == 0
        assert dialogs == []

        # 8 queues fit a 1920x1080 screen: no scrollbar, every row inside the viewport, and the
        # agents by state stay in their column, however many states a queue has.
        assert_fits(page, rows=8)
        expect(page.locator(f"{ROWS} td:nth-child(5) .sub")).to_have_count(8, timeout=WAIT_MS)
        assert_cells_hold_their_text(page)
        # The same on other screens: a small TV, an old 4:3 monitor, a 4K TV.
        for width, height in ((1280, 720), (1024, 768), (3840, 2160)):
            page.set_viewport_size({"width": width, "height": height})
            assert_cells_hold_their_text(page)
        page.set_viewport_size({"width": 1920, "height": 1080})

        # A filtered board: only the queues asked for (several allowed), by name.
        filtered, _ = new_page(browser)
        filtered.goto(exporter.url + "/wallboard?queue=Support&queue=Sales&sort=name")
        expect(filtered.locator(ROWS)).to_have_count(4, timeout=WAIT_MS)
        expect(filtered.locator(f"{ROWS} .name")).to_have_text(["Sales", "Support", "Sales", "Support"])
        filtered.close()

        # Kazoo stops: first a banner over figures shown as old, then the figures are hidden.
        httpx.put(f"{sim}/sim/faults", json={"down": True}, timeout=10).raise_for_status()
        expect(page.locator(".banner.stale").first).to_contain_text("Kazoo not answering", timeout=WAIT_MS)
        expect(page.locator(f"{ROWS}.stale").first).to_be_visible()
        assert_fits(page)  # the banner takes room from the rows, not a scrollbar
        expect(page.locator(ROWS)).to_have_count(0, timeout=WAIT_MS)
        expect(page.locator(".banner").first).to_contain_text("figures hidden")
        assert dialogs == []


def test_wallboard_hides_figures_when_the_exporter_goes_away(browser):
    # The page applies --max-data-age itself: with the exporter gone, the last figures are not
    # left on the screen as if live.
    with exporter_process("--demo", "--interval", "1", "--max-data-age", "4") as exporter:
        page, _ = new_page(browser)
        page.goto(exporter.url + "/wallboard")
        expect(page.locator(ROWS)).to_have_count(8, timeout=WAIT_MS)
        exporter.proc.terminate()
        exporter.proc.wait(timeout=10)
        expect(page.locator(".banner").first).to_contain_text("Exporter not answering", timeout=WAIT_MS)
        expect(page.locator(ROWS)).to_have_count(0, timeout=WAIT_MS)


def test_wallboard_colours_with_the_users_thresholds_and_shows_estimated_waits(browser, make_simulator, tmp_path):
    # A Kazoo that sends no longest wait, and thresholds overridden for one account: the board
    # colours the other account's abandon share, not this one's, however high.
    sim = make_simulator(accounts=2, queues_per_account=2, seed=3, speed=10, longest_wait=False)
    quiet, loud = sim.account_ids
    overrides = tmp_path / "overrides.yml"
    overrides.write_text(json.dumps({"groups": [{"name": "o", "rules": [
        {"record": f"qubicle:abandon_ratio_threshold:{level}", "expr": "vector(1)", "labels": {"account_id": quiet}}
        for level in ("warning", "critical")]}]}))
    key = tmp_path / "key"
    key.write_text(sim.api_key)
    args = ["--kazoo-url", sim.url, "--api-key-file", str(key), "--account-id", quiet, "--account-id", loud,
            "--interval", "1", "--alert-thresholds", str(overrides)]
    with exporter_process(*args) as exporter:
        for account_id in (quiet, loud):
            queue_id = sim.queues(account_id)[0][0]
            sim.burst(account_id, queue_id, "abandoned", 500)
        page, _ = new_page(browser)
        page.goto(exporter.url + "/wallboard")
        expect(page.locator(ROWS)).to_have_count(4, timeout=WAIT_MS)
        loud_share = page.locator(f'{ROWS}[data-queue="{sim.queues(loud)[0][0]}"] td:nth-child(9)')
        quiet_share = page.locator(f'{ROWS}[data-queue="{sim.queues(quiet)[0][0]}"] td:nth-child(9)')
        expect(loud_share).to_have_class(re.compile(r"\bcritical\b"), timeout=WAIT_MS)
        expect(quiet_share).to_have_text(re.compile(r"^(9\d|100) %$"), timeout=WAIT_MS)
        expect(quiet_share).not_to_have_class(re.compile(r"warning|critical"))
        # No longest wait from Kazoo: the column shows the estimated wait, and says so.
        for cell in page.locator(f"{ROWS} td:nth-child(3)").all():
            expect(cell).to_have_text(re.compile(r"^\d+:\d\destimated$"))
