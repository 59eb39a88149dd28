"""Crossbar over HTTP: authentication, the envelope, pagination, retries. Knows nothing of Prometheus.

Secrets never leave this module in a message: Crossbar echoes the caller's token in every
envelope (errors included) and an unknown API key inside a 404's `data`, so no body, envelope or
header is ever logged or put in an exception.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import json
import random
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

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
from exporter.kazoo.qubicle import AccountRef, QueueRef, account_rows, queue_rows

API_KEY_LENGTH = 64
_RETRY_AFTER_CAP = 30.0


@dataclass(frozen=True)
class Credentials:
    """Exactly one of: a fixed token, an API key, or a user name with password and account name."""

    token: str | None = None
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    account_name: str | None = None

    def __post_init__(self) -> None:
        ways = sum([bool(self.token), bool(self.api_key), bool(self.username or self.password)])
        if ways != 1:
            raise ValueError("credentials: set exactly one of a token, an API key, or a username and password")
        if self.api_key is not None and len(self.api_key) != API_KEY_LENGTH:
            raise ValueError(f"api key must be exactly {API_KEY_LENGTH} characters, got {len(self.api_key)}")
        if (self.username or self.password) and not (self.username and self.password and self.account_name):
            raise ValueError("user credentials need a username, a password and an account name")

    def __repr__(self) -> str:
        kind = "token" if self.token else "api_key" if self.api_key else f"user {self.username!r}"
        return f"Credentials(<{kind}>)"


@dataclass(frozen=True)
class ClientSettings:
    base_url: str
    credentials: Credentials
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    retries: int = 3
    backoff_base: float = 0.2
    backoff_max: float = 5.0
    verify_tls: bool = True
    ca_file: str | None = None
    status_batch_size: int = 100
    status_via_post: bool = False
    page_size: int | None = None
    renew_before: float = 60.0
    max_connections: int = 20
    credential_backoff: float = 60.0
    credential_backoff_max: float = 900.0


def jwt_expiry(token: str) -> float | None:
    """`exp` of a JWT, read without its key; None if the token is not a JWT with an exp."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, min(float(value), _RETRY_AFTER_CAP))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), _RETRY_AFTER_CAP))


