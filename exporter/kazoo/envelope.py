"""Crossbar's answer: the JSON envelope around `data`, and what each status code means for us.

Nothing here ever quotes a body: Crossbar echoes the caller's token in `auth_token` (errors
included) and an unknown API key inside a 404's `data`. We branch on the HTTP status only,
never on `message` (its wording varies between versions).
"""

from __future__ import annotations

import json
from typing import Any

from exporter.kazoo.errors import (
    BadResponseError,
    ForbiddenError,
    KazooError,
    NotFoundError,
    RateLimitedError,
    ServerError,
)


def _attempts(attempts: int) -> str:
    return f" after {attempts} attempts" if attempts > 1 else ""


def decode(body: bytes, label: str, code: int) -> dict[str, Any]:
    """The envelope of a successful answer; BadResponseError if it is not JSON or has no `data`."""
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadResponseError(f"{label}: HTTP {code} with a body that is not JSON") from None
    if not isinstance(envelope, dict) or "data" not in envelope:
        raise BadResponseError(f"{label}: HTTP {code} answer is not a Crossbar envelope (no 'data')")
    return envelope


def is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def error_for(code: int, body: bytes, label: str, attempts: int) -> KazooError:
    """The exception for a final, unsuccessful status (401 is the caller's business, not ours)."""
    tries = _attempts(attempts)
    if code == 429:
        return RateLimitedError(f"{label}: HTTP 429 (rate limited){tries}")
    if code >= 500:
        # A proxy's HTML 502/504 page: Kazoo itself was not reached or did not answer in JSON.
        if not is_json(body):
            return BadResponseError(f"{label}: HTTP {code} with a body that is not JSON{tries}")
        return ServerError(f"{label}: HTTP {code}{tries}")
    if code == 403:
        return ForbiddenError(f"{label}: HTTP 403 (outside the credential's account tree)")
    if code == 404:
        return NotFoundError(f"{label}: HTTP 404")
    return BadResponseError(f"{label}: HTTP {code}")
