"""A scrape holds one piece of the body at a time, never more than 256 KiB of it, however well the
exposition compresses (the stored form is deflate; the text is inflated while it is sent), and
pieces are as few as that allows."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from functools import partial

from prometheus_client import CollectorRegistry

from exporter.exposition import Exposition, Same
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


def test_a_body_of_many_small_deflated_slices_is_sent_in_few_full_pieces():
    """A queue family comes in slices deflated apart (~45 KB each at 50,000 queues); each piece is a
    write (and for plain text a trip to a worker thread): small ones are joined up to 256 KiB."""
    families = [(f"# TYPE f{i} gauge\n".encode(), Same(f"f{i}", partial(lines, i))) for i in range(300)]
    text = b"".join(header + b"".join(same.make()) for header, same in families)
    expo = Exposition(CollectorRegistry(), lambda s, now, om: [c for family in families for c in family])
    expo.update(EMPTY)
    for encoding in (None, "gzip"):
        body, _ = expo.stream(None, encoding)
        pieces = [bytes(piece) for piece in body.pieces]
        got = b"".join(pieces)
        assert (gzip.decompress(got) if encoding else got).startswith(text)
        assert len(got) == body.length
        assert max(len(p) for p in pieces) <= PIECE
        # All but the first and the last two (gzip's header, the last of the text, the live part):
        # at least half a piece each, so never more than about twice as many as the bytes need.
        middle = pieces[1:-2] if encoding else pieces[:-2]
        assert all(len(p) >= PIECE // 2 for p in middle), sorted(len(p) for p in middle)[:5]


def lines(i: int) -> Iterator[bytes]:
    yield b"".join(b'f%d{queue_id="q%d"} %d.0\n' % (i, q, q * i % 97) for q in range(2000))
