"""The simulated platform: accounts, queues, tokens, rate limits, faults and the clock. Thread-safe."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import secrets
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from datetime import time as clock_time
from zoneinfo import ZoneInfo

from exporter.simulator.model import QueueModel

_NAMES = ["Sales", "Support", "Billing", "Reception", "Technical", "Renewals", "Escalations", "Spanish",
          "VIP", "Outbound callbacks", "Orders", "Returns", "Front desk", "After hours", "Claims", "Dispatch"]


@dataclass
class Faults:
    latency: float = 0.0
    latency_spike_rate: float = 0.0
    latency_spike: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: float | None = None
    non_json_rate: float = 0.0
    token_expire_every: int = 0
    drop_field_rate: float = 0.0
    queue_churn_per_minute: float = 0.0
    down: bool = False
    # None: the random faults above hit every request; else only requests for these accounts
    # (authentication names no account, so it is spared), to watch healthy accounts beside faulty ones.
    accounts: tuple[str, ...] | None = None

    def hit(self, account_id: str | None) -> bool:
        """Whether the random faults apply to requests for this account (None: names no account)."""
        return self.accounts is None or account_id in self.accounts


@dataclass
class SimulatorConfig:
    accounts: int = 3
    queues_per_account: int = 5
    sub_accounts: int = 0
    agents_per_queue: float = 6  # varies by +-2; below 1, the share of queues with one agent
    seed: int | None = None
    speed: float = 1.0
    start: datetime | None = None
    # Without start: the simulated clock starts at this local time of `timezone`, today (there), so a
    # demo at any hour shows a working day; None (and no start) is real time.
    start_at_local: clock_time | None = None
    timezone: str = "UTC"
    token_ttl: float = 3600.0
    rate_limit: bool = True
    page_size: int = 50
    longest_wait: bool = True
    username: str = "supervisor"
    password: str = "demo-password"
    account_name: str = "Demo Reseller"
    no_qubicle_accounts: int = 0
    empty_accounts: int = 0
    # Qubicle's queue timeout (seconds) of the queues created at start, given in turn; a None entry
    # keeps the default 600 s. Short ones turn waits into missed calls, not only abandons.
    queue_timeouts: tuple[int | None, ...] = ()
    # How recipients (agents) answer, within what the sources show: availability_state spelled
    # "title" (On-A-Call), "lower" (on-a-call), "snake" (on_a_call) or "mixed" (per agent);
    # timestamps in "gregorian" seconds (Kazoo's clock), "unix" seconds or "milliseconds"; the
    # list status answer as an object keyed by id, or as a list.
    recipient_state_case: str = "mixed"
    recipient_timestamps: str = "gregorian"
    recipient_status_as_list: bool = False
    # Queue documents with "current" field names, "legacy" ones (queue_timeout,
    # agent_connect_timeout), or current names with numbers as "strings".
    queue_document_style: str = "current"
    faults: Faults = field(default_factory=Faults)


@dataclass
class Account:
    id: str
    name: str
    parent: str | None
    qubicle: bool = True
    queues: dict[str, QueueModel] = field(default_factory=dict)


@dataclass
class Token:
    account_id: str
    expires: float  # real unix time
    requests: int = 0


class RateLimiter:
    """Crossbar's bucket per client and account: 100 tokens, refilled at 10 per second."""

    def __init__(self, size: float = 100.0, refill: float = 10.0) -> None:
        self.size, self.refill = size, refill
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def take(self, client: str, account_id: str, cost: float) -> tuple[bool, float]:
        now = time.monotonic()
        level, at = self._buckets.get((client, account_id), (self.size, now))
        level = min(self.size, level + (now - at) * self.refill)
        ok = level >= cost
        if ok:
            level -= cost
        self._buckets[(client, account_id)] = (level, now)
        return ok, level


def _wall_clock(tz: tzinfo) -> datetime:
    """The real date and time (tests replace it to run the demo's clock at any hour)."""
    return datetime.now(tz)


