"""Fault soak: 1,000 queues behind a Kazoo that errs, rate-limits, times out, expires tokens, churns
queues and goes down; the exporter keeps serving, reports exactly what failed, and recovers alone.

Bounded: about a minute of wall time.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import exporter_process
from exporter.simulator import Faults

pytestmark = pytest.mark.e2e  # starts processes or needs Debian's tools

FAULTY_ACCOUNTS, HEALTHY_ACCOUNTS, QUEUES = 95, 5, 10


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_fault_soak(make_simulator, tmp_path):
    sim = make_simulator(accounts=FAULTY_ACCOUNTS + HEALTHY_ACCOUNTS, queues_per_account=QUEUES, seed=21,
                         speed=60, rate_limit=False, start=datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc))
    accounts = sim.account_ids
    faulty, healthy = accounts[:FAULTY_ACCOUNTS], accounts[FAULTY_ACCOUNTS:]
    faults = Faults(error_rate=0.10, non_json_rate=0.02, rate_limit_rate=0.01, retry_after=0.2,
                    token_expire_every=100, latency_spike_rate=0.02, latency_spike=2.5,
                    queue_churn_per_minute=30, accounts=tuple(faulty))
    key = tmp_path / "key"
    key.write_text(sim.api_key)
    args = ["--kazoo-url", sim.url, "--api-key-file", str(key), "--account-id", ",".join(accounts),
            "--interval", "1", "--read-timeout", "1", "--connect-timeout", "1", "--retries", "1",
            "--poll-timeout", "3", "--max-data-age", "3", "--discovery-interval", "5", "--max-concurrency", "20"]

    with exporter_process(*args) as exporter:
        pid = exporter.proc.pid
        counters: dict[tuple[str, tuple], float] = {}
        up_history: dict[str, list[float]] = defaultdict(list)
        ever_errored: set[str] = set()
        all_down_seen = False
        scrapes = 0
        rss_warm = 0

        def scrape(phase: str) -> dict[str, float]:
            nonlocal scrapes
            response = exporter.get("/metrics")
            assert response.status_code == 200, phase
            ups: dict[str, float] = {}
            for family in text_string_to_metric_families(response.text):
                for s in family.samples:
                    if s.name == "qubicle_up":
                        ups[s.labels["account_id"]] = s.value
                    elif s.name == "qubicle_poll_errors_total" and s.value > 0:
                        ever_errored.add(s.labels["account_id"])
                    if s.name.endswith("_total"):
                        key = (s.name, tuple(sorted(s.labels.items())))
                        assert s.value >= counters.get(key, 0), f"{key} went down in phase {phase}"
                        counters[key] = s.value
            scrapes += 1
            return ups

        def run(phase: str, seconds: float, check) -> None:  # type: ignore[no-untyped-def]
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                ups = scrape(phase)
                check(ups)
                for account, value in ups.items():
                    up_history[account].append(value)
                    if value == 0:
                        # Down only where a poll of that account really failed (and was counted).
                        assert account in ever_errored or phase == "down", account
                assert exporter.proc.poll() is None, f"exporter died in phase {phase}"
                time.sleep(0.5)

        # 1. Warm-up without faults.
        run("warm-up", 6, lambda ups: None)
        rss_warm = rss_kib(pid)
        # 2. Faults on the faulty accounts; the healthy ones must not notice.
        sim.set_faults(faults)

        def healthy_stay_up(ups: dict[str, float]) -> None:
            down = [a for a in healthy if ups.get(a) != 1]
            assert not down, f"healthy accounts down while others fail: {down}"

        run("faults", 20, healthy_stay_up)
        # 3. Kazoo fully down: every account goes down.
        sim.set_faults(Faults(down=True))

        def saw_all_down(ups: dict[str, float]) -> None:
            nonlocal all_down_seen
            all_down_seen = all_down_seen or (len(ups) == len(accounts) and not any(ups.values()))

        run("down", 8, saw_all_down)
        # 4. Back, faults still on: recovery needs no intervention.
        sim.set_faults(faults)
        run("recovering", 6, lambda ups: None)
        assert all(ups_ == 1 for ups_ in [up_history[a][-1] for a in healthy]), "healthy accounts did not recover"
        # 5. Faults off: every account is up again on its own.
        sim.set_faults(Faults())
        deadline = time.monotonic() + 15
        ups = {}
        while time.monotonic() < deadline:
            ups = scrape("healed")
            if len(ups) == len(accounts) and all(v == 1 for v in ups.values()):
                break
            time.sleep(0.5)
        assert all(v == 1 for v in ups.values()) and len(ups) == len(accounts), \
            f"still down after recovery: {[a for a, v in ups.items() if v != 1][:5]}"
        rss_end = rss_kib(pid)
        assert exporter.proc.pid == pid and exporter.proc.poll() is None

    assert all_down_seen, "never saw every account down while Kazoo was down"
    assert any(0 in up_history[a] for a in faulty), "the faults never made an account fail"
    assert scrapes >= 30  # every one of them succeeded
    # Memory is bounded: no growth beyond 10 % after warm-up.
    assert rss_end <= rss_warm * 1.10, f"RSS grew from {rss_warm} KiB to {rss_end} KiB"
    # Every kind of fault left its trace in the exporter's own counters.
    reasons = {dict(k[1]).get("reason") for k in counters if k[0] == "qubicle_poll_errors_total"}
    assert {"transport", "server_error"} & reasons, reasons
    assert any(k[0] == "qubicle_api_reauthentications_total" and v > 0 for k, v in counters.items())
