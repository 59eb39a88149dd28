"""Signals on a real exporter process (issue 12 item 13): SIGHUP reloads the web config (users,
certificates) as the Go exporters do, or is ignored with a log line, and never kills the process;
SIGTERM during a stuck poll exits cleanly with JSON lines only."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import bcrypt
import httpx
import pytest
import trustme
import yaml
from conftest import ExporterProcess, exporter_process

pytestmark = pytest.mark.e2e


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:g}s: {what}"
        time.sleep(0.1)


def json_lines(text: str) -> list[dict[str, object]]:
    entries = []
    for line in text.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"a line of the JSON log is not JSON: {line[:300]!r}\n{text[-3000:]}") from None
    return entries


def events(exporter: ExporterProcess) -> list[object]:
    return [e.get("event") for e in json_lines(exporter.logs())]


def test_sighup_without_a_web_config_is_ignored_with_a_log_line():
    with exporter_process("--demo", "--interval", "5") as exporter:
        for n in range(1, 4):
            exporter.proc.send_signal(signal.SIGHUP)
            def ignored(n: int = n) -> bool:
                return events(exporter).count("sighup_ignored") == n

            wait_for(ignored, 20, f"{n} sighup_ignored lines")
        assert exporter.proc.poll() is None
        assert exporter.get("/-/healthy").status_code == 200


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def _served_certificate(port: int, ca: Path) -> bytes:
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_sighup_reloads_users_and_certificates_and_keeps_the_old_config_when_the_new_is_bad(tmp_path):
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    first, second = ca.issue_cert("127.0.0.1"), ca.issue_cert("127.0.0.1")
    first.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    config = tmp_path / "web.yml"
    tls = {"cert_file": "server.pem", "key_file": "server.pem"}
    config.write_text(yaml.safe_dump({"tls_server_config": tls, "basic_auth_users": {"alice": _hash("a-secret")}}))

    with exporter_process("--demo", "--interval", "5", "--web.config.file", str(config), probe=False) as exporter:
        port = int(exporter.url.rsplit(":", 1)[1])
        url = f"https://127.0.0.1:{port}/-/healthy"
        with httpx.Client(verify=ssl.create_default_context(cafile=str(tmp_path / "ca.pem")), timeout=10) as client:
            def status(user: str, password: str) -> int:
                return client.get(url, auth=(user, password)).status_code

            assert status("alice", "a-secret") == 200 and status("bob", "b-secret") == 401
            first_der = ssl.PEM_cert_to_DER_cert(first.cert_chain_pems[0].bytes().decode())
            assert _served_certificate(port, tmp_path / "ca.pem") == first_der

            # Rotate the certificate and replace the users, then SIGHUP.
            second.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
            config.write_text(yaml.safe_dump({"tls_server_config": tls, "basic_auth_users": {"bob": _hash("b-secret")}}))
            exporter.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "web_config_reloaded" in events(exporter), 20, "web_config_reloaded logged")
            assert status("bob", "b-secret") == 200 and status("alice", "a-secret") == 401
            second_der = ssl.PEM_cert_to_DER_cert(second.cert_chain_pems[0].bytes().decode())
            assert _served_certificate(port, tmp_path / "ca.pem") == second_der

            # A broken file, then TLS turned off: refused, the running config stays.
            config.write_text("basic_auth_users: [not, a, mapping]\n")
            exporter.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: events(exporter).count("web_config_reload_failed") == 1, 20, "the failure logged")
            config.write_text(yaml.safe_dump({"basic_auth_users": {"carol": _hash("c-secret")}}))
            exporter.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: events(exporter).count("web_config_reload_failed") == 2, 20, "the refusal logged")
            assert status("bob", "b-secret") == 200 and status("carol", "c-secret") == 401
            assert exporter.proc.poll() is None
        failures = [e for e in json_lines(exporter.logs()) if e.get("event") == "web_config_reload_failed"]
        assert "basic_auth_users" in str(failures[0]["error"])
        assert "TLS on or off" in str(failures[1]["error"])
        assert "secret" not in exporter.logs()


@contextmanager
def stuck_kazoo() -> Iterator[tuple[str, list[socket.socket]]]:
    """Accepts connections and never answers: every poll hangs until its timeout."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(5)
        server.close()
        for s in accepted:
            s.close()


def test_sigterm_during_a_stuck_poll_exits_cleanly_with_json_lines_only(tmp_path):
    key = tmp_path / "api-key"
    key.write_text("k" * 64)
    with stuck_kazoo() as (url, accepted), exporter_process(
            "--kazoo-url", url, "--account-id", "0123456789abcdef0123456789abcdef", "--api-key-file", str(key),
            "--read-timeout", "60", "--poll-timeout", "60", ready=False) as exporter:
        wait_for(lambda: bool(accepted), 20, "the poll under way (Kazoo connected to)")
        exporter.proc.send_signal(signal.SIGTERM)
        assert exporter.proc.wait(timeout=20) == 0
        entries = json_lines(exporter.logs())
    names = [e.get("event") for e in entries]
    assert "stopping" in names and "poll_cancelled" in names
    assert not [e for e in entries if e.get("level") in ("error", "critical") or "exception" in e], entries
