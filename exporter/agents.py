"""Agents, queue settings and account names: discovery data spread over polls, and agents by state.

Two kinds of request, kept apart by cost:
- agent status: one batched request per account per poll (`POST .../qubicle_recipients/status`),
  for the agents named by the recipients listing and the queues' members;
- discovery data (queue documents: settings and members; the recipients listing: agent names;
  account documents: names), refreshed every --settings-interval. A poll fetches only the items
  that are due, oldest first, within a budget sized to refresh everything once per interval: 10,000
  queues never mean 10,000 document requests in one poll.

Figures are derived from the tables in exporter/figures.py (SETTINGS, AGENT_STATES, AGENT_COUNTERS).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from exporter.config import Settings
from exporter.figures import AGENT_STATES, NOT_LOGGED_IN
from exporter.kazoo import KazooClient, KazooError, NotFoundError
from exporter.kazoo.qubicle import (
    QueueSettings,
    RecipientStatus,
    account_name,
    parse_queue_document,
    parse_recipient_status,
)
from exporter.snapshot import NO_LABELS, NO_VALUES, AccountSnapshot, AgentFigures, QueueFigures

# A poll fetches at most this many discovery items of one account (Crossbar's bucket per account
# holds 100 requests, refilled at 10 per second: the status calls need their share).
PER_ACCOUNT_PER_POLL = 20
# Concurrent discovery requests of one account.
PER_ACCOUNT_CONCURRENCY = 4
# The budget refreshes every item once per --settings-interval with this much headroom, plus a
# floor so that a small installation fills in within a poll or two.
BUDGET_HEADROOM, BUDGET_FLOOR = 1.5, 10

# (account id, kind, queue id or ""); kind: "name", "recipients", "queue"
Item = tuple[str, str, str]
OnError = Callable[[str, str, str], None]  # (account id, reason, message)
OnInvalid = Callable[[str, str], None]  # (account id, field name)


@dataclass
class _Doc:
    values: Mapping[str, float] = field(default_factory=lambda: NO_VALUES)
    labels: Mapping[str, str] = field(default_factory=lambda: NO_LABELS)
    members: tuple[str, ...] | None = None
    at: float = -math.inf  # when it was last fetched (or when a failure counts it as fetched)


@dataclass
class AccountDetails:
    name: str | None = None
    name_at: float = -math.inf
    recipients: dict[str, str] | None = None  # agent name by user id, once listed
    recipients_at: float = -math.inf
    docs: dict[str, _Doc] = field(default_factory=dict)
    # queue id -> (figures as built, figures with settings and agents): reused while both are unchanged
    decorated: dict[str, tuple[QueueFigures, QueueFigures]] = field(default_factory=dict)

    def agent_ids(self) -> list[str]:
        """Everyone to ask the status of: the listed recipients and every queue's members."""
        ids = dict.fromkeys(self.recipients or ())
        for doc in self.docs.values():
            ids.update(dict.fromkeys(doc.members or ()))
        return list(ids)


@dataclass(frozen=True)
class AgentData:
    """One account's agents this poll."""

    statuses: dict[str, RecipientStatus]  # user id -> status; agents Kazoo left out are absent
    by_queue: dict[str, Mapping[str, int]]  # queue id -> state -> count, for queues whose members are known
    account: Mapping[str, int]  # distinct logged-in agents by state


class AgentCarry:
    """Per-agent call counters that only go up, like the queue counters (see snapshot.CounterCarry).

    A counter starts at 0 when first seen; a drop in Kazoo's figure or a new login_time (stats start
    again with each login) is a reset, after which the new figure is the increase since.
    """

    def __init__(self) -> None:
        # account id -> (agent id, key) -> (login time, last figure, total)
        self._state: dict[str, dict[tuple[str, str], tuple[float | None, float, float]]] = {}

    def update(self, account_id: str, agent_id: str, login: float | None,
               stats: Mapping[str, float]) -> dict[str, float]:
        totals: dict[str, float] = {}
        account = self._state.setdefault(account_id, {})
        for key, stat in (("calls", "total_calls"), ("missed_calls", "missed_calls")):
            value = stats.get(stat)
            held = account.get((agent_id, key))
            if value is None:
                if held is not None:
                    totals[key] = held[2]
                continue
            if held is None:
                total = 0.0
            else:
                last_login, last, total = held
                reset = value < last or (login is not None and last_login is not None and login != last_login)
                total += value if reset else value - last
            account[(agent_id, key)] = (login if login is not None else (held[0] if held else None), value, total)
            totals[key] = total
        return totals

    def keep(self, account_id: str, agent_ids: set[str]) -> None:
        account = self._state.get(account_id)
        if account is not None:
            for key in [k for k in account if k[0] not in agent_ids]:
                del account[key]

    def forget_account(self, account_id: str) -> None:
        self._state.pop(account_id, None)


