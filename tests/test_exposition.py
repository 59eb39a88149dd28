"""Exposition: rendered once per poll, negotiated like prometheus-client, one valid body (text, OpenMetrics, gzip)."""

from __future__ import annotations

import gzip
import subprocess
import threading
import zlib
from collections.abc import Callable, Iterator

import pytest
from conftest import debian_tool
from helpers_exposition import registry_renderer
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.samples import Sample

from exporter.exposition import Exposition, accepts_gzip, accepts_openmetrics
from exporter.snapshot import EMPTY

ODD = ['say "hi"', "back\\slash", "new\nline", "Ünïcødé 客服 ☎", "trailing\\", "{braces}=,"]
# What Prometheus 2.42 sends on every scrape.
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TEXT = "text/plain; version=0.0.4; charset=utf-8"


class CountingCollector:
    """Queue names as labels; counts its collect() calls; can hold a collect until released."""

    def __init__(self, names: list[str] | None = None) -> None:
        self.names = list(ODD if names is None else names)
        self.collects = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def collect(self) -> Iterator[Metric]:
        self.collects += 1
        names = list(self.names)  # what this render sees, even if changed while it waits
        self.entered.set()
        self.release.wait()
        family = GaugeMetricFamily("qubicle_queue_active_sessions", "Callers in the queue now.",
                                   labels=["queue_name"])
        for i, name in enumerate(names):
            family.add_metric([name], float(i))
        yield family

    def describe(self) -> list[Metric]:
        return []


@pytest.fixture
def collector() -> CountingCollector:
    return CountingCollector()


@pytest.fixture
def live() -> tuple[CollectorRegistry, Counter]:
    registry = CollectorRegistry()
    return registry, Counter("qubicle_api_requests", "Requests to Kazoo.", registry=registry)


@pytest.fixture
def expo(collector: CountingCollector, live: tuple[CollectorRegistry, Counter]) -> Exposition:
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(collector)
    return Exposition(live[0], registry_renderer(snapshot))


def text_families(body: bytes) -> dict[str, list[Sample]]:
    return {f.name: f.samples for f in parse_text(body.decode())}


def om_families(body: bytes) -> dict[str, list[Sample]]:
    return {f.name: f.samples for f in parse_openmetrics(body.decode())}


def queue_names(samples: list[Sample]) -> list[str]:
    return [s.labels["queue_name"] for s in samples]


# ---- negotiation ------------------------------------------------------------------------------

@pytest.mark.parametrize(("accept", "openmetrics"), [
    (None, False),
    ("", False),
    ("*/*", False),
    ("text/plain; version=0.0.4", False),
    (PROMETHEUS_ACCEPT, True),
    ("application/openmetrics-text", True),
    ("application/openmetrics-text; version=1.0.0", True),
    ("text/plain;q=0.5, Application/OpenMetrics-Text;version=1.0.0", True),
    ("application/openmetrics-text; version=0.0.1", False),  # too old: prometheus-client falls back too
    ("application/openmetrics-text; version=1.0.0; q=0", False),  # an explicit refusal
    ("application/openmetrics-text; version=x.y", False),
    ("application/openmetrics-text; q=abc", True),  # an unreadable weight is ignored
])
def test_openmetrics_negotiation(accept, openmetrics):
    assert accepts_openmetrics(accept) is openmetrics


@pytest.mark.parametrize(("accept_encoding", "gzipped"), [
    (None, False), ("", False), ("identity", False), ("br", False),
    ("gzip", True), ("deflate, GZIP", True), ("x-gzip", True), ("gzip;q=0.5", True),
    ("gzip;q=0, identity", False), ("gzip;q=0.0", False), ("gzip;q=nonsense", True),
])
def test_gzip_negotiation(accept_encoding, gzipped):
    assert accepts_gzip(accept_encoding) is gzipped


