"""The Grafana dashboards: generated == committed, well-formed, and every query parses and names real series."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT

sys.path.insert(0, str(ROOT / "dashboards"))
import generate  # noqa: E402

DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
UIDS = {"qubicle-wallboard", "qubicle-queues", "qubicle-exporter"}
SAMPLE_VALUES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "${queue:text}": "Sales",
                 "$job": "qubicle", "$account": "a", "$queue": "q", "${datasource}": "prom"}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def expressions(board: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(board) for t in p.get("targets", [])]
    exprs += [a["expr"] for a in board.get("annotations", {}).get("list", []) if a.get("expr")]
    return exprs


def substitute(expr: str) -> str:
    for name, value in SAMPLE_VALUES.items():
        expr = expr.replace(name, value)
    return expr


def served_metric_names() -> set[str]:
    """Every name the exporter's own code exposes, read from a real rendering."""
    from exporter import selfmetrics
    from exporter.collector import SnapshotCollector

    sys.path.insert(0, str(ROOT))
    from bench.common import synthetic_snapshot

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: synthetic_snapshot(3), max_data_age=3600))
    names = set()
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "summary": ["_sum", "_count"]}
    for reg in (registry, selfmetrics.create(process=True).registry):
        # Families, not samples: a labelled counter nobody has incremented yet has no sample.
        for family in reg.collect():
            names |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
        for family in text_string_to_metric_families(generate_latest(reg).decode()):
            names |= {s.name for s in family.samples}
    return names


def recorded_names() -> set[str]:
    names = set()
    for path in (ROOT / "alerts").glob("qubicle.*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {r["record"] for r in group["rules"] if "record" in r}
    return names


def test_committed_json_is_what_the_code_generates():
    assert {p.name for p in DASHBOARDS} == set(generate.DASHBOARDS)
    for name, text in generate.render().items():
        assert (ROOT / "dashboards" / name).read_text() == text, f"{name} is stale: run make dashboards"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path):
    board = load(path)
    assert board["uid"] in UIDS
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: dict[tuple[int, int], int] = {}
    for p in board["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0 and g["w"] > 0, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in occupied, f"panel {p['id']} overlaps panel {occupied[(x, y)]}"
                occupied[(x, y)] = p["id"]
    for p in panels(board):
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["fieldConfig"]["defaults"].get("unit"), f"{p['title']} has no unit"
    names = [v["name"] for v in board["templating"]["list"]]
    assert names[:3] == ["datasource", "job", "account"]
    assert board["__inputs"][0]["name"] == "DS_PROMETHEUS"


def test_uids_are_unique():
    assert sorted(load(p)["uid"] for p in DASHBOARDS) == sorted(UIDS)


def test_every_expression_parses_with_promtool(tmp_path):
    rules = []
    for path in DASHBOARDS:
        board = load(path)
        for i, expr in enumerate(expressions(board)):
            rules.append({"record": f"check:{board['uid'].replace('-', '_')}:{i}", "expr": substitute(expr)})
    assert len(rules) > 25
    file = tmp_path / "dashboard-exprs.yml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_expressions_name_only_served_or_recorded_metrics():
    known = served_metric_names() | recorded_names() | {"ALERTS", "up"}
    assert "qubicle_queue_sessions_total" in known and "qubicle_poll_duration_seconds_bucket" in known
    for path in DASHBOARDS:
        for expr in expressions(load(path)):
            names = set(re.findall(r"\b(?:qubicle_[a-z_]+|queue:[a-z_:0-9]+|process_[a-z_]+|ALERTS)\b", expr))
            assert names, f"no metric in {expr}"
            assert names <= known, f"{path.name}: unknown {names - known} in {expr}"


def test_wallboard_thresholds_match_the_alerts():
    rules = (ROOT / "alerts" / "qubicle.rules.yml").read_text()
    board = load(ROOT / "dashboards" / "qubicle-wallboard.json")
    steps = {p["title"]: [s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]]
             for p in panels(board)}
    assert steps["Est. wait"] == [None, 120, 300]
    assert steps["Abandoned %"] == [None, 0.10, 0.25]
    assert steps["Agents ready"] == [None, 1]  # red at 0 ready agents
    assert "estimated_wait_threshold_seconds:warning\n        expr: vector(120)" in rules
    assert "estimated_wait_threshold_seconds:critical\n        expr: vector(300)" in rules
    assert "abandon_ratio_threshold:warning\n        expr: vector(0.10)" in rules
    assert "abandon_ratio_threshold:critical\n        expr: vector(0.25)" in rules


def test_wallboard_repeats_one_short_row_per_queue():
    board = load(ROOT / "dashboards" / "qubicle-wallboard.json")
    rows = [p for p in board["panels"] if p["type"] == "row"]
    assert len(rows) == 1 and rows[0]["repeat"] == "queue" and not rows[0]["collapsed"]
    # Eight queues on one 1080p screen: a row header and one line of big stats, 4 grid units each.
    assert max(p["gridPos"]["h"] for p in panels(board)) <= 3
    assert board["refresh"] in ("5s", "10s")
    queue = next(v for v in board["templating"]["list"] if v["name"] == "queue")
    assert queue["multi"] and queue["includeAll"]


def test_provisioning_points_at_a_prometheus_and_the_dashboards():
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/qubicle.yml").read_text())
    assert provider["providers"][0]["type"] == "file"
    source = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert source["datasources"][0]["type"] == "prometheus"
