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
from exporter.agents import agents_by_state
from exporter.config import Settings, client_settings
from exporter.demo import demo_kazoo
from exporter.figures import AGENT_STATES, FIGURES, SETTINGS, WAITS, in_base_units, wait_scale
from exporter.kazoo import KazooClient, KazooError, QueueRef, parse_queue_status
from exporter.kazoo.qubicle import QueueSettings, account_name, parse_queue_document, parse_recipient_status

SHOWN = tuple(f for f in FIGURES if f.column)
SHOWN_SETTINGS = tuple(s for s in SETTINGS if s.column)
# Agents by state in one cell, in AGENT_STATES' order: "2/0/1/0/1".
AGENTS_COLUMN = "rdy/ring/call/wrap/away"
COLUMNS = ("account", "name", "queue", *(f.column or "" for f in SHOWN),
           *(s.column or "" for s in SHOWN_SETTINGS), AGENTS_COLUMN, "node")


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
            name, documents, agents = await _details(settings, client, account_id, queues, problems)
            for queue in queues:
                raw = statuses.get(queue.id)
                doc = documents.get(queue.id)
                shown_settings = [f"{doc.values[s.key]:g}s" if doc is not None and s.key in doc.values else "-"
                                  for s in SHOWN_SETTINGS]
                counts = agents.get(queue.id)
                by_state = "/".join(str(counts[s]) for s in AGENT_STATES) if counts is not None else "-"
                if raw is None:
                    rows.append((account_id, name, queue.name, *(["-"] * len(SHOWN)), *shown_settings, by_state,
                                 "(no status)"))
                    continue
                status, _ = parse_queue_status(raw)
                values = in_base_units(status.values, scale)
                rows.append((account_id, name, queue.name, *(_cell(f.key, values) for f in SHOWN), *shown_settings,
                             by_state, status.node or "-"))
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


async def _details(settings: Settings, client: KazooClient, account_id: str, queues: list[QueueRef],
                   problems: list[str]) -> tuple[str, dict[str, QueueSettings], dict[str, dict[str, int]]]:
    """The account's name, its queues' settings and agents by state, as far as Kazoo tells.

    A failure here is a line under the table, not a failed check: the queue figures are what
    check is for. Each request kind is skipped when its flag turns it off.
    """
    name = "-"
    documents: dict[str, QueueSettings] = {}
    agents: dict[str, dict[str, int]] = {}
    try:
        if settings.account_names:
            name = account_name(await client.account_document(account_id)) or "-"
        if settings.queue_settings:
            for queue in queues:
                documents[queue.id] = parse_queue_document(await client.queue_document(account_id, queue.id))[0]
        if settings.agent_status:
            ids = dict.fromkeys(await client.list_recipients(account_id))
            for doc in documents.values():
                ids.update(dict.fromkeys(doc.members or ()))
            raw = await client.recipients_status(account_id, list(ids), settings.agent_status_batch_size)
            statuses = {i: s for i, one in raw.items() if (s := parse_recipient_status(one)[0]) is not None}
            members = {q: doc.members for q, doc in documents.items() if doc.members is not None}
            by_queue, _ = agents_by_state(statuses, members)
            agents = {q: dict(counts) for q, counts in by_queue.items()}
    except KazooError as exc:
        problems.append(f"account {account_id}: agents or settings incomplete: {exc}")
    return name, documents, agents


def run_check(settings: Settings, out: TextIO = sys.stdout) -> int:
    # The table goes to stdout and the one reason for a failure to stderr; the client's warnings
    # would only repeat that reason.
    logs.configure("error", "console", stream=sys.stderr)
    with demo_kazoo(settings) as effective:
        return asyncio.run(_check(effective, out))
