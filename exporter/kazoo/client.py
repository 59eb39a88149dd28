"""Crossbar over HTTP: one aiohttp ClientSession, retries, pagination, and the Qubicle calls.

Knows nothing of Prometheus (metrics go out through `on_request` / `on_reauthenticate`) nor of
scheduling. Secrets never leave this package in a message: no body, envelope or header is ever
logged or put in an exception.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import ssl
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import quote, urlsplit

import aiohttp
import structlog
from yarl import URL

from exporter import __version__
from exporter.kazoo import envelope, retry
from exporter.kazoo.auth import AuthRequest, Credentials, Token, TokenKeeper
from exporter.kazoo.errors import (
    BadResponseError,
    CredentialError,
    ForbiddenError,
    KazooError,
    NotFoundError,
    TransportError,
)
from exporter.kazoo.qubicle import (
    MAX_NAME_LENGTH,
    AccountRef,
    QueueRef,
    account_rows,
    queue_list_status_answer,
    queue_list_status_request,
    queue_rows,
    recipient_rows,
    recipient_status_answer,
)

# Largest realistic answer: one page of 10,000 descendants (--page-size 10000) is 1-3 MB, a status
# batch of 1,000 queues about 0.5 MB; at Crossbar's default page of 50 rows, answers are ~10 KB.
# 8 MiB leaves room for those and caps what one answer may cost: json.loads holds the event loop
# (and the GIL: a thread would not help) for about 0.5 s at 8 MiB, and needs several times its size
# in memory (bench/hostile.py).
MAX_ANSWER_BYTES = 8 * 1024 * 1024
# 10,000 queues or 50,000 accounts at Crossbar's default page of 50 rows; endless distinct keys stop here.
MAX_PAGES = 1000
# A listing, all its pages together, may total this many answers' worth (16 MiB by default: about
# 50,000 descendants with their realms and trees).
LISTING_ANSWERS = 2
_CHUNK = 64 * 1024

log = structlog.get_logger("qubicle.kazoo")


@dataclass(frozen=True)
class ClientSettings:
    """Every bad value is a one-line ValueError naming it, raised here so the CLI fails at start."""

    base_url: str
    credentials: Credentials
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    retries: int = 2                 # extra attempts for connect errors, timeouts, 5xx, 429
    backoff_base: float = 0.2        # seconds; exponential with full jitter
    backoff_max: float = 5.0
    verify_tls: bool = True
    ca_file: str | None = None
    status_batch_size: int = 100
    status_via_post: bool = False    # POST ...?verb=GET instead of GET with a body
    page_size: int | None = None     # None: Crossbar's default page
    renew_before: float = 60.0       # renew a JWT this many seconds before its exp
    max_connections: int = 20
    credential_backoff: float = 60.0       # no authentication this long after a rejected credential,
    credential_backoff_max: float = 900.0  # doubling up to this
    request_timeout: float | None = None  # whole exchange (connect to last byte); None: 3 x read_timeout
    max_answer_bytes: int = MAX_ANSWER_BYTES  # decoded size of one answer
    max_pages: int = MAX_PAGES                # pages of one listing
    max_name_length: int = MAX_NAME_LENGTH    # characters of a queue or account name; longer ones are cut
    ssl_context: ssl.SSLContext | None = field(default=None, init=False, repr=False, compare=False)
    # From HTTP(S)_PROXY / NO_PROXY at start: (proxy URL without credentials, its Proxy-Authorization).
    proxy: tuple[str, str | None] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            url = urlsplit(self.base_url) if isinstance(self.base_url, str) else None
            port_ok = url is not None and (url.port is None or url.port > 0)
        except ValueError:
            url, port_ok = None, False
        if url is None or not port_ok or url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("kazoo base url: expected http(s)://host[:port]")
        if url.username is not None or url.password is not None:
            raise ValueError("kazoo base url: must not carry a user or password")
        if url.query or url.fragment:
            raise ValueError("kazoo base url: expected no query or fragment")
        for name in ("connect_timeout", "read_timeout", "renew_before", "backoff_base", "backoff_max",
                     "credential_backoff", "credential_backoff_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
        for name in ("connect_timeout", "read_timeout", "credential_backoff"):
            if getattr(self, name) == 0:
                raise ValueError(f"{name}: must be greater than 0")
        if self.request_timeout is not None:
            value = self.request_timeout
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"request_timeout: expected a finite number > 0, got {value!r}")
        for name, minimum in (("retries", 0), ("status_batch_size", 1), ("max_connections", 1),
                              ("max_answer_bytes", 1024), ("max_pages", 1), ("max_name_length", 16)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
        if self.page_size is not None and (isinstance(self.page_size, bool) or not isinstance(self.page_size, int)
                                           or self.page_size < 1):
            raise ValueError(f"page_size: expected an integer >= 1 or None, got {self.page_size!r}")
        if self.ca_file is not None and self.verify_tls:
            object.__setattr__(self, "ssl_context", _ssl_context(self.ca_file))
        object.__setattr__(self, "proxy", _environment_proxy(self.base_url))

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What aiohttp gets: our context with the extra CA, the system's, or (warned about by the CLI) none."""
        if not self.verify_tls:
            return False
        return self.ssl_context or True

    @property
    def timeout(self) -> aiohttp.ClientTimeout:
        # No total and no pool wait here: waiting for a free connection is our own concurrency, not
        # Kazoo's slowness. Read is per socket read; the whole exchange has its own deadline
        # (request_deadline, applied once a connection slot is ours: see KazooClient._attempt).
        return aiohttp.ClientTimeout(total=None, connect=None, sock_connect=self.connect_timeout,
                                     sock_read=self.read_timeout)

    @property
    def request_deadline(self) -> float:
        """Seconds one attempt may take from connect to the last byte: a server sending a byte a
        second never trips the per-read timeout, and must not hold a poll (or discovery) forever."""
        return self.request_timeout if self.request_timeout is not None else 3 * self.read_timeout


