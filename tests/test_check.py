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
    assert lines[0].split()[:3] == ["account", "queue", "waiting"]
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
