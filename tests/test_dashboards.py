"""The Grafana dashboards: generated == committed, well-formed, and every query parses and names real series.

PromQL is checked twice, by two real parsers: Prometheus's own (`promtool check rules` on a rule
file made of every expression) decides validity; promql-parser's syntax tree lists the metric
names and range selectors, so no regex guesses what is a metric and what is a label or function.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from conftest import ROOT, debian_tool

sys.path.insert(0, str(ROOT / "dashboards"))
import generate

DASHBOARD_DIR = ROOT / "dashboards"
DASHBOARDS = sorted(DASHBOARD_DIR.glob("*.json"))
UIDS = {"qubicle-wallboard", "qubicle-queues", "qubicle-exporter", "qubicle-agents"}
RULES = ROOT / "alerts" / "qubicle.rules.yml"
ALERTS = ROOT / "alerts" / "qubicle.alerts.yml"

# Grafana's variables, replaced by sample values of the right shape before parsing.
SAMPLE_VALUES = {
    "$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h",
    "${queue:text}": "Sales", "${datasource}": "prom",
    "$job": "qubicle", "$account": "(a|b)", "$queue": "q1",
}

# The exporter's public interface (README's metric table) the dashboards rely on; the test also
# reads what the collector and the exporter's own registry really serve.
QUEUE_METRICS = {
    "qubicle_queue_recipients", "qubicle_queue_active_recipients", "qubicle_queue_available_recipients",
    "qubicle_queue_active_sessions", "qubicle_queue_estimated_wait_seconds", "qubicle_queue_average_wait_seconds",
    "qubicle_queue_longest_wait_seconds", "qubicle_queue_daily_sessions", "qubicle_queue_daily_missed_sessions",
    "qubicle_queue_daily_abandoned_sessions", "qubicle_queue_sessions_total", "qubicle_queue_missed_sessions_total",
    "qubicle_queue_abandoned_sessions_total", "qubicle_queue_info",
    "qubicle_up", "qubicle_last_poll_success_timestamp_seconds",
}


# ---- helpers -----------------------------------------------------------------------------------------

def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def boards() -> dict[str, dict[str, Any]]:
    return {load(p)["uid"]: load(p) for p in DASHBOARDS}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def expressions(board: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(board) for t in p.get("targets", [])]
    exprs += [a["expr"] for a in board.get("annotations", {}).get("list", []) if a.get("expr")]
    return exprs


def substitute(expr: str) -> str:
    for name, value in SAMPLE_VALUES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"an unknown Grafana variable is left in {expr}"
    return expr


def syntax_nodes(node: Any) -> Iterator[Any]:
    yield node
    for attr in ("expr", "lhs", "rhs", "vector_selector", "param"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (str, int, float)):
            yield from syntax_nodes(child)
    for child in getattr(node, "args", None) or []:
        yield from syntax_nodes(child)


def metric_names(expr: str) -> set[str]:
    names = set()
    for node in syntax_nodes(promql_parser.parse(substitute(expr))):
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"selector without a metric name in {expr}"
            names.add(node.name)
    return names


def collector_metric_names() -> set[str]:
    """The names the exporter builds its families from (the table in exporter/figures.py)."""
    from exporter import figures

    names = {f.metric for f in figures.FIGURES} | {f.counter for f in figures.COUNTED if f.counter}
    names |= {s.metric for s in figures.SETTINGS} | {metric for _, metric, _ in figures.AGENT_COUNTERS}
    names |= {figures.ACCOUNT_INFO, figures.ACCOUNT_AGENTS, figures.QUEUE_AGENTS, figures.AGENT_STATE,
              figures.AGENT_AVERAGE_CALL}
    return names | {name for name, _ in figures.ACCOUNT_METRICS} | {figures.QUEUE_INFO}


def exporter_self_metric_names() -> set[str]:
    """Sample names of the exporter's own instrumentation, from its real registry."""
    from exporter import selfmetrics

    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "summary": ["_sum", "_count"]}
    names = set()
    # Families, not samples: a labelled counter nobody has incremented yet has no sample.
    for family in selfmetrics.create(process=True).registry.collect():
        names |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
    return names


