"""Accept headers the negotiation tests of test_exposition.py leave out, and which body a format and
encoding get: one made on the event loop (gzip: slices of the stored bytes) or off it (plain text,
inflated while it is sent)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from exporter.exposition import Exposition, accepts_openmetrics
from exporter.render import render
from exporter.snapshot import EMPTY


@pytest.mark.parametrize(("accept", "openmetrics"), [
    ('application/openmetrics-text; version="1.0.0"', True),  # a quoted parameter value (RFC 9110)
    ('application/openmetrics-text; version="0.0.1"', False),
    # An unreadable version skips that entry only: the next one still counts.
    ("application/openmetrics-text; version=x.y, application/openmetrics-text; version=1.0.0", True),
])
def test_openmetrics_negotiation_of_quoted_and_unreadable_versions(accept, openmetrics):
    assert accepts_openmetrics(accept) is openmetrics


@pytest.mark.parametrize("accept", [None, "application/openmetrics-text; version=1.0.0"])
def test_plain_bodies_are_made_off_the_event_loop_gzip_ones_on_it(accept):
    """Inflating a plain body costs CPU (~15 ms per 23 MB): the server makes its pieces in a thread
    when `costly` says so; gzip bodies are slices of the stored bytes."""
    expo = Exposition(CollectorRegistry(), lambda s, now, om: render(s, now, max_data_age=30.0, openmetrics=om))
    expo.update(EMPTY)
    plain, _ = expo.stream(accept, None)
    gzipped, _ = expo.stream(accept, "gzip")
    assert plain.costly is True
    assert gzipped.costly is False