class SimState:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.rng = random.Random(config.seed)
        self.tz = ZoneInfo(config.timezone)
        self.faults = replace(config.faults)
        if config.start is not None:
            start = config.start
        elif config.start_at_local is not None:
            start = datetime.combine(_wall_clock(self.tz).date(), config.start_at_local.replace(tzinfo=None),
                                     tzinfo=self.tz)
        else:
            start = _wall_clock(UTC)
        self._sim_start = start.timestamp()
        self._real_start = time.monotonic()
        self._offset = 0.0
        self.secret = self.rng.randbytes(32)
        self.api_key = self.rng.randbytes(32).hex()  # 64 characters
        self.accounts: dict[str, Account] = {}
        self.children: dict[str | None, list[str]] = {}  # descendants() walks this, not every account
        self._populated = 0  # queues created at start so far: the index into config.queue_timeouts
        self.tokens: dict[str, Token] = {}
        self.issued = 0
        self.last_issued = ""
        self.limiter = RateLimiter()
        self.request_count = 0
        self.requests_by_endpoint: dict[str, int] = {}
        self.master = self._account("Demo Reseller", None)
        self.top: list[str] = []
        for i in range(config.accounts):
            account = self._account(f"Customer {i + 1}", self.master.id)
            self.top.append(account.id)
            self._populate(account)
            for j in range(config.sub_accounts):
                self._populate(self._account(f"Customer {i + 1} site {j + 1}", account.id))
        self.no_qubicle = [self._account(f"No call center {i + 1}", self.master.id, qubicle=False).id
                           for i in range(config.no_qubicle_accounts)]
        self.empty = [self._account(f"No queues {i + 1}", self.master.id).id for i in range(config.empty_accounts)]
        self.foreign = self._account("Someone else", None).id

    # ---- clock ---------------------------------------------------------------------------------

    def now(self) -> float:
        return self._sim_start + (time.monotonic() - self._real_start) * self.config.speed + self._offset

    def advance(self, seconds: float) -> None:
        # Lazy, like the passing of real time: each queue catches up when it is next read (queue(),
        # list status), so a jump costs nothing for the queues nobody looks at. Catching up in one
        # go or in steps gives the same figures: the model moves from event to event either way.
        with self.lock:
            self._offset += seconds

    # ---- accounts and queues ---------------------------------------------------------------------

    def _id(self) -> str:
        return self.rng.randbytes(16).hex()

    def _account(self, name: str, parent: str | None, qubicle: bool = True) -> Account:
        account = Account(self._id(), name, parent, qubicle)
        self.accounts[account.id] = account
        self.children.setdefault(parent, []).append(account.id)
        return account

    def _populate(self, account: Account) -> None:
        timeouts = self.config.queue_timeouts
        for k in range(self.config.queues_per_account):
            timeout = timeouts[self._populated % len(timeouts)] if timeouts else None
            self._populated += 1
            self.create_queue(account.id, _NAMES[k % len(_NAMES)] + ("" if k < len(_NAMES) else f" {k}"),
                              **({} if timeout is None else {"timeout": timeout}))

    def create_queue(self, account_id: str, name: str, **settings: object) -> str:
        with self.lock:
            account = self.accounts[account_id]
            queue = QueueModel(queue_id=self._id(), name=name, rng=random.Random(self.rng.random()), tz=self.tz,
                               now=self.now())
            queue.settings.update(settings)
            per_queue = self.config.agents_per_queue
            if 0 < per_queue < 1:  # a share of the queues with one agent: fewer agents than queues
                agents = 1 if self.rng.random() < per_queue else 0
            else:
                agents = max(1, int(per_queue) + self.rng.randint(-2, 2)) if per_queue else 0
            # Load between 0.6 and 1.1 of what the logged-in agents can take at the peak, so the
            # demo shows waits, abandons and misses at busy hours and calm at night.
            per_agent = 3600.0 / (queue.talk_mean + queue.setting("agent_wrapup_time"))
            queue.peak_per_hour = max(2.0, agents * per_agent * self.rng.uniform(0.6, 1.1) * 0.7)
            queue.patience_mean = self.rng.uniform(60, 240)
            queue.node = f"qubicle@kz{self.rng.randint(1, 3)}.example.net"
            for _ in range(agents):
                queue.add_agent(self._id())
            account.queues[queue.queue_id] = queue
            return queue.queue_id

    def delete_account(self, account_id: str) -> None:
        """The account and its descendants are gone: listings and status calls no longer know them."""
        with self.lock:
            for gone in [account_id, *(a.id for a in self.descendants(account_id))]:
                account = self.accounts.pop(gone, None)
                if account is not None:
                    self.children.get(account.parent, []).remove(gone)
                self.children.pop(gone, None)

    def move_account(self, account_id: str, parent: str) -> None:
        """The account (and its descendants) now under `parent`, as Kazoo's account move does."""
        with self.lock:
            account = self.accounts[account_id]
            self.children[account.parent].remove(account_id)
            self.children.setdefault(parent, []).append(account_id)
            account.parent = parent

    def delete_queue(self, account_id: str, queue_id: str) -> None:
        with self.lock:
            self.accounts[account_id].queues.pop(queue_id, None)

    def queue(self, account_id: str, queue_id: str) -> QueueModel | None:
        with self.lock:
            account = self.accounts.get(account_id)
            queue = account.queues.get(queue_id) if account else None
            if queue is not None:
                queue.advance(self.now())
            return queue

    def restart_queue(self, account_id: str, queue_id: str) -> None:
        with self.lock:
            queue = self.queue(account_id, queue_id)
            if queue is None:
                raise KeyError(queue_id)
            current = queue.node
            while queue.node == current:
                queue.node = f"qubicle@kz{self.rng.randint(1, 9)}.example.net"
            queue.reset_daily()

    def churn(self) -> None:
        with self.lock:
            candidates = [a for a in self.accounts.values() if a.qubicle and a.parent]
            if not candidates:
                return
            account = self.rng.choice(candidates)
            if account.queues and self.rng.random() < 0.5:
                self.delete_queue(account.id, self.rng.choice(list(account.queues)))
            else:
                self.create_queue(account.id, f"Pop-up {self.rng.randint(1, 999)}")

    def in_tree(self, root: str, account_id: str) -> bool:
        current: str | None = account_id
        while current is not None:
            if current == root:
                return True
            current = self.accounts[current].parent if current in self.accounts else None
        return False

    def descendants(self, account_id: str) -> list[Account]:
        found: list[Account] = []
        frontier = [account_id]
        while frontier:
            children = [self.accounts[c] for c in self.children.get(frontier.pop(), [])]
            found += children
            frontier += [c.id for c in children]
        return found

    # ---- tokens ----------------------------------------------------------------------------------

    def issue_token(self, account_id: str | None = None, ttl: float | None = None) -> str:
        account_id = account_id or self.master.id
        ttl = self.config.token_ttl if ttl is None else ttl
        now = time.time()
        # jti from the OS, not the seeded rng: logging in must not change the ids drawn after it.
        payload = {"account_id": account_id, "iat": int(now), "exp": int(now + ttl), "jti": secrets.token_hex(8)}

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(payload).encode())
        token = head + "." + b64(hmac.new(self.secret, head.encode(), hashlib.sha256).digest())
        with self.lock:
            self.tokens[token] = Token(account_id, now + ttl)
            self.issued += 1
            self.last_issued = token
        return token

    def check_token(self, token: str | None) -> Token | None:
        with self.lock:
            entry = self.tokens.get(token or "")
            if entry is None:
                return None
            if time.time() >= entry.expires:
                del self.tokens[token or ""]
                return None
            entry.requests += 1
            every = self.faults.token_expire_every
            if every and entry.requests > every:
                del self.tokens[token or ""]
                return None
            return entry

    def user_credentials(self) -> str:
        c = self.config
        return hashlib.md5(f"{c.username.lower()}:{c.password}".encode()).hexdigest()
