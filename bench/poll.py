"""Benchmark 2: poll cost against a simulator with 20 ms latency, in a separate process.

Targets: requests per poll = one status call per account per batch (discovery cached between
--discovery-interval runs); wall time within 1.25x of requests x latency / max-concurrency.
Also printed: what an exporter making one request per queue would need.

Reuse of unchanged queues, in the same run: two pollers poll the same simulator in turn, each
every --interval (10 s, so the share of queues whose answer did not change is the usual one). One
is the exporter as it runs: a queue whose answer is the same as at the last poll keeps its figures
(no parse, no unit conversion, no counter carry), and the render reuses that queue's row (its
label and value texts). The other has both turned off: every queue parsed, built and formatted
anew. After each poll its snapshot is rendered and deflated as the exposition does it, and CPU
per poll (poll + render) is compared. The render alone is compared too, on the first poller's
snapshot, with and without the row reuse.

The floor of that ratio, in the same run: the exporter as it runs, polling a third simulator of
the same size whose clock stands still (--speed 0: every queue answers as before, all of them
reused). What it spends per poll is what no reuse can save (the HTTP exchanges, reading the JSON,
comparing each answer with the last, writing and deflating every line); over the cost without
reuse, it is the best ratio reuse could reach if every queue were unchanged. With the poll's
share of changed queues, reuse at its best costs that floor plus the changed queues' share of
the rest (what the poller without reuse spends beyond the floor): also printed, per poll.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import replace

from bench.common import median, table
from bench.procs import cpu_seconds, simulator
from exporter import selfmetrics
from exporter.config import Secrets, Settings, client_settings
from exporter.exposition import _Deflated
from exporter.gcpolicy import AfterPoll, tune_gc
from exporter.kazoo import KazooClient
from exporter.poller import Poller
from exporter.render import LabelCache, render
from exporter.snapshot import Snapshot

LATENCY = 0.02
CONCURRENCY = 10


INTERVAL = 10.0


def _render_cpu(snapshot: Snapshot, cache: LabelCache) -> float:
    """CPU of one render straight into deflate, as the exposition makes it (one format)."""
    cpu = time.process_time()
    _Deflated.of(render(snapshot, snapshot.taken_at, max_data_age=3600, labels=cache))
    return time.process_time() - cpu


def _reused(before: Snapshot, after: Snapshot) -> tuple[int, int]:
    """Queues whose QueueFigures are the very same object as in the snapshot before, of all queues."""
    old = {id(q) for a in before.accounts.values() for q in a.queues}
    queues = [q for a in after.accounts.values() for q in a.queues]
    return sum(1 for q in queues if id(q) in old), len(queues)


def _settings(url: str, key: str, master: str) -> Settings:
    return replace(Settings(), kazoo_url=url, account_ids=(master,), secrets=Secrets(api_key=key),
                       discover_descendants=True, max_concurrency=CONCURRENCY, discovery_interval=3600,
                       poll_timeout=120, read_timeout=30,
                       # The queue figures alone; what agents and settings add is bench/agents.py's.
                   agent_status=False, queue_settings=False, account_names=False)


async def _polls(url: str, key: str, master: str, polls: int, frozen: tuple[str, str, str]
                 ) -> tuple[list[float], list[Counter[str]], int, dict[str, list[float]]]:
    settings = _settings(url, key, master)
    requests: Counter[str] = Counter()
    client = KazooClient(client_settings(settings), on_request=lambda e, c: requests.update([e]))
    other = KazooClient(client_settings(settings))
    # The exporter's collector policy after every poll (exporter/app.py): without it, each poll's
    # CPU included whichever collections of the older generations fell in it (up to ~0.4 s at 50,000
    # queues), more often where more objects live on: a measure of the collector, not of reuse.
    after_poll = AfterPoll()
    reusing = Poller(settings, client, selfmetrics.create(process=False), on_snapshot=lambda _: after_poll())
    anew = Poller(settings, other, selfmetrics.create(process=False), reuse_unchanged=False,
                  on_snapshot=lambda _: after_poll())
    still = KazooClient(client_settings(_settings(*frozen)))
    floor = Poller(_settings(*frozen), still, selfmetrics.create(process=False), on_snapshot=lambda _: after_poll())
    caches = {reusing: LabelCache(), anew: LabelCache(reuse_lines=False), floor: LabelCache()}
    walls, per_poll = [], []
    cpu: dict[str, list[float]] = {"poll": [], "poll_anew": [], "reuse": [], "no_reuse": [], "anew": [], "unchanged": [],
                                   "floor": []}
    queues = 0
    try:
        # Discovery of accounts and queues (cached afterwards), and a first render for each.
        snapshots = {p: await p.poll() for p in (reusing, anew, floor)}
        for p, snapshot in snapshots.items():
            _render_cpu(snapshot, caches[p])
        started = time.perf_counter()
        for _ in range(polls):
            await asyncio.sleep(max(0.0, INTERVAL - (time.perf_counter() - started)))  # as --interval spaces them
            started = time.perf_counter()
            before, previous = Counter(requests), snapshots[reusing]
            for p, name in ((reusing, "poll"), (anew, "poll_anew")):
                begun, used = time.perf_counter(), time.process_time()
                snapshots[p] = await p.poll()
                cpu[name].append(time.process_time() - used)
                if p is reusing:
                    walls.append(time.perf_counter() - begun)
            per_poll.append(requests - before)
            snapshot = snapshots[reusing]
            queues = sum(len(a.queues) for a in snapshot.accounts.values())
            same, total = _reused(previous, snapshot)
            cpu["unchanged"].append(same / max(1, total))
            cpu["reuse"].append(_render_cpu(snapshot, caches[reusing]))
            cpu["no_reuse"].append(_render_cpu(snapshot, LabelCache(reuse_lines=False)))
            cpu["anew"].append(_render_cpu(snapshots[anew], caches[anew]))
            used = time.process_time()
            snapshots[floor] = await floor.poll()
            cpu["floor"].append(time.process_time() - used + _render_cpu(snapshots[floor], caches[floor]))
    finally:
        await client.aclose()
        await other.aclose()
        await still.aclose()
    return walls, per_poll, queues, cpu


def run(accounts: int = 1000, queues: int = 10, polls: int = 5, latency: float = LATENCY) -> dict[str, float]:
    tune_gc()  # as the exporter's own process does (exporter.app.run)
    with simulator(accounts, queues, latency=latency) as sim, \
            simulator(accounts, queues, latency=latency, speed=0) as frozen:
        sim_cpu = cpu_seconds(sim.pid)
        walls, per_poll, served, cpu = asyncio.run(_polls(sim.url, sim.api_key, sim.master_account_id, polls,
                                                          (frozen.url, frozen.api_key, frozen.master_account_id)))
        sim_cpu = (cpu_seconds(sim.pid) - sim_cpu) / (2 * polls + 2)
    requests = sum(per_poll[-1].values())
    with_reuse = [c + r for c, r in zip(cpu["poll"], cpu["reuse"], strict=True)]
    without = [c + r for c, r in zip(cpu["poll_anew"], cpu["anew"], strict=True)]
    ratios = [a / b for a, b in zip(with_reuse, without, strict=True)]
    render_ratios = [a / b for a, b in zip(cpu["reuse"], cpu["no_reuse"], strict=True)]
    floors = [a / b for a, b in zip(cpu["floor"], without, strict=True)]
    # Reuse at its best costs the floor plus, for the changed queues only, what the poller without
    # reuse spends beyond that floor: the lowest ratio any reuse can reach at this poll's share.
    ideals = [f + (1 - u) * (1 - f) for f, u in zip(floors, cpu["unchanged"], strict=True)]
    return {"accounts": accounts + 1, "queues": served, "requests": requests,
            "status_requests": per_poll[-1]["queue_list_status"], "wall_p50": median(walls), "wall_max": max(walls),
            "bound": requests * latency / CONCURRENCY, "exporter_cpu": median(cpu["poll"]),
            "exporter_cpu_anew": median(cpu["poll_anew"]), "simulator_cpu": sim_cpu,
            "render_reuse": median(cpu["reuse"]), "render_no_reuse": median(cpu["no_reuse"]),
            "render_anew": median(cpu["anew"]),
            "unchanged": median(cpu["unchanged"]), "cpu_reuse": median(with_reuse), "cpu_no_reuse": median(without),
            "ratio": median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "render_ratio": median(render_ratios), "render_ratio_min": min(render_ratios),
            "render_ratio_max": max(render_ratios), "cpu_floor": median(cpu["floor"]), "floor": median(floors),
            "floor_min": min(floors), "floor_max": max(floors),
            "ideal": median(ideals), "ideal_min": min(ideals), "ideal_max": max(ideals)}


def report(r: dict[str, float]) -> str:
    ratio = r["wall_p50"] / r["bound"]
    expected = r["accounts"] - 1  # every account with queues, one batch each (<= 100 queues)
    rows = [[f"{int(r['accounts']):,}", f"{int(r['queues']):,}", int(r["requests"]), int(r["status_requests"]),
             f"{r['bound']:.2f}", f"{r['wall_p50']:.2f}", f"{r['wall_max']:.2f}", f"{ratio:.2f}x",
             f"{int(r['queues']):,} ({r['queues'] / r['requests']:.1f}x more)"]]
    return "\n".join([
        f"Poll cost (simulator latency {LATENCY * 1000:.0f} ms, --max-concurrency {CONCURRENCY}; seconds)",
        table(["accounts", "queues", "requests/poll", "status calls", "bound", "wall p50", "wall max",
               "wall/bound", "one-per-queue would need"], rows),
        f"target: requests per poll = one status call per account per batch ({expected:,}): "
        f"{int(r['requests']):,} -> {'MET' if r['requests'] == expected else 'MISSED'}",
        f"target: wall time within 1.25x of the bound: {ratio:.2f}x -> {'MET' if ratio <= 1.25 else 'MISSED'}",
        f"CPU per poll: exporter {r['exporter_cpu']:.2f} s, simulator {r['simulator_cpu']:.2f} s "
        "(the bound counts latency only; both processes share this machine's 2 cores)",
        f"unchanged queues ({r['unchanged'] * 100:.0f} % of them): poll {r['exporter_cpu']:.2f} s and render + deflate "
        f"{r['render_reuse']:.2f} s reusing their figures and rows; poll {r['exporter_cpu_anew']:.2f} s and render "
        f"{r['render_anew']:.2f} s parsing, building and formatting every queue anew",
        f"render alone, same snapshot: {r['render_reuse']:.2f} s reusing rows, {r['render_no_reuse']:.2f} s without = "
        f"{r['render_ratio']:.2f} (per poll: {r['render_ratio_min']:.2f}-{r['render_ratio_max']:.2f})",
        f"target: CPU per poll (poll + render) reusing unchanged queues <= half of it without: {r['cpu_reuse']:.2f} s vs "
        f"{r['cpu_no_reuse']:.2f} s = {r['ratio']:.2f} (per poll: {r['ratio_min']:.2f}-{r['ratio_max']:.2f}) -> "
        f"{'MET' if r['ratio'] <= 0.5 else 'MISSED'}",
        f"floor of that ratio (every queue unchanged, a simulator whose clock stands still): {r['cpu_floor']:.2f} s "
        f"= {r['floor']:.2f} of the cost without reuse (per poll: {r['floor_min']:.2f}-{r['floor_max']:.2f}): "
        "what no reuse can save",
        f"best any reuse can reach at this share of changed queues (the floor, plus the changed queues' share of "
        f"the rest): {r['ideal']:.2f} (per poll: {r['ideal_min']:.2f}-{r['ideal_max']:.2f})",
    ])


if __name__ == "__main__":
    print(report(run()))
