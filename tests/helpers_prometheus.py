"""A real Prometheus (Debian's `prometheus`) on a free loopback port, for tests.

    with prometheus({"global": {"scrape_interval": "1s"}, "scrape_configs": [...]},
                    rules={"qubicle.rules.yml": rules_text}) as prom:
        prom.wait_for('up{job="qubicle"}', lambda r: len(r) == 1 and r[0]["value"][1] == "1")
        prom.value("count(qubicle_queue_info)")

A missing binary fails the test (it is a declared test dependency), it is never skipped.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from conftest import free_port, http_ok, managed_process

PROMETHEUS_QUERY_TIMEOUT = 10.0
Vector = list[dict[str, Any]]


@dataclass
class Prometheus:
    url: str
    workdir: Path  # holds prometheus.log; removed when the context ends

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; the `data` of a successful answer, else an AssertionError."""
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=PROMETHEUS_QUERY_TIMEOUT)
        body = response.json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> Vector:
        """The instant vector of `expr` now (a list of {"metric": {...}, "value": [t, "v"]}).

        A scalar or string result comes back as a one-element vector with empty labels.
        """
        data = self.api("query", query=expr)
        return data["result"] if data["resultType"] == "vector" else [{"metric": {}, "value": data["result"]}]

    def value(self, expr: str) -> float | None:
        """The single value of `expr`, None if the vector is empty; more than one series is an error."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr}: expected at most one series, got {result}"
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expr: str, predicate: Callable[[Vector], bool], timeout: float = 30.0) -> Vector:
        """Polls `expr` until predicate(result) holds; returns that result, or fails naming the last one."""
        deadline = time.monotonic() + timeout
        result: Vector = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if predicate(result):
                return result
            time.sleep(0.25)
        raise AssertionError(f"{expr}: condition not met within {timeout}s; last result {result}; "
                             f"targets {[(t['scrapeUrl'], t['health'], t['lastError']) for t in self.targets()]}")

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing), as /api/v1/alerts lists them."""
        return self.api("alerts")["alerts"]

    def rules(self) -> list[dict[str, Any]]:
        return self.api("rules")["groups"]

    def targets(self) -> list[dict[str, Any]]:
        return self.api("targets")["activeTargets"]

    def log(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")


def _config_with_rules(config: Mapping[str, Any] | str, rule_paths: Sequence[Path]) -> str:
    if not rule_paths:
        return config if isinstance(config, str) else yaml.safe_dump(dict(config))
    data = dict(yaml.safe_load(config) or {}) if isinstance(config, str) else dict(config)
    data["rule_files"] = [*data.get("rule_files", []), *(str(p) for p in rule_paths)]
    return yaml.safe_dump(data)


@contextmanager
def prometheus(config: Mapping[str, Any] | str, *, rule_files: Sequence[str | Path] = (),
               rules: Mapping[str, str | Mapping[str, Any]] | None = None, extra_args: Sequence[str] = (),
               timeout: float = 30.0) -> Iterator[Prometheus]:
    """Runs Prometheus with `config` (a dict or YAML text) until the block ends, then stops it.

    rule_files: existing rule files, added to the config's rule_files.
    rules: file name -> rule file content (YAML text or a dict), written next to the config and
    added too. extra_args go to the command line (e.g. "--web.enable-lifecycle").
    Waits for /-/ready; a config Prometheus rejects fails here with its log in the message.
    """
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (Debian package prometheus; run `make tools`)"
    config_dir = Path(tempfile.mkdtemp(prefix="qubicle-prom-config-"))
    try:
        written = []
        for name, content in (rules or {}).items():
            path = config_dir / name
            path.write_text(content if isinstance(content, str) else yaml.safe_dump(dict(content)))
            written.append(path)
        config_file = config_dir / "prometheus.yml"
        config_file.write_text(_config_with_rules(config, [*map(Path, rule_files), *written]))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [binary, f"--config.file={config_file}", f"--storage.tsdb.path={config_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}", *extra_args]
        with managed_process(argv, name="prometheus", ready=http_ok(f"{url}/-/ready"), timeout=timeout) as (_, wd):
            yield Prometheus(url, wd)
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)
