"""A small, scriptable Crossbar on 127.0.0.1 (aiohttp), and a guard that no secret ever leaks.

It behaves like the notes in shared/reference/kazoo-notes.md: envelopes that echo the caller's
token, JWTs with an absolute exp and 401 after it, opaque base64 page keys, 404 with the unknown
API key inside `data`, 403 outside the token's account tree, no Retry-After on 429.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ACCOUNT = "a" * 32
OTHER = "b" * 32
CHILD = "c" * 32
OUTSIDE = "d" * 32          # outside the token's tree: 403
NO_QUBICLE = "e" * 32       # Qubicle not installed there: 404
API_KEY = "4f1c" * 16       # 64 characters
USERNAME, PASSWORD, ACCOUNT_NAME = "Alice.Agent", "pa55-w0rd!", "acme"
USER_MD5 = hashlib.md5(f"{USERNAME.lower()}:{PASSWORD}".encode()).hexdigest()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_jwt(exp: float, serial: int, iat: float | None = None) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims: dict[str, Any] = {"account_id": ACCOUNT, "exp": exp, "jti": serial}
    if iat is not None:
        claims["iat"] = iat
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl{serial}"


def status_object(n: int) -> dict[str, Any]:
    return {"active_recipient_count": 3, "available_recipient_count": 1, "node": f"qubicle@kz{n % 2}",
            "stats": {"estimated_wait": 30 + n, "average_wait": 20, "recipient_count": 5,
                      "active_session_count": n, "total_sessions": 40, "missed_sessions": 2,
                      "abandoned_sessions": 3}}


def error_answer(code: int, request: web.Request | None = None, **extra: Any) -> web.Response:
    """Crossbar's error envelope, token echoed like the real one."""
    token = request.headers.get("X-Auth-Token", "") if request is not None else ""
    body = {"status": "error", "error": str(code), "message": "error", "data": {}, "auth_token": token, **extra}
    return web.json_response(body, status=code)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    token: str | None
    body: Any


