"""No token, API key, password or md5 credential appears in logs, error messages or metrics,
across runs with failures and re-authentications."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time

import pytest
from conftest import ROOT, exporter_process

from exporter.simulator import Faults

pytestmark = pytest.mark.e2e  # starts processes or needs Debian's tools


def outputs_of_a_run(exporter, sim, min_tokens: int, deadline: float = 60.0) -> tuple[str, list[str]]:
    """Scrapes /metrics and / until Kazoo has issued `min_tokens` tokens and the exporter has logged
    a re-authentication (the code paths that handle secrets have run), or fails at the deadline."""
    tokens: set[str] = set()
    until = time.monotonic() + deadline
    metrics = ""
    while True:
        metrics += exporter.get("/metrics").text + exporter.get("/").text
        tokens.add(sim.last_token)
        # Two tokens seen at least: with several re-authentications between two samples, the
        # last token alone would leave the tokens before it unchecked.
        if sim.tokens_issued >= min_tokens and "kazoo_reauthenticated" in exporter.logs() and \
                len(tokens - {""}) >= min(2, min_tokens):
            break
        assert time.monotonic() < until, f"only {sim.tokens_issued} tokens issued, re-authenticated: " \
            f"{'kazoo_reauthenticated' in exporter.logs()}"
        time.sleep(0.2)
    metrics += exporter.get("/metrics").text  # after the re-authentication too
    return metrics, sorted(t for t in tokens if t)


def assert_absent(haystack: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret and secret not in haystack, f"a secret ({secret[:4]}...) leaked"


def test_api_key_and_tokens_never_leak_through_reauthentications(make_simulator, tmp_path):
    sim = make_simulator(accounts=3, queues_per_account=2, seed=31, speed=60, rate_limit=False,
                         faults=Faults(token_expire_every=4, error_rate=0.2, non_json_rate=0.1))
    key = tmp_path / "key"
    key.write_text(sim.api_key)
    with exporter_process("--kazoo-url", sim.url, "--api-key-file", str(key), "--interval", "0.5",
                          "--account-id", ",".join(sim.account_ids), "--log-level", "debug", "--retries", "1",
                          "--max-data-age", "5") as exporter:
        metrics, tokens = outputs_of_a_run(exporter, sim, min_tokens=3)
        logs = exporter.logs()
    assert "qubicle_api_reauthentications_total" in metrics
    assert len(tokens) >= 2
    assert_absent(logs + metrics, [sim.api_key, *tokens])


def test_user_credentials_never_leak(make_simulator, tmp_path):
    sim = make_simulator(accounts=1, queues_per_account=2, seed=32, speed=60, rate_limit=False,
                         faults=Faults(token_expire_every=3))
    password = tmp_path / "password"
    password.write_text(sim.config.password)
    digest = hashlib.md5(f"{sim.config.username}:{sim.config.password}".encode()).hexdigest()
    with exporter_process("--kazoo-url", sim.url, "--username", sim.config.username, "--password-file",
                          str(password), "--account-name", sim.config.account_name, "--interval", "0.5",
                          "--account-id", sim.account_ids[0], "--log-level", "debug") as exporter:
        metrics, tokens = outputs_of_a_run(exporter, sim, min_tokens=2)
        logs = exporter.logs()
    # The run re-authenticated with the user's credentials (the md5 sent again), not only once at start.
    assert sim.tokens_issued >= 2 and "kazoo_reauthenticated" in logs
    assert_absent(logs + metrics, [sim.config.password, digest, *tokens])


def test_rejected_secrets_are_not_echoed(make_simulator, tmp_path):
    sim = make_simulator(accounts=1, queues_per_account=1, seed=33, speed=0)
    wrong_key = "e" * 64
    key = tmp_path / "key"
    key.write_text(wrong_key)
    token_file = tmp_path / "token"
    bad_token = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.bm90LWEtc2lnbmF0dXJl"
    token_file.write_text(bad_token)
    seen = ""
    for credential in (["--api-key-file", str(key)], ["--auth-token-file", str(token_file)]):
        args = ["--kazoo-url", sim.url, "--account-id", sim.account_ids[0], *credential]
        check = subprocess.run([sys.executable, "-m", "exporter", "check", *args], capture_output=True, text=True,
                               timeout=60, cwd=ROOT)
        assert check.returncode == 1
        seen += check.stdout + check.stderr
        with exporter_process(*args, "--interval", "0.5", "--log-level", "debug", ready=False) as exporter:
            down = f'qubicle_up{{account_id="{sim.account_ids[0]}"}} 0.0'
            until = time.monotonic() + 30
            while down not in (text := exporter.get("/metrics").text):  # a rejected poll has happened
                assert time.monotonic() < until, f"no failed poll reported within 30s: {text[-500:]}"
                time.sleep(0.2)
            seen += text + exporter.logs()
    # Crossbar echoes an unknown key inside its 404 and the caller's token in every envelope.
    assert_absent(seen, [wrong_key, bad_token])
