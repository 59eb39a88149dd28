"""The snapshot part of /metrics, written directly: `render(snapshot, now, ...)` depends on the snapshot only.

Exposition it produces (one queue shown):

    qubicle_up{account_id="3f0b..."} 1.0
    qubicle_queue_active_sessions{account_id="3f0b...",queue_id="9a1c...",queue_name="Support"} 2.0
    qubicle_queue_sessions_total{account_id="3f0b...",queue_id="9a1c...",queue_name="Support"} 41.0
    qubicle_queue_info{account_id="3f0b...",node="kz1@ams",queue_id="9a1c...",queue_name="Support"} 1.0

It is byte for byte what prometheus-client writes from exporter/collector.py's families (the
tests hold the two equal, in both formats), several times cheaper: each queue's label set is
escaped once for all its series, and value texts are remembered within a render.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import compress, count
from operator import ne
from typing import TypeVar

from prometheus_client.utils import floatToGoString

from exporter.exposition import Chunk, Same
from exporter.figures import (
    ACCOUNT_AGENTS,
    ACCOUNT_AGENTS_HELP,
    ACCOUNT_INFO,
    ACCOUNT_INFO_HELP,
    ACCOUNT_METRICS,
    AGENT_AVERAGE_CALL,
    AGENT_AVERAGE_CALL_HELP,
    AGENT_COUNTERS,
    AGENT_STATE,
    AGENT_STATE_HELP,
    AGENT_STATES,
    COUNTED,
    FIGURES,
    QUEUE_AGENTS,
    QUEUE_AGENTS_HELP,
    QUEUE_INFO,
    QUEUE_INFO_HELP,
    SETTING_LABELS,
    SETTINGS,
)
from exporter.snapshot import AccountSnapshot, AgentFigures, QueueFigures, Snapshot, is_fresh, visible

_LabelKey = tuple[object, ...]
_T = TypeVar("_T")


# A queue as the render writes it: its label set as each series prints it, its whole info line,
# the text of each value in _COLUMNS' order (None: no such figure this poll), and its
# qubicle_queue_agents lines ("" while its agents are not known).
_Row = tuple[str, str, tuple[str | None, ...], str]


@dataclass
class LabelCache:
    """What the last render wrote for each queue it showed, for the next one.

    `texts`: each queue's label texts by its labels: ids and names rarely change.
    `blocks`: each queue family's text in slices of _SLICE rows, as the exposition deflated them,
    with the rows they were written from. A family's slice whose lines would be the same again
    (every row the same, or changed only in what that family does not print: most slices of the
    figures that rarely move, all of the settings' and info lines) is not written nor deflated
    again: the exposition is handed the block it made last time.
    `lines`: each queue's row (label texts, value texts, agent lines) by the identity of its
    QueueFigures. The poller hands the very same (immutable) QueueFigures again for a queue whose
    answer did not change (85-90 % of them between two polls), so its row is taken as it was
    instead of looking up and formatting every value again. Keyed by id() with the object kept
    beside it: an id is only trusted while its object is alive and is the one remembered. Rows,
    not whole lines: a queue's lines repeat its labels for every family, its row holds them once.

    Only an optimisation: a render with a fresh cache, or with `reuse_lines` off, writes the same
    bytes. Renders of several formats may share one (the rows are the same in both formats); a
    render only replaces the dictionaries, never changes one another render reads.
    """

    texts: dict[_LabelKey, tuple[str, str]] = field(default_factory=dict)
    lines: dict[int, tuple[QueueFigures, _Row]] = field(default_factory=dict)
    # Each queue family's slices, deflated, by chunk key: kept while their text stays the same.
    blocks: dict[str, _Kept] = field(default_factory=dict)
    reuse_lines: bool = True  # off: every value looked up and formatted at every render (the benchmark's comparison)


def account_values(account: AccountSnapshot) -> tuple[float | None, ...]:
    """qubicle_up, last success, queue count: in ACCOUNT_METRICS' order."""
    return (1.0 if account.up else 0.0, account.last_success,
            None if account.queue_count is None else float(account.queue_count))


def render(snapshot: Snapshot, now: float, *, max_data_age: float, openmetrics: bool = False,
           labels: LabelCache | None = None) -> Iterator[Chunk]:
    """The exposition of `snapshot` as seen at `now`: each family's header (bytes), then its lines.

    A family's lines are the same in both formats (only the headers differ), so they come as
    Same chunks, made only if the exposition does not have them deflated already from the other
    format's render of this snapshot at this moment; a queue family's slice whose text is what the
    last render wrote comes with that render's block (LabelCache.blocks). A consumer that
    compresses as it goes never holds the whole text (~23 MB at 10,000 queues), only one slice of
    a family (_SLICE rows). OpenMetrics' "# EOF" is not written: the live part follows.
    """
    shown = list(visible(snapshot, now, max_data_age))

    def header(name: str, help_text: str, kind: str) -> str:
        help_escaped = help_text.replace("\\", r"\\").replace("\n", r"\n")
        if openmetrics:
            help_escaped = help_escaped.replace('"', r'\"')
            name = name.removesuffix("_total") if kind == "counter" else name
        return f"# HELP {name} {help_escaped}\n# TYPE {name} {kind}\n"

    accounts = [account for account, _ in shown]
    for i, (name, help_text) in enumerate(ACCOUNT_METRICS):
        yield header(name, help_text, "gauge").encode("utf-8")
        yield Same(name, partial(_account_lines, accounts, i, name))
    yield header(ACCOUNT_INFO, ACCOUNT_INFO_HELP, "gauge").encode("utf-8")
    yield Same(ACCOUNT_INFO, partial(_account_info_lines, accounts))
    # Agents of accounts whose figures may be shown (the --max-data-age rule, as for queues).
    fresh = [a for a, queues in shown if queues or is_fresh(a, now, max_data_age)]
    yield header(ACCOUNT_AGENTS, ACCOUNT_AGENTS_HELP, "gauge").encode("utf-8")
    yield Same(ACCOUNT_AGENTS, partial(_account_agent_lines, fresh))

    cache = labels if labels is not None else LabelCache()
    known_texts, known_rows = cache.texts, cache.lines if cache.reuse_lines else {}
    texts_of: dict[_LabelKey, tuple[str, str]] = {}
    rows_of: dict[int, tuple[QueueFigures, _Row]] = {}
    # Figures repeat (0, 1, 2 ...): each distinct value's text is made once per render, and the
    # hot loop looks it up in C (dict with __missing__).
    values = _ValueTexts()
    rows: list[_Row] = []
    for _, queues in shown:
        for q in queues:
            seen = known_rows.get(id(q))
            if seen is not None and seen[0] is q:
                row = seen[1]
            else:
                label_key = (q.account_id, q.queue_id, q.queue_name, q.node, *q.labels.values())
                series_labels, info = texts_of[label_key] = known_texts.get(label_key) or _label_texts(q)
                row = (series_labels, info, _value_texts(q, values), _agent_lines(q, series_labels))
            rows_of[id(q)] = (q, row)
            rows.append(row)
    # Only shown queues: a deleted or hidden queue's texts go with this render.
    cache.lines = rows_of
    cache.texts = texts_of  # with rows reused, only the queues that changed need theirs again

    # Header and lines as separate chunks: no copy of a family's megabytes just to put 100 bytes
    # before them. Each family's lines in slices, each deflated on its own and kept (_Slices).
    slices = _Slices(cache.blocks if cache.reuse_lines else {}, [tuple(part) for part in _sliced(rows)])
    for column, (family_header, (_, _, metric)) in enumerate(zip(_headers(header), _COLUMNS, strict=True)):
        if column == _FIRST_COUNTER:  # the agents' family stands before the counters
            yield header(QUEUE_AGENTS, QUEUE_AGENTS_HELP, "gauge").encode("utf-8")
            yield from slices.chunks(QUEUE_AGENTS, _AGENTS, partial(_joined, field=3))
        yield family_header.encode("utf-8")
        yield from slices.chunks(metric, column, partial(_column_lines, column=column, metric=metric))
    yield header(QUEUE_INFO, QUEUE_INFO_HELP, "gauge").encode("utf-8")
    yield from slices.chunks(QUEUE_INFO, _INFO, partial(_joined, field=1))
    if cache.reuse_lines:  # the blocks the exposition makes of this render's chunks are added as it goes
        cache.blocks = slices.now

    agents = [agent for account in fresh for agent in account.agent_list]
    if agents:  # only with --agent-metrics
        yield from _agent_families(agents, header)


# Where a queue family's values are in QueueFigures.
_VALUES, _SETTINGS, _COUNTERS = 0, 1, 2
# (key, source, metric): the queue families in exposition order (qubicle_queue_agents, written
# from each row's agent lines, stands between the settings and the counters).
_COLUMNS: tuple[tuple[str, int, str], ...] = (
    *((f.key, _VALUES, f.metric) for f in FIGURES),
    *((s.key, _SETTINGS, s.metric) for s in SETTINGS),
    *((f.key, _COUNTERS, f.counter or "") for f in COUNTED),
)
_FIRST_COUNTER = len(FIGURES) + len(SETTINGS)


def _headers(header: Callable[[str, str, str], str]) -> list[str]:
    return [*(header(f.metric, f.help, "gauge") for f in FIGURES),
            *(header(s.metric, s.help, "gauge") for s in SETTINGS),
            *(header(f.counter or "", f.counter_help, "counter") for f in COUNTED)]


# Rows (or agents) per piece of a family's text: a family is never one string (qubicle_queue_agents
# would be ~32 MB of text at 50,000 queues, held twice while it is encoded).
_SLICE = 2048


def _sliced(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), _SLICE):
        yield items[start:start + _SLICE]


