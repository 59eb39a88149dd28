"""Errors of the Kazoo client. Messages are one line and never hold a token, key, password or body."""

from __future__ import annotations


class KazooError(Exception):
    """Base class; `reason` is a short, bounded label for qubicle_poll_errors_total."""

    reason = "error"


class CredentialError(KazooError):
    """The credential was rejected (or a fixed token expired): fix the configuration."""

    reason = "auth"


class ForbiddenError(KazooError):
    """403: the account is outside the token's account tree."""

    reason = "forbidden"


class NotFoundError(KazooError):
    reason = "not_found"


class RateLimitedError(KazooError):
    reason = "rate_limited"


class ServerError(KazooError):
    reason = "server_error"


class BadResponseError(KazooError):
    """A body that is not JSON, or JSON that is not a Crossbar envelope."""

    reason = "bad_response"


class TransportError(KazooError):
    """No answer: connection refused or reset, DNS, TLS, timeout."""

    reason = "transport"
