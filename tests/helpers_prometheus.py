"""A real Prometheus (Debian's `prometheus`) on a free loopback port, for tests."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from conftest import free_port, http_ok, managed_process

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
    config_dir = Path(tempfile.mkdtemp(prefix="qubicle-prom-config-"))
    config_file = config_dir / "prometheus.yml"
    config_file.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [binary, f"--config.file={config_file}", f"--storage.tsdb.path={config_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", *extra_args]
    try:
        with managed_process(argv, name="prometheus", ready=http_ok(f"{url}/-/ready"), timeout=timeout) as (_, wd):
            yield Prometheus(url, wd)
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)