# A family's slice as last deflated: the rows it was written from, and the exposition's block.
_Kept = tuple[tuple[_Row, ...], object]
# What a family prints of a row, besides the value texts' columns: the info line, the agent lines.
_INFO, _AGENTS = -1, -2


@dataclass
class _Slices:
    """The queue families' chunks, a slice of _SLICE rows each, and which of them are unchanged.

    A slice's chunk of one family is unchanged when the kept slice had as many rows and each row is
    either the very same (a reused row) or prints the same in that family: same label texts and
    value text for a column, same info line, same agent lines. Exact: texts are compared, never a
    hash of them. A queue added or removed shifts the rows of every later slice: those are all
    made again, that once."""

    before: dict[str, _Kept]
    parts: list[tuple[_Row, ...]]
    now: dict[str, _Kept] = field(default_factory=dict)
    _changes: dict[tuple[int, int], frozenset[int] | None] = field(default_factory=dict)

    def chunks(self, name: str, part_of: int, lines: Callable[[Sequence[_Row]], Iterator[bytes]]) -> Iterator[Same]:
        for i, part in enumerate(self.parts):
            key = f"{name}/{i}"
            old = self.before.get(key)
            kept = old[1] if old is not None and part_of not in self._changed(i, old[0]) else None
            yield Same(key, partial(lines, part), kept=kept, keep=partial(self._keep, key, part))

    def _keep(self, key: str, part: tuple[_Row, ...], block: object) -> None:
        self.now[key] = (part, block)

    _EVERYTHING = frozenset({_INFO, _AGENTS, *range(len(_COLUMNS))})

    def _changed(self, i: int, old: tuple[_Row, ...]) -> frozenset[int]:
        """What differs between slice i and `old`: column numbers, _INFO, _AGENTS. Once per kept slice."""
        memo = (i, id(old))  # `old` is alive in self.before meanwhile: its id is not recycled
        if memo not in self._changes:
            self._changes[memo] = _differences(old, self.parts[i])
        changes = self._changes[memo]
        return self._EVERYTHING if changes is None else changes


