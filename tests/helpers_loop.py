"""An event loop kept busy, for the tests of what a busy loop must not be mistaken for."""

from __future__ import annotations

import asyncio
import time


async def hog(block: float) -> None:
    """The loop kept busy, as by more callbacks than it can run: blocked, then a bare yield."""
    while True:
        time.sleep(block)
        await asyncio.sleep(0)
