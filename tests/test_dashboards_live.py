"""Against a real Prometheus scraping `python -m exporter --demo` with the recording rules: every panel has data.

The dashboards' own variable queries are evaluated against that Prometheus the way Grafana would
(label_values -> the series API, query_result -> an instant query read through the variable's
regex), and the values they yield are substituted into every panel query.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from conftest import ROOT, exporter_process
from helpers_prometheus import Prometheus, prometheus

pytestmark = pytest.mark.e2e  # starts processes or needs Debian's tools

DEMO_ACCOUNTS, DEMO_QUEUES = 2, 4  # the --demo defaults, passed explicitly

# Panels that cannot have data in a healthy demo: nothing fails, no field is bad, no alert fires.
NO_DATA_IN_A_HEALTHY_DEMO = {
    ("qubicle-exporter", "Poll errors by reason"),  # qubicle_poll_errors_total: no poll has failed
    ("qubicle-exporter", "Queues missing from status answers, invalid fields, names cut"),  # none of them
}
# The ALERTS annotation is not a panel query and stays empty while every alert is quiet.

DEADLINE = 60.0


def grafana_regex(js: str) -> re.Pattern[str]:
    return re.compile(js[1:-1].replace("(?<", "(?P<"))


def regex_value(values: list[str]) -> str:
    """A multi-value variable as Grafana writes it into a PromQL regex."""
    return values[0] if len(values) == 1 else "(" + "|".join(re.escape(v) for v in values) + ")"


def substitute(expr: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, expr
    return expr


def variable_options(prom: Prometheus, variable: dict[str, Any], values: dict[str, str]) -> list[tuple[str, str]]:
    """(value, text) options of a query variable, as Grafana's Prometheus datasource computes them."""
    query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
    query = substitute(query, values)
    if m := re.fullmatch(r"label_values\((.+), (\w+)\)", query):
        series = prom.api("series", **{"match[]": m.group(1)})
        found = sorted({s[m.group(2)] for s in series if m.group(2) in s})
        return [(v, v) for v in found]
    m = re.fullmatch(r"query_result\((.+)\)", query)
    assert m, f"unexpected variable query {query}"
    regex = grafana_regex(variable["regex"])
    options = []
    for sample in prom.query(m.group(1)):
        labels = ", ".join(f'{k}="{v}"' for k, v in sorted(sample["metric"].items()))
        line = f'{sample["metric"].get("__name__", "")}{{{labels}}} {sample["value"][1]} {sample["value"][0]}'
        match = regex.search(line)
        assert match, f"{variable['regex']} does not match {line}"
        options.append((match.group("value"), match.group("text")))
    return sorted(options)


def test_every_panel_query_returns_data():
    # --demo-speed 3000, not 60: the simulator starts at the real time of day, and at 60x a night
    # hour has no agent logged in and almost no calls for the whole minute this test may wait. At
    # 3000x a simulated day passes in under 30 s, so shifts and calls happen whatever the hour.
    args = ("--demo", "--interval", "1", "--demo-speed", "3000", "--agent-metrics",
            "--demo-accounts", str(DEMO_ACCOUNTS), "--demo-queues", str(DEMO_QUEUES))
    with exporter_process(*args) as exporter:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "qubicle",
                                "static_configs": [{"targets": [exporter.url.removeprefix("http://")]}]}],
        }
        with prometheus(config, rule_files=[ROOT / "alerts" / "qubicle.rules.yml"]) as prom:
            started = time.monotonic()
            prom.wait_for("qubicle_queue_info", lambda r: len(r) == DEMO_ACCOUNTS * DEMO_QUEUES, timeout=DEADLINE)
            boards = {uid: json.loads((ROOT / "dashboards" / f"{uid}.json").read_text())
                      for uid in ("qubicle-wallboard", "qubicle-queues", "qubicle-exporter", "qubicle-agents")}

            # The variables, evaluated in order, each with the values of those before it ("All" selected).
            values = {"$__rate_interval": "4s", "$__interval": "1s", "$__range": "1h"}
            queues: list[tuple[str, str]] = []
            for variable in boards["qubicle-queues"]["templating"]["list"]:
                if variable["type"] != "query":
                    continue
                options = variable_options(prom, variable, values)
                assert options, f"variable {variable['name']} has no options"
                values[f"${variable['name']}"] = regex_value([v for v, _ in options])
                if variable["name"] == "queue":
                    queues = options
            assert values["$job"] == "qubicle"
            assert len(values["$account"].split("|")) == DEMO_ACCOUNTS
            assert len(queues) == DEMO_ACCOUNTS * DEMO_QUEUES
            names = {s["metric"]["account_id"]: s["metric"]["account_name"] for s in prom.query("qubicle_account_info")}
            info = {s["metric"]["queue_id"]: f'{names[s["metric"]["account_id"]]} / {s["metric"]["queue_name"]}'
                    for s in prom.query("qubicle_queue_info")}
            assert sorted(set(names.values())) == ["Customer 1", "Customer 2"]
            assert dict(queues) == info, "queue variable: value = queue_id, text = account name / queue_name"

            pending: dict[str, str] = {}
            for uid, board in boards.items():
                for panel in board["panels"]:
                    if panel["type"] == "row" or (uid, panel["title"]) in NO_DATA_IN_A_HEALTHY_DEMO:
                        continue
                    for target in panel["targets"]:
                        if uid == "qubicle-wallboard":
                            # One repeated row per queue, each with $queue set to that queue alone.
                            for queue_id, name in queues:
                                key = f"{uid}: {name} ({queue_id}): {panel['title']} [{target['refId']}]"
                                pending[key] = substitute(target["expr"], {**values, "$queue": queue_id})
                        else:
                            pending[f"{uid}: {panel['title']} [{target['refId']}]"] = substitute(
                                target["expr"], values)
            assert len(pending) > 60

            while pending and time.monotonic() - started < DEADLINE:
                for key, expr in list(pending.items()):
                    if prom.query(expr):
                        del pending[key]
                if pending:
                    time.sleep(0.5)
            assert not pending, f"panel queries without data after {DEADLINE:.0f} s: {sorted(pending)}"
