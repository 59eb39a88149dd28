"""Who we are to Crossbar: credentials, the authentication request, and the token we hold.

Three rules shape this module:
- each authentication costs 35 of Crossbar's 100 rate-limit tokens, so it happens once per token
  lifetime, once per burst of 401s (single flight), and never in a loop after a rejection;
- Kazoo's tokens are JWTs with an absolute `exp`: we renew shortly before it instead of waiting
  for a 401;
- secrets stay in here and in the request body: no repr, message or log line carries them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from exporter.kazoo.errors import CredentialError, KazooError

API_KEY_LENGTH = 64
# A token is used at least this long before a proactive renewal, whatever the clocks say: a local
# clock far ahead of Kazoo's would otherwise make every fresh token look nearly expired and turn
# renewal into a loop that drains the rate limit. Past this, a 401 still triggers a re-authentication.
MIN_TOKEN_USE = 10.0
# After a renewal that failed for a passing reason (5xx, timeout) while the token is still valid,
# try again after this share of the time left, so that a few attempts fit before `exp`.
RENEWAL_RETRY_SHARE = 0.25

# Module-level clocks so that tests can move time instead of sleeping.
monotonic: Callable[[], float] = time.monotonic
wall_clock: Callable[[], float] = time.time

log = structlog.get_logger("qubicle.kazoo")


@dataclass(frozen=True)
class Credentials:
    """Exactly one of: a fixed token, an API key, or a username with password and account name."""

    token: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    account_name: str | None = None

    def __post_init__(self) -> None:
        user = self.username is not None or self.password is not None or self.account_name is not None
        ways = sum([self.token is not None, self.api_key is not None, user])
        if ways != 1:
            raise ValueError("credentials: set exactly one of an auth token, an API key, "
                             "or a username with password and account name")
        if self.token is not None:
            _check_header_safe(self.token, "auth token")
        if self.api_key is not None:
            if len(self.api_key) != API_KEY_LENGTH:
                raise ValueError(f"api key must be exactly {API_KEY_LENGTH} characters, got {len(self.api_key)}")
            _check_header_safe(self.api_key, "api key")
        if user:
            missing = [name for name in ("username", "password", "account_name") if not getattr(self, name)]
            if missing:
                raise ValueError(f"user credentials: missing {', '.join(missing)}")

    @property
    def kind(self) -> str:
        """`token`, `api_key` or `user`: safe to show."""
        return "token" if self.token is not None else "api_key" if self.api_key is not None else "user"


def _check_header_safe(value: str, what: str) -> None:
    # A secret read from a file with its trailing newline is the usual mistake; say so without the value.
    if not value:
        raise ValueError(f"{what} is empty")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(f"{what} contains whitespace or control characters (a trailing newline?)")


@dataclass(frozen=True)
class AuthRequest:
    endpoint: str                     # the on_request label: api_auth or user_auth
    path: str
    body: dict[str, Any] = field(repr=False)  # holds the secret
    rejected: str                     # what Kazoo rejected, for the error message

    @property
    def label(self) -> str:
        return f"PUT {self.path}"


def user_credentials_hash(username: str, password: str) -> str:
    """Crossbar's `credentials`: md5 of "<username in lower case>:<password>" (its scheme, not ours)."""
    return hashlib.md5(f"{username.lower()}:{password}".encode()).hexdigest()


def auth_request(credentials: Credentials) -> AuthRequest:
    if credentials.api_key is not None:
        return AuthRequest("api_auth", "/v2/api_auth", {"data": {"api_key": credentials.api_key}}, "the API key")
    if credentials.username is not None and credentials.password is not None:
        body = {"data": {"credentials": user_credentials_hash(credentials.username, credentials.password),
                         "account_name": credentials.account_name}}
        return AuthRequest("user_auth", "/v2/user_auth", body, "the user credentials")
    raise ValueError("a fixed auth token cannot be renewed")


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT read without its key (we only want `exp`/`iat`); {} if not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return {}
    return payload if isinstance(payload, dict) else {}


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def jwt_expiry(token: str) -> float | None:
    """`exp` of a JWT (Unix time), or None."""
    return _finite(jwt_claims(token).get("exp"))


def token_lifetime(token: str, now: float) -> float | None:
    """Seconds the token has left, by the issuer's clock when it can be had.

    `exp - iat` is immune to skew between our clock and Kazoo's; without `iat` we fall back to
    `exp - now`. None: no usable `exp`, or a token that already looks expired (skew) — then
    only a 401 tells us to renew.
    """
    claims = jwt_claims(token)
    exp, iat = _finite(claims.get("exp")), _finite(claims.get("iat"))
    if exp is None:
        return None
    lifetime = exp - iat if iat is not None and iat < exp else exp - now
    return lifetime if lifetime > 0 else None


def renewal_delay(lifetime: float, renew_before: float) -> float:
    """When to renew a token with `lifetime` seconds left: `renew_before` ahead of expiry, but never
    before half of its life (a cluster with short tokens) or MIN_TOKEN_USE."""
    return max(lifetime - renew_before, lifetime / 2, min(MIN_TOKEN_USE, lifetime))


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    generation: int
    renew_at: float | None = None    # monotonic; None: never proactively (fixed token, no exp)
    expires_at: float | None = None  # monotonic estimate of `exp`

    def renewal_due(self, now: float) -> bool:
        return self.renew_at is not None and now >= self.renew_at

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class CredentialGate:
    """After a rejected credential, no authentication until a backoff has passed (doubling each time).

    Kazoo will not change its mind in a second and every attempt costs 35 rate-limit tokens; an
    operator fixes the credential, the gate reopens on its own.
    """

    def __init__(self, initial: float, maximum: float) -> None:
        self._initial = initial
        self._maximum = maximum
        self._next_backoff = initial
        self._closed_until = 0.0
        self._why = ""

    def check(self) -> None:
        """Raises CredentialError while closed; touches nothing else."""
        left = self._closed_until - monotonic()
        if left > 0:
            raise CredentialError(f"{self._why}; not authenticating again for {math.ceil(left)}s")

    def settle(self) -> None:
        """Forgets past rejections once open again (a success proved the trouble over); while
        closed it stays closed: one success must not reopen it for everyone at once."""
        if self._next_backoff != self._initial and monotonic() >= self._closed_until:
            self.accept()

    def reject(self, why: str) -> float:
        backoff = self._next_backoff
        self._closed_until = monotonic() + backoff
        self._next_backoff = min(backoff * 2, self._maximum)
        self._why = why
        return backoff

    def accept(self) -> None:
        self._next_backoff = self._initial
        self._closed_until = 0.0


