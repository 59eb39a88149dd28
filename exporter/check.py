"""`qubicle-exporter check`: authenticate, list every queue with its status, exit non-zero on failure.

The first command a new user runs: it answers "are my URL, credentials and account ids right?" with
one table or one reason.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from exporter import logs
from exporter.accounts import AccountResolver
from exporter.config import Settings, client_settings
from exporter.demo import demo_kazoo
from exporter.figures import FIGURES, WAITS, in_base_units, wait_scale
from exporter.kazoo import KazooClient, KazooError, parse_queue_status

SHOWN = tuple(f for f in FIGURES if f.column)
COLUMNS = ("account", "queue", *(f.column or "" for f in SHOWN), "node")


def _cell(key: str, values: dict[str, float]) -> str:
    value = values.get(key)
    if value is None:
        return "-"
    return f"{value:g}s" if key in WAITS else f"{value:g}"


async def _check(settings: Settings, out: TextIO) -> int:
    client = KazooClient(client_settings(settings))
    rows: list[tuple[str, ...]] = []
    problems: list[str] = []
    failures: list[str] = []
    scale = wait_scale(settings.wait_unit)
    try:
        await client.authenticate()
        resolver = AccountResolver(settings, client,
                                   on_error=lambda parent, reason, message: failures.append(message))
        accounts = await resolver.resolve()
        if failures:
            print(f"check failed: {failures[0]}", file=sys.stderr)
            return 1
        for account_id in accounts:
            queues = await client.list_queues(account_id)
            if not queues:
                problems.append(f"account {account_id}: no queues (no Qubicle, or no queue configured)")
                continue
            statuses = await client.queue_list_status(account_id, [q.id for q in queues])
            for queue in queues:
                raw = statuses.get(queue.id)
                if raw is None:
                    rows.append((account_id, queue.name, *(["-"] * len(SHOWN)), "(no status)"))
                    continue
                status, _ = parse_queue_status(raw)
                values = in_base_units(status.values, scale)
                rows.append((account_id, queue.name, *(_cell(f.key, values) for f in SHOWN), status.node or "-"))
    except KazooError as exc:
        print(f"check failed: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()

    table = [COLUMNS, *rows]
    widths = [max(len(str(r[i]).replace("\n", " ")) for r in table) for i in range(len(COLUMNS))]
    for row in table:
        print("  ".join(str(c).replace("\n", " ").ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)
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
