"""The /metrics body: the snapshot's figures rendered once per poll, the exporter's own metrics per scrape.

At 10,000 queues the snapshot part is ~160,000 samples; rendering it at every scrape would cost
far more than the poll itself. So refresh() (called after each poll) only drops the cached
bytes, the first scrape of each format renders them once, and every other scrape is a memory
copy. The live part (process metrics, API request counters) is small and rendered per scrape so
that it stays current between polls.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

_EOF = b"# EOF\n"
# Level 1: a 20 MB exposition compresses ~10x at a fraction of level 9's CPU, once per poll.
_GZIP_LEVEL = 1
# gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


@dataclass(frozen=True)
class _Deflated:
    """A raw deflate stream ended by a sync flush, so more blocks can follow it in the same member."""

    data: bytes
    crc: int
    size: int

    @classmethod
    def of(cls, plain: bytes) -> _Deflated:
        compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        return cls(compressor.compress(plain) + compressor.flush(zlib.Z_SYNC_FLUSH), zlib.crc32(plain), len(plain))

    def gzip_with(self, tail: bytes) -> bytes:
        """One gzip member: the cached blocks, then `tail` compressed now, then the trailer.

        A single member rather than two concatenated ones, because some clients (httpx among
        them) stop reading after the first member.
        """
        compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        rest = compressor.compress(tail) + compressor.flush()
        trailer = struct.pack("<II", zlib.crc32(tail, self.crc), (self.size + len(tail)) & 0xFFFFFFFF)
        return _GZIP_HEADER + self.data + rest + trailer


def _accepts_openmetrics(accept: str | None) -> bool:
    # The same rule as prometheus_client.exposition.choose_encoder.
    for part in (accept or "").split(","):
        if part.split(";")[0].strip() == "application/openmetrics-text":
            return True
    return False


def _accepts_gzip(accept_encoding: str | None) -> bool:
    for part in (accept_encoding or "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() == "gzip":
            q = params.strip()
            return not (q.startswith("q=") and float(q[2:] or 0) == 0)
    return False


class Exposition:
    def __init__(self, snapshot_registry: CollectorRegistry, live_registry: CollectorRegistry,
                 render_snapshot: Callable[[bool], bytes] | None = None) -> None:
        """`render_snapshot(openmetrics)`, if given, renders the snapshot part faster than the
        registry would (the same bytes, without OpenMetrics' "# EOF")."""
        self._snapshot_registry = snapshot_registry
        self._render_snapshot = render_snapshot
        self._live_registry = live_registry
        self._lock = threading.Lock()
        self._generation = 0
        self._plain: dict[bool, bytes] = {}
        self._deflated: dict[bool, _Deflated] = {}
        self._refreshed = False
        self.renders = 0  # how many times the snapshot part was rendered (for tests and benchmarks)

    def refresh(self) -> None:
        with self._lock:
            self._generation += 1
            self._plain = {}
            self._deflated = {}
            self._refreshed = True

    def _snapshot_plain(self, openmetrics: bool) -> bytes:
        with self._lock:
            if not self._refreshed:
                return b""
            # Rendering under the lock: concurrent first scrapes of one format wait for one
            # render instead of each doing it.
            plain = self._plain.get(openmetrics)
            if plain is None:
                plain = self._plain[openmetrics] = self._render(openmetrics)
            return plain

    def _snapshot_deflated(self, openmetrics: bool) -> _Deflated:
        plain = self._snapshot_plain(openmetrics)
        with self._lock:
            deflated = self._deflated.get(openmetrics)
            if deflated is None or deflated.size != len(plain):
                deflated = self._deflated[openmetrics] = _Deflated.of(plain)
            return deflated

    def _render(self, openmetrics: bool) -> bytes:
        self.renders += 1
        if self._render_snapshot is not None:
            return self._render_snapshot(openmetrics)
        if openmetrics:
            return generate_openmetrics(self._snapshot_registry).removesuffix(_EOF)
        return generate_latest(self._snapshot_registry)

    def render(self, accept: str | None, accept_encoding: str | None) -> tuple[bytes, dict[str, str]]:
        openmetrics = _accepts_openmetrics(accept)
        gzipped = _accepts_gzip(accept_encoding)
        generate: Callable[[CollectorRegistry], bytes] = generate_openmetrics if openmetrics else generate_latest
        live = generate(self._live_registry)
        headers = {
            "Content-Type": OPENMETRICS_CONTENT_TYPE if openmetrics else CONTENT_TYPE_LATEST,
            "Vary": "Accept, Accept-Encoding",
        }
        if gzipped:
            headers["Content-Encoding"] = "gzip"
            return self._snapshot_deflated(openmetrics).gzip_with(live), headers
        return self._snapshot_plain(openmetrics) + live, headers