Authenticate = Callable[[AuthRequest], Awaitable[str]]


class TokenKeeper:
    """Holds the current token; renews it before it expires and replaces it after a 401.

    Single flight: every caller that saw the same token fail waits on one lock, and only the first
    finds the generation unchanged and authenticates; the others take the token it got.
    """

    def __init__(self, credentials: Credentials, authenticate: Authenticate, *, renew_before: float,
                 backoff_initial: float, backoff_max: float, on_reauthenticate: Callable[[], None],
                 on_token_refused: Callable[[], None] = lambda: None) -> None:
        self._authenticate = authenticate
        self._renew_before = renew_before
        self._on_reauthenticate = on_reauthenticate
        self._on_token_refused = on_token_refused
        self._gate = CredentialGate(backoff_initial, backoff_max)
        # Closed when a token just issued is refused: no re-authentication after a 401 until it
        # reopens (doubling like the credential gate), so that many accounts and polls cannot turn
        # "401 right after authenticating" into an authentication per request.
        self._after_refusal = CredentialGate(backoff_initial, backoff_max)
        self._refused_generation = -1
        self._worked_generation = -1  # the newest token generation a request succeeded with
        self._lock = asyncio.Lock()
        self._generation = 0
        self.fixed = credentials.token is not None
        self._request = None if self.fixed else auth_request(credentials)
        self._token: Token | None = Token(credentials.token, 0) if credentials.token is not None else None

    async def current(self) -> Token:
        """A token to send: the one held, unless there is none yet or its renewal is due."""
        token = self._token
        if token is not None and (self.fixed or not token.renewal_due(monotonic())):
            return token
        return await self._refresh(token, after_401=False)

    async def replace(self, rejected: Token) -> Token:
        """After `rejected` got a 401: a new token, from this caller's authentication or another's."""
        if self.fixed:
            raise CredentialError("the fixed auth token was rejected (HTTP 401): it is invalid or has expired")
        return await self._refresh(rejected, after_401=True)

    def distrust(self, token: Token, why: str) -> CredentialError:
        """A token just issued was refused at once. The request fails; the token is kept (it may
        still work). If that token never worked for any request, re-authenticating again would only
        buy another refused token for 35 rate-limit tokens: re-authentication after a 401 backs off,
        doubling while fresh tokens keep being refused (counted once per token). A token that did
        work and was then refused expired early (Kazoo under load, or expiry by use count): the next
        401 may re-authenticate as usual."""
        if token.generation <= self._worked_generation:
            log.info("kazoo_token_expired_early", generation=token.generation)
            return CredentialError(why)
        if token.generation != self._refused_generation:
            self._refused_generation = token.generation
            backoff = self._after_refusal.reject(why)
            self._on_token_refused()
            log.warning("kazoo_fresh_token_refused", reason=why, generation=token.generation, retry_in=backoff)
        return CredentialError(why)

    def vouch(self, token: Token) -> None:
        """A request succeeded with `token`: fresh tokens work again."""
        self._worked_generation = max(self._worked_generation, token.generation)
        self._after_refusal.settle()

    async def _refresh(self, seen: Token | None, *, after_401: bool) -> Token:
        seen_generation = seen.generation if seen is not None else -1
        async with self._lock:
            held = self._token
            if held is not None and held.generation != seen_generation:
                return held  # another caller authenticated while this one waited
            if held is not None and not after_401 and not held.renewal_due(monotonic()):
                return held  # the renewal was postponed by a caller before us
            self._gate.check()
            if after_401:
                self._after_refusal.check()
            assert self._request is not None
            try:
                value = await self._authenticate(self._request)
            except CredentialError as exc:
                self._token = None
                backoff = self._gate.reject(str(exc))
                log.warning("kazoo_credential_rejected", endpoint=self._request.endpoint, reason=str(exc),
                            retry_in=backoff)
                raise
            except KazooError as exc:
                now = monotonic()
                if held is not None and not after_401 and not held.expired(now):
                    # A proactive renewal failed for a passing reason: the token still works.
                    left = (held.expires_at or now) - now
                    self._token = Token(held.value, held.generation, now + max(1.0, left * RENEWAL_RETRY_SHARE),
                                        held.expires_at)
                    log.warning("kazoo_token_renewal_failed", reason=exc.reason, error=str(exc),
                                expires_in=round(left, 1))
                    return self._token
                raise
            self._gate.accept()
            now = monotonic()
            lifetime = token_lifetime(value, wall_clock())
            self._generation += 1
            self._token = Token(
                value, self._generation,
                renew_at=None if lifetime is None else now + renewal_delay(lifetime, self._renew_before),
                expires_at=None if lifetime is None else now + lifetime,
            )
            if after_401:
                self._on_reauthenticate()
                log.info("kazoo_reauthenticated", endpoint=self._request.endpoint)
            return self._token
