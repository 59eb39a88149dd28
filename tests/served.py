"""What /metrics serves, assembled the way exporter.app.serve assembles it.

Tests that check escaping, staleness or label values read these bytes, not prometheus-client's
generate_latest(collect()): the fast renderer is what users get, so it is what must be right.
This is the one place to adapt when the exposition's construction changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from exporter.collector import SnapshotCollector
from exporter.exposition import Exposition
from exporter.snapshot import Snapshot


def served_exposition(get_snapshot: Callable[[], Snapshot], max_data_age: float,
                      live_registry: CollectorRegistry | None = None,
                      clock: Callable[[], float] = time.time) -> Exposition:
    snapshot_registry = CollectorRegistry(auto_describe=False)
    collector = SnapshotCollector(get_snapshot, max_data_age, clock=clock)
    snapshot_registry.register(collector)
    return Exposition(snapshot_registry, live_registry or CollectorRegistry(), render_snapshot=collector.render_chunks)


def served_text(exposition: Exposition, openmetrics: bool = False) -> str:
    """One scrape's body after a fresh poll (refresh() is what the poller's on_snapshot calls)."""
    exposition.refresh()
    accept = "application/openmetrics-text; version=1.0.0" if openmetrics else None
    body, _ = exposition.render(accept, None)
    return body.decode("utf-8")
