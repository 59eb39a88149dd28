"""The /metrics body: the snapshot's figures rendered once per snapshot, the exporter's own metrics per scrape.

At 10,000 queues the snapshot part is ~160,000 samples (~20 MB); rendering it at every scrape
would cost far more than the poll itself. So update(snapshot) (called after each poll) only swaps
in an empty cache generation bound to that snapshot, the first scrape of each format renders it
once (straight into deflate), and every other scrape is served from it. Only the deflated form
is kept: a gzip scrape gets slices of it, a plain one gets it inflated piece by piece as it is
sent (stream()), so memory stays bounded whatever the scrapers ask (a plain-text copy per
generation and format would be ~23 MB at 10,000 queues and ~115 MB at 50,000, and one more per
scrape in flight). The live part (process metrics, API request counters) is small and rendered
per scrape so that it stays current between polls.

The two formats differ only in their headers: each family's lines come from the render as Same
chunks (a queue family in slices of 2,048 queues), each deflated on its own and shared by both
formats' renders of a generation. Prometheus (OpenMetrics) and a plain-text scraper together cost
one render of the lines and one deflated copy (~19 MB at 50,000 queues), not two. Across
generations, a slice whose text did not change is not deflated again: the render hands back the
block made last time (Same.kept). Deflating slices apart makes the body 0.3 % larger at 50,000
queues (19.11 -> 19.18 MB: deflate looks back 32 KB, a slice is ~260 KB).

Each generation is the render of one snapshot at one moment, and knows until when that render
is true: the moment the first account's figures pass --max-data-age. A scrape after it starts a
new generation of the same snapshot, so stale figures vanish at scrape time even when no poll
completes (a stuck Kazoo, a stalled poller).

Threading: render() may run in many threads at once while update() runs on the event loop.
update() never waits for anything (one attribute assignment, atomic under the GIL), so a
render in progress cannot stall the poller. Each generation holds one compute-once cell per
format: the first scrape of a format renders while concurrent scrapes of that same format
wait for its result, and scrapes of already-cached formats are not held up. A render that was
under way when update() came finishes into the old generation, which its scrape then serves.
While a generation's render is under way, other scrapes of that format are served the newest
finished render instead, as long as it is still true (never past its own valid_until).

gzip: the snapshot part is deflated once per generation and ended with a sync flush; each scrape
appends the live part compressed on its own and writes the trailer (CRC-32 continued over both
parts). That makes ONE gzip member, not two concatenated ones: Go's reader (Prometheus) and
gzip.decompress read multi-member streams, but httpx, zlib's gzip mode and some browsers stop at
the end of the first member and would silently drop the live part.
"""

from __future__ import annotations

import itertools
import math
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

from isal import isal_zlib
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter.snapshot import Snapshot, visible_until

# ISA-L (Intel's igzip) at level 1 deflates 22 MB in ~30 ms where zlib's fastest level takes
# ~140 ms, and compresses a little better (bench/RESULTS.md); its output is plain deflate.
_GZIP_LEVEL = 1
# gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

T = TypeVar("T")


class _Once(Generic[T]):
    """A value computed by the first caller; concurrent callers wait for it instead of computing it too.

    A failed computation is not cached: the next caller tries again. `pending()` says a computation
    is under way or promised (claim()), so that a caller may serve an older value instead of waiting.
    """

    def __init__(self, compute: Callable[[], T]) -> None:
        self._compute = compute
        self._lock = threading.Lock()
        self._value: T | None = None
        self._pending = False

    def claim(self) -> None:
        """Someone (the pre-render thread) will compute it soon."""
        self._pending = True

    def pending(self) -> bool:
        return self._pending and self._value is None

    def peek(self) -> T | None:
        return self._value

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._pending = True
                    try:
                        self._value = self._compute()
                    finally:
                        self._pending = self._value is not None
                value = self._value
        return value


