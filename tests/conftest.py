"""Shared fixtures: the Qubicle simulator on loopback, free ports, an exporter process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest


ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., Any]]:
    from exporter.simulator import Simulator, SimulatorConfig

    started: list[Simulator] = []

    def make(**config: object) -> Simulator:
        sim = Simulator(SimulatorConfig(**config))  # type: ignore[arg-type]
        sim.start(host="127.0.0.1", port=0)
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@dataclass
class ExporterProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str = "/metrics", **kwargs: object) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **kwargs)  # type: ignore[arg-type]


@contextmanager
def exporter_process(*args: str, env: dict[str, str] | None = None, ready: bool = True, probe: bool = True,
                     timeout: float = 30.0) -> Iterator[ExporterProcess]:
    """Runs `python -m exporter` on a free loopback port until the block ends (then SIGTERM).

    With probe=False (TLS or basic auth in front), it only waits for the port to accept connections.
    """
    port = free_port()
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1", **(env or {})}
    log_dir = Path(tempfile.mkdtemp(prefix="qubicle-exporter-"))
    log_path = log_dir / "exporter.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--listen", f"127.0.0.1:{port}", "--log-format", "json", *args],
            stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT,
        )
    exporter = ExporterProcess(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        deadline = time.monotonic() + timeout
        path = "/-/ready" if ready else "/-/healthy"
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"exporter exited with {proc.returncode}: {exporter.logs()[-2000:]}")
            if not probe:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    pass
            else:
                try:
                    if httpx.get(exporter.url + path, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise AssertionError(f"exporter not {path} within {timeout}s: {exporter.logs()[-2000:]}")
            time.sleep(0.1)
        yield exporter
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(log_dir, ignore_errors=True)
