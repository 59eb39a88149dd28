"""Qubicle's data as Crossbar returns it: queue and account rows, and the queue status object."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class QueueRef:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class AccountRef:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class QueueStatus:
    recipients: float | None = None
    active_recipients: float | None = None
    available_recipients: float | None = None
    active_sessions: float | None = None
    estimated_wait: float | None = None
    average_wait: float | None = None
    longest_wait: float | None = None
    daily_sessions: float | None = None
    daily_missed_sessions: float | None = None
    daily_abandoned_sessions: float | None = None
    node: str | None = None


# QueueStatus attribute -> (where in the status object, required). Every field is optional in one
# reseller's published schema; longest_wait is only sent by some versions, so its absence is
# normal and not reported.
_FIELDS: dict[str, tuple[tuple[str, ...], bool]] = {
    "recipients": (("stats", "recipient_count"), True),
    "active_recipients": (("active_recipient_count",), True),
    "available_recipients": (("available_recipient_count",), True),
    "active_sessions": (("stats", "active_session_count"), True),
    "estimated_wait": (("stats", "estimated_wait"), True),
    "average_wait": (("stats", "average_wait"), True),
    "longest_wait": (("stats", "longest_wait"), False),
    "daily_sessions": (("stats", "total_sessions"), True),
    "daily_missed_sessions": (("stats", "missed_sessions"), True),
    "daily_abandoned_sessions": (("stats", "abandoned_sessions"), True),
}


def _number(value: Any) -> float | None:
    """A finite, non-negative number; numeric strings ("12") are accepted, bools are not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return number


def parse_queue_status(raw: Any) -> tuple[QueueStatus, list[str]]:
    """Figures of one status object, and the dotted names of the fields that were unusable.

    Never raises: a missing, null or non-numeric field drops that one figure (None), not the queue.
    """
    if not isinstance(raw, dict):
        return QueueStatus(), [".".join(path) for path, required in _FIELDS.values() if required]
    values: dict[str, Any] = {}
    bad: list[str] = []
    stats = raw.get("stats")
    for attribute, (path, required) in _FIELDS.items():
        container: Any = raw if len(path) == 1 else stats
        present = isinstance(container, dict) and path[-1] in container
        number = _number(container.get(path[-1])) if isinstance(container, dict) else None
        if number is None and (required or present):
            bad.append(".".join(path))
        values[attribute] = number
    node = raw.get("node")
    if isinstance(node, bool) or not isinstance(node, (str, int)):
        node = None
    values["node"] = str(node) if node is not None and str(node) != "" else None
    return QueueStatus(**values), bad


def queue_rows(data: Any) -> list[QueueRef]:
    """Rows of a queue listing; a row without a string id is skipped, a missing name falls back to the id."""
    rows = []
    for row in data if isinstance(data, list) else []:
        if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not row["id"]:
            continue
        name = row.get("name")
        rows.append(QueueRef(id=row["id"], name=name if isinstance(name, str) and name.strip() else row["id"]))
    return rows


def account_rows(data: Any) -> list[AccountRef]:
    rows = []
    for row in data if isinstance(data, list) else []:
        if isinstance(row, dict) and isinstance(row.get("id"), str) and row["id"]:
            name = row.get("name")
            rows.append(AccountRef(id=row["id"], name=name if isinstance(name, str) else row["id"]))
    return rows
