"""The JSON document of /api/v1/queues: the current snapshot, the max-data-age rule and alert levels.

One function builds it from the snapshot (`queues_document`): the only place that knows both the
snapshot's types and the API's field names, so a change of the snapshot is adapted here alone.
The document's shape is a public interface (version 1, README "Wallboard and JSON API"): add
fields, never rename or remove one without a new version.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from exporter.figures import COUNTED, SETTINGS
from exporter.figures import FIGURES as TABLE
from exporter.snapshot import QueueFigures, Snapshot, is_fresh
from exporter.wallboard.thresholds import DEFAULT_RULES, ThresholdRules, Thresholds

VERSION = 1

# API figure name -> (figure key in the table of figures, counter?). The names are the metric
# names without "qubicle_queue_", so the API and /metrics read alike; they come from the table,
# so a new figure appears here too.
FIGURES: tuple[tuple[str, str, bool], ...] = (
    *((f.metric.removeprefix("qubicle_queue_"), f.key, False) for f in TABLE),
    *(((f.counter or "").removeprefix("qubicle_queue_"), f.key, True) for f in COUNTED),
)
# Queue settings from the queue document, named like their metrics too (timeout_seconds, ...).
SETTING_FIGURES: tuple[tuple[str, str], ...] = tuple((s.metric.removeprefix("qubicle_queue_"), s.key) for s in SETTINGS)


@dataclass(frozen=True)
class Selection:
    """?account=...&queue=... (each repeatable): ids or names, case-insensitive; empty = all."""

    accounts: frozenset[str] = frozenset()
    queues: frozenset[str] = frozenset()

    @classmethod
    def of(cls, accounts: Sequence[str] = (), queues: Sequence[str] = ()) -> Selection:
        def norm(values: Sequence[str]) -> frozenset[str]:
            return frozenset(v.strip().casefold() for v in values if v.strip())

        return cls(norm(accounts), norm(queues))


ALL = Selection()


def _figures(queue: QueueFigures) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, key, counter in FIGURES:
        value = (queue.counters if counter else queue.values).get(key)
        if value is not None and math.isfinite(value):  # JSON has no NaN or Infinity
            out[name] = value
    for name, key in SETTING_FIGURES:
        if (value := queue.settings.get(key)) is not None and math.isfinite(value):
            out[name] = value
    calls, abandoned = out.get("daily_sessions"), out.get("daily_abandoned_sessions")
    if calls and abandoned is not None:
        out["daily_abandoned_ratio"] = abandoned / calls  # derived: the wallboard's "abandon share"
    return out


@lru_cache(maxsize=1024)
def _thresholds_dict(t: Thresholds) -> dict[str, float]:
    # Most queues share a few Thresholds values: one dict each (read-only, shared) rather than
    # dataclasses.asdict per queue, which was a third of the document's cost at 10,000 queues.
    return asdict(t)


def alerts_of(figures: Mapping[str, float], t: Thresholds) -> list[dict[str, Any]]:
    """The shipped alerts whose condition holds on these figures now (before their `for:`)."""
    out: list[dict[str, Any]] = []

    def alert(name: str, severity: str, *figure_names: str) -> None:
        out.append({"alert": name, "severity": severity, "figures": list(figure_names)})

    waiting, ready = figures.get("active_sessions"), figures.get("available_recipients")
    if waiting is not None and ready is not None and waiting > 0 and ready == 0:
        alert("QubicleCallersWaitingNoAgentReady", "critical", "active_sessions", "available_recipients")
    configured, logged_in = figures.get("recipients"), figures.get("active_recipients")
    if configured is not None and logged_in is not None and configured > 0 and logged_in == 0:
        alert("QubicleNoAgentsLoggedIn", "warning", "active_recipients")
    estimated = figures.get("estimated_wait_seconds")
    if estimated is not None:
        if estimated > t.estimated_wait_critical:
            alert("QubicleEstimatedWaitHigh", "critical", "estimated_wait_seconds")
        elif estimated > t.estimated_wait_warning:
            alert("QubicleEstimatedWaitHigh", "warning", "estimated_wait_seconds")
    # The alert takes the last 30 minutes from Prometheus; the exporter keeps no history, so the
    # board applies the same thresholds (and minimum of callers) to today's figures.
    ratio, calls = figures.get("daily_abandoned_ratio"), figures.get("daily_sessions", 0.0)
    if ratio is not None and calls >= t.abandon_min_sessions:
        if ratio > t.abandon_ratio_critical:
            alert("QubicleAbandonRateHigh", "critical", "daily_abandoned_ratio")
        elif ratio > t.abandon_ratio_warning:
            alert("QubicleAbandonRateHigh", "warning", "daily_abandoned_ratio")
    return out


def queues_document(snapshot: Snapshot, now: float, max_data_age: float,
                    thresholds: ThresholdRules = DEFAULT_RULES, *, interval: float | None = None,
                    select: Selection = ALL) -> dict[str, Any]:
    """The /api/v1/queues document. An account whose data is older than max_data_age keeps its
    entry (up, last success, stale: true) but lists no queue: the same rule as /metrics."""
    accounts: list[dict[str, Any]] = []
    for account_id, account in sorted(snapshot.accounts.items()):
        name = account.name or account_id  # Kazoo's name once the poller has read it, else the id
        if select.accounts and not {account_id.casefold(), name.casefold()} & select.accounts:
            continue
        age = None if account.data_time is None else max(0.0, now - account.data_time)
        fresh = is_fresh(account, now, max_data_age)
        queues = []
        for q in account.queues if fresh else ():
            if select.queues and not {q.queue_id.casefold(), q.queue_name.casefold()} & select.queues:
                continue
            figures = _figures(q)
            t = thresholds.for_queue(account_id, q.queue_id)
            queues.append({
                "id": q.queue_id, "name": q.queue_name, "account_id": account_id, "node": q.node,
                "age_seconds": age, "figures": figures,
                # Logged-in agents by state ({"ready": 2, ...}, every state); null while not known.
                "agents": None if q.agents is None else dict(q.agents),
                "thresholds": _thresholds_dict(t), "alerts": alerts_of(figures, t),
            })
        accounts.append({
            "id": account_id, "name": name, "up": account.up, "error": account.error,
            "last_success": account.last_success, "data_age_seconds": age, "stale": not fresh,
            "queue_count": account.queue_count, "queues": queues,
        })
    return {"version": VERSION, "generated_at": now, "interval_seconds": interval,
            "max_data_age_seconds": max_data_age, "accounts": accounts}


class DocumentCache:
    """The document as JSON bytes per selection, built at most once per `ttl` seconds.

    At 10,000 queues one build is ~0.5 s of CPU (7 MB of JSON), so several wallboards or a script
    polling the API in a loop must not each cost a build. A cached answer is never served past the
    moment an account's figures cross --max-data-age (the hiding rule holds to the poll, not to
    the second), nor once a new snapshot is in place. Thread-safe: the routes call it from a pool.
    """

    def __init__(self, get_snapshot: Callable[[], Snapshot], max_data_age: float,
                 thresholds: ThresholdRules = DEFAULT_RULES, *, interval: float | None = None,
                 clock: Callable[[], float] = time.time, ttl: float = 1.0, size: int = 32) -> None:
        self._get_snapshot, self._max_data_age, self._thresholds = get_snapshot, max_data_age, thresholds
        self._interval, self._clock, self._ttl, self._size = interval, clock, ttl, size
        self._lock = threading.Lock()
        # selection -> (snapshot it was built from, valid until, bytes); bounded: selections come
        # from query strings.
        self._entries: OrderedDict[Selection, tuple[Snapshot, float, bytes]] = OrderedDict()

    def json(self, selection: Selection = ALL) -> bytes:
        snapshot, now = self._get_snapshot(), self._clock()
        with self._lock:
            entry = self._entries.get(selection)
            if entry is not None and entry[0] is snapshot and now < entry[1]:
                return entry[2]
        document = queues_document(snapshot, now, self._max_data_age, self._thresholds, interval=self._interval,
                                   select=selection)
        body = json.dumps(document, separators=(",", ":"), allow_nan=False, check_circular=False).encode("utf-8")
        # The next account to cross max-data-age ends this answer's life.
        crossings = [a.data_time + self._max_data_age for a in snapshot.accounts.values()
                     if a.data_time is not None and a.data_time + self._max_data_age >= now]
        until = min([now + self._ttl, *crossings])
        with self._lock:
            self._entries[selection] = (snapshot, until, body)
            self._entries.move_to_end(selection)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return body
