"""When to try a request again, and how long to wait first.

The HTTP library retries nothing; retries for failed connects, timeouts, 5xx and 429 are ours.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import math
import random

# A proxy asking for longer than this is not waited for within a poll: the request fails as rate
# limited, and the next poll tries again. Retrying sooner than asked would not honour it.
RETRY_AFTER_CAP = 30.0


def retryable_status(code: int) -> bool:
    """429 and 5xx are worth another attempt; everything else will answer the same again."""
    return code == 429 or 500 <= code <= 599


def backoff_delay(attempt: int, base: float, maximum: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(maximum, base * 2**attempt)].

    The jitter keeps many exporters (or many batches) that failed together from retrying together.
    """
    ceiling = min(maximum, base * 2 ** min(attempt, 62))
    return (rng or random).uniform(0.0, ceiling)


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds asked by a Retry-After header (delay-seconds or an HTTP date); None if absent or unreadable.

    Crossbar itself never sends one on 429; a proxy in front of it may.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # HTTP dates are GMT ("-0000" parses as naive)
            when = when.replace(tzinfo=datetime.UTC)
        return max(0.0, when.timestamp() - now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


async def pause(seconds: float) -> None:
    """The one place retries wait (module-level so that tests can record delays instead of sleeping)."""
    await asyncio.sleep(seconds)
