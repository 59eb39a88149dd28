"""Qubicle's data as Crossbar returns it: queue and account rows, and the queue status object."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.figures import BY_KEY, FIGURES


@dataclass(frozen=True, slots=True)
class QueueRef:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class AccountRef:
    id: str
    name: str


class QueueStatus:
    """One queue's figures as Kazoo sent them (figure key -> number; unusable ones left out) and its node.

    Attribute access by figure key (`status.active_sessions`) is for readers; the figures
    themselves are the table in exporter/figures.py.
    """

    __slots__ = ("values", "node")

    def __init__(self, node: str | None = None, **values: float | None) -> None:
        unknown = set(values) - BY_KEY.keys()
        if unknown:
            raise TypeError(f"not a queue figure: {', '.join(sorted(unknown))}")
        self.values: dict[str, float] = {k: v for k, v in values.items() if v is not None}
        self.node = node

    def __getattr__(self, name: str) -> float | None:
        if name in BY_KEY:
            return self.values.get(name)
        raise AttributeError(name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QueueStatus):
            return NotImplemented
        return self.values == other.values and self.node == other.node

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        return f"QueueStatus(node={self.node!r}, {self.values!r})"


# The table split by container, with the dotted name precomputed: this runs for every queue at
# every poll (10,000 queues = 100,000 fields every interval).
_TOP_LEVEL = tuple((f.key, f.path[0], f.required, f.path[0]) for f in FIGURES if len(f.path) == 1)
_IN_STATS = tuple((f.key, f.path[1], f.required, ".".join(f.path)) for f in FIGURES
                  if len(f.path) == 2 and f.path[0] == "stats")
_REQUIRED = tuple(".".join(f.path) for f in FIGURES if f.required)
assert len(_TOP_LEVEL) + len(_IN_STATS) == len(FIGURES), "a figure path the parser cannot read"


# JSON-number-shaped strings only: float() alone would also take "1_000", "nan" and "infinity".
_NUMERIC = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INF = math.inf


def _number(value: Any) -> float | None:
    """A finite, non-negative number, or None.

    Numeric strings ("12", "4.5") are accepted: some Kazoo versions serialise counters as strings
    and the figure is still right. Bools are not numbers (JSON true is not 1 agent); NaN, infinities
    and negative figures are not valid counts or waits.
    """
    kind = type(value)
    if kind is int or kind is float:  # what json.loads gives for numbers (bool is its own type)
        try:
            number = float(value)
        except OverflowError:  # an integer beyond a float's range
            return None
        return number if 0 <= number < _INF else None  # NaN fails both comparisons
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str) and _NUMERIC.fullmatch(value.strip()):
            number = float(value.strip())
        else:
            return None
    except OverflowError:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return number


def _fields(container: dict[str, Any], fields: tuple[tuple[str, str, bool, str], ...],
            values: dict[str, float], bad: list[str]) -> None:
    for key, name, required, dotted in fields:
        if name in container:
            number = _number(container[name])
            if number is None:
                bad.append(dotted)  # present but unusable: always reported
            else:
                values[key] = number
        elif required:
            bad.append(dotted)


def parse_queue_status(raw: Any) -> tuple[QueueStatus, list[str]]:
    """Figures of one status object, and the dotted names of the fields that were unusable.

    Never raises: a missing, null or non-numeric field drops that one figure, not the queue.
    """
    status = QueueStatus()
    if not isinstance(raw, dict):
        return status, list(_REQUIRED)
    values, bad = status.values, list[str]()
    _fields(raw, _TOP_LEVEL, values, bad)
    stats = raw.get("stats")
    if isinstance(stats, dict):
        _fields(stats, _IN_STATS, values, bad)
    else:
        bad.extend(dotted for _, _, required, dotted in _IN_STATS if required)
    node = raw.get("node")
    if isinstance(node, bool) or not isinstance(node, (str, int)):
        node = None
    status.node = str(node) if node is not None and str(node) != "" else None
    return status, bad


# Qubicle allows 128 characters for a queue name; twice that is generous. A longer name is cut, so
# that 10,000 queues named with a kilobyte each cannot blow up the exposition (the name is a label).
MAX_NAME_LENGTH = 256
_CUT = "\u2026"  # the ellipsis shows on a dashboard that the name was cut


def _name(row: dict[str, Any], fallback: str, limit: int, on_truncated: Callable[[], None] | None) -> str:
    name = row.get("name")
    name = name if isinstance(name, str) and name.strip() else fallback
    if len(name) > limit:
        if on_truncated is not None:
            on_truncated()
        return name[:limit - 1] + _CUT
    return name


def _refs(data: Any, limit: int, on_truncated: Callable[[], None] | None) -> list[tuple[str, str]]:
    refs: list[tuple[str, str]] = []
    for row in data if isinstance(data, list) else []:
        if isinstance(row, dict) and isinstance(row.get("id"), str) and row["id"]:
            refs.append((row["id"], _name(row, row["id"], limit, on_truncated)))
    return refs


def queue_rows(data: Any, max_name_length: int = MAX_NAME_LENGTH,
               on_truncated: Callable[[], None] | None = None) -> list[QueueRef]:
    """Rows of a queue listing; a row without a string id is skipped, a missing or empty name falls
    back to the id, a name longer than max_name_length is cut (and on_truncated called)."""
    return [QueueRef(id=i, name=n) for i, n in _refs(data, max_name_length, on_truncated)]


def account_rows(data: Any, max_name_length: int = MAX_NAME_LENGTH,
                 on_truncated: Callable[[], None] | None = None) -> list[AccountRef]:
    """Rows of a descendants listing, with the same tolerance as queue_rows."""
    return [AccountRef(id=i, name=n) for i, n in _refs(data, max_name_length, on_truncated)]


@dataclass(frozen=True)
class WireRequest:
    method: str
    path: str
    params: dict[str, str]
    body: dict[str, Any]


def queue_list_status_request(account_path: str, queue_ids: Sequence[str], via_post: bool) -> WireRequest:
    """The wire format of "queue list status", kept in this one place because it is the least certain.

    Documented: GET .../qubicle_queues/status with the JSON body {"data": {"queue_ids": [...]}}
    (Crossbar reads bodies on GET). Where a proxy drops GET bodies, Crossbar's verb tunnelling
    carries the same body as POST ...?verb=GET (unverified for Qubicle, hence an option).
    """
    body = {"data": {"queue_ids": list(queue_ids)}}
    path = f"{account_path}/qubicle_queues/status"
    if via_post:
        return WireRequest("POST", path, {"verb": "GET"}, body)
    return WireRequest("GET", path, {}, body)


def queue_list_status_answer(data: Any, asked: Sequence[str]) -> dict[str, dict[str, Any]] | None:
    """`data` of the answer -> status objects by queue id; None if `data` is not an object.

    Ids Kazoo left out (a queue deleted since the listing) stay out, entries that are not objects
    are dropped, and ids we did not ask for are ignored.
    """
    if not isinstance(data, dict):
        return None
    wanted = set(asked)
    return {queue_id: status for queue_id, status in data.items()
            if queue_id in wanted and isinstance(status, dict)}