@dataclass(frozen=True)
class Body:
    """A response body in pieces, with its length known up front (a Content-Length, no chunking).

    The pieces are made as they are read: a scrape holds one piece at a time (_PIECE), never the
    whole exposition (~23 MB of text at 10,000 queues, ~115 MB at 50,000), whatever the format.
    """

    length: int
    pieces: Iterator[bytes | memoryview]
    costly: bool = False  # making each piece takes CPU (inflating): done off the event loop

    def __bytes__(self) -> bytes:
        return b"".join(self.pieces)


# Bytes per piece of a streamed body: large enough that handing pieces to the socket costs
# nothing measurable, small enough that a few concurrent scrapes hold a few megabytes at most.
_PIECE = 256 * 1024


@dataclass(frozen=True, slots=True)
class Same:
    """A chunk of the snapshot part that both formats write alike (a family's lines; only the
    headers differ): made and deflated by whichever format's render comes first in a generation,
    and shared by the other. `key` names it within the generation (one snapshot at one moment).
    `make` gives its text in pieces, deflated as they come: a family's text is never whole.

    Across generations: `keep`, if given, is handed the deflated block once made, and a later
    render whose text for that chunk is the same (the render knows: exporter/render.py) gives it
    back as `kept`, used instead of making and deflating the text again. What is kept is opaque
    to the render; anything but a block made here is ignored."""

    key: str
    make: Callable[[], Iterable[bytes]]
    kept: object = None
    keep: Callable[[object], None] | None = None


Chunk = bytes | Same


def joined(chunks: Iterable[Chunk]) -> bytes:
    """The whole text of a render (tests, benchmarks, small expositions)."""
    return b"".join([piece for chunk in chunks for piece in (chunk.make() if isinstance(chunk, Same) else (chunk,))])


# (snapshot, now, openmetrics) -> the snapshot part, in chunks, without OpenMetrics' "# EOF".
RenderSnapshot = Callable[[Snapshot, float, bool], Iterable[Chunk]]


@dataclass(frozen=True, slots=True)
class _Block:
    """A chunk deflated on its own (a fresh compressor, ended by a sync flush): it refers to nothing
    before it, so it may follow any other block in any deflate stream."""

    data: bytes
    crc: int
    size: int

    @classmethod
    def of(cls, pieces: Iterable[bytes]) -> _Block:
        compressor = isal_zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        parts, crc, size = [], 0, 0
        for piece in pieces:
            parts.append(compressor.compress(piece))
            crc, size = isal_zlib.crc32(piece, crc), size + len(piece)
        parts.append(compressor.flush(zlib.Z_SYNC_FLUSH))
        return cls(b"".join(parts), crc, size)


