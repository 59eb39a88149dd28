"""/api/v1/queues and the wallboard's routes: the document, max-data-age, alert colours, thresholds, headers."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import MappingProxyType

import bcrypt
import httpx
import pytest
import yaml

from exporter.snapshot import AccountSnapshot, QueueFigures, Snapshot
from exporter.wallboard.api import FIGURES, SETTING_FIGURES, DocumentCache, Selection, alerts_of, queues_document
from exporter.wallboard.thresholds import (
    RECORDS,
    ThresholdRules,
    Thresholds,
    ThresholdsError,
    load_thresholds,
    parse_rules,
)
from exporter.web import WebHandlers, WebServer

ROOT = Path(__file__).resolve().parent.parent
A, B = "a" * 32, "b" * 32


def queue(account: str, queue_id: str, name: str, **gauges: float) -> QueueFigures:
    """A queue with figures given by their API names (the metric names without qubicle_queue_)."""
    keys = {api: key for api, key, counter in FIGURES if not counter}
    return QueueFigures(account, queue_id, name, "kz1", MappingProxyType({keys[n]: v for n, v in gauges.items()}),
                        MappingProxyType({"daily_sessions": 41.0, "daily_missed_sessions": 2.0,
                                          "daily_abandoned_sessions": 3.0}))


def account(account_id: str, *queues: QueueFigures, up: bool = True, data_time: float | None = 95.0,
            error: str | None = None) -> AccountSnapshot:
    return AccountSnapshot(account_id, up, tuple(queues), data_time=data_time, last_success=data_time,
                           queue_count=len(queues), error=error)


def snapshot(*accounts: AccountSnapshot) -> Snapshot:
    return Snapshot(taken_at=95.0, accounts=MappingProxyType({a.account_id: a for a in accounts}))


ALL_GAUGES = {"recipients": 6.0, "active_recipients": 4.0, "available_recipients": 2.0, "active_sessions": 1.0,
              "estimated_wait_seconds": 30.0, "average_wait_seconds": 20.0, "longest_wait_seconds": 45.0,
              "daily_sessions": 40.0, "daily_missed_sessions": 1.0, "daily_abandoned_sessions": 2.0}


# ---- the document ----------------------------------------------------------------------------------------

def test_document_carries_every_figure_and_its_age():
    doc = queues_document(snapshot(account(A, queue(A, "q1", "Support", **ALL_GAUGES))), now=100.0,
                          max_data_age=30.0, interval=10.0)
    assert doc["version"] == 1 and doc["interval_seconds"] == 10.0 and doc["max_data_age_seconds"] == 30.0
    (acc,) = doc["accounts"]
    assert (acc["id"], acc["name"], acc["up"], acc["last_success"], acc["stale"]) == (A, A, True, 95.0, False)
    assert acc["data_age_seconds"] == 5.0
    (q,) = acc["queues"]
    assert (q["id"], q["name"], q["account_id"], q["node"], q["age_seconds"]) == ("q1", "Support", A, "kz1", 5.0)
    assert set(q["figures"]) == {name for name, _, _ in FIGURES} | {"daily_abandoned_ratio"}
    assert q["figures"]["longest_wait_seconds"] == 45.0 and q["figures"]["missed_sessions_total"] == 2.0
    assert q["figures"]["daily_abandoned_ratio"] == pytest.approx(2 / 40)
    assert q["alerts"] == []
    json.dumps(doc, allow_nan=False)  # what the route sends


def test_figures_kazoo_did_not_send_are_absent_never_zero():
    doc = queues_document(snapshot(account(A, queue(A, "q1", "S", active_sessions=2.0, estimated_wait_seconds=math.nan,
                                                    daily_sessions=0.0, daily_abandoned_sessions=0.0))), 100.0, 30.0)
    figures = doc["accounts"][0]["queues"][0]["figures"]
    assert "longest_wait_seconds" not in figures and "available_recipients" not in figures
    assert "estimated_wait_seconds" not in figures  # NaN has no JSON
    assert "daily_abandoned_ratio" not in figures  # no calls: no share, not 0 %
    json.dumps(doc, allow_nan=False)


def test_down_account_keeps_its_figures_until_max_data_age_then_lists_no_queue():
    snap = snapshot(account(A, queue(A, "q1", "Support", **ALL_GAUGES), up=False, error="transport"),
                    account(B, queue(B, "q2", "Sales", **ALL_GAUGES), data_time=95.0))
    young = queues_document(snap, now=120.0, max_data_age=30.0)
    a, b = young["accounts"]
    assert (a["up"], a["error"], a["stale"], len(a["queues"]), a["data_age_seconds"]) == (False, "transport", False, 1, 25.0)
    old = queues_document(snap, now=125.5, max_data_age=30.0)
    a, b = old["accounts"]
    assert (a["up"], a["stale"], a["queues"], a["last_success"]) == (False, True, [], 95.0)
    # The rule is the data's age, not up/down: B's figures are as old, and go too.
    assert b["stale"] is True and b["queues"] == []


def test_never_polled_account_is_stale_with_no_queues():
    doc = queues_document(snapshot(account(A, up=False, data_time=None, error="auth")), 100.0, 30.0)
    assert doc["accounts"][0]["stale"] is True and doc["accounts"][0]["data_age_seconds"] is None


def test_selection_by_id_or_name_case_insensitive_several_allowed():
    snap = snapshot(account(A, queue(A, "q1", "Support"), queue(A, "q2", "Sales"), queue(A, "q3", "VIP")),
                    account(B, queue(B, "q4", "Support")))
    def names(doc: dict) -> list[tuple[str, str]]:
        return [(a["id"], q["name"]) for a in doc["accounts"] for q in a["queues"]]

    assert names(queues_document(snap, 100, 30, select=Selection.of(accounts=[B.upper()]))) == [(B, "Support")]
    assert names(queues_document(snap, 100, 30, select=Selection.of(queues=["support", "q3"]))) == [
        (A, "Support"), (A, "VIP"), (B, "Support")]
    assert names(queues_document(snap, 100, 30, select=Selection.of(accounts=[A], queues=["SALES", " "]))) == [
        (A, "Sales")]


# ---- alert colours --------------------------------------------------------------------------------------

def levels(**figures: float) -> dict[str, str]:
    return {f: a["severity"] for a in alerts_of(figures, Thresholds()) for f in a["figures"]}


def test_colours_follow_the_shipped_alerts_conditions():
    assert levels(active_sessions=1, available_recipients=0) == {"active_sessions": "critical",
                                                                 "available_recipients": "critical"}
    assert levels(active_sessions=0, available_recipients=0) == {}
    assert levels(active_sessions=3, available_recipients=1) == {}
    assert levels(recipients=5, active_recipients=0) == {"active_recipients": "warning"}
    assert levels(recipients=0, active_recipients=0) == {}
    assert levels(estimated_wait_seconds=120) == {}
    assert levels(estimated_wait_seconds=121) == {"estimated_wait_seconds": "warning"}
    assert levels(estimated_wait_seconds=301) == {"estimated_wait_seconds": "critical"}
    # Abandon share: over the threshold, and only with enough callers.
    assert levels(daily_abandoned_ratio=0.11, daily_sessions=10) == {"daily_abandoned_ratio": "warning"}
    assert levels(daily_abandoned_ratio=0.26, daily_sessions=10) == {"daily_abandoned_ratio": "critical"}
    assert levels(daily_abandoned_ratio=0.5, daily_sessions=9) == {}
    assert levels(daily_abandoned_ratio=0.10, daily_sessions=100) == {}


def test_document_colours_with_the_queues_own_thresholds():
    rules = ThresholdRules(default={"estimated_wait_warning": 60.0}, accounts={A: {"estimated_wait_warning": 200.0}},
                           queues={(A, "q1"): {"estimated_wait_critical": 100.0}})
    snap = snapshot(account(A, queue(A, "q1", "S", estimated_wait_seconds=150.0),
                            queue(A, "q2", "S", estimated_wait_seconds=150.0)),
                    account(B, queue(B, "q3", "S", estimated_wait_seconds=90.0)))
    doc = queues_document(snap, 100.0, 30.0, rules)
    got = {q["id"]: [(a["alert"], a["severity"]) for a in q["alerts"]] for acc in doc["accounts"] for q in acc["queues"]}
    assert got == {"q1": [("QubicleEstimatedWaitHigh", "critical")],  # queue override 100 < 150
                   "q2": [],                                           # account's 200 > 150
                   "q3": [("QubicleEstimatedWaitHigh", "warning")]}    # default override 60 < 90
    q1 = doc["accounts"][0]["queues"][0]
    assert q1["thresholds"]["estimated_wait_warning"] == 200.0 and q1["thresholds"]["estimated_wait_critical"] == 100.0


# ---- thresholds files ---------------------------------------------------------------------------------------

def test_defaults_equal_the_shipped_recording_rules():
    shipped = yaml.safe_load((ROOT / "alerts/qubicle.rules.yml").read_text())
    found = {name: value for account_id, queue_id, name, value in parse_rules(shipped, "qubicle.rules.yml")
             if not account_id and not queue_id}
    assert set(found) == set(RECORDS.values())
    assert found == {name: getattr(Thresholds(), name) for name in found}


def test_overrides_example_file_resolves_most_specific_first():
    rules = load_thresholds([str(ROOT / "alerts/overrides.example.yml")])
    support = rules.for_queue("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "5e6f708192a3b4c5d6e7f8091a2b3c4d")
    assert (support.abandon_ratio_warning, support.abandon_ratio_critical, support.abandon_min_sessions) == (0.2, 0.4, 30)
    assert support.estimated_wait_warning == 120.0
    other = rules.for_queue("9f8e7d6c5b4a39281706f5e4d3c2b1a0", "0" * 32)
    assert (other.estimated_wait_warning, other.estimated_wait_critical) == (300.0, 600.0)
    vip = rules.for_queue("9f8e7d6c5b4a39281706f5e4d3c2b1a0", "c0ffee00c0ffee00c0ffee00c0ffee00")
    assert (vip.estimated_wait_warning, vip.estimated_wait_critical) == (30.0, 600.0)
    assert rules.for_queue(A, "q") == Thresholds()


def test_shipped_rules_and_overrides_together_later_file_wins(tmp_path):
    later = tmp_path / "defaults.yml"
    later.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"record": "qubicle:estimated_wait_threshold_seconds:warning", "expr": "vector(90)"}]}]}))
    rules = load_thresholds([str(ROOT / "alerts/qubicle.rules.yml"), str(later)])
    assert rules.for_queue(A, "q").estimated_wait_warning == 90.0


@pytest.mark.parametrize(("content", "message"), [
    ("groups: [", "is not valid YAML at line"),
    ("rules: []", "expected a Prometheus rule file with 'groups:'"),
    ("groups: [{rules: [{record: 'qubicle:abandon_ratio_threshold:warning', expr: 'sum(x)'}]}]",
     "group 1 rule 1 (qubicle:abandon_ratio_threshold:warning): expr must be vector(<number>)"),
    ("groups: [{rules: [{record: 'qubicle:abandon_ratio_threshold:warning', expr: 'vector(-1)'}]}]",
     "expr must be vector(<number>) with a number >= 0"),
    ("groups: [{rules: [{record: 'qubicle:abandon_ratio_threshold:warning', expr: 'vector(1)', labels: {queue_id: q}}]}]",
     "a queue_id needs its account_id"),
])
def test_bad_thresholds_file_is_one_clear_line(tmp_path, content, message):
    path = tmp_path / "t.yml"
    path.write_text(content)
    with pytest.raises(ThresholdsError, match=r"^--alert-thresholds: .*" + re.escape(message)) as info:
        load_thresholds([str(path)])
    assert "\n" not in str(info.value)


def test_thresholds_file_with_an_alias_is_refused_before_expanding(tmp_path):
    path = tmp_path / "bomb.yml"
    path.write_text("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\ngroups: []\n")
    with pytest.raises(ThresholdsError, match=r"^--alert-thresholds: .*bomb.yml: YAML aliases are not accepted"):
        load_thresholds([str(path)])


def test_missing_thresholds_file(tmp_path):
    with pytest.raises(ThresholdsError, match="cannot read .*nope.yml"):
        load_thresholds([str(tmp_path / "nope.yml")])


# ---- the cache in front of the document -----------------------------------------------------------------------

class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_cache_serves_one_build_per_second_and_snapshot():
    clock, current = Clock(100.0), [snapshot(account(A, queue(A, "q1", "S", active_sessions=1.0)))]
    cache = DocumentCache(lambda: current[0], 30.0, clock=clock)
    first = cache.json()
    clock.now = 100.9
    assert cache.json() is first  # the same bytes, not rebuilt
    assert json.loads(cache.json(Selection.of(queues=["nothing"])))["accounts"][0]["queues"] == []  # per selection
    clock.now = 101.0
    again = cache.json()
    assert again is not first and json.loads(again)["accounts"][0]["data_age_seconds"] == 6.0
    current[0] = snapshot(account(A, queue(A, "q1", "S", active_sessions=7.0), data_time=100.5))
    assert json.loads(cache.json())["accounts"][0]["queues"][0]["figures"]["active_sessions"] == 7.0  # new poll


def test_cache_never_outlives_max_data_age():
    # data_time 95 + max age 30: figures must be gone from 125 on, not at the end of a cached second.
    clock = Clock(124.8)
    cache = DocumentCache(lambda: snapshot(account(A, queue(A, "q1", "S"))), 30.0, clock=clock)
    assert json.loads(cache.json())["accounts"][0]["queues"]
    clock.now = 125.01
    assert json.loads(cache.json())["accounts"][0]["queues"] == []


def test_cache_keeps_a_bounded_number_of_selections():
    cache = DocumentCache(lambda: snapshot(account(A, queue(A, "q1", "S"))), 30.0, clock=lambda: 100.0, size=4)
    for i in range(50):
        cache.json(Selection.of(queues=[f"q{i}"]))
    assert len(cache._entries) == 4


# ---- the routes, served for real ------------------------------------------------------------------------------

def handlers(snap: Snapshot, now: float = 100.0) -> WebHandlers:
    cache = DocumentCache(lambda: snap, 30.0, interval=10.0, clock=lambda: now)
    return WebHandlers(metrics=lambda a, e: (b"", {}), landing=lambda: "", healthy=lambda: True, ready=lambda: True,
                       queues=cache.json)


async def test_routes_serve_page_assets_and_api_with_strict_headers():
    snap = snapshot(account(A, queue(A, "q1", "<img src=x onerror=alert(1)>", **ALL_GAUGES)))
    server = await WebServer.start(handlers(snap), "127.0.0.1:0")
    try:
        host, port = server.bound[0]
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            page = await client.get("/wallboard")
            assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
            csp = page.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert page.headers["x-content-type-options"] == "nosniff"
            assert 'src="wallboard/wallboard.js"' in page.text and "<script>" not in page.text and "http" not in page.text
            total = len(page.content)
            for asset, kind in (("wallboard.js", "text/javascript"), ("wallboard.css", "text/css")):
                r = await client.get(f"/wallboard/{asset}")
                assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
                assert "://" not in r.text  # offline: nothing from a CDN, no external font
                total += len(r.content)
            assert total < 40_000
            js = (await client.get("/wallboard/wallboard.js")).text
            assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "eval(" not in js
            api = await client.get("/api/v1/queues", params=[("queue", "nothing")])
            assert api.headers["content-type"] == "application/json; charset=utf-8"
            assert api.headers["cache-control"] == "no-store"
            assert api.json()["accounts"][0]["queues"] == []
            doc = (await client.get("/api/v1/queues")).json()
            assert doc["accounts"][0]["queues"][0]["name"] == "<img src=x onerror=alert(1)>"
            assert (await client.head("/wallboard")).status_code == 200
            assert (await client.get("/wallboard/other.js")).status_code == 404
    finally:
        await server.stop()


async def test_basic_auth_of_the_web_config_covers_page_and_api(tmp_path):
    hashed = bcrypt.hashpw(b"s3cret-pass", bcrypt.gensalt(rounds=4)).decode()
    config = tmp_path / "web.yml"
    config.write_text(yaml.safe_dump({"basic_auth_users": {"board": hashed}}))
    server = await WebServer.start(handlers(snapshot()), "127.0.0.1:0", str(config))
    try:
        host, port = server.bound[0]
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            for path in ("/wallboard", "/wallboard/wallboard.js", "/wallboard/wallboard.css", "/api/v1/queues"):
                assert (await client.get(path)).status_code == 401, path
                assert (await client.get(path, auth=("board", "wrong"))).status_code == 401, path
                assert (await client.get(path, auth=("board", "s3cret-pass"))).status_code == 200, path
    finally:
        await server.stop()


@pytest.mark.e2e
def test_bad_thresholds_flag_exits_2_with_one_line(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.yml"
    bad.write_text("groups: [{rules: [{record: 'qubicle:abandon_ratio_threshold:warning', expr: 'up'}]}]")
    result = subprocess.run([sys.executable, "-m", "exporter", "--demo", "--alert-thresholds", str(bad)], check=False,
                            capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"}, cwd=ROOT)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qubicle-exporter: error: --alert-thresholds: ")
    assert "bad.yml" in lines[0] and "expr must be vector" in lines[0]


def test_readme_example_is_what_the_api_serves():
    readme = (ROOT / "README.md").read_text()
    example = json.loads(readme.split("**`/api/v1/queues`**")[1].split("```json")[1].split("```")[0])
    (acc,) = example["accounts"]
    (q,) = acc["queues"]
    by_api = {name: (key, counter) for name, key, counter in FIGURES}
    gauges = {by_api[n][0]: v for n, v in q["figures"].items() if n in by_api and not by_api[n][1]}
    counters = {by_api[n][0]: v for n, v in q["figures"].items() if n in by_api and by_api[n][1]}
    settings = {key: q["figures"][name] for name, key in SETTING_FIGURES if name in q["figures"]}
    figures = QueueFigures(acc["id"], q["id"], q["name"], q["node"], MappingProxyType(gauges), MappingProxyType(counters),
                           settings=MappingProxyType(settings), agents=q["agents"])
    data_time = example["generated_at"] - acc["data_age_seconds"]
    snap = snapshot(AccountSnapshot(acc["id"], acc["up"], (figures,), data_time=data_time,
                                    last_success=acc["last_success"], queue_count=acc["queue_count"],
                                    name=acc["name"]))
    served = queues_document(snap, example["generated_at"], example["max_data_age_seconds"],
                             interval=example["interval_seconds"])
    served_q = served["accounts"][0]["queues"][0]
    assert served_q["figures"]["daily_abandoned_ratio"] == pytest.approx(q["figures"]["daily_abandoned_ratio"], abs=1e-4)
    served_q["figures"]["daily_abandoned_ratio"] = q["figures"]["daily_abandoned_ratio"]
    served_q["age_seconds"] = served["accounts"][0]["data_age_seconds"] = pytest.approx(acc["data_age_seconds"])
    assert served == example


def test_accounts_are_named_and_selectable_by_their_kazoo_name():
    from dataclasses import replace

    named = replace(account(A, queue(A, "q1", "Support", **ALL_GAUGES)), name="Acme Support")
    doc = queues_document(snapshot(named), now=100.0, max_data_age=30.0)
    assert [(a["id"], a["name"]) for a in doc["accounts"]] == [(A, "Acme Support")]
