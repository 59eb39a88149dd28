"""Immutable figures of one poll, and the monotonic counters carried across Kazoo's daily resets."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from exporter.figures import COUNTED, SETTING_LABELS

NO_VALUES: Mapping[str, float] = MappingProxyType({})
NO_LABELS: Mapping[str, str] = MappingProxyType({label: "" for label, _ in SETTING_LABELS})


@dataclass(frozen=True, slots=True)
class QueueFigures:
    account_id: str
    queue_id: str
    queue_name: str
    node: str | None
    values: Mapping[str, float]  # figure key -> value in base units; only the figures Kazoo sent this poll
    counters: Mapping[str, float]  # figure key -> exporter-kept total, present once the figure was seen
    # From the queue document (refreshed on --settings-interval): Setting key -> value, and the
    # text settings shown on qubicle_queue_info (queue_type, router).
    settings: Mapping[str, float] = field(default_factory=lambda: NO_VALUES)
    labels: Mapping[str, str] = field(default_factory=lambda: NO_LABELS)
    # Logged-in agents of the queue by state (every state of AGENT_STATES); None: not known.
    agents: Mapping[str, int] | None = None


@dataclass(frozen=True, slots=True)
class AgentFigures:
    """One agent (recipient), exported only with --agent-metrics."""

    account_id: str
    agent_id: str
    agent_name: str
    state: str  # a label of AGENT_STATES, or NOT_LOGGED_IN
    counters: Mapping[str, float]  # "calls", "missed_calls" -> exporter-kept totals, where Kazoo sent them
    average_call: float | None = None  # seconds; None when Kazoo did not send it


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    account_id: str
    up: bool
    queues: tuple[QueueFigures, ...] = ()
    data_time: float | None = None  # when `queues` were fetched (the last successful poll)
    last_success: float | None = None
    queue_count: int | None = None  # queues discovered; 0 = "no queues" (not an error)
    error: str | None = None  # reason of the last failure, if the last poll failed
    name: str | None = None  # the account's name in Kazoo, once known
    # Distinct logged-in agents by state (every state of AGENT_STATES); None: not known.
    agents: Mapping[str, int] | None = None
    agent_list: tuple[AgentFigures, ...] = ()  # only with --agent-metrics


@dataclass(frozen=True, slots=True)
class Snapshot:
    taken_at: float
    accounts: Mapping[str, AccountSnapshot] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def ever_succeeded(self) -> bool:
        return any(a.last_success is not None for a in self.accounts.values())


EMPTY = Snapshot(taken_at=0.0)


def is_fresh(account: AccountSnapshot, now: float, max_data_age: float) -> bool:
    """The --max-data-age rule: figures at most this old are shown, older ones never (not even frozen)."""
    return account.data_time is not None and now - account.data_time <= max_data_age


def visible(snapshot: Snapshot, now: float, max_data_age: float) -> Iterator[tuple[AccountSnapshot, tuple[QueueFigures, ...]]]:
    """Accounts in id order, each with the queues whose figures may be shown at `now`."""
    for _, account in sorted(snapshot.accounts.items()):
        yield account, account.queues if is_fresh(account, now, max_data_age) else ()


def visible_until(snapshot: Snapshot, now: float, max_data_age: float) -> float:
    """The first moment after `now` at which what visible() shows changes without a new snapshot."""
    ends = [a.data_time + max_data_age for a in snapshot.accounts.values()
            if (a.queues or a.agents is not None or a.agent_list)
            and a.data_time is not None and is_fresh(a, now, max_data_age)]
    return min(ends, default=math.inf)


@dataclass(slots=True)
class _Carry:
    node: str | None
    last: float
    total: float = 0.0


class CounterCarry:
    """Turns Kazoo's daily figures into counters that only go up.

    A counter starts at 0 on the first figure the exporter sees (so an exporter restart never looks
    like a burst to increase()), then adds only increases. A drop in the daily figure, or a change of
    `node` (the queue process restarted or moved, which resets its figures), is a reset: the new
    figure is the increase since. Owned by the poller; not thread-safe by design (one poll at a time).
    """

    def __init__(self) -> None:
        # account id -> (queue id, counter) -> state. Per account, so that forget_queues (run for
        # every account at every discovery) looks at that account's queues only, not at all of them.
        self._state: dict[str, dict[tuple[str, str], _Carry]] = {}

    def update(self, account_id: str, queue_id: str, node: str | None, daily: Mapping[str, float]) -> dict[str, float]:
        """Totals by figure key for the counted figures among `daily` (a queue's figures this poll)."""
        totals: dict[str, float] = {}
        account = self._state.get(account_id)
        if account is None:
            account = self._state[account_id] = {}
        for figure in COUNTED:
            key = (queue_id, figure.key)
            state = account.get(key)
            value = daily.get(figure.key)
            if value is None:
                if state is not None:
                    totals[figure.key] = state.total
                continue
            if state is None:
                account[key] = state = _Carry(node=node, last=value)
            else:
                reset = value < state.last or (node is not None and state.node is not None and node != state.node)
                state.total += value if reset else value - state.last
                state.last = value
                if node is not None:
                    state.node = node
            totals[figure.key] = state.total
        return totals

    def forget_account(self, account_id: str) -> None:
        self._state.pop(account_id, None)

    def forget_queues(self, account_id: str, keep: set[str]) -> None:
        """Drops the state of queues that no longer exist in Kazoo."""
        account = self._state.get(account_id)
        if account is None:
            return
        for key in [k for k in account if k[0] not in keep]:
            del account[key]
        if not account:
            del self._state[account_id]

    def __len__(self) -> int:
        return sum(len(account) for account in self._state.values())
