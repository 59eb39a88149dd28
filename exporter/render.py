"""The snapshot part of /metrics, written directly: `render(snapshot, now, ...)` depends on nothing else.

Exposition it produces (one queue shown):

    qubicle_up{account_id="3f0b..."} 1.0
    qubicle_queue_active_sessions{account_id="3f0b...",queue_id="9a1c...",queue_name="Support"} 2.0
    qubicle_queue_sessions_total{account_id="3f0b...",queue_id="9a1c...",queue_name="Support"} 41.0
    qubicle_queue_info{account_id="3f0b...",node="kz1@ams",queue_id="9a1c...",queue_name="Support"} 1.0

It is byte for byte what prometheus-client writes from exporter/collector.py's families (the
tests hold the two equal, in both formats), several times cheaper: each queue's label set is
escaped once for all its series, value texts are remembered within a render, and a queue whose
figures did not change since the last render (the same QueueFigures object) has its lines joined
as they were, not formatted again (LabelCache).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.utils import floatToGoString

from exporter.figures import ACCOUNT_METRICS, COUNTED, FIGURES, QUEUE_INFO, QUEUE_INFO_HELP
from exporter.snapshot import AccountSnapshot, QueueFigures, Snapshot, visible

_LabelKey = tuple[str, str, str, str | None]


@dataclass
class LabelCache:
    """What the last render wrote for each queue it showed, for the next one.

    `texts`: each queue's label texts by (account, queue, name, node): ids and names rarely change.
    `lines`: each queue's sample lines, one text per family, by the identity of its QueueFigures.
    The poller hands the very same (immutable) QueueFigures again for a queue whose answer did
    not change (85-90 % of them between two polls), so its lines are joined as they were instead
    of formatted again. Keyed by id() with the object kept beside it: an id is only trusted while
    its object is alive and is the one remembered.

    Only an optimisation: a render with a fresh cache, or with `reuse_lines` off, writes the same
    bytes. Renders of several formats may share one (the lines are the same in both formats); a
    render only replaces the dictionaries, never changes one another render reads.
    """

    texts: dict[_LabelKey, tuple[str, str]] = field(default_factory=dict)
    lines: dict[int, tuple[QueueFigures, tuple[str, ...]]] = field(default_factory=dict)
    reuse_lines: bool = True  # off: every line formatted at every render (the benchmark's comparison)


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
    known_texts, known_lines = cache.texts, cache.lines if cache.reuse_lines else {}
    texts_of: dict[_LabelKey, tuple[str, str]] = {}
    lines_of: dict[int, tuple[QueueFigures, tuple[str, ...]]] = {}
    # Figures repeat (0, 1, 2 ...): each distinct value's text is made once per render, and the
    # hot loop looks it up in C (dict with __missing__).
    values = _ValueTexts()
    rows: list[tuple[str, ...]] = []
    for _, queues in shown:
        for q in queues:
            seen = known_lines.get(id(q))
            if seen is not None and seen[0] is q:
                lines = seen[1]
            else:
                label_key = (q.account_id, q.queue_id, q.queue_name, q.node)
                label_texts = texts_of[label_key] = known_texts.get(label_key) or _label_texts(q)
                lines = _queue_lines(q, label_texts, values)
            lines_of[id(q)] = (q, lines)
            rows.append(lines)
    # Only shown queues: a deleted or hidden queue's texts go with this render.
    cache.lines = lines_of
    cache.texts = texts_of  # with lines reused, only the queues that changed need theirs again

    # Header and lines as two chunks: no copy of a family's megabytes just to put 100 bytes before them.
    families = [header(f.metric, f.help, "gauge") for f in FIGURES]
    families += [header(f.counter or "", f.counter_help, "counter") for f in COUNTED]
    families.append(header(QUEUE_INFO, QUEUE_INFO_HELP, "gauge"))
    for column, family_header in enumerate(families):
        yield family_header.encode("utf-8")
        yield "".join([r[column] for r in rows]).encode("utf-8")


_GAUGE_COLUMNS = tuple((f.key, f.metric) for f in FIGURES)
_COUNTER_COLUMNS = tuple((f.key, f.counter or "") for f in COUNTED)


def _queue_lines(q: QueueFigures, label_texts: tuple[str, str], values: _ValueTexts) -> tuple[str, ...]:
    """One queue's line in every family, in exposition order ("" where it has no figure)."""
    series_labels, info = label_texts
    lines = [_line(metric, series_labels, q.values.get(key), values) for key, metric in _GAUGE_COLUMNS]
    lines += [_line(metric, series_labels, q.counters.get(key), values) for key, metric in _COUNTER_COLUMNS]
    lines.append(info)
    return tuple(lines)


def _line(metric: str, series_labels: str, value: float | None, values: _ValueTexts) -> str:
    if value is None:
        return ""
    # Zeros never enter the memo, as 0.0 and -0.0 are one key but two texts.
    if not value:
        return f"{metric}{series_labels}{'0.0' if math.copysign(1.0, value) > 0 else '-0.0'}\n"
    return f"{metric}{series_labels}{values[value]}\n"


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
