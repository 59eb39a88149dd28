"""Benchmark 4: what agents, queue settings and account names add to a poll, at 10,000 queues and 5,000 agents.

Against a simulator with 20 ms latency in a separate process (1,000 accounts of 10 queues, one agent
on every other queue), the same poll three ways: the queue figures only (--no-agent-status
--no-queue-settings --no-account-names), the defaults (agent status every poll; settings,
members and names as discovery data), and the defaults with --agent-metrics. Printed per way:
requests per poll by kind, wall time, the exporter's CPU per poll and the size of the render.

Discovery data is spread over polls: the table shows a poll during the first fill (bounded by the
budget) and a steady poll once everything is known (the fill is completed directly first, so the
benchmark does not wait the ~40 polls it takes at these sizes).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import replace
from typing import Any

from bench.common import median, table
from bench.procs import simulator
from exporter import selfmetrics
from exporter.config import Secrets, Settings, client_settings
from exporter.exposition import joined
from exporter.gcpolicy import tune_gc
from exporter.kazoo import KazooClient
from exporter.poller import Poller
from exporter.render import render

LATENCY = 0.02
CONCURRENCY = 10
WAYS: dict[str, dict[str, Any]] = {
    "queue figures only": {"agent_status": False, "queue_settings": False, "account_names": False},
    "defaults": {},
    "defaults + --agent-metrics": {"agent_metrics": True},
}


async def _way(url: str, key: str, master: str, polls: int, overrides: dict[str, Any]) -> dict[str, float]:
    settings = replace(Settings(), kazoo_url=url, account_ids=(master,), secrets=Secrets(api_key=key),
                       discover_descendants=True, max_concurrency=CONCURRENCY, discovery_interval=3600,
                       poll_timeout=120, read_timeout=30, **overrides)
    requests: Counter[str] = Counter()
    client = KazooClient(client_settings(settings), on_request=lambda e, c: requests.update([e]))
    poller = Poller(settings, client, selfmetrics.create(process=False))
    result: dict[str, float] = {}
    try:
        await poller.poll()  # accounts and queues discovered; names, recipients listed (within the budget)
        before = Counter(requests)
        await poller.poll()  # a poll of the first fill: queue documents, as many as the budget allows
        fill = requests - before
        result["fill_discovery"] = sum(fill[k] for k in ("queue", "recipients", "account"))
        # Complete the fill directly (what the next ~40 polls would do), then measure steady polls.
        details = poller._details
        while True:
            known = {a: [q.id for q in d.queues or ()] for a, d in poller._discovery.items()}
            plan = details.plan(known, {})
            if not plan:
                break
            await asyncio.gather(*(details.fetch(a, items) for a, items in plan.items()))
        walls, cpus, per_poll = [], [], []
        for _ in range(polls):
            before = Counter(requests)
            started, cpu = time.perf_counter(), time.process_time()
            snapshot = await poller.poll()
            walls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
            per_poll.append(requests - before)
        last = per_poll[-1]
        renders = []
        for _ in range(3):
            started = time.perf_counter()
            size = len(joined(render(snapshot, snapshot.taken_at, max_data_age=settings.max_data_age)))
            renders.append(time.perf_counter() - started)
        result.update(
            requests=sum(last.values()), status=last["queue_list_status"], agent_status=last["recipients_status"],
            discovery=sum(last[k] for k in ("queue", "recipients", "account")),
            wall=median(walls), cpu=median(cpus), render_mb=size / 1e6, render_s=median(renders),
            queues=sum(len(a.queues) for a in snapshot.accounts.values()),
            agents=sum(sum(a.agents.values()) for a in snapshot.accounts.values() if a.agents),
            known_agents=sum(len(poller._details.account(a).agent_ids()) for a in snapshot.accounts),
        )
    finally:
        await client.aclose()
    return result


def run(accounts: int = 1000, queues: int = 10, agents: float = 0.5, polls: int = 3) -> dict[str, dict[str, float]]:
    tune_gc()
    results = {}
    with simulator(accounts, queues, latency=LATENCY, agents=agents) as sim:
        for name, overrides in WAYS.items():
            results[name] = asyncio.run(_way(sim.url, sim.api_key, sim.master_account_id, polls, overrides))
    return results


def report(results: dict[str, dict[str, float]]) -> str:
    base = results["queue figures only"]
    rows = []
    for name, r in results.items():
        rows.append([name, int(r["requests"]), int(r["status"]), int(r["agent_status"]), int(r["discovery"]),
                     int(r["fill_discovery"]), f"{r['wall']:.2f}", f"{r['cpu']:.2f}",
                     f"{r['cpu'] - base['cpu']:+.2f}", f"{r['render_mb']:.1f}", f"{r['render_s']:.2f}"])
    any_run = results["defaults"]
    return "\n".join([
        f"Agents, settings and names: cost per poll ({int(any_run['queues']):,} queues, "
        f"{int(any_run['known_agents']):,} agents known, {int(any_run['agents']):,} logged in; "
        f"latency {LATENCY * 1000:.0f} ms, --max-concurrency {CONCURRENCY}; seconds)",
        table(["way", "requests", "queue status", "agent status", "discovery (steady)", "discovery (fill)",
               "wall p50", "CPU p50", "CPU extra", "render MB", "render p50 s"], rows),
        "agent status: one request per account per poll (batches of --agent-status-batch-size); discovery data "
        "(queue documents, recipients, account names) is spread over polls within the budget "
        "10 + ceil(1.5 x items x --interval / --settings-interval).",
    ])


if __name__ == "__main__":
    print(report(run()))
