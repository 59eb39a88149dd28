"""The snapshot part of /metrics, written directly: `render(snapshot, now, ...)` depends on nothing else.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.utils import floatToGoString

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


@dataclass
class LabelCache:
    """Label texts of the queues shown by the last render, for the next (ids and names rarely change).

    Only an optimisation: a render with a fresh cache writes the same bytes.
    """

    texts: dict[_LabelKey, tuple[str, str]] = field(default_factory=dict)


def account_values(account: AccountSnapshot) -> tuple[float | None, ...]:
    """qubicle_up, last success, queue count: in ACCOUNT_METRICS' order."""
    return (1.0 if account.up else 0.0, account.last_success,
            None if account.queue_count is None else float(account.queue_count))


def render(snapshot: Snapshot, now: float, *, max_data_age: float, openmetrics: bool = False,
           labels: LabelCache | None = None) -> Iterator[bytes]:
    """The exposition of `snapshot` as seen at `now`, one metric family per chunk.

    A consumer that compresses as it goes never holds the whole text (~23 MB at 10,000 queues),
    only one family of it (~2 MB). OpenMetrics' "# EOF" is not written: the live part follows.
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

    info = [header(ACCOUNT_INFO, ACCOUNT_INFO_HELP, "gauge")]
    for account, _ in shown:
        account_label = escape(account.account_id)
        info.append(f'{ACCOUNT_INFO}{{account_id="{account_label}",'
                    f'account_name="{escape(account.name or account.account_id)}"}} 1.0\n')
    yield "".join(info).encode("utf-8")
    # Agents of accounts whose figures may be shown (the --max-data-age rule, as for queues).
    fresh = [a for a, queues in shown if queues or is_fresh(a, now, max_data_age)]
    out = [header(ACCOUNT_AGENTS, ACCOUNT_AGENTS_HELP, "gauge")]
    for account in fresh:
        if account.agents is not None:
            prefix = f'{ACCOUNT_AGENTS}{{account_id="{escape(account.account_id)}",state="'
            out.extend(f'{prefix}{state}"}} {floatToGoString(account.agents.get(state, 0))}\n'
                       for state in AGENT_STATES)
    yield "".join(out).encode("utf-8")

    cache = labels if labels is not None else LabelCache()
    known: dict[_LabelKey, tuple[str, str]] = cache.texts
    texts_of: dict[_LabelKey, tuple[str, str]] = {}
    for _, queues in shown:
        for q in queues:
            label_key = (q.account_id, q.queue_id, q.queue_name, q.node, *q.labels.values())
            texts_of[label_key] = known.get(label_key) or _label_texts(q)
    cache.texts = texts_of  # only shown queues: a deleted queue's text goes with this render
    rows = [(q, texts_of[(q.account_id, q.queue_id, q.queue_name, q.node, *q.labels.values())])
            for _, queues in shown for q in queues]

    # Figures repeat (0, 1, 2 ...): each distinct value's text is made once per render, and the
    # hot loop looks it up in C (dict with __missing__). Zeros never enter the memo, as 0.0 and
    # -0.0 are one key but two texts; the commonest value is written inline instead.
    texts, copysign = _ValueTexts(), math.copysign

    for figure in FIGURES:
        key, metric = figure.key, figure.metric
        lines = [f"{metric}{series_labels}{texts[v] if v else ('0.0' if copysign(1.0, v) > 0 else '-0.0')}\n"
                 for q, (series_labels, _) in rows if (v := q.values.get(key)) is not None]
        yield (header(metric, figure.help, "gauge") + "".join(lines)).encode("utf-8")
    for setting in SETTINGS:
        key, metric = setting.key, setting.metric
        lines = [f"{metric}{series_labels}{texts[v] if v else ('0.0' if copysign(1.0, v) > 0 else '-0.0')}\n"
                 for q, (series_labels, _) in rows if (v := q.settings.get(key)) is not None]
        yield (header(metric, setting.help, "gauge") + "".join(lines)).encode("utf-8")
    out = [header(QUEUE_AGENTS, QUEUE_AGENTS_HELP, "gauge")]
    for q, (series_labels, _) in rows:
        if (counts := q.agents) is not None:
            prefix = f"{QUEUE_AGENTS}{series_labels[:-2]},state=\""
            out.extend(f'{prefix}{state}"}} {floatToGoString(counts.get(state, 0))}\n' for state in AGENT_STATES)
    yield "".join(out).encode("utf-8")
    for figure in COUNTED:
        key, metric = figure.key, figure.counter or ""
        lines = [f"{metric}{series_labels}{texts[v] if v else ('0.0' if copysign(1.0, v) > 0 else '-0.0')}\n"
                 for q, (series_labels, _) in rows if (v := q.counters.get(key)) is not None]
        yield (header(metric, figure.counter_help, "counter") + "".join(lines)).encode("utf-8")
    yield (header(QUEUE_INFO, QUEUE_INFO_HELP, "gauge") + "".join(info for _, (_, info) in rows)).encode("utf-8")

    agents = [agent for account in fresh for agent in account.agent_list]
    if agents:  # only with --agent-metrics
        yield from _agent_families(agents, header)


def _agent_families(agents: list[AgentFigures], header: Callable[[str, str, str], str]) -> Iterator[bytes]:
    """The opt-in per-agent families, in the oracle's order."""
    ids = [f'account_id="{escape(a.account_id)}",agent_id="{escape(a.agent_id)}"' for a in agents]
    out = [header(AGENT_STATE, AGENT_STATE_HELP, "gauge")]
    for agent, agent_labels in zip(agents, ids, strict=True):
        prefix = f'{AGENT_STATE}{{{agent_labels},agent_name="{escape(agent.agent_name)}",state="'
        out.extend(f'{prefix}{state}"}} {"1.0" if agent.state == state else "0.0"}\n' for state in AGENT_STATES)
    yield "".join(out).encode("utf-8")
    for key, metric, help_text in AGENT_COUNTERS:
        lines = [f"{metric}{{{agent_labels}}} {floatToGoString(v)}\n"
                 for agent, agent_labels in zip(agents, ids, strict=True) if (v := agent.counters.get(key)) is not None]
        yield (header(metric, help_text, "counter") + "".join(lines)).encode("utf-8")
    lines = [f"{AGENT_AVERAGE_CALL}{{{agent_labels}}} {floatToGoString(agent.average_call)}\n"
             for agent, agent_labels in zip(agents, ids, strict=True) if agent.average_call is not None]
    yield (header(AGENT_AVERAGE_CALL, AGENT_AVERAGE_CALL_HELP, "gauge") + "".join(lines)).encode("utf-8")


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
