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


def debian_tool(name: str, package: str = "prometheus") -> str:
    """The path of a Debian tool the tests need; a missing one fails the test naming its package."""
    path = shutil.which(name)
    assert path, f"{name} is not installed (Debian package {package}; run `make tools`)"
    return path


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


def http_ok(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


def port_open(port: int) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    return probe


@contextmanager
def managed_process(argv: list[str], *, name: str, ready: Callable[[], bool], timeout: float = 30.0,
                    env: dict[str, str] | None = None, cwd: Path | None = None,
                    preexec_fn: Callable[[], None] | None = None,
                    ) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """Starts a process with its output in a temporary log, waits until `ready()`, stops it after.

    Yields (process, log path). The process gets SIGTERM at the end, SIGKILL if it lingers.
    """
    workdir = Path(tempfile.mkdtemp(prefix=f"qubicle-{name}-"))
    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, preexec_fn=preexec_fn)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}: "
                                     f"{log_path.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not ready within {timeout}s: "
                                     f"{log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield proc, workdir
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def exporter_process(*args: str, env: dict[str, str] | None = None, ready: bool = True, probe: bool = True,
                     timeout: float = 30.0, preexec_fn: Callable[[], None] | None = None) -> Iterator[ExporterProcess]:
    """Runs `python -m exporter` on a free loopback port until the block ends (then SIGTERM).

    With probe=False (TLS or basic auth in front), it only waits for the port to accept connections.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1", **(env or {})}
    check = http_ok(url + ("/-/ready" if ready else "/-/healthy")) if probe else port_open(port)
    argv = [sys.executable, "-m", "exporter", "--listen", f"127.0.0.1:{port}", "--log-format", "json", *args]
    with managed_process(argv, name="exporter", ready=check, timeout=timeout, env=full_env, cwd=ROOT,
                         preexec_fn=preexec_fn) as (proc, wd):
        yield ExporterProcess(url, proc, wd / "exporter.log")


# ---- a real browser: Debian's chromium driven by Playwright (the pages' tests) ------------------

CHROMIUM = "/usr/bin/chromium"
# No sandbox: the tests run as root in CI. The rest keeps chromium off the network and quiet.
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium through its executable_path (a Playwright browser download cannot work here)."""
    from playwright.sync_api import sync_playwright

    # A missing browser is a failure, not a skip: scripts/install-tools installs Debian's chromium.
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: run scripts/install-tools (Debian package chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()
