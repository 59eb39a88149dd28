"""Processes for the benchmarks: a standalone simulator and an exporter, on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[Any]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@dataclass
class SimulatorProcess:
    url: str
    api_key: str
    master_account_id: str
    account_ids: list[str]
    pid: int


@contextmanager
def simulator(accounts: int, queues: int, latency: float = 0.0, seed: int = 1,
              agents: float | None = None, speed: float = 1.0) -> Iterator[SimulatorProcess]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter.simulator", "--listen", f"127.0.0.1:{port}", "--accounts", str(accounts),
         "--queues", str(queues), "--latency", str(latency), "--seed", str(seed), "--no-rate-limit",
         "--speed", f"{speed:g}", "--start", "2026-11-24T10:00:00+00:00", *(("--agents", f"{agents:g}") if agents else ())],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )
    try:
        fields: dict[str, str] = {}
        assert proc.stdout is not None
        while len(fields) < 4:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("the simulator exited before printing its settings")
            key, _, value = line.strip().partition(": ")
            fields[key] = value
        yield SimulatorProcess(fields["url"], fields["api_key"], fields["master_account_id"],
                               fields["account_ids"].split(","), proc.pid)
    finally:
        stop(proc)


@contextmanager
def exporter(sim: SimulatorProcess, key_file: Path, *args: str,
             log_file: Path | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """An exporter process polling `sim`; with `log_file`, its info-level JSON log goes there."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(log_file, "wb") if log_file else None  # noqa: SIM115 - closed below, after the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--kazoo-url", sim.url, "--api-key-file", str(key_file),
         "--account-id", sim.master_account_id, "--discover-descendants", "--listen", f"127.0.0.1:{port}",
         "--log-level", "info" if log else "warning", "--log-format", "json", *args],
        stdout=log or subprocess.DEVNULL, stderr=log or subprocess.DEVNULL, cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("the exporter never became ready")
        yield url, proc
    finally:
        stop(proc)
        if log:
            log.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field}")
