"""No scrape waits on a render someone else is making, and none is served a render no longer true.

While the render of a new snapshot is under way (the pre-render after a poll, or another scrape's),
a scrape gets the previous render of its format, if that one is still within --max-data-age.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterable
from types import MappingProxyType

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition import Chunk, Exposition
from exporter.render import render
from exporter.snapshot import AccountSnapshot, QueueFigures, Snapshot

A = "a" * 32
PROMETHEUS_ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def snapshot(name: str, data_time: float) -> Snapshot:
    queue = QueueFigures(A, "q1", name, "kz1", MappingProxyType({"active_sessions": 2.0}),
                         MappingProxyType({"daily_sessions": 1.0}))
    account = AccountSnapshot(A, up=True, queues=(queue,), data_time=data_time, last_success=data_time,
                              queue_count=1)
    return Snapshot(taken_at=data_time, accounts=MappingProxyType({A: account}))


class HeldRender:
    """The real render, which can be held (as a 100 MB render holds a scrape) until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, snap: Snapshot, now: float, openmetrics: bool) -> Iterable[Chunk]:
        self.entered.set()
        assert self.release.wait(30), "never released"
        return list(render(snap, now, max_data_age=30.0, openmetrics=openmetrics))


def names(body: bytes, encoding: str | None) -> list[str]:
    text = (gzip.decompress(body) if encoding else body).decode()
    return [s.labels["queue_name"] for f in text_string_to_metric_families(text.replace("# EOF\n", ""))
            for s in f.samples if s.name == "qubicle_queue_info"]


def held_second_render(expo: Exposition, held: HeldRender, *, prerender: bool) -> threading.Thread | None:
    """update() to the second snapshot, with its render started and held."""
    held.release.clear()
    held.entered.clear()
    expo.update(snapshot("Support", 1000.0))
    if prerender:
        assert held.entered.wait(30)
        return None
    first = threading.Thread(target=expo.render, args=(None, None))
    first.start()
    assert held.entered.wait(30)
    return first


@pytest.mark.parametrize("prerender", [False, True])
@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_a_scrape_during_a_render_gets_the_previous_one_while_it_is_true(prerender, encoding):
    clock = Clock(1000.0)
    held = HeldRender()
    expo = Exposition(CollectorRegistry(), held, max_data_age=30.0, clock=clock, prerender=prerender)
    try:
        expo.update(snapshot("Sales", 1000.0))
        assert names(expo.render(None, encoding)[0], encoding) == ["Sales"]
        clock.now = 1010.0
        first = held_second_render(expo, held, prerender=prerender)
        # The render of "Support" is held: this scrape is served the previous render instead of waiting.
        body, _ = expo.render(None, encoding)
        assert names(body, encoding) == ["Sales"] and expo.served_previous == 1
        held.release.set()
        if first is not None:
            first.join(30)
        deadline = threading.Event()
        for _ in range(3000):  # the pre-render finishes in its own thread
            if names(expo.render(None, encoding)[0], encoding) == ["Support"]:
                break
            deadline.wait(0.01)
        assert names(expo.render(None, encoding)[0], encoding) == ["Support"]
        assert expo.renders == 2  # the scrapes never rendered on their own
    finally:
        held.release.set()
        expo.close()


@pytest.mark.parametrize("prerender", [False, True])
def test_a_scrape_during_a_render_waits_when_the_previous_one_is_no_longer_true(prerender):
    clock = Clock(1000.0)
    held = HeldRender()
    expo = Exposition(CollectorRegistry(), held, max_data_age=30.0, clock=clock, prerender=prerender)
    try:
        expo.update(snapshot("Sales", 1000.0))
        assert names(expo.render(None, None)[0], None) == ["Sales"]
        clock.now = 1031.0  # "Sales" was fetched at 1000: older than --max-data-age now
        held.release.clear()
        held.entered.clear()
        expo.update(snapshot("Support", 1031.0))
        got: list[bytes] = []
        scrape = threading.Thread(target=lambda: got.append(expo.render(None, None)[0]))
        scrape.start()
        assert held.entered.wait(30)
        scrape.join(0.3)
        assert scrape.is_alive() and not got  # waiting, not served the stale render
        held.release.set()
        scrape.join(30)
        assert names(got[0], None) == ["Support"] and expo.served_previous == 0
    finally:
        held.release.set()
        expo.close()


def test_formats_do_not_stand_in_for_each_other():
    """A text scrape is never served an OpenMetrics render (or the reverse) to avoid waiting."""
    clock = Clock(1000.0)
    held = HeldRender()
    expo = Exposition(CollectorRegistry(), held, max_data_age=30.0, clock=clock)
    expo.update(snapshot("Sales", 1000.0))
    expo.render(PROMETHEUS_ACCEPT, None)  # only OpenMetrics has a previous render
    first = held_second_render(expo, held, prerender=False)  # a text render, held
    assert first is not None
    got: list[bytes] = []
    scrape = threading.Thread(target=lambda: got.append(expo.render(None, None)[0]))
    scrape.start()
    scrape.join(0.3)
    assert scrape.is_alive()  # no text render to fall back on: it waits for the one under way
    held.release.set()
    first.join(30)
    scrape.join(30)
    assert names(got[0], None) == ["Support"] and expo.served_previous == 0
