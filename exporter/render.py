"""The snapshot part of /metrics, written directly: `render(snapshot, now, ...)` depends on nothing else.

Exposition it produces (one queue shown):

    qubicle_up{account_id="3f0b..."} 1.0
    qubicle_queue_active_sessions{account_id="3f0b...",queue_id="9a1c...",queue_name="Support"} 2.0
    qubicle_queue_sessions_total{account_id="3f0b...",queue_id="9a1c...",queue_name="Support"} 41.0
    qubicle_queue_info{account_id="3f0b...",node="kz1@ams",queue_id="9a1c...",queue_name="Support"} 1.0

It is byte for byte what prometheus-client writes from exporter/collector.py's families (the
tests hold the two equal, in both formats), several times cheaper: each queue's label set is
escaped once for all its series, value texts are remembered within a render, and a queue whose
figures did not change since the last render (the same QueueFigures object) has its row of label
and value texts taken as it was, not looked up and formatted again (LabelCache).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.utils import floatToGoString

from exporter.figures import ACCOUNT_METRICS, COUNTED, FIGURES, QUEUE_INFO, QUEUE_INFO_HELP
from exporter.snapshot import AccountSnapshot, QueueFigures, Snapshot, visible

_LabelKey = tuple[str, str, str, str | None]


# A queue as the render writes it: its label set as each series prints it, its whole info line,
# and the text of each figure's value in _COLUMNS' order (None: no such figure this poll).
_Row = tuple[str, str, tuple[str | None, ...]]


@dataclass
class LabelCache:
    """What the last render wrote for each queue it showed, for the next one.

    `texts`: each queue's label texts by (account, queue, name, node): ids and names rarely change.
    `lines`: each queue's row (label texts and value texts) by the identity of its QueueFigures.
    The poller hands the very same (immutable) QueueFigures again for a queue whose answer did
    not change (85-90 % of them between two polls), so its row is taken as it was instead of
    looking up and formatting every value again. Keyed by id() with the object kept beside it:
    an id is only trusted while its object is alive and is the one remembered. Rows, not whole
    lines: a queue's 14 lines repeat its labels 14 times (~3.4 KB a queue, 170 MB at 50,000
    queues), its row holds them once (~0.5 KB).

    Only an optimisation: a render with a fresh cache, or with `reuse_lines` off, writes the same
    bytes. Renders of several formats may share one (the rows are the same in both formats); a
    render only replaces the dictionaries, never changes one another render reads.
    """

    texts: dict[_LabelKey, tuple[str, str]] = field(default_factory=dict)
    lines: dict[int, tuple[QueueFigures, _Row]] = field(default_factory=dict)
    reuse_lines: bool = True  # off: every value looked up and formatted at every render (the benchmark's comparison)


def account_values(account: AccountSnapshot) -> tuple[float | None, ...]:
    """qubicle_up, last success, queue count: in ACCOUNT_METRICS' order."""
    return (1.0 if account.up else 0.0, account.last_success,
            None if account.queue_count is None else float(account.queue_count))


def render(snapshot: Snapshot, now: float, *, max_data_age: float, openmetrics: bool = False,
           labels: LabelCache | None = None) -> Iterator[bytes]:
    """The exposition of `snapshot` as seen at `now`, in chunks, family by family.

    A consumer that compresses as it goes never holds the whole text (~23 MB at 10,000 queues),
    only one family of it (~2 MB). A family may come in more than one chunk. OpenMetrics' "# EOF"
    is not written: the live part follows.
    """
    shown = list(visible(snapshot, now, max_data_age))

    def header(name: str, help_text: str, kind: str) -> str:
        help_escaped = help_text.replace("\\", r"\\").replace("\n", r"\n")
        if openmetrics:
            help_escaped = help_escaped.replace('"', r'\"')
            name = name.removesuffix("_total") if kind == "counter" else name
        return f"# HELP {name} {help_escaped}\n# TYPE {name} {kind}\n"

    for i, (name, help_text) in enumerate(ACCOUNT_METRICS):
        out = [header(name, help_text, "gauge")]
        for account, _ in shown:
            value = account_values(account)[i]
            if value is not None:
                out.append(f'{name}{{account_id="{escape(account.account_id)}"}} {floatToGoString(value)}\n')
        yield "".join(out).encode("utf-8")

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
                label_key = (q.account_id, q.queue_id, q.queue_name, q.node)
                series_labels, info = texts_of[label_key] = known_texts.get(label_key) or _label_texts(q)
                row = (series_labels, info, _value_texts(q, values))
            rows_of[id(q)] = (q, row)
            rows.append(row)
    # Only shown queues: a deleted or hidden queue's texts go with this render.
    cache.lines = rows_of
    cache.texts = texts_of  # with rows reused, only the queues that changed need theirs again

    # Header and lines as two chunks: no copy of a family's megabytes just to put 100 bytes before them.
    families = [header(f.metric, f.help, "gauge") for f in FIGURES]
    families += [header(f.counter or "", f.counter_help, "counter") for f in COUNTED]
    for column, (family_header, (_, _, metric)) in enumerate(zip(families, _COLUMNS, strict=True)):
        yield family_header.encode("utf-8")
        yield "".join([f"{metric}{r[0]}{text}\n" for r in rows if (text := r[2][column]) is not None]).encode("utf-8")
    yield header(QUEUE_INFO, QUEUE_INFO_HELP, "gauge").encode("utf-8")
    yield "".join([r[1] for r in rows]).encode("utf-8")


# (figure key, from values or counters, metric): the queue families in exposition order.
_COLUMNS = tuple((f.key, False, f.metric) for f in FIGURES) + tuple((f.key, True, f.counter or "") for f in COUNTED)


def _value_texts(q: QueueFigures, values: _ValueTexts) -> tuple[str | None, ...]:
    return tuple(_text(q.counters.get(key) if counted else q.values.get(key), values) for key, counted, _ in _COLUMNS)


def _text(value: float | None, values: _ValueTexts) -> str | None:
    if value is None:
        return None
    # Zeros never enter the memo, as 0.0 and -0.0 are one key but two texts.
    if not value:
        return "0.0" if math.copysign(1.0, value) > 0 else "-0.0"
    return values[value]


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
    return (f"{{{account},{queue},{name}}} ",
            f'{QUEUE_INFO}{{{account},node="{escape(q.node or "")}",{queue},{name}}} 1.0\n')


def escape(value: str) -> str:
    """A label value as the text format writes it."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