@pytest.mark.parametrize(("accept", "content_type"), [(None, TEXT), (PROMETHEUS_ACCEPT, OPENMETRICS)])
@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_headers(expo, accept, content_type, encoding):
    expo.update(EMPTY)
    body, headers = expo.render(accept, encoding)
    assert headers["Content-Type"] == content_type
    assert headers["Vary"] == "Accept, Accept-Encoding"
    assert headers.get("Content-Encoding") == encoding
    plain = gzip.decompress(body) if encoding else body
    parse = om_families if content_type == OPENMETRICS else text_families
    assert {"qubicle_queue_active_sessions", "qubicle_api_requests"} <= set(parse(plain))


# ---- one valid exposition ---------------------------------------------------------------------

def test_openmetrics_has_one_eof_at_the_end(expo):
    expo.update(EMPTY)
    body, _ = expo.render(PROMETHEUS_ACCEPT, None)
    assert body.count(b"# EOF") == 1 and body.endswith(b"# EOF\n")
    families = om_families(body)  # the parser rejects anything after "# EOF" and a missing one
    assert queue_names(families["qubicle_queue_active_sessions"]) == ODD
    assert families["qubicle_api_requests"][0].value == 0


def test_before_the_first_poll_only_the_live_part_is_served(expo, collector):
    for accept in (None, PROMETHEUS_ACCEPT):
        for encoding in (None, "gzip"):
            body, _ = expo.render(accept, encoding)
            plain = gzip.decompress(body) if encoding else body
            families = (om_families if accept else text_families)(plain)
            assert {name.removesuffix("_created") for name in families} == {"qubicle_api_requests"}
    assert collector.collects == 0


def test_without_a_custom_renderer_the_text_part_is_prometheus_clients(expo, collector, live):
    expo.update(EMPTY)
    body, _ = expo.render(None, None)
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(CountingCollector(collector.names))
    assert body == generate_latest(snapshot) + generate_latest(live[0])


def test_a_custom_renderer_replaces_the_registry_walk(collector, live):
    calls: list[bool] = []

    def render(openmetrics: bool) -> list[bytes]:
        calls.append(openmetrics)
        return [b"# HELP qubicle_up Up.\n# TYPE qubicle_up gauge\n", b"qubicle_up 1.0\n"]  # chunks, as the collector gives

    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(collector)
    expo = Exposition(live[0], lambda snap, now, om: render(om))
    expo.update(EMPTY)
    om, _ = expo.render(PROMETHEUS_ACCEPT, None)
    text, _ = expo.render(None, None)
    assert calls == [True, False] and collector.collects == 0
    assert om_families(om)["qubicle_up"][0].value == 1 and text_families(text)["qubicle_up"][0].value == 1


# ---- rendered once per poll -------------------------------------------------------------------

def test_rendered_once_per_poll_and_format_whatever_the_scrapes(expo, collector, live):
    _, requests = live
    expo.update(EMPTY)
    assert collector.collects == 0  # update() itself renders nothing
    for _ in range(25):
        body, _ = expo.render(None, None)
        expo.render(None, "gzip")
        requests.inc()
    assert collector.collects == 1 and expo.renders == 1
    # The live part stays current between polls.
    assert text_families(body)["qubicle_api_requests"][0].value == 24
    for _ in range(5):
        expo.render(PROMETHEUS_ACCEPT, "gzip")
    assert collector.collects == 2  # OpenMetrics is its own render, once


def test_refresh_swaps_the_content(expo, collector):
    expo.update(EMPTY)
    before, _ = expo.render(None, None)
    collector.names = ["only one"]
    assert expo.render(None, None)[0] == before  # no refresh: still the cached poll
    expo.update(EMPTY)
    for encoding in (None, "gzip"):
        body, _ = expo.render(None, encoding)
        plain = gzip.decompress(body) if encoding else body
        assert queue_names(text_families(plain)["qubicle_queue_active_sessions"]) == ["only one"]
    assert collector.collects == 2