def _environment_proxy(base_url: str) -> tuple[str, str | None] | None:
    """The proxy the environment names for Kazoo (HTTPS_PROXY / HTTP_PROXY, unless NO_PROXY
    covers the host), as curl and httpx read them. Read here, once, rather than with aiohttp's
    trust_env, which would also send ~/.netrc credentials to Kazoo and look both up per request."""
    url = urlsplit(base_url)
    proxy = urllib.request.getproxies().get(url.scheme)
    if not proxy or urllib.request.proxy_bypass(url.hostname or ""):
        return None
    parsed = URL(proxy if "://" in proxy else f"http://{proxy}")
    if parsed.scheme != "http":
        # aiohttp talks to proxies over plain HTTP only (CONNECT for https targets).
        raise ValueError(f"{url.scheme}_proxy: only http:// proxies are supported, got {parsed.scheme}://")
    auth = None
    if parsed.user:
        pair = f"{parsed.user}:{parsed.password or ''}".encode()
        auth = "Basic " + base64.b64encode(pair).decode("ascii")
    return str(parsed.with_user(None)), auth


def _ssl_context(ca_file: str) -> ssl.SSLContext:
    if not os.path.isfile(ca_file):
        raise ValueError(f"ca_file: {ca_file}: no such file")
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError):
        raise ValueError(f"ca_file: {ca_file}: not a readable PEM certificate bundle") from None


def _transport_problem(exc: BaseException, settings: ClientSettings) -> tuple[str, bool]:
    """A short, one-line description of a failed exchange, and whether another attempt may help.

    Names follow what operators know from other HTTP clients (ConnectError, ReadTimeout); the
    socket's own words ("Connect call failed") help most and hold no secret. A request or its
    headers are never part of it.
    """
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert = exc.certificate_error
        detail = getattr(cert, "verify_message", None) or str(cert)
        # The same certificate will fail the same way: no retry.
        return f"TLS certificate verification failed ({' '.join(str(detail).split())[:120]})", False
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"ConnectTimeout (no connection within {settings.connect_timeout:g} s)", True
    if isinstance(exc, _DeadlineExceeded):
        # Not retried: a server this slow will most likely be as slow again, and retries would
        # multiply the deadline.
        return f"RequestTimeout (no complete answer within {settings.request_deadline:g} s)", False
    if isinstance(exc, (aiohttp.SocketTimeoutError, asyncio.TimeoutError)):
        return f"ReadTimeout (no data for {settings.read_timeout:g} s)", True
    if isinstance(exc, aiohttp.ClientSSLError):
        name, retry_it = "TLSError", True  # a handshake cut short (a load balancer) may pass next time
    elif isinstance(exc, aiohttp.ClientConnectorError):
        name, retry_it = "ConnectError", True
        exc = exc.os_error
    elif isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        name, retry_it = "ProtocolError", True
    elif isinstance(exc, aiohttp.ClientConnectionError):  # ClientOSError among them
        name, retry_it = "NetworkError", True
    else:  # aiohttp.ClientError: a malformed answer, an invalid URL
        name, retry_it = "ProtocolError", False
    detail = " ".join(str(exc).split())[:160]
    return name + (f" ({detail})" if detail else ""), retry_it


