"""`qubicle-exporter check`: authenticate, list every queue with its status, exit non-zero on failure.

The first command a new user runs: it answers "are my URL, credentials and account ids right?" with
one table or one reason.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from exporter import logs
from exporter.app import client_settings, demo_kazoo
from exporter.config import Settings
from exporter.kazoo import KazooClient, KazooError, parse_queue_status
from exporter.shard import in_shard

COLUMNS = ("account", "queue", "waiting", "ready", "logged in", "agents", "est. wait", "today", "missed",
           "abandoned", "node")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}"


async def _check(settings: Settings, out: TextIO) -> int:
    client = KazooClient(client_settings(settings))
    rows: list[tuple[str, ...]] = []
    problems: list[str] = []
    try:
        await client.authenticate()
        accounts = list(settings.account_ids)
        if settings.discover_descendants:
            for parent in settings.account_ids:
                accounts += [a.id for a in await client.list_descendants(parent) if a.id not in accounts]
        if settings.shard:
            accounts = [a for a in accounts if in_shard(a, settings.shard)]
        for account_id in accounts:
            queues = await client.list_queues(account_id)
            if not queues:
                problems.append(f"account {account_id}: no queues (no Qubicle, or no queue configured)")
                continue
            statuses = await client.queue_list_status(account_id, [q.id for q in queues])
            for queue in queues:
                raw = statuses.get(queue.id)
                if raw is None:
                    rows.append((account_id, queue.name, *(["-"] * 8), "(no status)"))
                    continue
                s, _ = parse_queue_status(raw)
                wait = None if s.estimated_wait is None else s.estimated_wait * (
                    0.001 if settings.wait_unit == "milliseconds" else 1)
                rows.append((account_id, queue.name, _fmt(s.active_sessions), _fmt(s.available_recipients),
                             _fmt(s.active_recipients), _fmt(s.recipients),
                             "-" if wait is None else f"{wait:g}s", _fmt(s.daily_sessions),
                             _fmt(s.daily_missed_sessions), _fmt(s.daily_abandoned_sessions), s.node or "-"))
    except KazooError as exc:
        print(f"check failed: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()

    table = [COLUMNS, *rows]
    widths = [max(len(str(r[i]).replace("\n", " ")) for r in table) for i in range(len(COLUMNS))]
    for row in table:
        print("  ".join(str(c).replace("\n", " ").ljust(w) for c, w in zip(row, widths)).rstrip(), file=out)
    for problem in problems:
        print(problem, file=out)
    print(f"{len(rows)} queue{'' if len(rows) == 1 else 's'} in {len(settings.account_ids)} configured "
          f"account{'' if len(settings.account_ids) == 1 else 's'}", file=out)
    if not rows:
        print("check failed: no queue found in any account", file=sys.stderr)
        return 1
    return 0


def run_check(settings: Settings, out: TextIO = sys.stdout) -> int:
    # The table goes to stdout and the one reason for a failure to stderr; the client's warnings
    # would only repeat that reason.
    logs.configure("error", "console", stream=sys.stderr)
    with demo_kazoo(settings) as effective:
        return asyncio.run(_check(effective, out))