def test_concurrent_first_scrapes_render_once(expo, collector):
    expo.update(EMPTY)
    collector.release.clear()
    results: list[bytes] = []
    calling = [threading.Event() for _ in range(8)]

    def scrape(i: int) -> None:
        calling[i].set()
        results.append(expo.render(None, None)[0])

    threads = [threading.Thread(target=scrape, args=(i,)) for i in range(8)]
    threads[0].start()
    assert collector.entered.wait(10)
    for thread in threads[1:]:
        thread.start()
    for event in calling:
        assert event.wait(10)
    collector.release.set()
    for thread in threads:
        thread.join(10)
    assert collector.collects == 1
    assert len(results) == 8 and len(set(results)) == 1


def test_refresh_does_not_wait_for_a_render_in_progress(expo, collector):
    """The poller calls refresh() on the event loop: it must never block behind a 20 MB render."""
    expo.update(EMPTY)
    collector.release.clear()
    slow: list[bytes] = []
    render = threading.Thread(target=lambda: slow.append(expo.render(None, None)[0]))
    render.start()
    try:
        assert collector.entered.wait(10)
        collector.names = ["after the poll"]
        refresher = threading.Thread(target=lambda: expo.update(EMPTY))
        refresher.start()
        refresher.join(10)  # a guard against hanging the suite, not a timing assertion
        assert not refresher.is_alive(), "refresh() blocked behind a render"
    finally:
        collector.release.set()
        render.join(10)
    # The render under way finishes with the poll it started on; the next scrape sees the new one.
    assert queue_names(text_families(slow[0])["qubicle_queue_active_sessions"]) == ODD
    fresh, _ = expo.render(None, None)
    assert queue_names(text_families(fresh)["qubicle_queue_active_sessions"]) == ["after the poll"]


def test_a_failed_render_is_retried_by_the_next_scrape(live):
    attempts: list[int] = []

    def render(openmetrics: bool) -> list[bytes]:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("snapshot changed shape")
        return [b"# HELP qubicle_up Up.\n# TYPE qubicle_up gauge\nqubicle_up 1.0\n"]

    expo = Exposition(live[0], lambda snap, now, om: render(om))
    expo.update(EMPTY)
    with pytest.raises(RuntimeError):
        expo.render(None, None)
    assert text_families(expo.render(None, None)[0])["qubicle_up"][0].value == 1


# ---- pre-rendering after a poll ------------------------------------------------------------------

def _prerendering(collector: CountingCollector, live: tuple[CollectorRegistry, Counter]) -> Exposition:
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(collector)
    return Exposition(live[0], registry_renderer(snapshot), prerender=True)


def _wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = threading.Event()
    for _ in range(1000):
        if condition():
            return
        deadline.wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_refresh_prerenders_only_the_formats_scraped_since_the_last_poll(collector, live):
    expo = _prerendering(collector, live)
    try:
        expo.update(EMPTY)
        assert collector.collects == 0  # nobody has scraped yet: nothing is rendered ahead
        expo.render(PROMETHEUS_ACCEPT, "gzip")  # Prometheus: OpenMetrics only
        assert collector.collects == 1
        collector.names = ["after the poll"]
        expo.update(EMPTY)
        # Until the pre-render is done, scrapes are served the previous render (still true).
        _wait_for(lambda: queue_names(om_families(expo.render(PROMETHEUS_ACCEPT, None)[0])[
            "qubicle_queue_active_sessions"]) == ["after the poll"], "the pre-render")
        assert collector.collects == 2  # the scrapes were served from the pre-render, never rendered again
        expo.update(EMPTY)  # one format was asked in that generation: one pre-render, no text render
        _wait_for(lambda: collector.collects == 3, "the second pre-render")
        expo.update(EMPTY)  # no scrape in between: nothing to pre-render
        threading.Event().wait(0.2)
        assert collector.collects == 3
    finally:
        expo.close()


