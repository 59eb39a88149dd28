"""glibc's free heap pages go back to the system when release_free_memory() runs (between polls and
renders): RSS shows what is in use, not what a poll once used (bench/RESULTS.md section 0-1: at
5,000 accounts x 2 queues the heap's free space grew ~4 MB a poll without it)."""

from __future__ import annotations

from pathlib import Path

from exporter import malloctrim


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_freed_heap_pages_are_handed_back():
    assert malloctrim._TRIM is not None, "glibc's malloc_trim not found (this machine is Debian)"
    # 100 KB blocks stay below glibc's mmap threshold: they live in the heap, and freeing every
    # other one leaves ~50 MB of free pages between live blocks, which the heap keeps.
    blocks = [bytes(100_000) for _ in range(1_000)]
    del blocks[::2]
    before = rss_kib()
    malloctrim.release_free_memory()
    after = rss_kib()
    assert before - after >= 25_000, (before, after)
    assert len(blocks) == 500  # what is in use stays
