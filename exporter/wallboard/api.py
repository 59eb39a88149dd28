"""The JSON document of /api/v1/queues: the current snapshot, the max-data-age rule and alert levels.

One function builds it from the snapshot (`queues_document`): the only place that knows both the
snapshot's types and the API's field names, so a change of the snapshot is adapted here alone.
The document's shape is a public interface (version 1, README "Wallboard and JSON API"): add
fields, never rename or remove one without a new version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from exporter.snapshot import QueueFigures, Snapshot
from exporter.wallboard.thresholds import DEFAULT_RULES, ThresholdRules, Thresholds

VERSION = 1

# API figure name -> where it is in QueueFigures: ("gauges" | "counters", key). The names are the
# metric names without "qubicle_queue_", so the API and /metrics read alike.
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("recipients", "gauges", "recipients"),
    ("active_recipients", "gauges", "active_recipients"),
    ("available_recipients", "gauges", "available_recipients"),
    ("active_sessions", "gauges", "active_sessions"),
    ("estimated_wait_seconds", "gauges", "estimated_wait_seconds"),
    ("average_wait_seconds", "gauges", "average_wait_seconds"),
    ("longest_wait_seconds", "gauges", "longest_wait_seconds"),
    ("daily_sessions", "gauges", "daily_sessions"),
    ("daily_missed_sessions", "gauges", "daily_missed_sessions"),
    ("daily_abandoned_sessions", "gauges", "daily_abandoned_sessions"),
    ("sessions_total", "counters", "sessions"),
    ("missed_sessions_total", "counters", "missed_sessions"),
    ("abandoned_sessions_total", "counters", "abandoned_sessions"),
)


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
    for name, kind, key in FIGURES:
        value = (queue.gauges if kind == "gauges" else queue.counters).get(key)
        if value is not None and math.isfinite(value):  # JSON has no NaN or Infinity
            out[name] = value
    calls, abandoned = out.get("daily_sessions"), out.get("daily_abandoned_sessions")
    if calls and abandoned is not None:
        out["daily_abandoned_ratio"] = abandoned / calls  # derived: the wallboard's "abandon share"
    return out


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
        name = account_id  # seam: the snapshot has no account names yet
        if select.accounts and not {account_id.casefold(), name.casefold()} & select.accounts:
            continue
        age = None if account.data_time is None else max(0.0, now - account.data_time)
        fresh = age is not None and age <= max_data_age
        queues = []
        for q in account.queues if fresh else ():
            if select.queues and not {q.queue_id.casefold(), q.queue_name.casefold()} & select.queues:
                continue
            figures = _figures(q)
            t = thresholds.for_queue(account_id, q.queue_id)
            queues.append({
                "id": q.queue_id, "name": q.queue_name, "account_id": account_id, "node": q.node,
                "age_seconds": age, "figures": figures, "thresholds": asdict(t), "alerts": alerts_of(figures, t),
            })
        accounts.append({
            "id": account_id, "name": name, "up": account.up, "error": account.error,
            "last_success": account.last_success, "data_age_seconds": age, "stale": not fresh,
            "queue_count": account.queue_count, "queues": queues,
        })
    return {"version": VERSION, "generated_at": now, "interval_seconds": interval,
            "max_data_age_seconds": max_data_age, "accounts": accounts}
