"""The landing page ("/"): version, what is polled, every account's state, and links.

Every value that comes from outside (account ids and names, error reasons, the Kazoo URL, the
metrics path) goes through html.escape: an account name is whatever someone typed into Kazoo.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from exporter import __version__

if TYPE_CHECKING:
    from exporter.config import Settings
    from exporter.snapshot import AccountSnapshot, Snapshot

WALLBOARD_PATH = "/wallboard"  # served by exporter/wallboard
# The docs ship with the source, not with this process, and where a reader's copy lives is not
# known here: the page names them rather than linking a guessed URL.
DOCS = ("README.md", "docs/architecture.md", "docs/alerts.md", "docs/runbooks.md", "docs/dashboards.md")

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
    "table{border-collapse:collapse}th,td{border:1px solid #bbb;padding:.3em .6em;text-align:left}"
    ".up{color:#176117}.down{color:#a31515;font-weight:bold}code{font-size:.9em}"
)


def _utc(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp)) if timestamp else "never"


def _public_url(url: str | None) -> str:
    """The Kazoo URL without user info, query or fragment: a password in the URL stays off the page."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _account_cell(account: AccountSnapshot, names: Mapping[str, str]) -> str:
    # The account's name as the poller read it from Kazoo (AccountSnapshot.name), unless `names`
    # gives one; the id alone until a name is known.
    account_id = html.escape(account.account_id)
    name = names.get(account.account_id) or account.name
    if not name:
        return f"<td><code>{account_id}</code></td>"
    return f"<td>{html.escape(name)}<br><code>{account_id}</code></td>"


def _state_cell(account: AccountSnapshot) -> str:
    if account.up:
        return "<td class='up'>up</td>"
    return f"<td class='down'>down: {html.escape(account.error or 'unknown')}</td>"


def landing_page(settings: Settings, snapshot: Snapshot, *, names: Mapping[str, str] | None = None,
                 now: float | None = None) -> str:
    """The HTML of "/". Every account of the snapshot was polled by the poll that made it, so
    the snapshot's time is each account's last poll; last success is the account's own."""
    names = names or {}
    now = time.time() if now is None else now
    accounts = sorted(snapshot.accounts.values(), key=lambda a: a.account_id)
    polled = snapshot.taken_at or None
    rows = "".join(
        f"<tr>{_account_cell(a, names)}{_state_cell(a)}"
        f"<td>{a.queue_count if a.queue_count is not None else '-'}</td>"
        f"<td>{_utc(polled)}</td><td>{_utc(a.last_success)}</td></tr>"
        for a in accounts
    )
    if polled is None:
        summary = "No poll has finished yet."
    else:
        up = sum(1 for a in accounts if a.up)
        summary = (f"Last poll finished {_utc(polled)} ({max(0.0, now - polled):.0f}s ago): "
                   f"{up} of {len(accounts)} accounts up.")
    metrics = html.escape(settings.metrics_path)
    docs = ", ".join(f"<code>{d}</code>" for d in DOCS)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>qubicle-exporter</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>qubicle-exporter {html.escape(__version__)}</h1>"
        f"<p>Polling <code>{html.escape(_public_url(settings.kazoo_url))}</code> every {settings.interval:g}s"
        f"{' (demo simulator)' if settings.demo.enabled else ''}.</p>"
        "<nav><ul>"
        f"<li><a href='{metrics}'>Metrics</a> (<code>{metrics}</code>, for Prometheus)</li>"
        f"<li><a href='{WALLBOARD_PATH}'>Wallboard</a> (every queue, full screen)</li>"
        "<li><a href='/-/healthy'>Health</a> (<code>/-/healthy</code>)</li>"
        "<li><a href='/-/ready'>Ready</a> (<code>/-/ready</code>: at least one successful poll)</li>"
        "</ul></nav>"
        f"<p>Documentation ships with the qubicle-exporter source, not with this process: {docs}.</p>"
        f"<h2>Accounts</h2><p id='summary'>{summary}</p>"
        "<table><thead><tr><th>account</th><th>state</th><th>queues</th><th>last poll</th>"
        f"<th>last success</th></tr></thead><tbody>{rows}</tbody></table></body></html>"
    )
