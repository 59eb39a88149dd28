"""One poll: discover accounts and queues, fetch every account's queue statuses, swap in a new snapshot.

The APScheduler job (see app.py) calls Poller.poll() every --interval; it never overlaps itself.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections import Counter as Tally
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import structlog

from exporter.accounts import AccountResolver
from exporter.agents import AgentData, Details, Item
from exporter.config import Settings
from exporter.figures import WAITS, in_base_units, wait_scale
from exporter.kazoo import KazooClient, KazooError, QueueRef, parse_queue_status
from exporter.looplag import LoopLag
from exporter.selfmetrics import SelfMetrics
from exporter.snapshot import EMPTY, AccountSnapshot, CounterCarry, QueueFigures, Snapshot

log = structlog.get_logger("qubicle.poller")

# Beyond a day, a "seconds" wait figure is far more likely milliseconds.
_SECONDS_IMPLAUSIBLE = 86_400.0
# Accounts polled at once never fall below this (nor above --max-concurrency): what a fixed
# concurrency of 10 did before it adapted, so small deployments poll exactly as they did.
CONCURRENCY_FLOOR = 10
# A poll aims to be done within this share of --interval; the rest is margin for Kazoo's bad moments.
POLL_TARGET_SHARE = 0.5
# Times an account's poll waits for a busy loop: once for its answer's bytes to be read, once more
# to resume the coroutine that awaits them (each is a trip through the loop's queue of ready work).
LOOP_WAITS_PER_ACCOUNT = 2


@dataclass
class _Discovery:
    queues: list[QueueRef] | None = None
    at: float = float("-inf")
    stale: bool = False  # a listed queue was absent from the status answer: rediscover next poll
    # Queue id -> its last status object as Kazoo sent it, the figures made of it, and its raw
    # waits (for the unit check). At a 10 s interval 85-90 % of queues answer exactly as before:
    # their figures are reused instead of parsed again (the counters cannot have moved either).
    last: dict[str, tuple[object, QueueFigures, tuple[float, ...]]] = field(default_factory=dict)


@dataclass
class _PollStats:
    queues: int = 0
    missing: int = 0
    invalid: int = 0
    errors: Tally[str] = field(default_factory=Tally)
    waits: list[float] = field(default_factory=list)


class Poller:
    def __init__(
        self,
        settings: Settings,
        client: KazooClient,
        metrics: SelfMetrics,
        *,
        on_snapshot: Callable[[Snapshot], None] = lambda snapshot: None,
        clock: Callable[[], float] = time.time,
        reuse_unchanged: bool = True,
    ) -> None:
        # reuse_unchanged off: every queue parsed and built anew at every poll, so that nothing
        # downstream can reuse its row either (bench/poll.py's comparison; same figures either way).
        self._reuse_unchanged = reuse_unchanged
        self._settings = settings
        self._client = client
        self._metrics = metrics
        self._on_snapshot = on_snapshot
        self._clock = clock
        self._carry = CounterCarry()
        self._discovery: dict[str, _Discovery] = {}
        self._accounts = AccountResolver(settings, client, clock=clock, on_error=self._descendants_failed)
        self._details = Details(settings, client, clock=clock, on_error=self._details_failed,
                                on_invalid=metrics.invalid_field)
        self._snapshot: Snapshot = EMPTY
        self._wait_scale = wait_scale(settings.wait_unit)
        self._unit_warned = False
        self._pace: float | None = None  # one account's poll (wall time), median over the last poll's successes
        self._polled = False  # a poll has succeeded for some account: the exporter shows figures
        self.concurrency = 0  # accounts polled at once at the end of the last poll (for tests, bench)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def _descendants_failed(self, parent: str, reason: str, message: str) -> None:
        self._metrics.poll_error(parent, reason)
        log.warning("descendants_failed", account_id=parent, reason=reason, error=message)

    def _details_failed(self, account_id: str, reason: str, message: str) -> None:
        self._metrics.poll_error(account_id, reason)
        log.warning("details_failed", account_id=account_id, reason=reason, error=message)

    async def poll(self) -> Snapshot:
        started = time.perf_counter()
        accounts = await self._accounts.resolve()
        stats = _PollStats()
        # Off the event loop: ~0.1 s at 50,000 queues while most queue documents are still due (the
        # first minutes), which would hold up every scrape meanwhile. Nothing else reads or writes
        # the discovery data or the details between two polls' fetches.
        plan = await asyncio.to_thread(self._plan, accounts)
        results = await self._poll_accounts(accounts, stats, plan)
        snapshot = Snapshot(taken_at=self._clock(), accounts=MappingProxyType({a.account_id: a for a in results}))
        self._snapshot = snapshot
        for gone in set(self._discovery) - set(snapshot.accounts):
            self._forget(gone)
        duration = time.perf_counter() - started
        self._metrics.poll_duration.observe(duration)
        try:
            self._on_snapshot(snapshot)
        except Exception as exc:  # noqa: BLE001 - the snapshot is in place; a listener's bug must not fail the poll
            log.error("snapshot_listener_failed", exc_type=type(exc).__name__)
        self._check_wait_unit(stats.waits)
        self._check_hidden(snapshot, duration)
        up = sum(1 for a in results if a.up)
        log.info(
            "poll",
            accounts=len(results),
            accounts_up=up,
            queues=stats.queues,
            missing_queues=stats.missing,
            invalid_fields=stats.invalid,
            errors=dict(stats.errors) or None,
            duration_seconds=round(duration, 3),
            concurrency=self.concurrency,
        )
        return snapshot

    def _plan(self, accounts: list[str]) -> dict[str, list[Item]]:
        known = {a: [q.id for q in d.queues or ()] if (d := self._discovery.get(a)) else [] for a in accounts}
        return self._details.plan(known, self._accounts.names)

    async def _poll_accounts(self, accounts: list[str], stats: _PollStats,
                             plan: Mapping[str, Sequence[Item]]) -> list[AccountSnapshot]:
        """Every account, polled as many at a time as it takes to be done within
        POLL_TARGET_SHARE of --interval at the accounts' observed pace, between CONCURRENCY_FLOOR
        and --max-concurrency.

        The pace is the median wall time of one account's successful poll (Kazoo's latency plus our
        own share of the CPU), less what it waited for a busy event loop (exporter/looplag.py), so
        the number follows the latency bound: accounts x latency / concurrency. A loop that is
        itself the bottleneck gets no more accounts at once. A median of successes: a few slow or
        failing accounts (a timeout, a latency spike) do not make a struggling Kazoo get more
        requests at once. It is re-planned as accounts finish, within the poll too (the first
        poll, discovery included, has no earlier pace to go by). Each account still gets one
        status request per batch per poll (plus a listing when discovery is due): more accounts
        at once never means more requests to any one account, so Crossbar's per-account rate
        limit is not touched by it.

        Until a poll has succeeded there is nothing to show (/-/ready says no): that poll aims to
        be done as soon as it can, at up to --max-concurrency accounts at once, instead of within
        the share of the interval; its pace is not kept (see the end).
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        rushing = not self._polled  # nothing shown yet: as fast as --max-concurrency allows
        target = 0.0 if rushing else self._settings.interval * POLL_TARGET_SHARE
        cap = self._settings.max_concurrency
        allowed = min(CONCURRENCY_FLOOR, cap)
        limit = asyncio.Semaphore(allowed)  # grown by release(): permits are only ever added
        waiting = len(accounts)  # accounts not yet begun
        paces: list[float] = []  # this poll's successful accounts
        lag = LoopLag()

        def wanted() -> int:
            # The first poll has only its own paces: the last few of them (a median of all of them
            # at every account's end would cost O(n^2 log n) at 5,000 accounts).
            pace = self._pace if self._pace is not None else statistics.median(paces[-32:]) if paces else None
            if pace is None:
                return allowed
            if LOOP_WAITS_PER_ACCOUNT * lag.recent() >= pace:
                return allowed  # an account waits as long for our loop as for Kazoo: more would wait longer
            left = max(target - (loop.time() - started), pace)
            return min(cap, math.ceil(waiting * pace / left))

        def grow() -> None:
            nonlocal allowed
            for _ in range(wanted() - allowed):
                limit.release()
                allowed += 1

        async def one(account_id: str) -> AccountSnapshot:
            nonlocal waiting
            async with limit:
                waiting -= 1
                began = loop.time()
                result = await self._poll_account(account_id, stats, plan.get(account_id, ()))
                if result.up:
                    paces.append(max(0.0, loop.time() - began - LOOP_WAITS_PER_ACCOUNT * lag.recent()))
                grow()
            return result

        grow()  # at the last poll's pace from the start
        if not rushing:  # the rushed poll's pace is not kept (below)
            lag.start()
        try:
            results = await asyncio.gather(*(one(a) for a in accounts))
        finally:
            lag.stop()
        self.concurrency = allowed
        if paces:
            # A rushed poll's accounts queued for the event loop behind one another at the ceiling:
            # their wall times overstate Kazoo's latency (kept as the pace, 1,000 accounts x 50
            # queues stayed at 64 at once, for more memory and slower scrapes). The next poll
            # measures its own pace from the floor up instead.
            self._pace = None if rushing else statistics.median(paces)
            self._polled = True
        return results

    def _forget(self, account_id: str) -> None:
        """An account no longer polled: its state and its own series go (they would never move again)."""
        del self._discovery[account_id]
        self._carry.forget_account(account_id)
        self._details.forget(account_id)
        self._metrics.forget_account(account_id)

    async def _poll_account(self, account_id: str, stats: _PollStats, details: Sequence[Item] = ()) -> AccountSnapshot:
        """Discover (when due), fetch and build one account, all under --poll-timeout."""
        previous = self._snapshot.accounts.get(account_id)
        discovery = self._discovery.setdefault(account_id, _Discovery())
        structlog.contextvars.bind_contextvars(account_id=account_id)
        try:
            async with asyncio.timeout(self._settings.poll_timeout) as deadline:  # no extra task, unlike wait_for
                queues = await self._discover(account_id, discovery)
                statuses, agents = await self._fetch(account_id, queues)
            account = self._details.decorate(self._build(account_id, discovery, queues, statuses, stats), agents)
            await self._fetch_details(account_id, discovery, details, deadline.when())
            return account
        except (KazooError, TimeoutError) as exc:
            reason = exc.reason if isinstance(exc, KazooError) else "timeout"
            message = str(exc) if isinstance(exc, KazooError) else f"poll took longer than {self._settings.poll_timeout:g}s"
        except Exception as exc:  # noqa: BLE001 - one account's bug must not stop the others
            reason, message = "internal", f"{type(exc).__name__} while polling"
            log.error("poll_internal_error", exc_type=type(exc).__name__)
        finally:
            structlog.contextvars.unbind_contextvars("account_id")
        stats.errors[reason] += 1
        self._metrics.poll_error(account_id, reason)
        log.warning("account_poll_failed", account_id=account_id, reason=reason, error=message)
        # Keep everything last known (the render hides the figures once older than --max-data-age).
        if previous is None:
            return AccountSnapshot(account_id=account_id, up=False, error=reason)
        return replace(previous, up=False, error=reason)

    async def _fetch(self, account_id: str, queues: list[QueueRef]) -> tuple[dict[str, object], AgentData | None]:
        """The queues' statuses and, side by side (their latencies overlap), the agents' status."""
        if not self._settings.agent_status:
            return (await self._client.queue_list_status(account_id, [q.id for q in queues]) if queues else {}), None
        agents_call = self._details.agent_status(account_id)  # never raises: its failures are its own
        if not queues:
            return {}, await agents_call
        statuses, agents = await asyncio.gather(
            self._client.queue_list_status(account_id, [q.id for q in queues]), agents_call, return_exceptions=True)
        if isinstance(statuses, BaseException):
            raise statuses  # once both are done: no request is left running behind the poll's back
        return statuses, agents if isinstance(agents, AgentData) else None

    async def _fetch_details(self, account_id: str, discovery: _Discovery, items: Sequence[Item],
                             when: float | None) -> None:
        """This poll's share of the discovery data (used from the next poll on), in what is left of
        --poll-timeout; what does not make it stays due."""
        if not items:
            return
        try:
            async with asyncio.timeout_at(when):
                gone = await self._details.fetch(account_id, items)
        except TimeoutError:
            log.debug("details_timeout", account_id=account_id, items=len(items))
            return
        if gone:
            discovery.stale = True  # a queue document is gone: list the queues again next poll

    async def _discover(self, account_id: str, discovery: _Discovery) -> list[QueueRef]:
        """The account's queues: listed again every --discovery-interval, or at once after a queue went missing."""
        now = self._clock()
        if discovery.queues is not None and not discovery.stale and now - discovery.at < self._settings.discovery_interval:
            return discovery.queues
        queues = await self._client.list_queues(account_id)
        discovery.queues, discovery.at, discovery.stale = queues, now, False
        listed = {q.id for q in queues}
        self._carry.forget_queues(account_id, listed)
        self._details.keep_queues(account_id, listed)
        # Figures of a queue whose counters were just forgotten must not come back through
        # reuse (say the status call fails now and the queue is listed again later).
        discovery.last = {k: v for k, v in discovery.last.items() if k in listed}
        if not queues:
            log.info("no_queues", account_id=account_id)
        return queues

    def _build(self, account_id: str, discovery: _Discovery, queues: list[QueueRef], statuses: dict[str, object],
               stats: _PollStats) -> AccountSnapshot:
        """The account's figures from Kazoo's answer: queues that answered exactly as before reuse theirs."""
        fetched_at = self._clock()
        figures: list[QueueFigures] = []
        missing = 0
        previous, last = discovery.last, {}
        for queue in queues:
            raw = statuses.get(queue.id)
            if raw is None:
                missing += 1
                continue
            seen = previous.get(queue.id) if self._reuse_unchanged else None
            if seen is not None and seen[0] == raw and seen[1].queue_name == queue.name:
                last[queue.id] = seen
                figures.append(seen[1])
                stats.waits.extend(seen[2])
                continue
            queue_figures, raw_waits, valid = self._queue_figures(account_id, queue, raw, stats)
            figures.append(queue_figures)
            stats.waits.extend(raw_waits)
            if valid:  # a bad field is counted at every poll: never skip its parse
                last[queue.id] = (raw, queue_figures, raw_waits)
        discovery.last = last  # only the queues of this answer
        if missing:
            # Most likely deleted between discovery and status: look again next poll.
            discovery.stale = True
            stats.missing += missing
            self._metrics.missing(account_id, missing)
        stats.queues += len(figures)
        return AccountSnapshot(
            account_id=account_id,
            up=True,
            queues=tuple(figures),
            data_time=fetched_at,
            last_success=fetched_at,
            queue_count=len(queues),
        )

    def _queue_figures(self, account_id: str, queue: QueueRef, raw: object,
                       stats: _PollStats) -> tuple[QueueFigures, tuple[float, ...], bool]:
        """One queue's figures (in base units, counters carried), its raw waits, and whether every field was valid."""
        status, bad_fields = parse_queue_status(raw)
        for name in bad_fields:
            self._metrics.invalid_field(account_id, name)
        if bad_fields:
            stats.invalid += len(bad_fields)
            log.debug("invalid_fields", account_id=account_id, queue_id=queue.id, fields=bad_fields)
        raw_waits = tuple(v for k, v in status.values.items() if k in WAITS)
        figures = QueueFigures(
            account_id=account_id,
            queue_id=queue.id,
            queue_name=queue.name,
            node=status.node,
            values=MappingProxyType(in_base_units(status.values, self._wait_scale)),
            counters=MappingProxyType(self._carry.update(account_id, queue.id, status.node, status.values)),
        )
        return figures, raw_waits, not bad_fields

    def _check_hidden(self, snapshot: Snapshot, duration: float) -> None:
        """Queues polled successfully whose figures were already past --max-data-age when the poll ended.

        A poll slower than --max-data-age shows only the accounts it fetched last: the others'
        figures are hidden as stale the moment they are published. Never silently.
        """
        max_age, now = self._settings.max_data_age, snapshot.taken_at
        hidden = [a for a in snapshot.accounts.values()
                  if a.up and a.queues and a.data_time is not None and now - a.data_time > max_age]
        queues = sum(len(a.queues) for a in hidden)
        self._metrics.hidden_queues.set(queues)
        if hidden:
            log.warning("poll_slower_than_max_data_age", accounts=len(hidden), queues=queues,
                        duration_seconds=round(duration, 3), max_data_age=max_age,
                        hint="these figures were hidden as stale when published; raise --max-concurrency, "
                             "--max-data-age or shard the accounts (--shard)")

    def _check_wait_unit(self, waits: list[float]) -> None:
        if self._unit_warned or not waits:
            return
        nonzero = [w for w in waits if w > 0]
        if self._settings.wait_unit == "seconds" and any(w > _SECONDS_IMPLAUSIBLE for w in nonzero):
            self._unit_warned = True
            log.warning("wait_unit_suspicious", wait_unit="seconds", largest=max(nonzero),
                        hint="wait figures above a day look like milliseconds; consider --wait-unit milliseconds")
        elif self._settings.wait_unit == "milliseconds" and len(nonzero) >= 3 and max(nonzero) < 1000:
            self._unit_warned = True
            log.warning("wait_unit_suspicious", wait_unit="milliseconds", largest=max(nonzero),
                        hint="every wait is under one second in milliseconds; consider --wait-unit seconds")
