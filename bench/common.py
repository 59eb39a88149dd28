"""Helpers shared by the benchmarks: synthetic snapshots, statistics, table printing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from types import MappingProxyType

from exporter.figures import COUNTED, FIGURES
from exporter.snapshot import AccountSnapshot, QueueFigures, Snapshot


def synthetic_snapshot(queues: int, accounts: int = 1000, now: float | None = None) -> Snapshot:
    """`queues` queues spread over min(accounts, queues) accounts, every figure present."""
    now = time.time() if now is None else now
    accounts = min(accounts, queues)
    per_account: dict[str, list[QueueFigures]] = {}
    for i in range(queues):
        account_id = f"{i % accounts:032x}"
        queue_id = f"{i:032x}"[::-1]
        gauges = {f.key: float((i * 7 + k) % 40) for k, f in enumerate(FIGURES)}
        counters = {f.key: float(i % modulus) for f, modulus in zip(COUNTED, (500, 9, 13), strict=True)}
        per_account.setdefault(account_id, []).append(QueueFigures(
            account_id, queue_id, f"Queue {i} \"support\"", f"kazoo@node{i % 3}",
            MappingProxyType(gauges), MappingProxyType(counters)))
    return Snapshot(taken_at=now, accounts=MappingProxyType({
        a: AccountSnapshot(a, up=True, queues=tuple(q), data_time=now, last_success=now, queue_count=len(q))
        for a, q in per_account.items()
    }))


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
