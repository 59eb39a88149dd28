"""Errors of the Kazoo client.

Messages are one line and never hold a token, API key, password, md5 credential or response body:
they end up in logs and on the `check` command's output. Account ids and paths are fine to show.
"""

from __future__ import annotations


class KazooError(Exception):
    """Base class; `reason` is a short, bounded label for qubicle_poll_errors_total."""

    reason = "error"


class CredentialError(KazooError):
    """The credential was rejected (or a fixed token expired): the configuration needs fixing."""

    reason = "auth"


class ForbiddenError(KazooError):
    """403: the account is outside the token's account tree."""

    reason = "forbidden"


class NotFoundError(KazooError):
    """404 where an empty answer would be wrong (an unknown account, an endpoint nobody serves)."""

    reason = "not_found"


class RateLimitedError(KazooError):
    """429 after every retry (or a Retry-After longer than we are willing to wait)."""

    reason = "rate_limited"


class ServerError(KazooError):
    """5xx after every retry."""

    reason = "server_error"


class BadResponseError(KazooError):
    """A body that is not JSON, JSON that is not a Crossbar envelope, or an unexpected status code."""

    reason = "bad_response"


class TransportError(KazooError):
    """No answer: connection refused or reset, DNS, TLS, timeout."""

    reason = "transport"
