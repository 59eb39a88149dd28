"""The landing page ("/"): version, what is polled, accounts and links."""

from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING

from exporter import __version__

if TYPE_CHECKING:
    from exporter.config import Settings
    from exporter.snapshot import Snapshot


def landing_page(settings: Settings, snapshot: Snapshot) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(a.account_id)}</td><td>{'up' if a.up else 'down: ' + html.escape(a.error or '')}</td>"
        f"<td>{a.queue_count if a.queue_count is not None else '-'}</td>"
        f"<td>{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(a.last_success)) if a.last_success else 'never'}"
        "</td></tr>"
        for a in sorted(snapshot.accounts.values(), key=lambda a: a.account_id)
    )
    path = html.escape(settings.metrics_path)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>qubicle-exporter</title></head><body>"
        f"<h1>qubicle-exporter {html.escape(__version__)}</h1>"
        f"<p>Polling {html.escape(settings.kazoo_url or '')} every {settings.interval:g}s"
        f"{' (demo simulator)' if settings.demo.enabled else ''}.</p>"
        f"<p><a href='{path}'>Metrics</a> · <a href='/-/healthy'>Health</a> · <a href='/-/ready'>Ready</a></p>"
        "<table border='1' cellpadding='4'><tr><th>account</th><th>last poll</th><th>queues</th>"
        f"<th>last success</th></tr>{rows}</table></body></html>"
    )
