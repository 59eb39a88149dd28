"""The Collector yields exactly what the current snapshot holds, and hides figures that are too old."""

from functools import partial
from types import MappingProxyType

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.collector import SnapshotCollector
from exporter.exposition import joined
from exporter.render import render
from exporter.snapshot import AccountSnapshot, QueueFigures, Snapshot

A = "a" * 32


def queue(qid: str, name: str, **gauges: float) -> QueueFigures:
    return QueueFigures(A, qid, name, "kz1@node", MappingProxyType(gauges), MappingProxyType({"daily_sessions": 3.0}))


def snapshot(*queues: QueueFigures, up: bool = True, data_time: float = 1000.0) -> Snapshot:
    account = AccountSnapshot(A, up=up, queues=tuple(queues), data_time=data_time, last_success=data_time,
                              queue_count=len(queues))
    return Snapshot(taken_at=data_time, accounts=MappingProxyType({A: account}))


def samples(current: list[Snapshot], now: float = 1005.0) -> dict[tuple[str, frozenset], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: current[0], max_data_age=30.0, clock=lambda: now))
    text = generate_latest(registry).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def labels(qid: str, name: str) -> frozenset:
    return frozenset({"account_id": A, "queue_id": qid, "queue_name": name}.items())


def test_queue_figures_and_counters_are_exported():
    got = samples([snapshot(queue("q1", "Sales", active_sessions=2, estimated_wait=45))])
    assert got[("qubicle_queue_active_sessions", labels("q1", "Sales"))] == 2
    assert got[("qubicle_queue_estimated_wait_seconds", labels("q1", "Sales"))] == 45
    assert got[("qubicle_queue_sessions_total", labels("q1", "Sales"))] == 3
    info = labels("q1", "Sales") | {("node", "kz1@node"), ("queue_type", ""), ("router", "")}
    assert got[("qubicle_queue_info", info)] == 1
    assert got[("qubicle_up", frozenset({("account_id", A)}))] == 1
    assert got[("qubicle_queues", frozenset({("account_id", A)}))] == 1


def test_a_missing_figure_is_absent_not_zero():
    got = samples([snapshot(queue("q1", "Sales", active_sessions=2))])
    assert ("qubicle_queue_estimated_wait_seconds", labels("q1", "Sales")) not in got
    assert ("qubicle_queue_active_sessions", labels("q1", "Sales")) in got


def test_a_deleted_queue_vanishes_with_the_next_snapshot():
    current = [snapshot(queue("q1", "Sales", active_sessions=1), queue("q2", "Support", active_sessions=4))]
    assert ("qubicle_queue_active_sessions", labels("q2", "Support")) in samples(current)
    current[0] = snapshot(queue("q1", "Sales", active_sessions=1))
    after = samples(current)
    assert not [k for k in after if ("queue_id", "q2") in k[1]]


def test_failed_account_keeps_figures_until_max_data_age_then_drops_them():
    stale = [snapshot(queue("q1", "Sales", active_sessions=1), up=False, data_time=1000.0)]
    fresh_enough = samples(stale, now=1029.0)
    assert fresh_enough[("qubicle_up", frozenset({("account_id", A)}))] == 0
    assert ("qubicle_queue_active_sessions", labels("q1", "Sales")) in fresh_enough
    too_old = samples(stale, now=1031.0)
    assert too_old[("qubicle_up", frozenset({("account_id", A)}))] == 0
    assert not [k for k in too_old if k[0].startswith("qubicle_queue_")]
    # The time of the last success stays visible, so staleness can be alerted on.
    assert too_old[("qubicle_last_poll_success_timestamp_seconds", frozenset({("account_id", A)}))] == 1000.0


def test_fast_render_is_byte_for_byte_prometheus_clients_output():
    from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

    odd = [queue(f"q{i}", name, active_sessions=i, estimated_wait=1e21 if i else 0.5)
           for i, name in enumerate(['say "hi"', "back\\slash", "new\nline", "Ünïcødé 客服 ☎", ""])]
    # Values whose text the renderer remembers per render: equal keys with different texts
    # (0.0 / -0.0), values never equal to themselves (NaN), Go's exponent rules, repeats.
    odd += [queue(f"v{i}", f"values {i}", active_sessions=a, average_wait=b, recipients=3.0)
            for i, (a, b) in enumerate([(0.0, -0.0), (-0.0, 0.0), (float("nan"), float("inf")), (1234567.0, 1e-7),
                                        (12345678.0, 0.1 + 0.2), (3.0, 3)])]
    # The node label comes from Kazoo too: hostile values, and none at all.
    odd += [QueueFigures(A, f"n{i}", f"node {i}", node, MappingProxyType({"active_sessions": 1.0}),
                         MappingProxyType({}))
            for i, node in enumerate(['kz"1', "back\\slash", "new\nline", "trailing\\", None, ""])]
    stale = AccountSnapshot("b" * 32, up=False, queues=tuple(odd), data_time=1.0, last_success=1.0, queue_count=5)
    never = AccountSnapshot("c" * 32, up=False)
    base = snapshot(*odd)
    current = Snapshot(taken_at=1000.0, accounts=MappingProxyType({**base.accounts, "b" * 32: stale,
                                                                    "c" * 32: never}))
    collector = SnapshotCollector(lambda: current, max_data_age=30.0, clock=lambda: 1005.0)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    assert joined(render(current, 1005.0, max_data_age=30.0)) == generate_latest(registry)
    assert joined(render(current, 1005.0, max_data_age=30.0, openmetrics=True)) + b"# EOF\n" == \
        generate_openmetrics(registry)