class KazooClient:
    def __init__(
        self,
        settings: ClientSettings,
        *,
        on_request: Callable[[str, str], None] = lambda endpoint, code: None,
        on_reauthenticate: Callable[[], None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._credentials = settings.credentials
        self._on_request = on_request
        self._on_reauthenticate = on_reauthenticate
        verify: ssl.SSLContext | bool = settings.verify_tls
        if settings.verify_tls and settings.ca_file:
            verify = ssl.create_default_context(cafile=settings.ca_file)
        self._http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            limits=httpx.Limits(max_connections=settings.max_connections,
                                max_keepalive_connections=settings.max_connections),
            verify=verify,
            headers={"Accept": "application/json"},
        )
        self._token: str | None = self._credentials.token
        self._expires_at: float | None = jwt_expiry(self._token) if self._token else None
        self._generation = 0
        self._auth_lock = asyncio.Lock()
        self._blocked_until = 0.0
        self._credential_backoff = settings.credential_backoff
        self._last_credential_error = ""

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---- authentication ---------------------------------------------------------------------

    async def authenticate(self) -> None:
        """Authenticates now (API key or user); with a fixed token there is nothing to do."""
        if self._credentials.token:
            return
        await self._reauthenticate(self._generation, renewal=True)

    def _needs_renewal(self) -> bool:
        if self._credentials.token:
            return False
        if self._token is None:
            return True
        return self._expires_at is not None and time.time() >= self._expires_at - self._settings.renew_before

    async def _reauthenticate(self, seen_generation: int, *, renewal: bool = False) -> None:
        async with self._auth_lock:
            if self._generation != seen_generation:
                return  # another request re-authenticated while this one waited: single flight
            if time.monotonic() < self._blocked_until:
                raise CredentialError(
                    f"{self._last_credential_error}; not retrying for "
                    f"{self._blocked_until - time.monotonic():.0f}s"
                )
            if self._credentials.api_key:
                endpoint, path = "api_auth", "/v2/api_auth"
                body = {"data": {"api_key": self._credentials.api_key}}
            else:
                endpoint, path = "user_auth", "/v2/user_auth"
                digest = hashlib.md5(
                    f"{(self._credentials.username or '').lower()}:{self._credentials.password}".encode()
                ).hexdigest()
                body = {"data": {"credentials": digest, "account_name": self._credentials.account_name}}
            response = await self._send("PUT", path, endpoint, json_body=body, token=None)
            if response.status_code in (400, 401, 403, 404):
                self._last_credential_error = (
                    f"PUT {path}: Kazoo rejected the {'API key' if endpoint == 'api_auth' else 'user credentials'} "
                    f"(HTTP {response.status_code})"
                )
                self._blocked_until = time.monotonic() + self._credential_backoff
                self._credential_backoff = min(self._credential_backoff * 2, self._settings.credential_backoff_max)
                self._token = None
                raise CredentialError(self._last_credential_error)
            self._raise_for_status(response, f"PUT {path}", attempts=1)
            envelope = self._envelope(response, f"PUT {path}")
            token = envelope.get("auth_token")
            if not isinstance(token, str) or not token:
                raise BadResponseError(f"PUT {path}: the answer carries no auth_token")
            self._token = token
            self._expires_at = jwt_expiry(token)
            self._generation += 1
            self._credential_backoff = self._settings.credential_backoff
            if not renewal:
                self._on_reauthenticate()

    # ---- transport ----------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        # Full jitter: many exporters retrying the same Kazoo do not retry in step.
        return random.uniform(0, min(self._settings.backoff_max, self._settings.backoff_base * 2 ** attempt))

    async def _send(self, method: str, path: str, endpoint: str, *, params: dict[str, Any] | None = None,
                    json_body: Any = None, token: str | None) -> httpx.Response:
        """One request with retries on connection errors, timeouts, 5xx and 429."""
        label = f"{method} {path}"
        headers = {"X-Auth-Token": token} if token else {}
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    method, path, params=params,
                    content=None if json_body is None else json.dumps(json_body).encode(),
                    headers={**headers, **({"Content-Type": "application/json"} if json_body is not None else {})},
                )
            except httpx.HTTPError as exc:
                self._on_request(endpoint, "error")
                if attempt < self._settings.retries:
                    await asyncio.sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                raise TransportError(f"{label}: {type(exc).__name__} after {attempt + 1} attempts") from None
            self._on_request(endpoint, str(response.status_code))
            if (response.status_code == 429 or response.status_code >= 500) and attempt < self._settings.retries:
                delay = _retry_after(response)
                await asyncio.sleep(self._backoff(attempt) if delay is None else delay)
                attempt += 1
                continue
            response.extensions["qubicle_attempts"] = attempt + 1
            return response

    @staticmethod
    def _raise_for_status(response: httpx.Response, label: str, attempts: int | None = None) -> None:
        code = response.status_code
        if code < 400:
            return
        tries = response.extensions.get("qubicle_attempts", attempts or 1)
        if code == 429:
            raise RateLimitedError(f"{label}: HTTP 429 (rate limited) after {tries} attempts")
        if code >= 500:
            try:
                response.json()
            except ValueError:
                raise BadResponseError(f"{label}: HTTP {code} with a body that is not JSON after {tries} attempts") from None
            raise ServerError(f"{label}: HTTP {code} after {tries} attempts")
        if code == 403:
            raise ForbiddenError(f"{label}: HTTP 403, the account is outside the credential's account tree")
        if code == 404:
            raise NotFoundError(f"{label}: HTTP 404")
        raise BadResponseError(f"{label}: HTTP {code}")

    @staticmethod
    def _envelope(response: httpx.Response, label: str) -> dict[str, Any]:
        try:
            envelope = response.json()
        except ValueError:
            raise BadResponseError(f"{label}: HTTP {response.status_code} with a body that is not JSON") from None
        if not isinstance(envelope, dict) or "data" not in envelope:
            raise BadResponseError(f"{label}: the answer is not a Crossbar envelope")
        return envelope

    async def _request(self, method: str, path: str, endpoint: str, *, params: dict[str, Any] | None = None,
                       json_body: Any = None) -> dict[str, Any]:
        """An authenticated request: renews the token before it expires, re-authenticates once on 401."""
        label = f"{method} {path}"
        if self._needs_renewal():
            await self._reauthenticate(self._generation, renewal=True)
        retried = False
        while True:
            generation = self._generation
            response = await self._send(method, path, endpoint, params=params, json_body=json_body, token=self._token)
            if response.status_code != 401:
                break
            if self._credentials.token:
                raise CredentialError(f"{label}: HTTP 401, the fixed auth token was rejected or has expired")
            if retried:
                raise CredentialError(f"{label}: HTTP 401 again after re-authenticating")
            await self._reauthenticate(generation)
            retried = True
        self._raise_for_status(response, label)
        return self._envelope(response, label)

    async def _paginated(self, path: str, endpoint: str) -> list[Any]:
        rows: list[Any] = []
        seen: set[str] = set()
        start_key: str | None = None
        while True:
            params: dict[str, Any] = {}
            if self._settings.page_size:
                params["page_size"] = self._settings.page_size
            if start_key is not None:
                params["start_key"] = start_key
            envelope = await self._request("GET", path, endpoint, params=params)
            data = envelope["data"]
            if not isinstance(data, list):
                raise BadResponseError(f"GET {path}: 'data' is not a list")
            rows.extend(data)
            next_key = envelope.get("next_start_key")
            if next_key is None or next_key == "":
                return rows
            # Opaque keys go back exactly as they came; a key seen twice would loop forever.
            start_key = next_key if isinstance(next_key, str) else json.dumps(next_key)
            if start_key in seen:
                raise BadResponseError(f"GET {path}: Crossbar repeated a pagination key")
            seen.add(start_key)

    # ---- Qubicle ------------------------------------------------------------------------------

    async def list_queues(self, account_id: str) -> list[QueueRef]:
        """Every queue of the account; [] when it has none or no Qubicle at all (404)."""
        try:
            return queue_rows(await self._paginated(f"/v2/accounts/{account_id}/qubicle_queues", "queues"))
        except NotFoundError:
            return []
        except ForbiddenError:
            raise ForbiddenError(
                f"account {account_id} is outside the credential's account tree (HTTP 403): check --account-id"
            ) from None

    async def list_descendants(self, account_id: str) -> list[AccountRef]:
        return account_rows(await self._paginated(f"/v2/accounts/{account_id}/descendants", "descendants"))

    async def _status_batch(self, account_id: str, queue_ids: Sequence[str]) -> dict[str, Any]:
        """The wire format of "queue list status", in one place: the docs show a JSON body on a GET;
        Crossbar's verb tunnelling (POST ...?verb=GET) carries the same body through proxies that
        drop GET bodies."""
        path = f"/v2/accounts/{account_id}/qubicle_queues/status"
        body = {"data": {"queue_ids": list(queue_ids)}}
        if self._settings.status_via_post:
            envelope = await self._request("POST", path, "queue_list_status", params={"verb": "GET"}, json_body=body)
        else:
            envelope = await self._request("GET", path, "queue_list_status", json_body=body)
        data = envelope["data"]
        if not isinstance(data, dict):
            raise BadResponseError(f"GET {path}: 'data' is not an object of queue statuses")
        return {queue_id: status for queue_id, status in data.items() if isinstance(status, dict)}

    async def queue_list_status(self, account_id: str, queue_ids: Sequence[str]) -> dict[str, Any]:
        """Status objects by queue id: one request per batch, never one per queue."""
        size = self._settings.status_batch_size
        batches = [queue_ids[i:i + size] for i in range(0, len(queue_ids), size)]
        results = await asyncio.gather(*(self._status_batch(account_id, b) for b in batches))
        wanted = set(queue_ids)
        merged: dict[str, Any] = {}
        for result in results:
            merged.update({k: v for k, v in result.items() if k in wanted})
        return merged


__all__ = ["ClientSettings", "Credentials", "KazooClient", "KazooError", "jwt_expiry"]