def _differences(old: tuple[_Row, ...], new: tuple[_Row, ...]) -> frozenset[int] | None:
    if len(old) != len(new):
        return None
    changed: set[int] = set()
    for a, b in zip(old, new, strict=True):  # as many: checked above
        if a is b:
            continue
        if a[0] != b[0]:  # every series of the queue prints its label texts
            return None
        if a[1] != b[1]:
            changed.add(_INFO)
        if a[3] != b[3]:
            changed.add(_AGENTS)
        changed.update(compress(count(), map(ne, a[2], b[2])))
    return frozenset(changed)


def _account_lines(accounts: list[AccountSnapshot], i: int, name: str) -> Iterator[bytes]:
    for some in _sliced(accounts):
        yield "".join([f'{name}{{account_id="{escape(account.account_id)}"}} {floatToGoString(value)}\n'
                       for account in some if (value := account_values(account)[i]) is not None]).encode("utf-8")


def _account_info_lines(accounts: list[AccountSnapshot]) -> Iterator[bytes]:
    for some in _sliced(accounts):
        yield "".join([f'{ACCOUNT_INFO}{{account_id="{escape(account.account_id)}",'
                       f'account_name="{escape(account.name or account.account_id)}"}} 1.0\n'
                       for account in some]).encode("utf-8")


def _account_agent_lines(fresh: list[AccountSnapshot]) -> Iterator[bytes]:
    for some in _sliced(fresh):
        out: list[str] = []
        for account in some:
            if account.agents is not None:
                prefix = f'{ACCOUNT_AGENTS}{{account_id="{escape(account.account_id)}",state="'
                out.extend(f'{prefix}{state}"}} {floatToGoString(account.agents.get(state, 0))}\n'
                           for state in AGENT_STATES)
        yield "".join(out).encode("utf-8")


def _column_lines(rows: Sequence[_Row], column: int, metric: str) -> Iterator[bytes]:
    for some in _sliced(rows):
        yield "".join([f"{metric}{r[0]}{text}\n" for r in some if (text := r[2][column]) is not None]).encode("utf-8")