class _DeadlineExceeded(Exception):
    """The whole exchange took longer than request_deadline."""


@dataclass(frozen=True)
class _Answer:
    code: int
    body: bytes
    attempts: int
    retry_after: float | None = None  # what a 429's Retry-After asked for


def api_root(base_url: str) -> str:
    """The URL the /v2/... paths go after: --kazoo-url with or without a trailing /v2 (the form every
    Crossbar example shows) or slash."""
    root = base_url.rstrip("/")
    if root.lower().endswith("/v2"):
        root = root[:-3].rstrip("/")
    return root


class KazooClient:
    def __init__(
        self,
        settings: ClientSettings,
        *,
        on_request: Callable[[str, str], None] = lambda endpoint, code: None,
        on_reauthenticate: Callable[[], None] = lambda: None,
        on_token_refused: Callable[[], None] = lambda: None,
        on_truncated_name: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self._settings = settings
        self._on_request = on_request
        self._on_truncated_name = on_truncated_name
        self._account_base = "/v2/accounts"
        # Normalised once (IDNA host, quoted path), so that paths can be appended already encoded.
        self._base = str(URL(api_root(settings.base_url)))
        # One slot per connection: the request deadline starts once a slot is held, so waiting for
        # a free connection (our own concurrency) never counts against Kazoo.
        self._slots = asyncio.Semaphore(settings.max_connections)
        self._http: aiohttp.ClientSession | None = None  # made in the running loop, at first use
        proxy_auth = settings.proxy[1] if settings.proxy else None
        self._proxy_headers = {"Proxy-Authorization": proxy_auth} if proxy_auth else None
        self._tokens = TokenKeeper(
            settings.credentials, self._authenticate_once, renew_before=settings.renew_before,
            backoff_initial=settings.credential_backoff, backoff_max=settings.credential_backoff_max,
            on_reauthenticate=on_reauthenticate, on_token_refused=on_token_refused,
        )

    def __repr__(self) -> str:
        return f"KazooClient({self._settings.base_url!r}, {self._settings.credentials.kind})"

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            settings = self._settings
            connector = aiohttp.TCPConnector(limit=settings.max_connections, limit_per_host=0,
                                             ssl=settings.verify, ttl_dns_cache=300)
            self._http = aiohttp.ClientSession(
                connector=connector, timeout=settings.timeout,
                headers={"Accept": "application/json", "User-Agent": f"qubicle-exporter/{__version__}"},
                # Errors are read from the answer's envelope, never from the exception text.
                raise_for_status=False, auto_decompress=True,
                # The environment's proxy, read once by ClientSettings; not trust_env (see there).
                proxy=settings.proxy[0] if settings.proxy else None,
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ---- authentication -----------------------------------------------------------------------

    async def authenticate(self) -> None:
        """Makes sure a token is held (authenticating if needed); raises CredentialError if rejected.

        A fixed token cannot be checked without a request: its first 401 tells.
        """
        await self._tokens.current()

    async def _authenticate_once(self, request: AuthRequest) -> str:
        """One authentication (with transport retries); the token from the answer's `auth_token`."""
        answer = await self._exchange("PUT", request.path, request.endpoint, token=None, body=request.body)
        if answer.code in (400, 401, 403, 404):
            if not envelope.is_crossbar_error(answer.body):
                # A web server or proxy at a wrong URL answered, not Crossbar: the key may be fine.
                raise envelope.not_crossbar(answer.code, request.label)
            raise CredentialError(f"{request.label}: Kazoo rejected {request.rejected} (HTTP {answer.code})")
        if not 200 <= answer.code < 300:
            raise envelope.error_for(answer.code, answer.body, request.label, answer.attempts, answer.retry_after)
        token = envelope.decode(answer.body, request.label, answer.code).get("auth_token")
        if not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise BadResponseError(f"{request.label}: the answer carries no usable auth_token")
        return token

    # ---- transport ----------------------------------------------------------------------------

    async def _exchange(self, method: str, path: str, endpoint: str, *, token: Token | None,
                        params: dict[str, Any] | None = None, body: Any = None) -> _Answer:
        """One request, tried again on connection errors, timeouts, 5xx and 429; the last answer."""
        label = f"{method} {path}"
        headers = {"X-Auth-Token": token.value} if token is not None else {}
        settings = self._settings
        attempt = 0
        while True:
            attempt += 1
            try:
                code, content, retry_after = await self._attempt(method, self._url(path, params), headers, body)
            except (aiohttp.ClientError, TimeoutError, _DeadlineExceeded) as exc:
                self._on_request(endpoint, "error")
                problem, worth_retrying = _transport_problem(exc, settings)
                if not worth_retrying or attempt > settings.retries:
                    tries = f" after {attempt} attempts" if attempt > 1 else ""
                    raise TransportError(f"{label}: {problem}{tries}") from None
                delay = retry.backoff_delay(attempt - 1, settings.backoff_base, settings.backoff_max)
                log.debug("kazoo_retry", endpoint=endpoint, path=path, problem=problem, attempt=attempt,
                          delay=round(delay, 3))
                await retry.pause(delay)
                continue
            self._on_request(endpoint, str(code))
            if content is None:
                limit = settings.max_answer_bytes
                raise BadResponseError(f"{label}: HTTP {code} answer larger than {limit} bytes once decoded "
                                       f"(--max-answer-bytes); refused")
            asked = retry.retry_after(retry_after, time.time())
            if not retry.retryable_status(code) or attempt > settings.retries:
                return _Answer(code, content, attempt, asked)
            if asked is not None and asked > retry.RETRY_AFTER_CAP:
                return _Answer(code, content, attempt, asked)  # not waited for here; the next poll tries again
            delay = asked if asked is not None else retry.backoff_delay(
                attempt - 1, settings.backoff_base, settings.backoff_max)
            log.debug("kazoo_retry", endpoint=endpoint, path=path, code=code, attempt=attempt,
                      delay=round(delay, 3), retry_after=asked is not None)
            await retry.pause(delay)

    async def _attempt(self, method: str, url: URL, headers: dict[str, str],
                       body: Any) -> tuple[int, bytes | None, str | None]:
        """One exchange under the request deadline: status, body (None: beyond max_answer_bytes), Retry-After."""
        async with self._slots:
            deadline = asyncio.timeout(self._settings.request_deadline)
            try:
                async with deadline, self._session().request(method, url, json=body, headers=headers,
                                                             allow_redirects=False,
                                                             proxy_headers=self._proxy_headers) as response:
                    content = await self._read_capped(response)
                    return response.status, content, response.headers.get("Retry-After")
            except TimeoutError:
                if deadline.expired():
                    raise _DeadlineExceeded() from None
                raise

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes | None:
        """The decoded body, or None (and the connection dropped) once it passes max_answer_bytes.

        Read in chunks as it is decompressed: a gzip bomb stops at the cap instead of filling memory.
        """
        cap = self._settings.max_answer_bytes
        length = response.content_length
        if length is not None and "Content-Encoding" not in response.headers:
            # A plain body of announced length (Crossbar's usual answer) is that long and no longer:
            # one read, aiohttp's fast path.
            if length > cap:
                response.close()
                return None
            return await response.read()
        body = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > cap:
                response.close()
                return None
        return bytes(body)

    async def _call(self, method: str, path: str, endpoint: str, *, params: dict[str, Any] | None = None,
                    body: Any = None, sizes: list[int] | None = None) -> dict[str, Any]:
        """An authenticated request; on a 401, one shared re-authentication and one retry.

        `sizes`, if given, gets the size of the successful answer's body appended.
        """
        label = f"{method} {path}"
        token = await self._tokens.current()
        answer = await self._exchange(method, path, endpoint, token=token, params=params, body=body)
        if answer.code == 401:
            try:
                token = await self._tokens.replace(token)
            except CredentialError as exc:
                raise CredentialError(f"{label}: HTTP 401; {exc}") from None
            answer = await self._exchange(method, path, endpoint, token=token, params=params, body=body)
            if answer.code == 401:
                raise self._tokens.distrust(token, f"{label}: HTTP 401 again with a token just issued")
        if not 200 <= answer.code < 300:
            raise envelope.error_for(answer.code, answer.body, label, answer.attempts, answer.retry_after)
        self._tokens.vouch(token)
        if sizes is not None:
            sizes.append(len(answer.body))
        return envelope.decode(answer.body, label, answer.code)

    async def _paginated(self, path: str, endpoint: str) -> list[Any]:
        """Every row of a listing: follows `next_start_key` until it is absent."""
        rows: list[Any] = []
        seen: set[str] = set()
        params: dict[str, Any] = {}
        if self._settings.page_size:
            params["page_size"] = self._settings.page_size
        sizes: list[int] = []
        # All pages together: each is capped, but endless pages of near the cap would otherwise
        # pile up (their rows are kept until the listing ends).
        budget = LISTING_ANSWERS * self._settings.max_answer_bytes
        while True:
            answer = await self._call("GET", path, endpoint, params=params, sizes=sizes)
            pages = len(sizes)
            if sum(sizes) > budget:
                raise BadResponseError(f"GET {path}: the listing passed {budget} bytes in {pages} pages "
                                       f"({LISTING_ANSWERS} x --max-answer-bytes); refused")
            data = answer["data"]
            if not isinstance(data, list):
                raise BadResponseError(f"GET {path}: 'data' of a listing is not a list")
            rows.extend(data)
            next_key = answer.get("next_start_key")
            if next_key is None or next_key == "":
                return rows  # only the absence of a next key ends a listing; a short page does not
            if pages >= self._settings.max_pages:
                raise BadResponseError(f"GET {path}: the listing did not end after {pages} pages (--max-pages); "
                                       f"raise --page-size or --max-pages if it is really that long")
            # Keys are opaque: a string goes back exactly as it came; older Kazoo sends JSON terms
            # (lists, numbers), which go back in their JSON form.
            key = next_key if isinstance(next_key, str) else json.dumps(next_key, separators=(",", ":"))
            if key in seen or key == params.get("start_key"):
                raise BadResponseError(f"GET {path}: Crossbar repeated a pagination key after {len(seen) + 1} pages")
            seen.add(key)
            params = {**params, "start_key": key}

    def _url(self, path: str, params: dict[str, Any] | None) -> URL:
        # Paths are quoted once, by us (_account_path); encoded=True keeps yarl from quoting them
        # again, and is also cheaper than parsing and requoting every URL.
        url = URL(self._base + path, encoded=True)
        return url.update_query({k: str(v) for k, v in params.items()}) if params else url

    def _account_path(self, account_id: str) -> str:
        # Ids go into the path; quoting keeps a stray "/" or "?" from reaching another endpoint.
        return f"{self._account_base}/{quote(account_id, safe='')}"

    # ---- Qubicle ------------------------------------------------------------------------------

    async def list_queues(self, account_id: str) -> list[QueueRef]:
        """Every queue of the account; [] when it has none or no Qubicle at all.

        Crossbar answers 404 both for an unknown account ("bad identifier") and for a path no module
        serves (Qubicle not installed or not enabled), and its message wording is not reliable. So a
        404 here is followed by one read of the account itself: readable means "no Qubicle" ([]), 404
        means the account does not exist or is hidden from this credential (NotFoundError).
        """
        try:
            rows = await self._paginated(f"{self._account_path(account_id)}/qubicle_queues", "queues")
        except NotFoundError:
            await self._account_exists(account_id)
            return []
        except ForbiddenError:
            raise _forbidden(account_id) from None
        return queue_rows(rows, self._settings.max_name_length, lambda: self._on_truncated_name("queue"))

    async def _account_exists(self, account_id: str) -> None:
        """Returns if the credential can read the account's document; NotFoundError naming it if not."""
        try:
            await self._call("GET", self._account_path(account_id), "account")
        except NotFoundError:
            raise _unknown_account(account_id) from None
        except ForbiddenError:
            raise _forbidden(account_id) from None

    async def list_descendants(self, account_id: str) -> list[AccountRef]:
        """Every account below `account_id` (not itself)."""
        try:
            rows = await self._paginated(f"{self._account_path(account_id)}/descendants", "descendants")
        except ForbiddenError:
            raise _forbidden(account_id) from None
        except NotFoundError:
            raise _unknown_account(account_id) from None
        return account_rows(rows, self._settings.max_name_length, lambda: self._on_truncated_name("account"))

    async def queue_list_status(self, account_id: str, queue_ids: Sequence[str]) -> dict[str, Any]:
        """Raw status objects by queue id: one request per batch of status_batch_size, never one per queue.

        Ids absent from Kazoo's answer are absent here (the poller counts them).
        """
        return await _batched(queue_ids, self._settings.status_batch_size,
                              lambda batch: self._status_batch(account_id, batch))

    async def _status_batch(self, account_id: str, queue_ids: list[str]) -> dict[str, Any]:
        wire = queue_list_status_request(self._account_path(account_id), queue_ids, self._settings.status_via_post)
        try:
            answer = await self._call(wire.method, wire.path, "queue_list_status", params=wire.params or None,
                                      body=wire.body)
        except ForbiddenError:
            raise _forbidden(account_id) from None
        statuses = queue_list_status_answer(answer["data"], queue_ids)
        if statuses is None:
            raise BadResponseError(f"{wire.method} {wire.path}: 'data' is not an object of queue statuses")
        return statuses

    # ---- agents, queue documents, account documents (discovery data of issue 13) -------------

    async def recipients_status(self, account_id: str, recipient_ids: Sequence[str],
                                batch_size: int = 100) -> dict[str, Any]:
        """Raw recipient (agent) status objects by user id: POST .../qubicle_recipients/status, one
        request per batch of `batch_size` ids. Ids absent from Kazoo's answer are absent here."""
        path = f"{self._account_path(account_id)}/qubicle_recipients/status"

        async def batch(chunk: list[str]) -> dict[str, Any]:
            try:
                answer = await self._call("POST", path, "recipients_status", body={"data": {"recipient_ids": chunk}})
            except ForbiddenError:
                raise _forbidden(account_id) from None
            found = recipient_status_answer(answer["data"], chunk)
            if found is None:
                raise BadResponseError(f"POST {path}: 'data' is neither an object nor a list of recipient statuses")
            return found

        return await _batched(recipient_ids, batch_size, batch)

    async def list_recipients(self, account_id: str) -> dict[str, str]:
        """Every Qubicle recipient (agent) of the account: name by user id; {} without Qubicle (404)."""
        try:
            rows = await self._paginated(f"{self._account_path(account_id)}/qubicle_recipients", "recipients")
        except NotFoundError:
            return {}
        except ForbiddenError:
            raise _forbidden(account_id) from None
        return recipient_rows(rows)

    async def queue_document(self, account_id: str, queue_id: str) -> Any:
        """The queue's document (settings and members), `data` as Kazoo sent it.

        Raises NotFoundError when the queue is gone."""
        path = f"{self._account_path(account_id)}/qubicle_queues/{quote(queue_id, safe='')}"
        try:
            return (await self._call("GET", path, "queue"))["data"]
        except ForbiddenError:
            raise _forbidden(account_id) from None

    async def account_document(self, account_id: str) -> Any:
        """GET /v2/accounts/{A}: `data` as Kazoo sent it (its `name` is what the exporter reads)."""
        try:
            return (await self._call("GET", self._account_path(account_id), "account"))["data"]
        except ForbiddenError:
            raise _forbidden(account_id) from None


def _unknown_account(account_id: str) -> NotFoundError:
    return NotFoundError(f"account {account_id} does not exist or is not visible to these credentials (HTTP 404)")


def _forbidden(account_id: str) -> ForbiddenError:
    return ForbiddenError(f"account {account_id} is outside the credential's account tree (HTTP 403)")


__all__ = ["ClientSettings", "Credentials", "KazooClient", "KazooError"]


async def _batched(ids: Sequence[str], size: int,
                   fetch: Callable[[list[str]], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """`fetch` of the distinct non-empty ids, `size` at a time, merged.

    Batches run concurrently; every one is awaited before the first error is raised, so no request
    is left running behind the caller's back. One batch (the usual case) spawns no task.
    """
    distinct = list(dict.fromkeys(i for i in ids if isinstance(i, str) and i))
    if not distinct:
        return {}
    size = max(1, size)
    batches = [distinct[i:i + size] for i in range(0, len(distinct), size)]
    if len(batches) == 1:
        return await fetch(batches[0])
    results = await asyncio.gather(*(fetch(batch) for batch in batches), return_exceptions=True)
    merged: dict[str, Any] = {}
    for result in results:
        if isinstance(result, BaseException):
            raise result
        merged.update(result)
    return merged
