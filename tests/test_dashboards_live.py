"""Against a real Prometheus scraping `qubicle-exporter --demo` with the recording rules: every panel has data."""

from __future__ import annotations

import json
import time

from conftest import ROOT, exporter_process
from helpers_prometheus import prometheus

# Series that a healthy demo cannot have: nothing has failed, no alert fires, no field is bad.
NO_DATA_IN_A_HEALTHY_DEMO = {
    "Poll errors by reason",
    "Queues missing from status answers, invalid fields",
}


def test_every_panel_query_returns_data():
    # 3000x: a simulated day in under 30 s, so agents are on shift and calls flow whatever the hour.
    with exporter_process("--demo", "--demo-speed", "3000", "--interval", "1") as exporter:
        target = exporter.url.removeprefix("http://")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ROOT / "alerts" / "qubicle.rules.yml")],
            "scrape_configs": [{"job_name": "qubicle", "static_configs": [{"targets": [target]}]}],
        }
        with prometheus(config) as prom:
            info = prom.wait_for("qubicle_queue_info", lambda r: len(r) == 8)
            queue_id = info[0]["metric"]["queue_id"]
            values = {"$__rate_interval": "10s", "$job": "qubicle", "$account": ".+", "$queue": queue_id}

            pending: dict[str, str] = {}
            for name in ("qubicle-wallboard", "qubicle-queues", "qubicle-exporter"):
                board = json.loads((ROOT / "dashboards" / f"{name}.json").read_text())
                for panel in board["panels"]:
                    if panel["type"] == "row" or panel["title"] in NO_DATA_IN_A_HEALTHY_DEMO:
                        continue
                    for t in panel["targets"]:
                        expr = t["expr"]
                        for variable, value in values.items():
                            expr = expr.replace(variable, value)
                        pending[f"{name}: {panel['title']} [{t['refId']}]"] = expr
            assert len(pending) > 25

            deadline = time.monotonic() + 90
            while pending and time.monotonic() < deadline:
                for key, expr in list(pending.items()):
                    if prom.query(expr):
                        del pending[key]
                if pending:
                    time.sleep(1)
            assert not pending, f"panels without data after 90 s: {sorted(pending)}"
