"""prometheus-client Collector over the current snapshot: a queue gone from the snapshot is gone here.

Exposition it produces (one queue shown):

    qubicle_up{account_id="3f0b..."} 1.0
    qubicle_queue_active_sessions{account_id="3f0b...",queue_id="9a1c...",queue_name="Support"} 2.0
    qubicle_queue_sessions_total{account_id="3f0b...",queue_id="9a1c...",queue_name="Support"} 41.0
    qubicle_queue_info{account_id="3f0b...",node="kz1@ams",queue_id="9a1c...",queue_name="Support"} 1.0
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporter.snapshot import COUNTERS, GAUGES, AccountSnapshot, QueueFigures, Snapshot

QUEUE_LABELS = ["account_id", "queue_id", "queue_name"]

GAUGE_HELP = {
    "recipients": "Agents (recipients) configured on the queue.",
    "active_recipients": "Agents logged in to the queue (ready or away).",
    "available_recipients": "Agents ready to take a call.",
    "active_sessions": "Callers in the queue now.",
    "estimated_wait_seconds": "Estimated wait for a caller entering the queue now.",
    "average_wait_seconds": "Average wait of today's callers, as Kazoo reports it.",
    "longest_wait_seconds": "Wait of the oldest caller in the queue (only where Kazoo sends it).",
    "daily_sessions": "Callers that entered the queue today, as Kazoo reports it (resets daily).",
    "daily_missed_sessions": "Callers that timed out in the queue today (resets daily).",
    "daily_abandoned_sessions": "Callers that hung up before being answered today (resets daily).",
}
COUNTER_HELP = {
    "sessions": "Callers that entered the queue, counted by the exporter across Kazoo's daily resets.",
    "missed_sessions": "Callers that timed out in the queue, counted across Kazoo's daily resets.",
    "abandoned_sessions": "Callers that hung up before being answered, counted across Kazoo's daily resets.",
}


ACCOUNT_HELP = {
    "qubicle_up": "1 if the last poll of the account succeeded, else 0.",
    "qubicle_last_poll_success_timestamp_seconds": "Unix time of the account's last successful poll.",
    "qubicle_queues": "Queues discovered in the account (0: no Qubicle or no queues).",
}
INFO_HELP = "Queue metadata; node is the Kazoo node running the queue."


def live_queues(snapshot: Snapshot, now: float, max_data_age: float) -> Iterator[tuple[str, object]]:
    """Accounts in order, and the queues whose figures are young enough to show."""
    for account_id, account in sorted(snapshot.accounts.items()):
        # A wallboard must never show frozen figures as live: once the account's data is older
        # than max_data_age its queues disappear instead of repeating the last values.
        fresh = account.data_time is not None and now - account.data_time <= max_data_age
        yield account_id, account.queues if fresh else ()


class SnapshotCollector(Collector):
    def __init__(
        self,
        get_snapshot: Callable[[], Snapshot],
        max_data_age: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._get_snapshot = get_snapshot
        self._max_data_age = max_data_age
        self._clock = clock
        # Label texts of the queues shown by the last render, reused by the next (ids and names rarely change).
        self._labels: dict[tuple[str, str, str, str | None], tuple[str, str]] = {}

    def describe(self) -> list[Metric]:
        # An empty describe keeps registration from calling collect() before the first poll.
        return []

    def collect(self) -> Iterator[Metric]:
        snapshot = self._get_snapshot()
        now = self._clock()
        up = GaugeMetricFamily("qubicle_up", ACCOUNT_HELP["qubicle_up"], labels=["account_id"])
        last = GaugeMetricFamily("qubicle_last_poll_success_timestamp_seconds",
                                 ACCOUNT_HELP["qubicle_last_poll_success_timestamp_seconds"], labels=["account_id"])
        queue_count = GaugeMetricFamily("qubicle_queues", ACCOUNT_HELP["qubicle_queues"], labels=["account_id"])
        gauges = {name: GaugeMetricFamily(f"qubicle_queue_{name}", GAUGE_HELP[name], labels=QUEUE_LABELS)
                  for name, _ in GAUGES}
        counters = {name: CounterMetricFamily(f"qubicle_queue_{name}", COUNTER_HELP[name], labels=QUEUE_LABELS)
                    for name, _ in COUNTERS}
        info = GaugeMetricFamily("qubicle_queue_info", INFO_HELP, labels=[*QUEUE_LABELS, "node"])

        for account_id, queues in live_queues(snapshot, now, self._max_data_age):
            account = snapshot.accounts[account_id]
            up.add_metric([account_id], 1.0 if account.up else 0.0)
            if account.last_success is not None:
                last.add_metric([account_id], account.last_success)
            if account.queue_count is not None:
                queue_count.add_metric([account_id], float(account.queue_count))
            for queue in queues:
                labels = [queue.account_id, queue.queue_id, queue.queue_name]
                for name, value in queue.gauges.items():
                    gauges[name].add_metric(labels, value)
                for name, value in queue.counters.items():
                    counters[name].add_metric(labels, value)
                info.add_metric([*labels, queue.node or ""], 1.0)

        yield up
        yield last
        yield queue_count
        yield from gauges.values()
        yield from counters.values()
        yield info

    def render(self, openmetrics: bool = False) -> bytes:
        """The same exposition as prometheus-client renders from collect(), written directly.

        prometheus-client formats every sample's labels anew; here each queue's label string is
        escaped once and reused by its fourteen series, which makes the once-per-poll render of
        10,000 queues several times cheaper. The tests require byte-for-byte equality with
        prometheus-client's own output in both formats.
        """
        return b"".join(self.render_chunks(openmetrics))

    def render_chunks(self, openmetrics: bool = False) -> Iterator[bytes]:
        """render(), one metric family at a time: a consumer that compresses as it goes never
        holds the whole text (~23 MB at 10,000 queues), only one family of it (~2 MB)."""
        snapshot = self._get_snapshot()
        now = self._clock()
        accounts = list(live_queues(snapshot, now, self._max_data_age))

        def header(name: str, help_text: str, kind: str) -> str:
            help_escaped = help_text.replace("\\", r"\\").replace("\n", r"\n")
            if openmetrics:
                help_escaped = help_escaped.replace('"', r'\"')
                family = name.removesuffix("_total") if kind == "counter" else name
                return f"# HELP {family} {help_escaped}\n# TYPE {family} {kind}\n"
            return f"# HELP {name} {help_escaped}\n# TYPE {name} {kind}\n"

        def account_family(name: str, value_of: Callable[[AccountSnapshot], float | None]) -> bytes:
            out = [header(name, ACCOUNT_HELP[name], "gauge")]
            for account_id, _ in accounts:
                value = value_of(snapshot.accounts[account_id])
                if value is not None:
                    out.append(f'{name}{{account_id="{_escape(account_id)}"}} {floatToGoString(value)}\n')
            return "".join(out).encode("utf-8")

        yield account_family("qubicle_up", lambda a: 1.0 if a.up else 0.0)
        yield account_family("qubicle_last_poll_success_timestamp_seconds", lambda a: a.last_success)
        yield account_family("qubicle_queues", lambda a: None if a.queue_count is None else float(a.queue_count))

        # prometheus-client writes label names in sorted order: account_id, [node,] queue_id, queue_name.
        # Each queue's label set is escaped once for its fourteen series.
        known, labels_of = self._labels, {}
        for _, queues in accounts:
            for q in queues:
                key = (q.account_id, q.queue_id, q.queue_name, q.node)
                labels_of[key] = known.get(key) or _label_texts(q)
        self._labels = labels_of  # only live queues: a deleted queue's text goes with this render
        shown = [(q, labels_of[q.account_id, q.queue_id, q.queue_name, q.node]) for _, queues in accounts for q in queues]
        # Figures repeat (0, 1, 2 ...): each distinct value's text is made once per render, and the
        # hot loop looks it up in C (dict with __missing__). Zeros never enter the memo, as 0.0 and
        # -0.0 are one key but two texts; the commonest value is written inline instead.
        texts, copysign = _ValueTexts(), math.copysign
        for name, _ in GAUGES:
            metric = f"qubicle_queue_{name}"
            lines = [f"{metric}{labels}{texts[v] if v else ('0.0' if copysign(1.0, v) > 0 else '-0.0')}\n"
                     for q, (labels, _) in shown if (v := q.gauges.get(name)) is not None]
            yield (header(metric, GAUGE_HELP[name], "gauge") + "".join(lines)).encode("utf-8")
        for name, _ in COUNTERS:
            metric = f"qubicle_queue_{name}_total"
            lines = [f"{metric}{labels}{texts[v] if v else ('0.0' if copysign(1.0, v) > 0 else '-0.0')}\n"
                     for q, (labels, _) in shown if (v := q.counters.get(name)) is not None]
            yield (header(metric, COUNTER_HELP[name], "counter") + "".join(lines)).encode("utf-8")
        yield (header("qubicle_queue_info", INFO_HELP, "gauge") + "".join(info for _, (_, info) in shown)).encode("utf-8")


class _ValueTexts(dict[float, str]):
    """floatToGoString, remembered: a dict lookup instead of repr() and Go's exponent rules."""

    def __missing__(self, value: float) -> str:
        text = floatToGoString(value)
        if value:  # never a zero (see render_chunks); NaN never finds itself again, harmlessly
            self[value] = text
        return text


def _label_texts(q: QueueFigures) -> tuple[str, str]:
    """A queue's label set as its series print it, and its whole info line."""
    account, queue = f'account_id="{_escape(q.account_id)}"', f'queue_id="{_escape(q.queue_id)}"'
    name = f'queue_name="{_escape(q.queue_name)}"'
    return (f"{{{account},{queue},{name}}} ",
            f'qubicle_queue_info{{{account},node="{_escape(q.node or "")}",{queue},{name}}} 1.0\n')


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