def test_a_failed_prerender_leaves_the_scrape_to_render_and_report_it(live):
    attempts: list[bool] = []

    def render(openmetrics: bool) -> list[bytes]:
        attempts.append(openmetrics)
        if len(attempts) == 2:
            raise RuntimeError("snapshot changed shape")
        return [b"# HELP qubicle_up Up.\n# TYPE qubicle_up gauge\nqubicle_up 1.0\n"]

    expo = Exposition(live[0], lambda snap, now, om: render(om), prerender=True)
    try:
        expo.update(EMPTY)
        expo.render(None, None)
        expo.update(EMPTY)
        _wait_for(lambda: len(attempts) == 2, "the failing pre-render")
        assert text_families(expo.render(None, None)[0])["qubicle_up"][0].value == 1
        assert len(attempts) == 3  # rendered again by the scrape, not served from a failure
    finally:
        expo.close()


def test_a_replaced_generation_is_freed_at_once_not_by_the_cyclic_collector(live):
    """exporter/gcpolicy.py makes full collections rare: a reference cycle through a generation would keep
    every replaced poll's exposition (megabytes each) alive until one runs."""
    import gc
    import weakref

    expo = Exposition(live[0], lambda snap, now, om: [b"qubicle_up 1.0\n"])
    expo.update(EMPTY)
    for accept, encoding in ((None, None), (None, "gzip"), (PROMETHEUS_ACCEPT, None), (PROMETHEUS_ACCEPT, "gzip")):
        expo.render(accept, encoding)
    replaced = weakref.ref(expo._generation)
    enabled = gc.isenabled()
    gc.disable()
    try:
        expo.update(EMPTY)
        assert replaced() is None
    finally:
        if enabled:
            gc.enable()


# ---- gzip -------------------------------------------------------------------------------------

@pytest.mark.parametrize("accept", [None, PROMETHEUS_ACCEPT])
def test_gzip_is_one_member_holding_both_parts(expo, collector, live, accept):
    _, requests = live
    expo.update(EMPTY)
    first, _ = expo.render(accept, "gzip")
    requests.inc()  # the live part changes between two scrapes; the cached deflate must not be re-rendered
    plain_now, _ = expo.render(accept, None)
    zipped, _ = expo.render(accept, "gzip")
    assert gzip.decompress(zipped) == plain_now != gzip.decompress(first)
    # One member: zlib's gzip mode (as in httpx) stops at the end of the first member.
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert decoder.decompress(zipped) == plain_now and decoder.eof and decoder.unused_data == b""
    assert collector.collects == 1


# ---- odd label values -------------------------------------------------------------------------

@pytest.mark.e2e
def test_odd_label_values_pass_promtool_and_both_parsers(expo, tmp_path):
    expo.update(EMPTY)
    text, _ = expo.render(None, None)
    assert queue_names(text_families(text)["qubicle_queue_active_sessions"]) == ODD
    om, _ = expo.render(PROMETHEUS_ACCEPT, None)
    assert queue_names(om_families(om)["qubicle_queue_active_sessions"]) == ODD
    result = subprocess.run([debian_tool("promtool"), "check", "metrics"], input=text, capture_output=True, timeout=30,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_promtool_does_reject_a_broken_exposition():
    """The check above can fail: promtool does catch a badly escaped label value."""
    broken = b'# HELP q Q.\n# TYPE q gauge\nq{queue_name="say "hi""} 1.0\n'
    result = subprocess.run([debian_tool("promtool"), "check", "metrics"], input=broken, capture_output=True,
                            timeout=30, check=False)
    assert result.returncode == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=20), min_size=1, max_size=5, unique=True))
def test_any_label_value_round_trips(names):
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CountingCollector(names))
    expo = Exposition(CollectorRegistry(), registry_renderer(registry))
    expo.update(EMPTY)
    text, _ = expo.render(None, None)
    om, _ = expo.render(PROMETHEUS_ACCEPT, "gzip")
    assert queue_names(text_families(text)["qubicle_queue_active_sessions"]) == names
    assert queue_names(om_families(gzip.decompress(om))["qubicle_queue_active_sessions"]) == names
