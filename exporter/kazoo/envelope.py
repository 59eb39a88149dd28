"""Crossbar's answer: the JSON envelope around `data`, and what each status code means for us.

Nothing here ever quotes a body: Crossbar echoes the caller's token in `auth_token` (errors
included) and an unknown API key inside a 404's `data`. We branch on the HTTP status only,
never on `message` (its wording varies between versions).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

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


# Crossbar sends no Retry-After on 429; its bucket refills 10 tokens a second, so 10 s refill it for
# any request (an authentication costs 35 tokens of 100).
RATE_LIMIT_WAIT = 10.0
NOT_CROSSBAR = "this URL does not look like Crossbar's API (check --kazoo-url, e.g. http://kazoo:8000 or .../v2)"


def _loads(body: bytes) -> Any:
    """The JSON value of `body`, exactly as json.loads reads it; ValueError if it is not JSON.

    orjson reads a status answer ~3x faster (a third of a poll's CPU at 50,000 queues was
    json.loads, bench/RESULTS.md). What orjson refuses and json.loads takes (NaN, 1e400, lone
    surrogates, a BOM, UTF-16) goes to json.loads, so the answer means the same either way; the
    one difference left is integers beyond 64 bits, which orjson reads as the float that float()
    of json.loads' int gives. A RecursionError (JSON nested thousands deep) is as much "not JSON"
    as a syntax error.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def decode(body: bytes, label: str, code: int) -> dict[str, Any]:
    """The envelope of a successful answer; BadResponseError if it is not JSON or has no `data`."""
    try:
        envelope = _loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadResponseError(f"{label}: HTTP {code} with a body that is not JSON") from None
    if not isinstance(envelope, dict) or "data" not in envelope:
        raise BadResponseError(f"{label}: HTTP {code} answer is not a Crossbar envelope (no 'data')")
    return envelope


def is_json(body: bytes) -> bool:
    try:
        _loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def is_crossbar_error(body: bytes) -> bool:
    """Whether an error answer comes in Crossbar's envelope ({"status": "error", "error": "404", ...}).

    A 404 without it came from something else at this URL (a web server, a proxy, a wrong path
    prefix): no conclusion about accounts or credentials may be drawn from it.
    """
    try:
        answer = _loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(answer, dict) and answer.get("status") in ("error", "fatal") and "error" in answer


def not_crossbar(code: int, label: str) -> BadResponseError:
    return BadResponseError(f"{label}: HTTP {code} without Crossbar's error envelope: {NOT_CROSSBAR}")


def error_for(code: int, body: bytes, label: str, attempts: int, retry_after: float | None = None) -> KazooError:
    """The exception for a final, unsuccessful status (401 is the caller's business, not ours)."""
    tries = _attempts(attempts)
    if code == 429:
        wait = RATE_LIMIT_WAIT if retry_after is None else retry_after
        return RateLimitedError(f"{label}: HTTP 429 (rate limited){tries}; wait {wait:.0f} s before trying again")
    if code >= 500:
        # A proxy's HTML 502/504 page: Kazoo itself was not reached or did not answer in JSON.
        if not is_json(body):
            return BadResponseError(f"{label}: HTTP {code} with a body that is not JSON{tries}")
        return ServerError(f"{label}: HTTP {code}{tries}")
    if code == 403:
        return ForbiddenError(f"{label}: HTTP 403 (outside the credential's account tree)")
    if code == 404:
        if not is_crossbar_error(body):
            return not_crossbar(code, label)
        return NotFoundError(f"{label}: HTTP 404")
    return BadResponseError(f"{label}: HTTP {code}")