def test_figures_exactly_max_data_age_old_are_still_served():
    """--max-data-age N: figures N seconds old are shown, older ones are not (what /metrics serves)."""
    from prometheus_client.parser import text_string_to_metric_families as parse
    from served import served_exposition, served_text

    current = snapshot(queue("q1", "Sales", active_sessions=2), up=False, data_time=1000.0)
    now = [0.0]
    exposition = served_exposition(lambda: current, max_data_age=30.0, clock=lambda: now[0])

    def shown(at: float) -> set[str]:
        now[0] = at
        return {s.name for f in parse(served_text(exposition)) for s in f.samples}

    assert "qubicle_queue_active_sessions" in shown(1030.0)
    assert "qubicle_queue_active_sessions" not in shown(1030.001)
    assert "qubicle_up" in shown(1030.001)  # the account itself stays, reported down


def test_lines_reused_across_renders_stay_byte_for_byte_prometheus_clients_output():
    """One LabelCache through a sequence of snapshots, as in the exporter: queues unchanged (the very
    same QueueFigures, whose lines are reused), changed, deleted, added, renamed, moved to another
    node, hidden as stale and shown again; both formats sharing the cache. Every render equals the
    oracle's, and a render with reuse turned off."""
    from dataclasses import replace

    from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

    from exporter.render import LabelCache

    b = "b" * 32
    q1, q2, q3 = queue("q1", "Sales", active_sessions=1), queue("q2", "Support", active_sessions=4), \
        queue("q3", 'say "hi"', active_sessions=0.0, estimated_wait=-0.0)
    other = QueueFigures(b, "q9", "Other", None, MappingProxyType({"recipients": 2.0}), MappingProxyType({}))

    def snap(queues: tuple[QueueFigures, ...], others: tuple[QueueFigures, ...] = (other,),
             other_time: float = 1000.0) -> Snapshot:
        first = snapshot(*queues)
        second = AccountSnapshot(b, up=True, queues=others, data_time=other_time, last_success=other_time,
                                 queue_count=len(others))
        return Snapshot(taken_at=1000.0, accounts=MappingProxyType({**first.accounts, b: second}))

    changed = replace(q2, values=MappingProxyType({"active_sessions": 5.0, "average_wait": 1e21}))
    sequence = [
        snap((q1, q2, q3)),
        snap((q1, q2, q3)),  # nothing changed: every line reused
        snap((q1, changed, q3)),  # one queue's figures changed
        snap((q1, changed)),  # one deleted
        snap((replace(q1, queue_name="Sales & Co\n"), changed, q3)),  # renamed (a new object), one back
        snap((replace(q1, node="kz2@node"), changed, q3)),  # moved to another node: its info line
        snap((q1, changed, q3), other_time=900.0),  # the other account's figures hidden as stale
        snap((q1, changed, q3)),  # and shown again, the same object as before
        snap(()),  # every queue gone
        snap((q1, q2, q3)),
    ]
    cache = LabelCache()
    for i, current in enumerate(sequence):
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(partial(_same, current), max_data_age=30.0, clock=lambda: 1005.0))
        text = joined(render(current, 1005.0, max_data_age=30.0, labels=cache))
        om = joined(render(current, 1005.0, max_data_age=30.0, openmetrics=True, labels=cache))
        assert text == generate_latest(registry), i
        assert om + b"# EOF\n" == generate_openmetrics(registry), i
        assert text == joined(render(current, 1005.0, max_data_age=30.0, labels=LabelCache(reuse_lines=False))), i
    # The reuse did happen: the cache holds the lines of exactly the queues last shown.
    assert {entry[0].queue_id for entry in cache.lines.values()} == {"q1", "q2", "q3", "q9"}


def test_reused_lines_are_those_of_the_same_object_only():
    """An equal but distinct QueueFigures (new figures that happen to be equal) or a new object at a
    recycled id() never picks up another queue's lines."""
    from exporter.render import LabelCache

    cache = LabelCache()
    first = snapshot(queue("q1", "Sales", active_sessions=1))
    joined(render(first, 1005.0, max_data_age=30.0, labels=cache))
    (remembered,) = cache.lines.values()
    impostor = queue("q1", "Sales", active_sessions=7)
    cache.lines = {id(impostor): (remembered[0], remembered[1])}  # as if the id had been recycled
    text = joined(render(snapshot(impostor), 1005.0, max_data_age=30.0, labels=cache))
    assert b'qubicle_queue_active_sessions{account_id="' + A.encode() + b'",queue_id="q1",queue_name="Sales"} 7.0' \
        in text


def _same(snapshot: Snapshot) -> Snapshot:
    return snapshot
