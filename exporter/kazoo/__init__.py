"""Kazoo Crossbar client: HTTP, authentication, envelope, pagination, retries (no Prometheus here)."""

from exporter.kazoo.auth import Credentials, jwt_expiry
from exporter.kazoo.client import ClientSettings, KazooClient
from exporter.kazoo.errors import (
    BadResponseError,
    CredentialError,
    ForbiddenError,
    KazooError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from exporter.kazoo.qubicle import AccountRef, QueueRef, QueueStatus, parse_queue_status

__all__ = [
    "AccountRef", "BadResponseError", "ClientSettings", "CredentialError", "Credentials", "ForbiddenError",
    "KazooClient", "KazooError", "NotFoundError", "QueueRef", "QueueStatus", "RateLimitedError", "ServerError",
    "TransportError", "jwt_expiry", "parse_queue_status",
]