def recorded_names() -> set[str]:
    # No fallback list: without the rules file the dashboards' queries have nothing to check against.
    assert RULES.exists(), f"{RULES} is missing"
    return {r["record"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "record" in r}


def recorded_constant(name: str) -> float:
    """The number of a `record: <name>` / `expr: vector(<number>)` default threshold in the rules."""
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("record") == name:
                match = re.fullmatch(r"\s*vector\(\s*([0-9.]+)\s*\)\s*", rule["expr"])
                assert match, f"{name} is not a constant: {rule['expr']}"
                return float(match.group(1))
    raise AssertionError(f"no recording rule {name} in {RULES}")


def steps(panel: dict[str, Any]) -> list[tuple[float | None, str]]:
    return [(s["value"], s["color"]) for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]


def panel_titled(board: dict[str, Any], title: str) -> dict[str, Any]:
    (panel,) = [p for p in panels(board) if p["title"] == title]
    return panel


# ---- generated == committed -------------------------------------------------------------------------

def test_committed_json_is_what_the_code_generates():
    assert {p.name for p in DASHBOARDS} == set(generate.DASHBOARDS)
    for name, text in generate.render().items():
        assert (DASHBOARD_DIR / name).read_text() == text, f"{name} is stale: run `make dashboards`"


def test_generator_check_mode_detects_a_stale_file(tmp_path, monkeypatch):
    monkeypatch.setattr(generate, "HERE", tmp_path)
    assert generate.main([]) == 0 and generate.main(["--check"]) == 0
    (tmp_path / "qubicle-queues.json").write_text("{}\n")
    assert generate.main(["--check"]) == 1


# ---- structure ---------------------------------------------------------------------------------------

def test_uids_are_unique_and_stable():
    assert sorted(load(p)["uid"] for p in DASHBOARDS) == sorted(UIDS)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path):
    board = load(path)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: dict[tuple[int, int], int] = {}
    for p in board["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["y"] >= 0 and g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in occupied, f"panel {p['id']} overlaps panel {occupied[(x, y)]}"
                occupied[(x, y)] = p["id"]
    for p in panels(board):
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], f"{p['title']} has no query"
        for t in p["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert t["expr"].strip() and t["refId"], p["title"]
        assert p["fieldConfig"]["defaults"].get("unit"), f"{p['title']} has no unit"
    for a in board["annotations"].get("list", []):
        assert a["datasource"]["uid"] == "${datasource}", a["name"]
    # Importable through the UI: the datasource is an input; the variable defaults to it.
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    assert board["__inputs"][0]["pluginId"] == "prometheus"
    assert "${DS_PROMETHEUS}" not in json.dumps(board["panels"]), "panels must use ${datasource}, not the input"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_variables_are_chained(path):
    board = load(path)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert list(variables)[:3] == ["datasource", "job", "account"]
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["datasource"]["current"]["value"] == "${DS_PROMETHEUS}"
    for name in ("job", "account", "queue"):
        if name in variables:
            assert variables[name]["datasource"]["uid"] == "${datasource}"
            assert variables[name]["multi"] and variables[name]["includeAll"], name
    assert variables["job"]["query"].startswith("label_values(")
    assert variables["account"]["query"].startswith("label_values(") and "$job" in variables["account"]["query"]
    assert variables["account"]["query"].endswith(", account_id)")
    if "queue" in variables:
        queue = variables["queue"]["query"]["query"]
        assert "qubicle_queue_info" in queue and "$job" in queue and "$account" in queue


def grafana_regex(js: str) -> re.Pattern[str]:
    """A Grafana variable regex (`/…/`, JavaScript named groups) as a Python pattern."""
    assert js.startswith("/") and js.endswith("/")
    return re.compile(js[1:-1].replace("(?<", "(?P<"))


def test_queue_variable_takes_the_id_as_value_and_account_slash_queue_as_text():
    queue = next(v for v in load(DASHBOARD_DIR / "qubicle-queues.json")["templating"]["list"] if v["name"] == "queue")
    # A line as Grafana's query_result() writes it: the metric, its labels sorted, value, time.
    line = ('{account_id="acc1", account_name="Acme", display="Acme / Sales \\u00e9 2", queue_id="5e6f7081", '
            'queue_name="Sales \\u00e9 2"} 1 1700000000000')
    match = grafana_regex(queue["regex"]).search(line)
    assert match and match.group("value") == "5e6f7081" and match.group("text") == "Acme / Sales \\u00e9 2"
    # The name comes from qubicle_account_info; a queue whose account has none keeps its id as the name.
    expr = queue["query"]["query"]
    assert "qubicle_account_info" in expr and "or on (account_id, queue_id)" in expr


# ---- PromQL ------------------------------------------------------------------------------------------

@pytest.mark.e2e
def test_every_expression_parses_with_promtool(tmp_path):
    promtool = debian_tool("promtool")
    rules = []
    for uid, board in boards().items():
        for i, expr in enumerate(expressions(board)):
            rules.append({"record": f"check:{uid.replace('-', '_')}:{i}", "expr": substitute(expr)})
    variable_queries = [v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
                        for board in boards().values() for v in board["templating"]["list"] if v["type"] == "query"]
    for i, q in enumerate(variable_queries):
        # label_values(<selector>, label) and query_result(<expr>) hold PromQL inside.
        inner = re.fullmatch(r"label_values\((.+), \w+\)|query_result\((.+)\)|label_values\((\w+)\)", q)
        assert inner, f"unexpected variable query {q}"
        rules.append({"record": f"check:variable:{i}", "expr": substitute(next(g for g in inner.groups() if g))})
    assert len(rules) > 30
    file = tmp_path / "dashboard-exprs.yml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(file)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


@pytest.mark.e2e
def test_promtool_check_would_catch_a_broken_expression(tmp_path):
    # Guards the test above: the same path with one bad expression must fail.
    promtool = debian_tool("promtool")
    file = tmp_path / "bad.yml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"record": "check:bad", "expr": substitute("sum by (queue_id (qubicle_queue_active_sessions)")}]}]}))
    result = subprocess.run([promtool, "check", "rules", str(file)], capture_output=True, timeout=60, check=False)
    assert result.returncode != 0


def test_expressions_name_only_served_or_recorded_metrics():
    served = collector_metric_names()
    assert served >= QUEUE_METRICS, f"the public interface lost {sorted(QUEUE_METRICS - served)}"
    known = served | exporter_self_metric_names() | recorded_names() | {"ALERTS", "up"}
    assert "qubicle_poll_duration_seconds_bucket" in known and "qubicle_api_requests_total" in known
    used = set()
    for uid, board in boards().items():
        for expr in expressions(board):
            names = metric_names(expr)
            assert names, f"{uid}: no metric in {expr}"
            assert names <= known, f"{uid}: unknown {sorted(names - known)} in {expr}"
            used |= names
    # The wallboard and trends use what the brief asks for.
    assert {"qubicle_queue_daily_sessions", "qubicle_queue_daily_abandoned_sessions",
            "queue:qubicle_queue_abandoned_sessions:ratio30m", "qubicle_poll_duration_seconds_bucket",
            "qubicle_last_poll_success_timestamp_seconds", "qubicle_exporter_build_info", "ALERTS"} <= used


def test_every_range_is_the_rate_interval():
    for uid, board in boards().items():
        for expr in expressions(board):
            ranges = re.findall(r"\[([^\]]*)\]", expr)
            assert all(r == "$__rate_interval" for r in ranges), f"{uid}: fixed range in {expr}"
            tree = list(syntax_nodes(promql_parser.parse(substitute(expr))))
            calls = [n.func.name for n in tree if isinstance(n, promql_parser.Call)]
            matrices = [n for n in tree if isinstance(n, promql_parser.MatrixSelector)]
            if {"rate", "increase", "irate"} & set(calls):
                assert matrices, expr
            for m in matrices:
                # The counters' raw samples only: a rate of a daily gauge breaks at Kazoo's midnight.
                name = m.vector_selector.name
                assert name is not None and name.endswith(("_total", "_bucket", "_count", "_sum")), expr


def test_daily_gauges_are_never_fed_to_rate_or_increase():
    for uid, board in boards().items():
        for expr in expressions(board):
            assert not re.search(r"(rate|increase|delta)\([^()]*qubicle_queue_daily_", expr), f"{uid}: {expr}"


# ---- what the dashboards show -------------------------------------------------------------------------

def test_wallboard_colours_are_the_alert_thresholds():
    board = load(DASHBOARD_DIR / "qubicle-wallboard.json")
    warn_wait = recorded_constant("qubicle:estimated_wait_threshold_seconds:warning")
    crit_wait = recorded_constant("qubicle:estimated_wait_threshold_seconds:critical")
    warn_ratio = recorded_constant("qubicle:abandon_ratio_threshold:warning")
    crit_ratio = recorded_constant("qubicle:abandon_ratio_threshold:critical")
    amber, red, green = generate.AMBER, generate.RED, generate.GREEN
    assert steps(panel_titled(board, "Est. wait")) == [(None, green), (warn_wait, amber), (crit_wait, red)]
    assert steps(panel_titled(board, "Abandoned %")) == [(None, green), (warn_ratio, amber), (crit_ratio, red)]
    # QubicleCallersWaitingNoAgentReady: red at 0 agents ready.
    assert steps(panel_titled(board, "Agents ready")) == [(None, red), (1, green)]
    # QubicleNoAgentsLoggedIn (warning): amber at 0 logged in.
    assert steps(panel_titled(board, "Logged in"))[0] == (None, amber)
    # QubicleSessionsMissed: amber from the first missed caller.
    assert steps(panel_titled(board, "Missed today")) == [(None, green), (1, amber)]
    # No colour without an alert behind it.
    for title in ("Callers waiting", "Calls today", "Abandoned today"):
        assert {c for _, c in steps(panel_titled(board, title))} == {generate.NEUTRAL}, title
    # Today's abandon % is what Kazoo counts today, never a division by zero.
    abandon = panel_titled(board, "Abandoned %")["targets"][0]["expr"]
    assert "qubicle_queue_daily_abandoned_sessions" in abandon and "qubicle_queue_daily_sessions" in abandon
    assert "> 0)" in abandon and panel_titled(board, "Abandoned %")["fieldConfig"]["defaults"]["unit"] == "percentunit"


def test_trends_draw_the_alert_thresholds():
    board = load(DASHBOARD_DIR / "qubicle-queues.json")
    ratio = panel_titled(board, "Abandon ratio (30 min) against the alert thresholds")
    assert [v for v, _ in steps(ratio)] == [None, recorded_constant("qubicle:abandon_ratio_threshold:warning"),
                                            recorded_constant("qubicle:abandon_ratio_threshold:critical")]
    assert ratio["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"
    wait = panel_titled(board, "Estimated, average and longest wait")
    assert [v for v, _ in steps(wait)][1:] == [
        recorded_constant("qubicle:estimated_wait_threshold_seconds:warning"),
        recorded_constant("qubicle:estimated_wait_threshold_seconds:critical")]
    stale = re.search(r"qubicle_last_poll_success_timestamp_seconds\s*>\s*([0-9.]+)", ALERTS.read_text())
    assert stale, "QubicleDataStale's threshold not found"
    age = panel_titled(load(DASHBOARD_DIR / "qubicle-exporter.json"),
                       "Age of the data (since the last successful poll)")
    assert [v for v, _ in steps(age)][-1] == float(stale.group(1))


def test_trends_annotate_firing_qubicle_alerts():
    board = load(DASHBOARD_DIR / "qubicle-queues.json")
    (annotation,) = [a for a in board["annotations"]["list"] if a.get("expr")]
    assert annotation["enable"] and annotation["titleFormat"] == "{{alertname}}"
    selector = next(n for n in syntax_nodes(promql_parser.parse(substitute(annotation["expr"])))
                    if isinstance(n, promql_parser.VectorSelector))
    matchers = {m.name: m.value for m in selector.matchers.matchers}
    assert selector.name == "ALERTS" and matchers["alertstate"] == "firing" and matchers["alertname"] == "Qubicle.*"


def test_wallboard_repeats_one_short_row_per_queue():
    board = load(DASHBOARD_DIR / "qubicle-wallboard.json")
    rows = [p for p in board["panels"] if p["type"] == "row"]
    assert len(rows) == 1 and rows[0]["repeat"] == "queue" and not rows[0]["collapsed"]
    assert rows[0]["title"] == "${queue:text}"
    stats = panels(board)
    assert {p["type"] for p in stats} == {"stat"}, "big numbers only, no graphs"
    assert all(p["targets"][0]["instant"] for p in stats)
    assert all('queue_id="$queue"' in p["targets"][0]["expr"] for p in stats), "each row shows its own queue"
    # One queue = the row header + two lines of stats (figures; agents by state and the timeout),
    # at most 7 grid units high.
    lines = sorted({p["gridPos"]["y"] for p in stats})
    assert 1 + 2 * max(p["gridPos"]["h"] for p in stats) <= 7 and len(lines) == 2
    assert board["refresh"] in ("5s", "10s")
    assert {"callers", "ready", "logged", "wait", "calls", "missed", "abandoned"} <= {
        w for p in stats for w in p["title"].lower().replace(".", "").split()}
    # Per queue: callers waiting, agents logged in and ready, estimated and average wait, today's
    # total, missed and abandoned.
    shown = set().union(*(metric_names(p["targets"][0]["expr"]) for p in stats))
    assert {"qubicle_queue_active_sessions", "qubicle_queue_active_recipients", "qubicle_queue_available_recipients",
            "qubicle_queue_estimated_wait_seconds", "qubicle_queue_average_wait_seconds",
            "qubicle_queue_daily_sessions", "qubicle_queue_daily_missed_sessions",
            "qubicle_queue_daily_abandoned_sessions"} <= shown
    for y in lines:
        assert sum(p["gridPos"]["w"] for p in stats if p["gridPos"]["y"] == y) == 24, "full lines of stats"
    agents = panel_titled(board, "Agents by state")
    assert [t["legendFormat"] for t in agents["targets"]] == ["Ready", "Ringing", "On a call", "Wrap-up", "Away"]
    assert all("qubicle_queue_agents" in t["expr"] and t["instant"] for t in agents["targets"])
    assert steps(panel_titled(board, "Wait / timeout")) == [
        (None, generate.GREEN), (recorded_constant("qubicle:timeout_share_threshold:warning"), generate.AMBER),
        (1, generate.RED)]


def test_wallboard_waits_read_to_the_second():
    # Grafana's "s" unit shows 90 s as "2 min" at 0 decimals, and 119 s (green) like 120 s (amber).
    board = load(DASHBOARD_DIR / "qubicle-wallboard.json")
    for title in ("Est. wait", "Avg. wait"):
        assert panel_titled(board, title)["fieldConfig"]["defaults"]["unit"] == "dthms", title


@pytest.mark.parametrize("uid", ["qubicle-wallboard", "qubicle-queues"])
def test_queue_figures_are_never_summed_across_series(uid):
    # Every replica (or job) scraping an account exports the same figures for its queues: max, not
    # sum, or two exporters double every number.
    for expr in expressions(boards()[uid]):
        tree = syntax_nodes(promql_parser.parse(substitute(expr)))
        ops = {str(n.op) for n in tree if isinstance(n, promql_parser.AggregateExpr)}
        assert "sum" not in ops, f"{uid}: sum in {expr}"


def test_provisioning_points_at_a_prometheus_and_the_dashboards():
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/qubicle.yml").read_text())
    (entry,) = provider["providers"]
    assert provider["apiVersion"] == 1 and entry["type"] == "file" and entry["options"]["path"]
    source = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    (ds,) = source["datasources"]
    assert source["apiVersion"] == 1 and ds["type"] == "prometheus" and ds["url"].startswith("http")


def test_agents_dashboard_uses_the_opt_in_series_and_names_agents():
    board = load(DASHBOARD_DIR / "qubicle-agents.json")
    shown = set().union(*(metric_names(e) for e in expressions(board)))
    assert {"qubicle_agent_state", "qubicle_agent_calls_total", "qubicle_agent_missed_calls_total",
            "qubicle_agent_average_call_seconds", "qubicle_agents"} <= shown
    now = panel_titled(board, "Agents now")
    assert now["type"] == "table" and now["targets"][0]["format"] == "table" and now["targets"][0]["expr"].endswith(
        "== 1")
    for title in ("Calls handled per hour", "Calls missed per hour (offered, not taken)",
                  "Average call time (this login)"):
        target = panel_titled(board, title)["targets"][0]
        assert "group_left (agent_name)" in target["expr"] and target["legendFormat"] == "{{agent_name}}"
