"""Which render a scrape gets while the newest one is being made: the newest finished one of its
format, never an older one, also at the exact moment it stops being true, and also while the
pre-render is only queued (claimed) and not yet started."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from types import MappingProxyType

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition import Chunk, Exposition
from exporter.render import render
from exporter.snapshot import AccountSnapshot, QueueFigures, Snapshot

A = "a" * 32
OPENMETRICS = "application/openmetrics-text;version=1.0.0"
DEADLINE = 30.0  # seconds; a correct run never waits this long


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def snapshot(name: str, data_time: float = 1000.0) -> Snapshot:
    queue = QueueFigures(A, "q1", name, "kz1", MappingProxyType({"active_sessions": 2.0}), MappingProxyType({}))
    account = AccountSnapshot(A, up=True, queues=(queue,), data_time=data_time, last_success=data_time,
                              queue_count=1)
    return Snapshot(taken_at=data_time, accounts=MappingProxyType({A: account}))


class Held:
    """The real render; the renders of the queue names in `held` wait until those are released."""

    def __init__(self) -> None:
        self.held: dict[str, threading.Event] = {}
        self.entered: dict[str, threading.Event] = {}
        self.formats: list[bool] = []  # of the held renders entered, in order

    def hold(self, name: str) -> None:
        self.held[name], self.entered[name] = threading.Event(), threading.Event()

    def __call__(self, snap: Snapshot, now: float, openmetrics: bool) -> Iterable[Chunk]:
        (account,) = snap.accounts.values()
        name = account.queues[0].queue_name
        if name in self.held:
            self.formats.append(openmetrics)
            self.entered[name].set()
            assert self.held[name].wait(DEADLINE), "never released"
        return list(render(snap, now, max_data_age=30.0, openmetrics=openmetrics))

    def release_all(self) -> None:
        for event in self.held.values():
            event.set()


def name_in(body: bytes) -> str:
    text = body.decode().replace("# EOF\n", "")
    (name,) = [s.labels["queue_name"] for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "qubicle_queue_info"]
    return name


def both_formats_then_second_poll_held(expo: Exposition, held: Held) -> None:
    """A first poll ("Sales") scraped in both formats, then a second ("Support") whose pre-renders
    of both formats are claimed: the first entered and held, the second queued behind it."""
    expo.update(snapshot("Sales"))
    assert name_in(expo.render(None, None)[0]) == "Sales"
    assert name_in(expo.render(OPENMETRICS, None)[0]) == "Sales"
    held.hold("Support")
    expo.update(snapshot("Support"))
    assert held.entered["Support"].wait(DEADLINE)


def scrape_in_thread(expo: Exposition, accept: str | None = None) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []
    thread = threading.Thread(target=lambda: got.append(expo.render(accept, None)[0]), daemon=True)
    thread.start()
    return thread, got


def test_at_the_exact_moment_the_previous_render_stops_being_true_it_is_still_served():
    """The --max-data-age boundary is inclusive here too: figures exactly that old are still true."""
    clock, held = Clock(1000.0), Held()
    expo = Exposition(CollectorRegistry(), held, max_data_age=30.0, clock=clock)
    try:
        expo.update(snapshot("Sales", 1000.0))
        assert name_in(expo.render(None, None)[0]) == "Sales"  # true until 1030
        clock.now = 1030.0
        held.hold("Support")
        expo.update(snapshot("Support", 1030.0))
        first, _ = scrape_in_thread(expo)  # renders "Support", held
        assert held.entered["Support"].wait(DEADLINE)
        for served in (1, 2):
            second, got = scrape_in_thread(expo)
            second.join(DEADLINE)
            assert got and name_in(got[0]) == "Sales" and expo.served_previous == served
        held.release_all()
        first.join(DEADLINE)
    finally:
        held.release_all()


def test_a_render_finishing_late_never_replaces_a_newer_finished_one():
    """A slow render of an old snapshot that ends after the render of a newer one is served to its
    own scrape only; later scrapes that fall back on a previous render get the newer one."""
    clock, held = Clock(1000.0), Held()
    expo = Exposition(CollectorRegistry(), held, max_data_age=30.0, clock=clock)
    try:
        held.hold("Old")
        expo.update(snapshot("Old"))
        slow, slow_got = scrape_in_thread(expo)
        assert held.entered["Old"].wait(DEADLINE)
        expo.update(snapshot("Newer"))
        assert name_in(expo.render(None, None)[0]) == "Newer"
        held.held["Old"].set()
        slow.join(DEADLINE)
        assert slow_got and name_in(slow_got[0]) == "Old"  # its own scrape gets the generation it started
        held.hold("Newest")
        expo.update(snapshot("Newest"))
        making, _ = scrape_in_thread(expo)
        assert held.entered["Newest"].wait(DEADLINE)
        assert name_in(expo.render(None, None)[0]) == "Newer" and expo.served_previous == 1
        held.release_all()
        making.join(DEADLINE)
    finally:
        held.release_all()


def test_a_scrape_while_the_pre_render_of_its_format_is_still_queued_gets_the_previous_one():
    """update() claims the pre-render of each format scraped since the last poll; one pre-render
    thread makes them one after the other. A scrape of the format still waiting in the queue is
    served the previous render, not left to render it (or wait for it) itself."""
    clock, held = Clock(1000.0), Held()
    expo = Exposition(CollectorRegistry(), held, max_data_age=30.0, clock=clock, prerender=True)
    try:
        both_formats_then_second_poll_held(expo, held)
        queued = not held.formats[0]
        renders = expo.renders
        thread, got = scrape_in_thread(expo, OPENMETRICS if queued else None)
        thread.join(DEADLINE)
        assert got and name_in(got[0]) == "Sales" and expo.served_previous == 1
        assert expo.renders == renders  # the scrape rendered nothing itself
    finally:
        held.release_all()
        expo.close()
