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


# ---- Queue settings: figures whose source is the queue document (GET .../qubicle_queues/{Q}) ----


@dataclass(frozen=True, slots=True)
class Setting:
    key: str  # its name in the snapshot (QueueFigures.settings) and in `check`
    names: tuple[str, ...]  # field names in the queue document, current first, then legacy ones
    metric: str
    help: str
    only_if_set: bool = False  # 0 means "no limit": exported only when above 0
    column: str | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting("timeout", ("timeout", "queue_timeout"), "qubicle_queue_timeout_seconds",
            "Longest a caller waits in the queue before timing out (missed), from the queue's settings.",
            column="timeout"),
    Setting("ring_timeout", ("ring_timeout", "agent_connect_timeout"), "qubicle_queue_ring_timeout_seconds",
            "How long an agent's phone rings before the call goes back to the queue, from the queue's settings."),
    Setting("wrapup", ("agent_wrapup_time",), "qubicle_queue_wrapup_seconds",
            "Wrap-up time given to an agent after each call, from the queue's settings."),
    Setting("max_callers", ("timeout_if_size_exceeds",), "qubicle_queue_max_callers",
            "Callers the queue holds before new ones time out at once (only where a limit is set).",
            only_if_set=True),
)
# Text settings, shown as labels of qubicle_queue_info: (label, field names in the queue document).
SETTING_LABELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("queue_type", ("queue_type",)),
    ("router", ("queue_router",)),
)


# ---- Agent (recipient) states: Kazoo's spellings -> the `state` label ----

AGENT_STATES: tuple[str, ...] = ("ready", "ringing", "on_call", "wrapup", "away")
NOT_LOGGED_IN = "not_logged_in"
# Keys are Kazoo's availability_state lower-cased without "-", "_" or spaces: "On-A-Call",
# "on_a_call" and "on-a-call" are one state (case varies between API answers and websocket events).
KAZOO_STATES: Mapping[str, str] = {
    "ready": "ready",
    "calloffer": "ringing",
    "onacall": "on_call",
    "wrapuptime": "wrapup",
    "wrapup": "wrapup",
    "away": "away",
    "notloggedin": NOT_LOGGED_IN,
    "loggedout": NOT_LOGGED_IN,
}


def agent_state(raw: object) -> str | None:
    """The state label of Kazoo's availability_state; NOT_LOGGED_IN; or None if unknown."""
    if not isinstance(raw, str):
        return None
    return KAZOO_STATES.get(raw.lower().replace("-", "").replace("_", "").replace(" ", ""))


ACCOUNT_INFO = "qubicle_account_info"
ACCOUNT_INFO_HELP = "Account metadata: its name in Kazoo (the id where the name is not known yet)."
ACCOUNT_AGENTS = "qubicle_agents"
ACCOUNT_AGENTS_HELP = "Distinct logged-in agents of the account by state."
QUEUE_AGENTS = "qubicle_queue_agents"
QUEUE_AGENTS_HELP = ("Logged-in agents of the queue by state (per-queue availability honoured: "
                     "ready elsewhere but away for this queue counts as away).")
# Opt-in (--agent-metrics): one series set per agent.
AGENT_STATE = "qubicle_agent_state"
AGENT_STATE_HELP = "1 for the agent's current state, 0 for the others (all 0: not logged in)."
AGENT_COUNTERS: tuple[tuple[str, str, str], ...] = (
    # (key in AgentFigures.counters, metric, help)
    ("calls", "qubicle_agent_calls_total",
     "Calls the agent handled, counted by the exporter across logins and Kazoo's resets."),
    ("missed_calls", "qubicle_agent_missed_calls_total",
     "Calls offered to the agent and not taken, counted across logins and Kazoo's resets."),
)
AGENT_AVERAGE_CALL = "qubicle_agent_average_call_seconds"
AGENT_AVERAGE_CALL_HELP = "Average call time of the agent's current login, as Kazoo reports it."
