"""`qubicle-exporter check`: a table of every queue, or one clear reason and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.e2e  # starts processes or needs Debian's tools


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exporter", "check", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def test_check_lists_every_queue(make_simulator, tmp_path):
    sim = make_simulator(accounts=2, queues_per_account=3, seed=2, speed=0)
    key = tmp_path / "key"
    key.write_text(sim.api_key)
    result = check("--kazoo-url", sim.url, "--api-key-file", str(key),
                   "--account-id", ",".join(sim.account_ids))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["account", "name", "queue", "waiting"]
    assert "timeout" in lines[0].split() and "rdy/ring/call/wrap/away" in lines[0].split()
    for account in sim.account_ids:
        for _, name in sim.queues(account):
            assert any(name in line and account in line for line in lines), name
    assert "6 queues in 2 configured accounts" in result.stdout
    assert sim.api_key not in result.stdout + result.stderr


def test_check_fails_with_one_reason_on_a_wrong_key(make_simulator, tmp_path):
    sim = make_simulator(accounts=1, queues_per_account=1, seed=2, speed=0)
    key = tmp_path / "key"
    wrong = "f" * 64
    key.write_text(wrong)
    result = check("--kazoo-url", sim.url, "--api-key-file", str(key), "--account-id", sim.account_ids[0])
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "check failed: PUT /v2/api_auth: Kazoo rejected the API key (HTTP 404)"]
    assert wrong not in result.stdout + result.stderr


def test_check_fails_when_kazoo_is_unreachable(tmp_path):
    key = tmp_path / "key"
    key.write_text("k" * 64)
    result = check("--kazoo-url", "http://127.0.0.1:9", "--api-key-file", str(key), "--account-id", "a" * 32,
                   "--retries", "0")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("check failed: PUT /v2/api_auth: ConnectError")


def test_check_on_the_demo():
    result = check("--demo")
    assert result.returncode == 0, result.stderr
    assert "8 queues in 2 configured accounts" in result.stdout


def test_check_shows_account_names_queue_timeouts_and_agents_by_state(make_simulator, tmp_path):
    from datetime import UTC, datetime

    sim = make_simulator(accounts=2, queues_per_account=2, seed=2, speed=0,
                         start=datetime(2026, 11, 24, 11, 0, tzinfo=UTC))
    short = sim.create_queue(sim.account_ids[1], "Callbacks", timeout=90)
    key = tmp_path / "key"
    key.write_text(sim.api_key)
    result = check("--kazoo-url", sim.url, "--api-key-file", str(key), "--account-id", ",".join(sim.account_ids))
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    names = ["account", "name", "queue", "logged in", "timeout", "rdy/ring/call/wrap/away", "node"]
    starts = [header.index(n) for n in names]

    def cell(row: str, name: str) -> str:
        at = names.index(name)
        end = starts[at + 1] if at + 1 < len(starts) and name != "logged in" else None
        text = row[starts[at]:end] if end else row[starts[at]:]
        return text.split("  ")[0].strip() if name in ("logged in", "name", "queue") else text.strip()

    seen = 0
    for row in rows:
        if row[:32] not in sim.account_ids:
            continue
        seen += 1
        account = row[:32]
        assert cell(row, "name") == f"Customer {sim.account_ids.index(account) + 1}"  # the name beside its id
        by_state = [int(n) for n in cell(row, "rdy/ring/call/wrap/away").split("/")]
        logged_in = int(cell(row, "logged in"))
        # Every logged-in agent of the queue in one state; shared members set away here come on top.
        assert len(by_state) == 5 and sum(by_state) >= logged_in > 0
        assert cell(row, "timeout") == ("90s" if cell(row, "queue") == "Callbacks" else "600s")
    assert seen == 5 and short


def test_the_footer_counts_in_the_singular_for_one(make_simulator, tmp_path):
    sim = make_simulator(accounts=1, queues_per_account=1, seed=2, speed=0)
    key = tmp_path / "key"
    key.write_text(sim.api_key)
    result = check("--kazoo-url", sim.url, "--api-key-file", str(key), "--account-id", sim.account_ids[0])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "1 queue in 1 configured account"


def test_check_names_an_account_that_does_not_exist(make_simulator, tmp_path):
    sim = make_simulator(accounts=1, queues_per_account=1, seed=2, speed=0, no_qubicle_accounts=1)
    key = tmp_path / "key"
    key.write_text(sim.api_key)
    unknown = "0123456789abcdef" * 2
    result = check("--kazoo-url", sim.url, "--api-key-file", str(key), "--account-id", unknown)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"check failed: account {unknown} does not exist or is not visible to these credentials (HTTP 404)"]
    # An account that exists without Qubicle is still "no queues", not an error of its own.
    result = check("--kazoo-url", sim.url, "--api-key-file", str(key),
                   "--account-id", f"{sim.account_ids[0]},{sim.no_qubicle_account_ids[0]}")
    assert result.returncode == 0, result.stderr
    assert f"account {sim.no_qubicle_account_ids[0]}: no queues" in result.stdout


def test_check_takes_the_url_with_v2_as_every_crossbar_example_writes_it(make_simulator, tmp_path):
    sim = make_simulator(accounts=1, queues_per_account=2, seed=2, speed=0)
    key = tmp_path / "key"
    key.write_text(sim.api_key)
    for url in (sim.url + "/v2", sim.url + "/v2/"):
        result = check("--kazoo-url", url, "--api-key-file", str(key), "--account-id", sim.account_ids[0])
        assert result.returncode == 0, result.stderr
        assert "2 queues in 1 configured account" in result.stdout


def test_check_says_how_long_to_wait_when_rate_limited(make_simulator, tmp_path):
    from exporter.simulator import Faults

    sim = make_simulator(accounts=1, queues_per_account=1, seed=2, speed=0)
    sim.set_faults(Faults(rate_limit_rate=1.0))
    key = tmp_path / "key"
    key.write_text(sim.api_key)
    result = check("--kazoo-url", sim.url, "--api-key-file", str(key), "--account-id", sim.account_ids[0],
                   "--retries", "0")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "check failed: PUT /v2/api_auth: HTTP 429 (rate limited); wait 10 s before trying again"]
