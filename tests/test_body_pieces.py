"""A plain-text scrape holds one piece of the body at a time, never more than 256 KiB of it, however
well the exposition compresses (the stored form is deflate; the text is inflated while it is sent)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from exporter.exposition import Exposition
from exporter.snapshot import EMPTY

PIECE = 256 * 1024


def test_plain_pieces_stay_small_even_for_a_body_that_compresses_very_well():
    line = b'qubicle_queue_active_sessions{account_id="a",queue_id="q",queue_name="Sales"} 0.0\n'
    text = line * (24 * 1024 * 1024 // len(line))  # ~24 MB that deflates to very little
    expo = Exposition(CollectorRegistry(), lambda s, now, om: (text,))
    expo.update(EMPTY)
    body, _ = expo.stream(None, None)
    sizes, joined = [], bytearray()
    for piece in body.pieces:
        sizes.append(len(piece))
        joined += piece
    assert joined.startswith(text) and len(joined) == body.length
    assert max(sizes) <= PIECE, max(sizes)
