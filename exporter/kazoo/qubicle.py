"""Qubicle's data as Crossbar returns it: queue and account rows, and the queue status object."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.figures import BY_KEY, FIGURES, NOT_LOGGED_IN, SETTING_LABELS, SETTINGS, agent_state


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


# ---- Queue documents, recipients (agents) and accounts: discovery data ----


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """What the exporter reads of a queue document: settings (seconds, counts), texts, members."""

    values: dict[str, float]  # Setting key -> value; unusable or absent ones left out
    labels: dict[str, str]  # label of qubicle_queue_info -> text ("" when absent)
    members: tuple[str, ...] | None  # recipient (user) ids; None when the document names none


def parse_queue_document(raw: Any) -> tuple[QueueSettings, list[str]]:
    """Settings of one queue document and the names of fields that were present but unusable.

    Current names first, legacy ones (queue_timeout, agent_connect_timeout) after; numbers may
    arrive as strings. `members` may be an object keyed by user id or a list of ids or rows.
    """
    doc = raw if isinstance(raw, dict) else {}
    values: dict[str, float] = {}
    bad: list[str] = []
    for setting in SETTINGS:
        for name in setting.names:
            if name in doc and doc[name] is not None:
                number = _number(doc[name])
                if number is None:
                    bad.append(f"queue.{name}")
                elif number > 0 or not setting.only_if_set:
                    values[setting.key] = number
                break
    labels = {}
    for label, names in SETTING_LABELS:
        text = next((doc[n] for n in names if isinstance(doc.get(n), str)), "")
        labels[label] = text.strip()
    return QueueSettings(values=values, labels=labels, members=_member_ids(doc.get("members"))), bad


def _member_ids(members: Any) -> tuple[str, ...] | None:
    if isinstance(members, dict):
        return tuple(k for k in members if isinstance(k, str) and k)
    if isinstance(members, list):
        ids = [m if isinstance(m, str) else m.get("id") if isinstance(m, dict) else None for m in members]
        return tuple(i for i in ids if isinstance(i, str) and i)
    return None


def recipient_rows(data: Any) -> dict[str, str]:
    """Rows of a recipients listing -> name by user id (the id where no name is given)."""
    rows: dict[str, str] = {}
    for row in data if isinstance(data, list) else []:
        if isinstance(row, dict) and isinstance(row.get("id"), str) and row["id"]:
            name = row.get("name") or row.get("display_name")
            if not (isinstance(name, str) and name.strip()):
                first, last = row.get("first_name"), row.get("last_name")
                name = " ".join(p for p in (first, last) if isinstance(p, str) and p.strip())
            rows[row["id"]] = name.strip() if isinstance(name, str) and name.strip() else row["id"]
    return rows


def account_name(data: Any) -> str | None:
    """`data.name` of an account document, if usable."""
    name = data.get("name") if isinstance(data, dict) else None
    return name.strip() if isinstance(name, str) and name.strip() else None


# Gregorian seconds (Kazoo's default clock) minus this are Unix seconds.
GREGORIAN_OFFSET = 62_167_219_200


def unix_time(value: Any) -> float | None:
    """A timestamp of uncertain unit, normalised by size to Unix seconds; None for 0, absent or odd.

    < 1e10: Unix seconds; 6e10 to 7e10: Gregorian seconds; > 1e12: Unix milliseconds.
    """
    number = _number(value)
    if number is None or number == 0:
        return None
    if number < 1e10:
        return number
    if 6e10 <= number < 7e10:
        return number - GREGORIAN_OFFSET
    if number > 1e12:
        return number / 1000.0
    return None


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    """One agent as Kazoo reports it: its state label (or NOT_LOGGED_IN), per-queue availability, stats."""

    state: str
    queue_availability: dict[str, bool]
    stats: dict[str, float]  # total_calls, missed_calls, avg_call_time; unusable ones left out
    login_time: float | None  # Unix seconds; a new value means a new login (stats start again)


_RECIPIENT_STATS = ("total_calls", "missed_calls", "avg_call_time")


def parse_recipient_status(raw: Any) -> tuple[RecipientStatus | None, list[str]]:
    """One recipient status object -> its status (None if its state is unusable) and bad field names.

    An unknown state is reported, never guessed; missing stats drop those figures, never 0.
    """
    if not isinstance(raw, dict):
        return None, ["recipient.availability_state"]
    bad: list[str] = []
    raw_state = raw.get("availability_state", raw.get("availability-state", raw.get("state")))
    state = agent_state(raw_state)
    if state is None:
        return None, ["recipient.availability_state"]
    availability: dict[str, bool] = {}
    queues = raw.get("queue_availability", raw.get("queue-availability"))
    if isinstance(queues, dict):
        availability = {q: v for q, v in queues.items() if isinstance(q, str) and isinstance(v, bool)}
    elif isinstance(queues, list):
        # A list names the queues the agent was made available in (per-queue flags set to true).
        availability = {q: True for q in queues if isinstance(q, str)}
    stats_raw = raw.get("stats")
    stats: dict[str, float] = {}
    login = None
    if isinstance(stats_raw, dict):
        for name in _RECIPIENT_STATS:
            if name in stats_raw:
                number = _number(stats_raw[name])
                if number is None:
                    bad.append(f"recipient.stats.{name}")
                else:
                    stats[name] = number
        login = unix_time(stats_raw.get("login_time"))
    elif state != NOT_LOGGED_IN:
        bad.append("recipient.stats")
    return RecipientStatus(state=state, queue_availability=availability, stats=stats, login_time=login), bad


def recipient_status_answer(data: Any, asked: Sequence[str]) -> dict[str, Any] | None:
    """`data` of a recipients status answer -> raw status objects by user id; None if unreadable.

    No source shows this answer: an object keyed by user id (like queue list status) and a list of
    objects carrying their id (`id`, `recipient_id` or `user_id`) are both read. Ids not asked for
    are ignored; ids Kazoo left out stay out (not logged in, or not recipients).
    """
    wanted = set(asked)
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k in wanted}
    if isinstance(data, list):
        found: dict[str, Any] = {}
        for row in data:
            if not isinstance(row, dict):
                continue
            ident = next((row[k] for k in ("id", "recipient_id", "user_id") if isinstance(row.get(k), str)), None)
            if ident in wanted:
                found[ident] = row
        return found
    return None
