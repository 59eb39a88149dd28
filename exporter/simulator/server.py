"""Crossbar's HTTP face of the simulator: Qubicle endpoints, envelopes, errors, pagination, faults.

Control API for a standalone simulator (not part of Kazoo):
    GET  /sim/faults             -> current faults (JSON)
    PUT  /sim/faults             <- {"error_rate": 0.1, ...} (fields of Faults; omitted ones unchanged)
    POST /sim/burst              <- {"account_id", "queue_id", "outcome": "abandoned"|"missed"|"answered", "count"}
    POST /sim/restart            <- {"account_id", "queue_id"}
    POST /sim/advance            <- {"seconds": 3600}
    POST /sim/rename             <- {"account_id", "queue_id", "name"} (any text, markup included)
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import json
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, fields
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from exporter.simulator import recipients as agents
from exporter.simulator.model import QUEUE_DEFAULTS, QueueModel
from exporter.simulator.state import Faults, SimState

TOKENS_REMAINING = web.RequestKey("tokens_remaining", float)
ISSUED_TOKEN = web.RequestKey("issued_token", str)
SET_FAULTS: web.AppKey[Callable[[Faults], None]] = web.AppKey("set_faults")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"
_INTEGER_LIMITS = {"ring_timeout": 1, "tick_time": 250, "timeout": 10, "agent_wrapup_time": 0,
                   "timeout_if_size_exceeds": 0}
_BOOLEANS = ("force_away_on_reject", "timeout_immediately_if_empty")
_STRINGS = ("queue_router", "queue_type", "hold_treatment", "timeout_redirect")


class CrossbarError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data if data is not None else {}


def _endpoint(request: web.Request) -> str:
    path = request.path
    if path.endswith("api_auth"):
        return "api_auth"
    if path.endswith("user_auth"):
        return "user_auth"
    if path.endswith("descendants"):
        return "descendants"
    if path.endswith("qubicle_queues/status"):
        return "queue_list_status"
    if path.endswith("qubicle_recipients/status"):
        return "recipients_status"
    if "/qubicle_recipients/" in path and path.endswith("/status"):
        return "recipient_status"
    if path.endswith("/qubicle_recipients"):
        return "recipients"
    if "/qubicle_queues/" in path and path.rstrip("/").count("/") == 5 and request.method == "GET":
        return "queue"
    if path.endswith("/status"):
        return "queue_status"
    if path.endswith("/qubicle_queues"):
        return "queues"
    if path.startswith("/v2/accounts/") and path.count("/") == 3:
        return "account"
    return "other"


class CrossbarApp:
    def __init__(self, state: SimState) -> None:
        self.state = state
        self.rng = random.Random((state.config.seed or 0) + 1)

    # ---- envelope ------------------------------------------------------------------------------

    def envelope(self, request: web.Request, data: Any, status: int = 200, **extra: Any) -> web.Response:
        token = request.headers.get("X-Auth-Token", "")
        body = {"data": data, "status": "success", "request_id": uuid.uuid4().hex, "revision": "undefined",
                "auth_token": request.get(ISSUED_TOKEN, token), "node": "c2ltdWxhdG9y",
                "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "tokens": {"consumed": 1, "remaining": int(request.get(TOKENS_REMAINING, 100))},
                "version": "5.2.0-sim", **extra}
        return web.json_response(body, status=status)

    @staticmethod
    def error(request: web.Request, code: int, message: str, data: Any = None) -> web.Response:
        body = {"data": data if data is not None else {}, "error": str(code), "message": message,
                "status": "error", "request_id": uuid.uuid4().hex,
                "auth_token": request.headers.get("X-Auth-Token", ""), "timestamp":
                datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        return web.json_response(body, status=code)

    # ---- middleware: faults, rate limits, authentication -----------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/sim/"):
            return await handler(request)
        state = self.state
        with state.lock:
            state.request_count += 1
            endpoint = _endpoint(request)
            state.requests_by_endpoint[endpoint] = state.requests_by_endpoint.get(endpoint, 0) + 1
            faults = state.faults
        if faults.down and request.transport is not None:
            # Connections kept alive from before the outage die too.
            request.transport.close()
            raise web.HTTPServiceUnavailable()
        account_id = request.match_info.get("account_id")
        if not faults.hit(account_id):
            return await self._handle(request, handler)
        delay = faults.latency
        if faults.latency_spike_rate and self.rng.random() < faults.latency_spike_rate:
            delay += faults.latency_spike
        if not delay:
            return await self._faulty(request, handler, faults)
        # Latency is the time to answer, counted from arrival, as a real server's is: the answer is
        # made first, then held until the deadline. Sleeping first and working after would add this
        # one-threaded simulator's own CPU time (and its queue) to every answer's latency.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        try:
            response = await self._faulty(request, handler, faults)
        except Exception:  # an answer raised as an exception (aiohttp's HTTPException) is late too
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            raise
        await asyncio.sleep(max(0.0, deadline - loop.time()))
        return response

    async def _faulty(self, request: web.Request, handler: Handler, faults: Faults) -> web.StreamResponse:
        roll = self.rng.random()
        if roll < faults.error_rate:
            code = self.rng.choice([500, 503])
            return self.error(request, code, "datastore_fault" if code == 503 else "internal_error")
        roll -= faults.error_rate
        if roll < faults.non_json_rate:
            return web.Response(status=502, text=_HTML_502, content_type="text/html")
        roll -= faults.non_json_rate
        if roll < faults.rate_limit_rate:
            headers = {"Retry-After": f"{faults.retry_after:g}"} if faults.retry_after is not None else {}
            response = self.error(request, 429, "too_many_requests")
            response.headers.update(headers)
            return response
        return await self._handle(request, handler)

    async def _handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except CrossbarError as exc:
            return self.error(request, exc.code, exc.message, exc.data)

    def limit(self, request: web.Request, account_id: str, cost: float = 1.0) -> None:
        if not self.state.config.rate_limit:
            return
        client = request.remote or "unknown"
        with self.state.lock:
            ok, left = self.state.limiter.take(client, account_id, cost)
        request[TOKENS_REMAINING] = left
        if not ok:
            raise CrossbarError(429, "too_many_requests")

    def authorize(self, request: web.Request, account_id: str) -> None:
        token = self.state.check_token(request.headers.get("X-Auth-Token"))
        if token is None:
            raise CrossbarError(401, self.rng.choice(["invalid_credentials", "invalid credentials"]))
        if account_id not in self.state.accounts:
            raise CrossbarError(404, "bad identifier", {"account_id": account_id})
        if not self.state.in_tree(token.account_id, account_id):
            raise CrossbarError(403, "forbidden", {"cause": "account outside of token's tree"})
        self.limit(request, account_id)

    async def body(self, request: web.Request, required: bool = True) -> dict[str, Any]:
        raw = await request.read()
        if not raw:
            if required:
                raise CrossbarError(400, "invalid request body", {"data": {"required": {"message": "missing data"}}})
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise CrossbarError(400, "invalid json") from None
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise CrossbarError(400, "invalid request body", {"data": {"type": {"message": "data must be an object"}}})
        return body["data"]

    # ---- authentication ------------------------------------------------------------------------

    async def api_auth(self, request: web.Request) -> web.Response:
        data = await self.body(request)
        key = data.get("api_key")
        if not isinstance(key, str) or len(key) != 64:
            raise CrossbarError(400, "invalid request body",
                                {"api_key": {"maxLength": {"message": "String must be 64 characters"}}})
        if key != self.state.api_key:
            # Real Crossbar echoes the unknown key: the exporter must never log this body.
            raise CrossbarError(404, "bad identifier", {"api_key": key})
        self.limit(request, self.state.master.id, 35)
        token = self.state.issue_token()
        request[ISSUED_TOKEN] = token
        return self.envelope(request, {"account_id": self.state.master.id, "owner_id": self.state.master.id,
                                       "account_name": self.state.master.name}, status=201)

    async def user_auth(self, request: web.Request) -> web.Response:
        data = await self.body(request)
        config = self.state.config
        name_ok = data.get("account_name") == config.account_name or data.get("account_realm") == "sim.example.net"
        if data.get("credentials") != self.state.user_credentials() or not name_ok:
            raise CrossbarError(401, "invalid credentials")
        self.limit(request, self.state.master.id, 35)
        token = self.state.issue_token()
        request[ISSUED_TOKEN] = token
        return self.envelope(request, {"account_id": self.state.master.id, "owner_id": uuid.uuid4().hex}, status=201)

    # ---- listings --------------------------------------------------------------------------------

    def page(self, request: web.Request, items: list[tuple[str, Any]],
             row: Callable[[Any], dict[str, Any]]) -> web.Response:
        """A Crossbar listing of `items` ((id, item) pairs): only the rows of the page asked are made
        (row(item)), and the start key is found by bisection, as a database index would: a listing
        of thousands of accounts must not cost a scan of all of them for each page."""
        ordered = sorted(items, key=lambda pair: pair[0], reverse=True)  # Crossbar's default: descending
        query = request.query
        if query.get("paginate") == "false":
            if len(ordered) > 1000:
                raise CrossbarError(416, "too many results to return without paging")
            return self.envelope(request, [row(item) for _, item in ordered], page_size=len(ordered))
        try:
            size = int(query.get("page_size", self.state.config.page_size))
        except ValueError:
            raise CrossbarError(400, "invalid page_size") from None
        size = max(1, size)
        start = 0
        if "start_key" in query:
            try:
                key = json.loads(base64.urlsafe_b64decode(query["start_key"].encode()))[0]
            except (ValueError, IndexError, TypeError):
                raise CrossbarError(400, "invalid start_key") from None
            if not isinstance(key, str):
                raise CrossbarError(400, "invalid start_key")
            ascending = [item_id for item_id, _ in reversed(ordered)]
            start = len(ordered) - bisect.bisect_right(ascending, key)  # the first id <= key
        chunk = [row(item) for _, item in ordered[start:start + size]]
        extra: dict[str, Any] = {"page_size": len(chunk)}
        if "start_key" in query:
            extra["start_key"] = query["start_key"]
        if start + size < len(ordered):
            extra["next_start_key"] = base64.urlsafe_b64encode(json.dumps([ordered[start + size][0]]).encode()).decode()
        return self.envelope(request, chunk, **extra)

    async def descendants(self, request: web.Request) -> web.Response:
        account_id = request.match_info["account_id"]
        self.authorize(request, account_id)
        with self.state.lock:
            accounts = [(a.id, a) for a in self.state.descendants(account_id)]
        return self.page(request, accounts, lambda a: {"id": a.id, "name": a.name, "tree": [],
                                                       "realm": f"{a.id[:6]}.sim.example.net"})

    async def account(self, request: web.Request) -> web.Response:
        """The account document: readable for the token's own account and its descendants; an unknown
        id is 404 "bad identifier" (authorize), whether or not the account runs Qubicle."""
        account_id = request.match_info["account_id"]
        self.authorize(request, account_id)
        with self.state.lock:
            account = self.state.accounts[account_id]
            doc = {"id": account.id, "name": account.name, "realm": f"{account.id[:6]}.sim.example.net",
                   "enabled": True, "timezone": self.state.config.timezone}
        return self.envelope(request, doc)

    def account_queues(self, request: web.Request) -> tuple[str, dict[str, QueueModel]]:
        account_id = request.match_info["account_id"]
        self.authorize(request, account_id)
        account = self.state.accounts[account_id]
        if not account.qubicle:
            raise CrossbarError(404, "not found", {"cause": "no module serves qubicle_queues"})
        return account_id, account.queues

    def one_queue(self, request: web.Request) -> tuple[str, QueueModel]:
        account_id, queues = self.account_queues(request)
        queue = self.state.queue(account_id, request.match_info["queue_id"])
        if queue is None:
            raise CrossbarError(404, "bad identifier", {"queue_id": request.match_info["queue_id"]})
        return account_id, queue

    async def list_queues(self, request: web.Request) -> web.Response:
        _, queues = self.account_queues(request)
        with self.state.lock:
            listed = [(q.queue_id, q) for q in queues.values()]
        return self.page(request, listed, lambda q: {"id": q.queue_id, "name": q.name})

    # ---- status ----------------------------------------------------------------------------------

    def status_of(self, account_id: str, queue: QueueModel) -> dict[str, Any]:
        status = queue.status(self.state.config.longest_wait)
        faults = self.state.faults
        if faults.drop_field_rate and faults.hit(account_id) and self.rng.random() < faults.drop_field_rate:
            stats = status["stats"]
            assert isinstance(stats, dict)
            victim = self.rng.choice(["active_recipient_count", "available_recipient_count", *stats])
            holder = status if victim in status else stats
            if self.rng.random() < 0.5:
                holder.pop(victim, None)
            else:
                holder[victim] = self.rng.choice([None, "n/a", True])
        return status

    async def queue_status(self, request: web.Request) -> web.Response:
        account_id, queue = self.one_queue(request)
        with self.state.lock:
            return self.envelope(request, self.status_of(account_id, queue))

    async def list_status(self, request: web.Request) -> web.Response:
        if request.method == "POST" and request.query.get("verb", "").upper() != "GET":
            raise CrossbarError(405, "method not allowed")
        account_id, queues = self.account_queues(request)
        data = await self.body(request, required=False)
        ids = data.get("queue_ids") if data else None
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
            raise CrossbarError(400, "invalid request body", {"queue_ids": {"type": {"message": "list of ids"}}})
        with self.state.lock:
            now = self.state.now()
            chosen = list(queues) if ids is None else [i for i in ids if i in queues]
            answer = {}
            for queue_id in chosen:
                queue = queues[queue_id]
                queue.advance(now)
                answer[queue_id] = self.status_of(account_id, queue)
        return self.envelope(request, answer)

    # ---- queue configuration -------------------------------------------------------------------

    @staticmethod
    def validate(data: dict[str, Any], creating: bool) -> dict[str, Any]:
        clean: dict[str, Any] = {}
        if creating or "name" in data:
            name = data.get("name")
            if not isinstance(name, str) or not 1 <= len(name) <= 128:
                raise CrossbarError(400, "invalid request body",
                                    {"name": {"maxLength" if isinstance(name, str) and name else "required":
                                              {"message": "name must be 1 to 128 characters"}}})
            clean["name"] = name
        for key, minimum in _INTEGER_LIMITS.items():
            if key in data:
                value = data[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                    raise CrossbarError(400, "invalid request body",
                                        {key: {"minimum": {"message": f"{key} must be an integer >= {minimum}"}}})
                clean[key] = value
        for key in _BOOLEANS:
            if key in data:
                if not isinstance(data[key], bool):
                    raise CrossbarError(400, "invalid request body", {key: {"type": {"message": f"{key} must be a boolean"}}})
                clean[key] = data[key]
        for key in _STRINGS:
            if key in data:
                if not isinstance(data[key], str):
                    raise CrossbarError(400, "invalid request body", {key: {"type": {"message": f"{key} must be a string"}}})
                clean[key] = data[key]
        return clean

    @staticmethod
    def info(queue: QueueModel) -> dict[str, Any]:
        settings = {k: queue.settings.get(k, v) for k, v in QUEUE_DEFAULTS.items()}
        return {"id": queue.queue_id, "name": queue.name, **settings, "members": dict.fromkeys(queue.agents, "")}

    async def create_queue(self, request: web.Request) -> web.Response:
        account_id, _ = self.account_queues(request)
        data = self.validate(await self.body(request), creating=True)
        name = data.pop("name")
        queue_id = self.state.create_queue(account_id, name, **data)
        queue = self.state.queue(account_id, queue_id)
        assert queue is not None
        return self.envelope(request, self.info(queue), status=201)

    async def queue_info(self, request: web.Request) -> web.Response:
        account_id, queue = self.one_queue(request)
        with self.state.lock:
            doc = self.info(queue)
            doc["members"] = dict.fromkeys(agents.members(queue, self.everyone(account_id)), "")
        style = self.state.config.queue_document_style
        if style == "legacy":
            renamed = {"name": "queue_name", "timeout": "queue_timeout", "ring_timeout": "agent_connect_timeout"}
            doc = {renamed.get(k, k): v for k, v in doc.items()}
        elif style == "strings":
            doc = {k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in doc.items()}
        return self.envelope(request, doc)

    # ---- recipients (agents) and accounts ------------------------------------------------------

    def everyone(self, account_id: str) -> dict[str, agents.Recipient]:
        """Every agent of the account, its queue models advanced to now (hold the lock)."""
        now = self.state.now()
        queues = list(self.state.accounts[account_id].queues.values())
        for queue in queues:
            queue.advance(now)
        return agents.recipients(queues)

    def recipient_status(self, recipient: agents.Recipient) -> dict[str, Any]:
        config = self.state.config
        data = agents.status(recipient, config.recipient_state_case, config.recipient_timestamps)
        if self.state.faults.drop_field_rate and self.rng.random() < self.state.faults.drop_field_rate:
            victim = self.rng.choice(["availability_state", "stats", "total_calls"])
            if victim == "availability_state":
                data["availability_state"] = self.rng.choice(["Lunch", None, 3])
            elif victim == "stats":
                data.pop("stats", None)
            elif isinstance(data.get("stats"), dict):
                data["stats"]["total_calls"] = self.rng.choice([None, "n/a", -1])
        return data

    async def list_recipients(self, request: web.Request) -> web.Response:
        account_id, _ = self.account_queues(request)
        with self.state.lock:
            users = [(u, u) for u in self.everyone(account_id)]
        return self.page(request, users, lambda u: {"id": u, "name": agents.agent_name(u), "roles": {"agent": "Agent"}})

    async def recipients_status(self, request: web.Request) -> web.Response:
        account_id, _ = self.account_queues(request)
        data = await self.body(request)
        ids = data.get("recipient_ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise CrossbarError(400, "invalid request body", {"recipient_ids": {"type": {"message": "list of ids"}}})
        with self.state.lock:
            everyone = self.everyone(account_id)
            # Ids that are no recipient of this account are left out, as list status does with queues.
            found = {i: self.recipient_status(everyone[i]) for i in ids if i in everyone}
        if self.state.config.recipient_status_as_list:
            return self.envelope(request, [{"id": i, **status} for i, status in found.items()])
        return self.envelope(request, found)

    async def one_recipient_status(self, request: web.Request) -> web.Response:
        account_id, _ = self.account_queues(request)
        user_id = request.match_info["user_id"]
        with self.state.lock:
            recipient = self.everyone(account_id).get(user_id)
            if recipient is None:
                raise CrossbarError(404, "bad identifier", {"user_id": user_id})
            return self.envelope(request, self.recipient_status(recipient))

    async def modify_queue(self, request: web.Request) -> web.Response:
        _, queue = self.one_queue(request)
        data = self.validate(await self.body(request), creating=False)
        with self.state.lock:
            if "name" in data:
                queue.name = data.pop("name")
            queue.settings.update(data)
        return self.envelope(request, self.info(queue))

    async def sessions(self, request: web.Request) -> web.Response:
        _, queue = self.one_queue(request)
        with self.state.lock:
            return self.envelope(request, [{"queue_id": queue.queue_id, "session_list": queue.sessions()}])

    async def recipients(self, request: web.Request) -> web.Response:
        account_id, queue = self.one_queue(request)
        with self.state.lock:
            rows = [{"id": u, "permission_roles": ["agent"], "permissions": ["queue_login", "queue_logout"]}
                    for u in agents.members(queue, self.everyone(account_id))]
        return self.envelope(request, rows)

    async def set_membership(self, request: web.Request) -> web.Response:
        _, queue = self.one_queue(request)
        data = await self.body(request)
        action, members = data.get("action"), data.get("members")
        if action not in ("set", "add", "remove"):
            raise CrossbarError(400, "invalid request body", {"action": {"enum": {"message": "set, add or remove"}}})
        if not isinstance(members, list) or not all(isinstance(m, str) and m for m in members):
            raise CrossbarError(400, "invalid request body", {"members": {"type": {"message": "a list of user ids"}}})
        with self.state.lock:
            if action == "set":
                for user in [u for u in queue.agents if u not in members]:
                    queue.remove_agent(user)
            for user in members:
                queue.remove_agent(user) if action == "remove" else queue.add_agent(user)
        return self.envelope(request, self.info(queue))

    async def clear_membership(self, request: web.Request) -> web.Response:
        _, queue = self.one_queue(request)
        with self.state.lock:
            for user in list(queue.agents):
                queue.remove_agent(user)
        return self.envelope(request, self.info(queue))

    # ---- control API -------------------------------------------------------------------------

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(asdict(self.state.faults))

    async def put_faults(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
            known = {f.name for f in fields(Faults)}
            unknown = set(data) - known
            if unknown:
                return web.json_response({"error": f"unknown fault {sorted(unknown)[0]!r}"}, status=400)
            current = asdict(self.state.faults)
            current.update(data)
            request.app[SET_FAULTS](Faults(**current))
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(asdict(self.state.faults))

    async def control(self, request: web.Request) -> web.Response:
        data = await request.json()
        action = request.match_info["action"]
        try:
            if action == "burst":
                self.state.queue(data["account_id"], data["queue_id"]).burst(data["outcome"], int(data["count"]))  # type: ignore[union-attr]
            elif action == "restart":
                self.state.restart_queue(data["account_id"], data["queue_id"])
            elif action == "advance":
                self.state.advance(float(data["seconds"]))
            elif action == "rename":
                # Any text at all (the wallboard's tests name a queue with markup); Crossbar's own
                # PATCH checks the length, this control call does not.
                queue = self.state.queue(data["account_id"], data["queue_id"])
                if queue is None or not isinstance(data["name"], str):
                    raise ValueError("unknown queue or name not a string")
                with self.state.lock:
                    queue.name = data["name"]
            else:
                return web.json_response({"error": f"unknown action {action!r}"}, status=404)
        except (KeyError, ValueError, AttributeError) as exc:
            return web.json_response({"error": f"bad control request: {exc}"}, status=400)
        return web.json_response({"ok": True})

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware], client_max_size=16 * 1024 * 1024)
        r = app.router
        r.add_put("/v2/api_auth", self.api_auth)
        r.add_put("/v2/user_auth", self.user_auth)
        base = "/v2/accounts/{account_id}"
        r.add_get(base, self.account)
        r.add_get(base + "/descendants", self.descendants)
        r.add_get(base + "/qubicle_recipients", self.list_recipients)
        r.add_post(base + "/qubicle_recipients/status", self.recipients_status)
        r.add_get(base + "/qubicle_recipients/{user_id}/status", self.one_recipient_status)
        r.add_get(base + "/qubicle_queues", self.list_queues)
        r.add_put(base + "/qubicle_queues", self.create_queue)
        r.add_put(base + "/qubicle_queues/", self.create_queue)
        r.add_get(base + "/qubicle_queues/status", self.list_status)
        r.add_post(base + "/qubicle_queues/status", self.list_status)
        r.add_get(base + "/qubicle_queues/{queue_id}", self.queue_info)
        r.add_patch(base + "/qubicle_queues/{queue_id}", self.modify_queue)
        r.add_get(base + "/qubicle_queues/{queue_id}/status", self.queue_status)
        r.add_get(base + "/qubicle_queues/{queue_id}/sessions", self.sessions)
        r.add_get(base + "/qubicle_queues/{queue_id}/recipients", self.recipients)
        r.add_post(base + "/qubicle_queues/{queue_id}/recipients", self.set_membership)
        r.add_delete(base + "/qubicle_queues/{queue_id}/recipients", self.clear_membership)
        r.add_get("/sim/faults", self.get_faults)
        r.add_put("/sim/faults", self.put_faults)
        r.add_post("/sim/{action}", self.control)
        return app