@dataclass
class FakeCrossbar:
    url: str = ""
    queues: dict[str, list[str]] = field(default_factory=lambda: {
        ACCOUNT: [f"q{i:03d}" for i in range(8)], OTHER: ["only"], CHILD: []})
    names: dict[str, str] = field(default_factory=dict)
    extra_rows: dict[str, list[Any]] = field(default_factory=dict)  # odd rows appended to a listing
    descendants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    page_size: int = 3
    token_ttl: float = 3600.0
    issue_iat: bool = True
    auth_delay: float = 0.0
    reject_auth: bool = False
    refuse_tokens: bool = False  # every data call 401, even with a token just issued
    repeat_key: bool = False
    valid: set[str] = field(default_factory=set)
    issued: list[str] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    # endpoint -> canned answers served (in order) before normal behaviour; a callable gets the request
    script: dict[str, list[Any]] = field(default_factory=dict)
    secrets_seen: set[str] = field(default_factory=set)

    def count(self, endpoint: str) -> int:
        suffix = {"api_auth": "/v2/api_auth", "user_auth": "/v2/user_auth"}.get(endpoint)
        if suffix:
            return sum(1 for s in self.seen if s.path == suffix)
        return sum(1 for s in self.seen if _endpoint(s.path) == endpoint)

    def requests(self, endpoint: str) -> list[Seen]:
        return [s for s in self.seen if _endpoint(s.path) == endpoint]

    def issue(self) -> str:
        now = time.time()
        token = make_jwt(now + self.token_ttl, len(self.issued), iat=now if self.issue_iat else None)
        self.valid.add(token)
        self.issued.append(token)
        self.secrets_seen.add(token)
        return token

    def expire_all(self) -> None:
        self.valid.clear()

    def envelope(self, request: web.Request, data: Any, status: int = 200, **extra: Any) -> web.Response:
        return web.json_response({"data": data, "status": "success", "request_id": "r1", "revision": "x",
                                  "auth_token": request.headers.get("X-Auth-Token", ""),
                                  "tokens": {"consumed": 1, "remaining": 99}, "node": "bm9kZQ", **extra},
                                 status=status)

    def token_ok(self, request: web.Request) -> bool:
        token = request.headers.get("X-Auth-Token")
        if self.refuse_tokens or token not in self.valid:
            return False
        exp = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==")).get("exp", 0)
        return exp > time.time()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.seen.append(Seen(request.method, request.path, dict(request.query),
                              request.headers.get("X-Auth-Token"), body))
        endpoint = _endpoint(request.path)
        canned = self.script.get(endpoint)
        if canned:
            answer = canned.pop(0)
            return await answer(request) if callable(answer) else answer
        if endpoint not in ("api_auth", "user_auth") and not self.token_ok(request):
            return error_answer(401, request, message="invalid credentials")
        account = request.match_info.get("account")
        if account == OUTSIDE:
            return error_answer(403, request)
        return await handler(request)

    async def api_auth(self, request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(self.auth_delay)
        key = body.get("data", {}).get("api_key")
        if isinstance(key, str):
            self.secrets_seen.add(key)
        if not isinstance(key, str) or len(key) != 64:
            return error_answer(400, request)
        if self.reject_auth or key != API_KEY:
            # Real Crossbar: 404 with the unknown key itself in `data`.
            return web.json_response({"status": "error", "error": "404", "message": "bad identifier",
                                      "data": {"api_key": key}}, status=404)
        return web.json_response({"status": "success", "data": {"account_id": ACCOUNT}, "auth_token": self.issue()},
                                 status=201)

    async def user_auth(self, request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(self.auth_delay)
        data = body.get("data", {})
        if self.reject_auth or data.get("credentials") != USER_MD5 or data.get("account_name") != ACCOUNT_NAME:
            return error_answer(401, request, message="invalid_credentials")
        return web.json_response({"status": "success", "data": {"account_id": ACCOUNT}, "auth_token": self.issue()})

    def page(self, request: web.Request, rows: list[Any]) -> web.Response:
        size = int(request.query.get("page_size", self.page_size))
        start = 0
        if "start_key" in request.query:
            start = int(base64.b64decode(request.query["start_key"]).decode())
        chunk = rows[start:start + size]
        extra: dict[str, Any] = {"page_size": len(chunk), "start_key": request.query.get("start_key", "")}
        if start + size < len(rows):
            nxt = 0 if self.repeat_key and start > 0 else start + size
            extra["next_start_key"] = base64.b64encode(str(nxt).encode()).decode()
        return self.envelope(request, chunk, **extra)

    async def list_queues(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        if account == NO_QUBICLE or account not in self.queues:
            return error_answer(404, request, message="bad identifier")
        rows: list[Any] = [{"id": q, "name": self.names.get(q, f"Queue {q}"), "queue_type": "queue_basic"}
                           for q in sorted(self.queues[account], reverse=True)]
        return self.page(request, rows + self.extra_rows.get(account, []))

    def known(self, account: str) -> bool:
        """Accounts that exist: every one with queues (or none), NO_QUBICLE, and every descendant."""
        listed = {row.get("id") for rows in self.descendants.values() for row in rows if isinstance(row, dict)}
        return account in self.queues or account in self.descendants or account == NO_QUBICLE or account in listed

    async def account_doc(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        if not self.known(account):
            return error_answer(404, request, message="bad identifier", data={"cause": account})
        return self.envelope(request, {"id": account, "name": f"Account {account[:4]}", "enabled": True})

    async def list_descendants(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        if account not in self.queues and account not in self.descendants:
            return error_answer(404, request)
        return self.page(request, self.descendants.get(account, []))

    async def list_status(self, request: web.Request) -> web.Response:
        if request.method == "POST" and request.query.get("verb") != "GET":
            return error_answer(405, request)
        account = request.match_info["account"]
        body = await request.json()
        ids = body["data"]["queue_ids"]
        known = self.queues.get(account, [])
        return self.envelope(request, {q: status_object(i) for i, q in enumerate(ids) if q in known})


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _endpoint(path: str) -> str:
    if path == "/v2/api_auth":
        return "api_auth"
    if path == "/v2/user_auth":
        return "user_auth"
    if path.endswith("/qubicle_queues/status"):
        return "queue_list_status"
    if path.endswith("/qubicle_queues"):
        return "queues"
    if path.endswith("/descendants"):
        return "descendants"
    if path.startswith("/v2/accounts/") and path.count("/") == 3:
        return "account"
    return "other"


