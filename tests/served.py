"""What /metrics serves, assembled the way exporter.app.serve assembles it.

Tests that check escaping, staleness or label values read these bytes, not prometheus-client's
generate_latest(collect()): the fast renderer is what users get, so it is what must be right.
This is the one place to adapt when the exposition's construction changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry

from exporter.exposition import Chunk, Exposition
from exporter.render import LabelCache, render
from exporter.snapshot import Snapshot


class ServedExposition:
    """An Exposition fed the snapshot of `get_snapshot` before each scrape, as the poller feeds it."""

    def __init__(self, get_snapshot: Callable[[], Snapshot], max_data_age: float,
                 live_registry: CollectorRegistry | None = None, clock: Callable[[], float] = time.time) -> None:
        labels = LabelCache()

        def render_snapshot(snapshot: Snapshot, now: float, openmetrics: bool) -> Iterable[Chunk]:
            return render(snapshot, now, max_data_age=max_data_age, openmetrics=openmetrics, labels=labels)

        self.get_snapshot = get_snapshot
        self.exposition = Exposition(live_registry or CollectorRegistry(), render_snapshot,
                                     max_data_age=max_data_age, clock=clock)


def served_exposition(get_snapshot: Callable[[], Snapshot], max_data_age: float,
                      live_registry: CollectorRegistry | None = None,
                      clock: Callable[[], float] = time.time) -> ServedExposition:
    return ServedExposition(get_snapshot, max_data_age, live_registry, clock)


def served_text(served: ServedExposition, openmetrics: bool = False) -> str:
    """One scrape's body after a fresh poll (update() is what the poller's on_snapshot calls)."""
    served.exposition.update(served.get_snapshot())
    accept = "application/openmetrics-text; version=1.0.0" if openmetrics else None
    body, _ = served.exposition.render(accept, None)
    return body.decode("utf-8")