def agents_by_state(statuses: Mapping[str, RecipientStatus], members_by_queue: Mapping[str, Sequence[str]]
                    ) -> tuple[dict[str, Mapping[str, int]], Mapping[str, int]]:
    """Logged-in agents by state per queue (per-queue availability honoured) and in the account."""
    account = dict.fromkeys(AGENT_STATES, 0)
    for one in statuses.values():
        if one.state != NOT_LOGGED_IN:
            account[one.state] += 1
    by_queue: dict[str, Mapping[str, int]] = {}
    for queue_id, members in members_by_queue.items():
        counts = dict.fromkeys(AGENT_STATES, 0)
        for member in members:
            status = statuses.get(member)
            if status is None or status.state == NOT_LOGGED_IN:
                continue
            state = status.state
            # Ready or away can be set per queue: ready elsewhere but away here counts as away here.
            if state in ("ready", "away") and queue_id in status.queue_availability:
                state = "ready" if status.queue_availability[queue_id] else "away"
            counts[state] += 1
        by_queue[queue_id] = MappingProxyType(counts)
    return by_queue, MappingProxyType(account)


class Details:
    """The discovery data of every account, what each poll fetches of it, and the agents' status."""

    def __init__(self, settings: Settings, client: KazooClient, *, clock: Callable[[], float] = time.time,
                 on_error: OnError = lambda account_id, reason, message: None,
                 on_invalid: OnInvalid = lambda account_id, name: None) -> None:
        self._settings = settings
        self._client = client
        self._clock = clock
        self._on_error = on_error
        self._on_invalid = on_invalid
        self._accounts: dict[str, AccountDetails] = {}
        self.carry = AgentCarry()

    def account(self, account_id: str) -> AccountDetails:
        details = self._accounts.get(account_id)
        if details is None:
            details = self._accounts[account_id] = AccountDetails()
        return details

    def forget(self, account_id: str) -> None:
        self._accounts.pop(account_id, None)
        self.carry.forget_account(account_id)

    def keep_queues(self, account_id: str, queue_ids: set[str]) -> None:
        """At rediscovery: documents of queues that are gone go too."""
        details = self.account(account_id)
        details.docs = {k: v for k, v in details.docs.items() if k in queue_ids}
        details.decorated = {k: v for k, v in details.decorated.items() if k in queue_ids}

    # ---- which discovery items this poll fetches -----------------------------------------------

    def plan(self, queues: Mapping[str, Sequence[str]], named: Mapping[str, str]) -> dict[str, list[Item]]:
        """Items due (never fetched first, then the oldest), within this poll's budget.

        `queues`: the queue ids known per account polled; `named`: account names known already
        (from descendants listings), which need no request.
        """
        s = self._settings
        now = self._clock()
        due: list[tuple[float, Item]] = []
        total = 0
        for account_id, queue_ids in queues.items():
            details = self.account(account_id)
            if s.account_names:
                if account_id in named:
                    details.name = named[account_id]
                else:
                    total += 1
                    if now - details.name_at >= s.settings_interval:
                        due.append((details.name_at, (account_id, "name", "")))
            if s.agent_status:
                total += 1
                if now - details.recipients_at >= s.settings_interval:
                    due.append((details.recipients_at, (account_id, "recipients", "")))
            if s.queue_settings:
                total += len(queue_ids)
                docs = details.docs
                for queue_id in queue_ids:
                    doc = docs.get(queue_id)
                    at = doc.at if doc is not None else -math.inf
                    if now - at >= s.settings_interval:
                        due.append((at, (account_id, "queue", queue_id)))
        budget = BUDGET_FLOOR + math.ceil(BUDGET_HEADROOM * total * s.interval / s.settings_interval)
        due.sort(key=lambda d: d[0])
        chosen: dict[str, list[Item]] = {}
        for _, item in due:
            if budget <= 0:
                break
            mine = chosen.setdefault(item[0], [])
            if len(mine) < PER_ACCOUNT_PER_POLL:
                mine.append(item)
                budget -= 1
        return chosen

    async def fetch(self, account_id: str, items: Sequence[Item]) -> set[str]:
        """Fetches the planned items (errors reported, never raised); the queue ids found gone."""
        details = self.account(account_id)
        gone: set[str] = set()
        limit = asyncio.Semaphore(PER_ACCOUNT_CONCURRENCY)

        async def one(item: Item) -> None:
            _, kind, queue_id = item
            async with limit:
                try:
                    await self._fetch_one(details, account_id, kind, queue_id)
                except NotFoundError:
                    if kind == "queue":
                        gone.add(queue_id)
                        details.docs.pop(queue_id, None)
                    else:
                        self._retry_later(details, kind, queue_id)
                except KazooError as exc:
                    self._retry_later(details, kind, queue_id)
                    self._on_error(account_id, exc.reason, f"{kind}: {exc}")
                except Exception as exc:  # noqa: BLE001 - a bug here must not cost the queue figures
                    self._retry_later(details, kind, queue_id)
                    self._on_error(account_id, "internal", f"{kind}: {type(exc).__name__}")

        if items:
            await asyncio.gather(*(one(item) for item in items))
        return gone

    def _retry_later(self, details: AccountDetails, kind: str, queue_id: str) -> None:
        # Due again after a tenth of the interval: soon, but not at every poll.
        at = self._clock() - self._settings.settings_interval * 0.9
        if kind == "name":
            details.name_at = at
        elif kind == "recipients":
            details.recipients_at = at
        else:
            details.docs.setdefault(queue_id, _Doc()).at = at

    async def _fetch_one(self, details: AccountDetails, account_id: str, kind: str, queue_id: str) -> None:
        if kind == "name":
            name = account_name(await self._client.account_document(account_id))
            details.name, details.name_at = name or details.name, self._clock()
        elif kind == "recipients":
            details.recipients, details.recipients_at = await self._client.list_recipients(account_id), self._clock()
        else:
            parsed, bad = parse_queue_document(await self._client.queue_document(account_id, queue_id))
            for name in bad:
                self._on_invalid(account_id, name)
            details.docs[queue_id] = _doc(parsed, self._clock())

    # ---- agents ------------------------------------------------------------------------------

    async def agent_status(self, account_id: str) -> AgentData | None:
        """This poll's agents of the account; None when unknown (nobody to ask yet, or the request failed)."""
        details = self.account(account_id)
        ids = details.agent_ids()
        if not ids:
            return None if details.recipients is None else _agent_data({}, details)
        try:
            raw = await self._client.recipients_status(account_id, ids, self._settings.agent_status_batch_size)
        except KazooError as exc:
            self._on_error(account_id, exc.reason, f"agent status: {exc}")
            return None
        except Exception as exc:  # noqa: BLE001 - a bug here must not cost the queue figures
            self._on_error(account_id, "internal", f"agent status: {type(exc).__name__}")
            return None
        statuses: dict[str, RecipientStatus] = {}
        for agent_id, one in raw.items():
            status, bad = parse_recipient_status(one)
            for name in bad:
                self._on_invalid(account_id, name)
            if status is not None:
                statuses[agent_id] = status
        return _agent_data(statuses, details)

    def decorate(self, account: AccountSnapshot, agents: AgentData | None) -> AccountSnapshot:
        """The account's snapshot with its name, queue settings and agents by state."""
        details = self.account(account.account_id)
        if agents is None and not details.docs:  # nothing to add to any queue (agents and settings off)
            details.decorated = {}
            return replace(account, name=details.name, agents=None, agent_list=())
        previous, decorated = details.decorated, {}
        queues: list[QueueFigures] = []
        for q in account.queues:
            doc = details.docs.get(q.queue_id)
            values, labels = (doc.values, doc.labels) if doc is not None else (NO_VALUES, NO_LABELS)
            counts = agents.by_queue.get(q.queue_id) if agents is not None else None
            seen = previous.get(q.queue_id)
            if seen is not None and seen[0] is q and seen[1].settings is values and seen[1].labels is labels \
                    and seen[1].agents == counts:
                shown = seen[1]
            elif values is NO_VALUES and labels is NO_LABELS and counts is None:
                shown = q
            else:
                shown = replace(q, settings=values, labels=labels, agents=counts)
            decorated[q.queue_id] = (q, shown)
            queues.append(shown)
        details.decorated = decorated
        agent_list: tuple[AgentFigures, ...] = ()
        if agents is not None and self._settings.agent_metrics:
            agent_list = self._agent_list(account.account_id, details, agents)
        return replace(account, queues=tuple(queues), name=details.name,
                       agents=agents.account if agents is not None else None, agent_list=agent_list)

    def _agent_list(self, account_id: str, details: AccountDetails, agents: AgentData) -> tuple[AgentFigures, ...]:
        names = details.recipients or {}
        ids = details.agent_ids()
        self.carry.keep(account_id, set(ids))
        out: list[AgentFigures] = []
        for agent_id in sorted(ids):
            status = agents.statuses.get(agent_id)
            name = names.get(agent_id, agent_id)
            if status is None:  # left out of Kazoo's answer: not logged in, no figures
                out.append(AgentFigures(account_id, agent_id, name, NOT_LOGGED_IN, NO_VALUES))
                continue
            counters = self.carry.update(account_id, agent_id, status.login_time, status.stats)
            out.append(AgentFigures(account_id, agent_id, name, status.state, MappingProxyType(counters),
                                    status.stats.get("avg_call_time")))
        return tuple(out)


def _doc(parsed: QueueSettings, at: float) -> _Doc:
    return _Doc(values=MappingProxyType(parsed.values), labels=MappingProxyType(parsed.labels),
                members=parsed.members, at=at)


def _agent_data(statuses: dict[str, RecipientStatus], details: AccountDetails) -> AgentData:
    members = {queue_id: doc.members for queue_id, doc in details.docs.items() if doc.members is not None}
    by_queue, account = agents_by_state(statuses, members)
    return AgentData(statuses=statuses, by_queue=by_queue, account=account)
