"""A real Prometheus (Debian's `prometheus`) on a free loopback port, for tests."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from conftest import free_port

PROMETHEUS_QUERY_TIMEOUT = 10.0


@dataclass
class Prometheus:
    url: str
    workdir: Path

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=PROMETHEUS_QUERY_TIMEOUT)
        body = response.json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of `expr` now (a list of {"metric": {...}, "value": [t, "v"]})."""
        data = self.api("query", query=expr)
        return data["result"] if data["resultType"] == "vector" else [{"metric": {}, "value": data["result"]}]

    def wait_for(self, expr: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0
                 ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if predicate(result):
                return result
            time.sleep(0.5)
        raise AssertionError(f"{expr}: condition not met within {timeout}s; last result {result}")

    def alerts(self) -> list[dict[str, Any]]:
        return self.api("alerts")["alerts"]

    def targets(self) -> list[dict[str, Any]]:
        return self.api("targets")["activeTargets"]

    def log(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")


@contextmanager
def prometheus(config: dict[str, Any] | str, *, extra_args: tuple[str, ...] = (), timeout: float = 30.0
               ) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (Debian package prometheus; run `make tools`)"
    workdir = Path(tempfile.mkdtemp(prefix="qubicle-prom-"))
    (workdir / "prometheus.yml").write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    port = free_port()
    prom = Prometheus(f"http://127.0.0.1:{port}", workdir)
    with open(workdir / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle", *extra_args],
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited: {prom.log()[-3000:]}")
            try:
                if httpx.get(f"{prom.url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus not ready within {timeout}s: {prom.log()[-3000:]}")
            time.sleep(0.1)
        yield prom
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
