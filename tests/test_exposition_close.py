"""close() on shutdown: it returns while a pre-render is under way, and the pre-renders still queued
never start (each would hold the process's exit for a whole render)."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry
from test_previous_render import DEADLINE, Clock, Held, both_formats_then_second_poll_held

from exporter.exposition import Exposition


def test_close_leaves_the_render_under_way_and_cancels_the_queued_ones():
    held = Held()
    expo = Exposition(CollectorRegistry(), held, max_data_age=30.0, clock=Clock(1000.0), prerender=True)
    executor = expo._prerender
    assert executor is not None
    try:
        both_formats_then_second_poll_held(expo, held)
        closing = threading.Thread(target=expo.close, daemon=True)
        closing.start()
        closing.join(DEADLINE)
        assert not closing.is_alive()  # returned with the render still held
        held.release_all()
        executor.shutdown(wait=True)  # the pre-render thread is done
        assert expo.renders == 3 and len(held.formats) == 1  # the queued one never started
    finally:
        held.release_all()
