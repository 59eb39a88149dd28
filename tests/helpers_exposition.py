"""An Exposition whose snapshot part is a prometheus-client registry: for tests of serving, not of figures."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter.exposition import Exposition
from exporter.snapshot import EMPTY, Snapshot

_EOF = b"# EOF\n"


def registry_renderer(registry: CollectorRegistry) -> Callable[[Snapshot, float, bool], Iterable[bytes]]:
    def render(snapshot: Snapshot, now: float, openmetrics: bool) -> Iterable[bytes]:
        if openmetrics:
            return (generate_openmetrics(registry).removesuffix(_EOF),)
        return (generate_latest(registry),)

    return render


def registry_exposition(snapshot: CollectorRegistry, live: CollectorRegistry, *, prerender: bool = False) -> Exposition:
    """Serves `snapshot`'s collectors as the snapshot part, updated once (as after a first poll)."""
    expo = Exposition(live, registry_renderer(snapshot), prerender=prerender)
    expo.update(EMPTY)
    return expo