@dataclass(frozen=True)
class _Deflated:
    """A raw deflate stream ended by a sync flush, so more blocks can follow it in the same member.

    Kept as its parts, never joined: the `Same` blocks are shared with the other format's render
    (one copy of the megabytes for both), and a join would hold every byte twice while it runs."""

    parts: tuple[bytes, ...]
    crc: int
    size: int  # of the text

    @classmethod
    def of(cls, chunks: Iterable[Chunk], shared: dict[str, _Block] | None = None) -> _Deflated:
        # Compressed as rendered: the plain text (~23 MB at 10,000 queues) never exists whole.
        blocks: list[_Block] = []
        keys: set[str] = set()
        own: list[bytes] = []  # the format's own chunks (headers) since the last shared block
        for chunk in chunks:
            if not isinstance(chunk, Same):
                own.append(chunk)
                continue
            if own:  # deflated together, as one block: what follows must not refer back into them
                blocks.append(_Block.of(own))
                own = []
            if chunk.key in keys:  # the second family would be given the first one's lines
                raise ValueError(f"two families of one render share the key {chunk.key!r}")
            keys.add(chunk.key)
            block = shared.get(chunk.key) if shared is not None else None
            if block is None:
                block = chunk.kept if isinstance(chunk.kept, _Block) else _Block.of(chunk.make())
                if shared is not None:  # two renders under way at once: both keep the first
                    block = shared.setdefault(chunk.key, block)
            if chunk.keep is not None:
                chunk.keep(block)
            blocks.append(block)
        if own:
            blocks.append(_Block.of(own))
        crc = 0
        for block in blocks:
            crc = isal_zlib.crc32_combine(crc, block.crc, block.size)
        return cls(tuple(block.data for block in blocks if block.data), crc, sum(block.size for block in blocks))

    @property
    def length(self) -> int:
        return sum(len(part) for part in self.parts)

    def plain_pieces(self) -> Iterator[bytes | memoryview]:
        """The text, inflated piece by piece as it is read (~15 ms per 23 MB): never kept whole."""
        return _gathered(self._inflated())

    def _inflated(self) -> Iterator[bytes]:
        inflater = isal_zlib.decompressobj(-zlib.MAX_WBITS)
        for part in self.parts:
            data = memoryview(part)
            # Fed in small slices: the unconsumed tail that decompress() copies out stays small too.
            for start in range(0, len(data), _PIECE // 8):
                pending: bytes | memoryview = data[start:start + _PIECE // 8]
                while pending:
                    piece = inflater.decompress(pending, _PIECE)
                    pending = inflater.unconsumed_tail
                    if piece:
                        yield piece
        if rest := inflater.flush():
            yield rest

    def gzip_with(self, tail: bytes) -> Body:
        """One gzip member: the cached blocks, then `tail` compressed now, then the trailer."""
        # A fresh compressor: the tail's blocks never refer back into the cached ones, which
        # the sync flush left on a byte boundary, so the two concatenate into one valid stream.
        compressor = isal_zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        rest = compressor.compress(tail) + compressor.flush()
        trailer = struct.pack("<II", isal_zlib.crc32(tail, self.crc), (self.size + len(tail)) & 0xFFFFFFFF)
        end = rest + trailer
        return Body(len(_GZIP_HEADER) + self.length + len(end), self._gzip_pieces(end))

    def _gzip_pieces(self, end: bytes) -> Iterator[bytes | memoryview]:
        yield _GZIP_HEADER
        yield from _gathered(self._slices())
        yield end

    def _slices(self) -> Iterator[memoryview]:
        for part in self.parts:
            data = memoryview(part)  # slices of the cached bytes: no copy per scrape
            for start in range(0, len(data), _PIECE):
                yield data[start:start + _PIECE]

    def plain_with(self, tail: bytes) -> Body:
        return Body(self.size + len(tail), itertools.chain(self.plain_pieces(), (tail,)), costly=True)


_EMPTY = _Deflated.of(())


def _gathered(pieces: Iterable[bytes | memoryview]) -> Iterator[bytes | memoryview]:
    """Pieces of up to _PIECE bytes each, as few as that allows: small ones joined (one copy).

    A body is written piece by piece, each piece a write and, for a plain body, a trip to a
    worker thread and back: the ~45 KB deflated slices of a queue family would be several times
    more of them. Pieces of _PIECE bytes already are passed as they are, uncopied; so a small
    piece followed by a full one still goes alone (in a plain body, each slice's inflated end)."""
    held: list[bytes | memoryview] = []
    size = 0
    for piece in pieces:
        if held and size + len(piece) > _PIECE:
            yield b"".join(held)
            held, size = [], 0
        if not held and len(piece) >= _PIECE:
            yield piece
            continue
        held.append(piece)
        size += len(piece)
    if held:
        yield b"".join(held) if len(held) > 1 else held[0]


class _Generation:
    """The snapshot part for one snapshot seen at one moment, per format, rendered (straight into
    deflate) on first use.

    Only the deflated form is kept (~4 MB at 10,000 queues): gzip scrapes get it as it is, the
    others get it inflated piece by piece while it is sent.
    """

    def __init__(self, render: RenderSnapshot, snapshot: Snapshot, now: float, valid_until: float,
                 number: int) -> None:
        self.snapshot = snapshot
        self.valid_until = valid_until  # after this, what the render shows is no longer true
        self.number = number  # later generations have larger numbers
        # No reference back to the generation: a cycle would keep each replaced one (and its
        # megabytes) alive until a full garbage collection, which exporter/gcpolicy.py makes rare.
        # The chunks both formats write alike, deflated once for both (Same).
        shared: dict[str, _Block] = {}
        self.deflated = {om: _Once(partial(_deflate, render, snapshot, now, om, shared)) for om in (False, True)}


@dataclass(frozen=True)
class _Finished:
    number: int  # of its generation
    valid_until: float
    deflated: _Deflated


def _deflate(render: RenderSnapshot, snapshot: Snapshot, now: float, openmetrics: bool,
             shared: dict[str, _Block]) -> _Deflated:
    return _Deflated.of(render(snapshot, now, openmetrics), shared)


def _params(part: str) -> tuple[str, dict[str, str]]:
    media, *params = part.split(";")
    parsed = {}
    for param in params:
        key, _, value = param.partition("=")
        parsed[key.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), parsed


def _refused(params: dict[str, str]) -> bool:
    try:
        return float(params.get("q", "1")) <= 0
    except ValueError:
        return False  # an unreadable weight is ignored, as prometheus-client ignores weights


def accepts_openmetrics(accept: str | None) -> bool:
    """prometheus_client.exposition.choose_encoder's rule: an application/openmetrics-text entry
    without a version or with version >= 1.0.0 selects OpenMetrics 1.0.0. Unlike it, an entry with
    q=0 (an explicit refusal) is skipped."""
    for part in (accept or "").split(","):
        media, params = _params(part)
        if media != "application/openmetrics-text" or _refused(params):
            continue
        version = params.get("version")
        if not version:
            return True
        try:
            if tuple(int(x) for x in version.split(".")) >= (1, 0, 0):
                return True
        except ValueError:
            continue
    return False


def accepts_gzip(accept_encoding: str | None) -> bool:
    for part in (accept_encoding or "").split(","):
        coding, params = _params(part)
        if coding in ("gzip", "x-gzip"):
            return not _refused(params)
    return False


class Exposition:
    def __init__(self, live_registry: CollectorRegistry, render_snapshot: RenderSnapshot, *,
                 max_data_age: float = math.inf, clock: Callable[[], float] = time.time,
                 prerender: bool = False) -> None:
        """`render_snapshot(snapshot, now, openmetrics)` writes the snapshot part in chunks (without
        OpenMetrics' "# EOF"); `max_data_age` says when a render of a snapshot stops being true.

        With `prerender`, update() also starts rendering, in a background thread, the formats
        scraped since the previous update: the render then runs right after the poll, while the
        event loop is idle, instead of at the next scrape, where it would compete with a poll
        under way for the GIL (and make that scrape wait). Formats nobody asks for are never
        rendered. close() stops the thread.

        No scrape waits on a render that someone else is making: while the render of the newest
        generation is under way (pre-render or another scrape), a scrape is served the last
        finished render of its format, as long as that one is still true (its valid_until)."""
        self._live_registry = live_registry
        self._render_snapshot = render_snapshot
        self._max_data_age = max_data_age
        self._clock = clock
        self._generation: _Generation | None = None
        self._numbered = itertools.count()
        self._swap_lock = threading.Lock()  # a stale generation is replaced once, not per scrape
        self._count_lock = threading.Lock()
        self.renders = 0  # how many times the snapshot part was rendered (for tests and benchmarks)
        self.served_previous = 0  # scrapes served the previous render while the newest was being made
        # Per format, the newest finished render: what a scrape gets while the current
        # generation's render is under way. One per format, and not its generation (nor the
        # snapshot that holds): memory stays bounded.
        self._finished: dict[bool, _Finished] = {}
        self._asked: set[bool] = set()  # formats (openmetrics) scraped since the last update
        self._asked_lock = threading.Lock()  # held for a set add or swap only: update() never waits long
        self._prerender = ThreadPoolExecutor(1, thread_name_prefix="metrics-prerender") if prerender else None

    def update(self, snapshot: Snapshot) -> None:
        # No lock around the swap: scrapes already holding the old generation keep serving it;
        # new ones see this. Only the set of scraped formats is swapped under its (short) lock.
        generation = self._generation = self._new_generation(snapshot)
        with self._asked_lock:
            asked, self._asked = self._asked, set()
        if self._prerender is not None:
            for openmetrics in asked:
                cell = generation.deflated[openmetrics]
                cell.claim()  # scrapes arriving before it is done are served the previous one
                self._prerender.submit(self._prerender_one, generation, openmetrics)

    def _new_generation(self, snapshot: Snapshot) -> _Generation:
        now = self._clock()
        return _Generation(self._counted_render, snapshot, now, visible_until(snapshot, now, self._max_data_age),
                           next(self._numbered))

    def _current(self) -> _Generation | None:
        """The generation to serve now: the last one, re-made from its snapshot once it has turned stale."""
        generation = self._generation
        if generation is None or self._clock() <= generation.valid_until:
            return generation
        with self._swap_lock:
            if self._generation is generation:  # else another scrape replaced it already
                self._generation = self._new_generation(generation.snapshot)
            return self._generation

    def _prerender_one(self, generation: _Generation, openmetrics: bool) -> None:
        # Renders slower than polls queue up: one for a generation already replaced is skipped.
        if self._generation is not generation:
            return
        try:
            self._deflated(generation, openmetrics)
        except Exception:  # noqa: BLE001 - not cached (_Once): the scrape that needs it renders and reports it
            pass

    def _deflated(self, generation: _Generation, openmetrics: bool) -> _Deflated:
        """The generation's render of that format, made now if need be, and remembered as the newest finished."""
        deflated = generation.deflated[openmetrics].get()
        with self._swap_lock:
            finished = self._finished.get(openmetrics)
            if finished is None or finished.number < generation.number:
                self._finished[openmetrics] = _Finished(generation.number, generation.valid_until, deflated)
        return deflated

    def _snapshot_part(self, generation: _Generation | None, openmetrics: bool) -> _Deflated:
        if generation is None:
            return _EMPTY
        cell = generation.deflated[openmetrics]
        deflated = cell.peek()
        if deflated is not None:
            return deflated
        if cell.pending():
            finished = self._finished.get(openmetrics)
            # The stale rule holds for what is served instead: only a render still true.
            if finished is not None and finished.number < generation.number and self._clock() <= finished.valid_until:
                with self._count_lock:
                    self.served_previous += 1
                return finished.deflated
        return self._deflated(generation, openmetrics)

    def close(self) -> None:
        if self._prerender is not None:
            self._prerender.shutdown(wait=False, cancel_futures=True)

    def _counted_render(self, snapshot: Snapshot, now: float, openmetrics: bool) -> Iterable[Chunk]:
        with self._count_lock:
            self.renders += 1
        return self._render_snapshot(snapshot, now, openmetrics)

    def stream(self, accept: str | None, accept_encoding: str | None) -> tuple[Body, dict[str, str]]:
        """The body (in pieces) and headers for one scrape: snapshot part + live part as one exposition.

        Text is format 0.0.4 (what prometheus-client's generate_latest writes); OpenMetrics is 1.0.0.
        """
        openmetrics = accepts_openmetrics(accept)
        gzipped = accepts_gzip(accept_encoding)
        generation = self._current()  # read once: one scrape, one generation
        with self._asked_lock:
            self._asked.add(openmetrics)  # plain text is inflated from the deflated form: one render
        deflated = self._snapshot_part(generation, openmetrics)
        live = (generate_openmetrics if openmetrics else generate_latest)(self._live_registry)
        headers = {
            "Content-Type": OPENMETRICS_CONTENT_TYPE if openmetrics else CONTENT_TYPE_PLAIN_0_0_4,
            "Vary": "Accept, Accept-Encoding",
        }
        if gzipped:
            headers["Content-Encoding"] = "gzip"
            return deflated.gzip_with(live), headers
        return deflated.plain_with(live), headers

    def render(self, accept: str | None, accept_encoding: str | None) -> tuple[bytes, dict[str, str]]:
        """stream(), joined into one bytes object (tests, small expositions)."""
        body, headers = self.stream(accept, accept_encoding)
        return bytes(body), headers
