"""The one table of queue figures: where each is in Kazoo's answer, and how it is exported and shown.

Everything that handles a queue figure is derived from FIGURES: the status parser
(kazoo/qubicle.py), unit scaling and counter carry (poller.py, snapshot.py), the metric families
and their help texts (render.py, collector.py) and the `check` table (check.py). Adding a figure is
one entry here. A figure is known by its `key` from Kazoo's answer to the exposition: the snapshot
is keyed by it, never by a Prometheus name.

This module knows no HTTP and no prometheus_client: it is data, importable from every layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Unit = Literal["count", "wait"]


@dataclass(frozen=True, slots=True)
class Figure:
    key: str  # the figure's name in the snapshot, the parser and the check table
    path: tuple[str, ...]  # where it is in one queue's status object
    metric: str  # the gauge that shows it as Kazoo sent it (waits in seconds)
    help: str
    unit: Unit = "count"  # "wait": in Kazoo's --wait-unit, exported in seconds
    required: bool = True  # absent -> counted as an invalid field (an optional one is not)
    counter: str | None = None  # a daily figure: also kept as this reset-proof counter
    counter_help: str = ""
    column: str | None = None  # header of its column in `check`, if shown there


FIGURES: tuple[Figure, ...] = (
    Figure("active_sessions", ("stats", "active_session_count"), "qubicle_queue_active_sessions",
           "Callers in the queue now.", column="waiting"),
    Figure("available_recipients", ("available_recipient_count",), "qubicle_queue_available_recipients",
           "Agents ready to take a call.", column="ready"),
    Figure("active_recipients", ("active_recipient_count",), "qubicle_queue_active_recipients",
           "Agents logged in to the queue (ready or away).", column="logged in"),
    Figure("recipients", ("stats", "recipient_count"), "qubicle_queue_recipients",
           "Agents (recipients) configured on the queue.", column="agents"),
    Figure("estimated_wait", ("stats", "estimated_wait"), "qubicle_queue_estimated_wait_seconds",
           "Estimated wait for a caller entering the queue now.", unit="wait", column="est. wait"),
    Figure("average_wait", ("stats", "average_wait"), "qubicle_queue_average_wait_seconds",
           "Average wait of today's callers, as Kazoo reports it.", unit="wait"),
    # Only some Kazoo versions send it: its absence is normal and not reported.
    Figure("longest_wait", ("stats", "longest_wait"), "qubicle_queue_longest_wait_seconds",
           "Wait of the oldest caller in the queue (only where Kazoo sends it).", unit="wait", required=False),
    Figure("daily_sessions", ("stats", "total_sessions"), "qubicle_queue_daily_sessions",
           "Callers that entered the queue today, as Kazoo reports it (resets daily).",
           counter="qubicle_queue_sessions_total",
           counter_help="Callers that entered the queue, counted by the exporter across Kazoo's daily resets.",
           column="today"),
    Figure("daily_missed_sessions", ("stats", "missed_sessions"), "qubicle_queue_daily_missed_sessions",
           "Callers that timed out in the queue today (resets daily).",
           counter="qubicle_queue_missed_sessions_total",
           counter_help="Callers that timed out in the queue, counted across Kazoo's daily resets.",
           column="missed"),
    Figure("daily_abandoned_sessions", ("stats", "abandoned_sessions"), "qubicle_queue_daily_abandoned_sessions",
           "Callers that hung up before being answered today (resets daily).",
           counter="qubicle_queue_abandoned_sessions_total",
           counter_help="Callers that hung up before being answered, counted across Kazoo's daily resets.",
           column="abandoned"),
)

BY_KEY: Mapping[str, Figure] = {f.key: f for f in FIGURES}
COUNTED: tuple[Figure, ...] = tuple(f for f in FIGURES if f.counter)
WAITS: frozenset[str] = frozenset(f.key for f in FIGURES if f.unit == "wait")

# Labels of every queue series, in the order prometheus-client writes them (sorted).
QUEUE_LABELS: tuple[str, ...] = ("account_id", "queue_id", "queue_name")
QUEUE_INFO = "qubicle_queue_info"
QUEUE_INFO_HELP = "Queue metadata; node is the Kazoo node running the queue."

# Per-account families (label account_id), in exposition order.
ACCOUNT_METRICS: tuple[tuple[str, str], ...] = (
    ("qubicle_up", "1 if the last poll of the account succeeded, else 0."),
    ("qubicle_last_poll_success_timestamp_seconds", "Unix time of the account's last successful poll."),
    ("qubicle_queues", "Queues discovered in the account (0: no Qubicle or no queues)."),
)


def wait_scale(wait_unit: str) -> float:
    """Factor from Kazoo's wait figures to seconds."""
    return 0.001 if wait_unit == "milliseconds" else 1.0


def in_base_units(values: Mapping[str, float], scale: float) -> dict[str, float]:
    """A queue's figures as exported: waits scaled to seconds, counts as they are."""
    if scale == 1.0:
        return dict(values)
    return {key: value * scale if key in WAITS else value for key, value in values.items()}
