"""glibc's free heap pages handed back to the system between polls and renders (malloc_trim(0)).

A poll and the renders after it allocate and free tens of megabytes of buffers above pymalloc's
512 bytes (answers, family texts, deflate parts, dict and list tables). glibc keeps what they
freed inside its heap unless it is at the top, and raises its mmap threshold as big blocks are
freed, so more of them land in the heap: at 5,000 accounts x 2 queues the main heap's free space
grew by ~4 MB per poll (12.6 -> 41 MB over 8 polls, with 15 MB in use), and RSS with it.
malloc_trim(0) returns every whole free page in the heap, not only its top (~1 ms). Not a limit:
what is in use stays; RSS shows what is used instead of what was.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None (musl, macOS: nothing to call)."""
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols: libc's, without searching (ldconfig)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """malloc_trim(0) where glibc is the allocator; nothing elsewhere."""
    if _TRIM is not None:
        _TRIM(0)