def _joined(rows: Sequence[_Row], field: int) -> Iterator[bytes]:
    """The rows' info lines (1) or agent lines (3), already written whole."""
    for some in _sliced(rows):
        yield "".join([r[field] for r in some]).encode("utf-8")  # type: ignore[misc]


def _value_texts(q: QueueFigures, values: _ValueTexts) -> tuple[str | None, ...]:
    sources = (q.values, q.settings, q.counters)
    return tuple(_text(sources[source].get(key), values) for key, source, _ in _COLUMNS)


def _text(value: float | None, values: _ValueTexts) -> str | None:
    if value is None:
        return None
    # Zeros never enter the memo, as 0.0 and -0.0 are one key but two texts.
    if not value:
        return "0.0" if math.copysign(1.0, value) > 0 else "-0.0"
    return values[value]


def _agent_lines(q: QueueFigures, series_labels: str) -> str:
    """The queue's qubicle_queue_agents lines, every state (0 when none), or "" while not known."""
    if (counts := q.agents) is None:
        return ""
    prefix = f'{QUEUE_AGENTS}{series_labels[:-2]},state="'
    return "".join(f'{prefix}{state}"}} {floatToGoString(counts.get(state, 0))}\n' for state in AGENT_STATES)


def _agent_families(agents: list[AgentFigures], header: Callable[[str, str, str], str]) -> Iterator[Chunk]:
    """The opt-in per-agent families, in the oracle's order."""
    labelled = [(a, f'account_id="{escape(a.account_id)}",agent_id="{escape(a.agent_id)}"') for a in agents]
    yield header(AGENT_STATE, AGENT_STATE_HELP, "gauge").encode("utf-8")
    yield Same(AGENT_STATE, partial(_agent_state_lines, labelled))
    for key, metric, help_text in AGENT_COUNTERS:
        yield header(metric, help_text, "counter").encode("utf-8")
        yield Same(metric, partial(_agent_counter_lines, labelled, key, metric))
    yield header(AGENT_AVERAGE_CALL, AGENT_AVERAGE_CALL_HELP, "gauge").encode("utf-8")
    yield Same(AGENT_AVERAGE_CALL, partial(_agent_average_lines, labelled))


_Labelled = list[tuple[AgentFigures, str]]  # each agent with its account_id and agent_id labels


def _agent_state_lines(labelled: _Labelled) -> Iterator[bytes]:
    for some in _sliced(labelled):
        out: list[str] = []
        for agent, agent_labels in some:
            prefix = f'{AGENT_STATE}{{{agent_labels},agent_name="{escape(agent.agent_name)}",state="'
            out.extend(f'{prefix}{state}"}} {"1.0" if agent.state == state else "0.0"}\n' for state in AGENT_STATES)
        yield "".join(out).encode("utf-8")


def _agent_counter_lines(labelled: _Labelled, key: str, metric: str) -> Iterator[bytes]:
    for some in _sliced(labelled):
        yield "".join([f"{metric}{{{agent_labels}}} {floatToGoString(v)}\n" for agent, agent_labels in some
                       if (v := agent.counters.get(key)) is not None]).encode("utf-8")


def _agent_average_lines(labelled: _Labelled) -> Iterator[bytes]:
    for some in _sliced(labelled):
        yield "".join([f"{AGENT_AVERAGE_CALL}{{{agent_labels}}} {floatToGoString(agent.average_call)}\n"
                       for agent, agent_labels in some if agent.average_call is not None]).encode("utf-8")


class _ValueTexts(dict[float, str]):
    """floatToGoString, remembered: a dict lookup instead of repr() and Go's exponent rules."""

    def __missing__(self, value: float) -> str:
        text = floatToGoString(value)
        if value:  # never a zero (see render); NaN never finds itself again, harmlessly
            self[value] = text
        return text


def _label_texts(q: QueueFigures) -> tuple[str, str]:
    """A queue's label set as its series print it, and its whole info line."""
    account, queue = f'account_id="{escape(q.account_id)}"', f'queue_id="{escape(q.queue_id)}"'
    name = f'queue_name="{escape(q.queue_name)}"'
    # Labels sorted, as prometheus-client writes them: ..., queue_name, queue_type, router.
    extra = "".join(f',{label}="{escape(q.labels.get(label, ""))}"' for label, _ in sorted(SETTING_LABELS))
    return (f"{{{account},{queue},{name}}} ",
            f'{QUEUE_INFO}{{{account},node="{escape(q.node or "")}",{queue},{name}{extra}}} 1.0\n')


def escape(value: str) -> str:
    """A label value as the text format writes it."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
