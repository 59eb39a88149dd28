"""alerts/alertmanager.example.yml: checked with the real amtool, routed with
`amtool config routes test`, and its inhibition rules exercised in a real Alertmanager
listening on 127.0.0.1. Missing tools are failures, not skips."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from helpers_alertmanager import alertmanager as running_alertmanager

pytestmark = pytest.mark.e2e  # starts processes or needs Debian's tools

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "alerts" / "alertmanager.example.yml"
ALERT_RULES = ROOT / "alerts" / "qubicle.alerts.yml"

# Who gets what: callers lost page whatever the severity; otherwise critical pages and warning
# goes to the team's chat. Every (alert, severity) that qubicle.alerts.yml defines must be here.
EXPECTED_RECEIVER = {
    ("QubicleSessionsMissed", "warning"): "oncall-pager",
    ("QubicleAbandonRateHigh", "warning"): "oncall-pager",
    ("QubicleAbandonRateHigh", "critical"): "oncall-pager",
    ("QubicleCallersWaitingNoAgentReady", "critical"): "oncall-pager",
    ("QubicleNoAgentsLoggedIn", "warning"): "team-chat",
    ("QubicleEstimatedWaitHigh", "warning"): "team-chat",
    ("QubicleEstimatedWaitHigh", "critical"): "oncall-pager",
    ("QubicleCallersNearTimeout", "warning"): "team-chat",
    ("QubicleKazooUnreachable", "critical"): "oncall-pager",
    ("QubicleExporterDown", "critical"): "oncall-pager",
    ("QubicleDataStale", "warning"): "team-chat",
    ("QubicleAccountHasNoQueues", "warning"): "team-chat",
    ("QubiclePollHidesQueues", "warning"): "team-chat",
}


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not on PATH: install Debian's 'prometheus-alertmanager' package (make tools)"
    return path


def amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool("amtool"), *args], capture_output=True, text=True, timeout=60)


def test_amtool_check_config():
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_of_the_rules_has_an_expected_route():
    rules = [rule for group in yaml.safe_load(ALERT_RULES.read_text())["groups"] for rule in group["rules"]
             if "alert" in rule]
    assert {(rule["alert"], rule["labels"]["severity"]) for rule in rules} == set(EXPECTED_RECEIVER)


@pytest.mark.parametrize("alert,severity", sorted(EXPECTED_RECEIVER), ids=lambda v: str(v))
def test_routing(alert: str, severity: str):
    labels = [f"alertname={alert}", f"severity={severity}", "job=qubicle", "instance=exporter:10147",
              "account_id=acc-a"]
    if alert not in {"QubicleKazooUnreachable", "QubicleExporterDown", "QubicleDataStale",
                     "QubicleAccountHasNoQueues", "QubiclePollHidesQueues"}:
        labels += ["queue_id=q-sales", "queue_name=Sales"]
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}",
                    f"--verify.receivers={EXPECTED_RECEIVER[alert, severity]}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [EXPECTED_RECEIVER[alert, severity]]


def test_routing_catches_a_wrong_expectation():
    """The routing test above can fail: amtool rejects a receiver that does not match."""
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}", "--verify.receivers=oncall-pager",
                    "alertname=QubicleNoAgentsLoggedIn", "severity=warning")
    assert result.returncode != 0


def test_grouping_and_mute_interval():
    config = yaml.safe_load(CONFIG.read_text())
    assert config["route"]["group_by"] == ["alertname", "account_id", "queue_id"]
    intervals = {interval["name"] for interval in config["time_intervals"]}
    muted = [route for top in config["route"]["routes"] for route in top.get("routes", [])
             if route.get("mute_time_intervals")]
    assert muted and all(set(route["mute_time_intervals"]) <= intervals for route in muted)


# --- inhibition, in a real Alertmanager ----------------------------------------------------------

def api(url: str, body: object | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        payload = response.read()
    return json.loads(payload) if payload else None


@pytest.fixture(scope="module")
def alertmanager():
    with running_alertmanager(CONFIG.read_text()) as url:
        yield url


def alert(name: str, severity: str, instance: str, account: str | None = None, queue: str | None = None) -> dict:
    labels = {"alertname": name, "severity": severity, "job": "qubicle", "instance": instance}
    if account:
        labels["account_id"] = account
    if queue:
        labels["queue_id"] = queue
        labels["queue_name"] = queue.title()
    return {"labels": labels, "annotations": {"summary": "test"}}


# (alert, inhibited?) One exporter (exp-1) cannot be scraped; another (exp-2) polls accounts b-e.
SCENARIO = [
    (alert("QubicleExporterDown", "critical", "exp-1"), False),
    (alert("QubicleSessionsMissed", "warning", "exp-1", "acc-a", "q-a1"), True),
    # The same queue seen by a second exporter replica that still works.
    (alert("QubicleSessionsMissed", "warning", "exp-2", "acc-a", "q-a1"), False),
    # Kazoo unreachable for acc-b: its queue alerts and its stale-data alert are muted.
    (alert("QubicleKazooUnreachable", "critical", "exp-2", "acc-b"), False),
    (alert("QubicleCallersWaitingNoAgentReady", "critical", "exp-2", "acc-b", "q-b1"), True),
    (alert("QubicleDataStale", "warning", "exp-2", "acc-b"), True),
    # ... but not another account's.
    (alert("QubicleCallersWaitingNoAgentReady", "critical", "exp-2", "acc-c", "q-c1"), False),
    # Stale data for acc-d mutes its queue alerts.
    (alert("QubicleDataStale", "warning", "exp-2", "acc-d"), False),
    (alert("QubicleEstimatedWaitHigh", "warning", "exp-2", "acc-d", "q-d1"), True),
    # Critical mutes the warning of the same alert and queue, not another alert or queue.
    (alert("QubicleEstimatedWaitHigh", "critical", "exp-2", "acc-e", "q-e1"), False),
    (alert("QubicleEstimatedWaitHigh", "warning", "exp-2", "acc-e", "q-e1"), True),
    (alert("QubicleAbandonRateHigh", "warning", "exp-2", "acc-e", "q-e1"), False),
    (alert("QubicleEstimatedWaitHigh", "warning", "exp-2", "acc-e", "q-e2"), False),
]


def test_inhibition(alertmanager: str):
    api(f"{alertmanager}/api/v2/alerts", [a for a, _ in SCENARIO])
    # A sentinel pair posted last: once its target shows as inhibited, the inhibitor has seen
    # every alert posted before it, so the states read below are final.
    sentinel = [alert("QubicleKazooUnreachable", "critical", "exp-9", "acc-z"),
                alert("QubicleNoAgentsLoggedIn", "warning", "exp-9", "acc-z", "q-z1")]
    api(f"{alertmanager}/api/v2/alerts", sentinel)
    deadline = time.monotonic() + 30
    while True:
        alerts = api(f"{alertmanager}/api/v2/alerts")
        assert isinstance(alerts, list), alerts
        got = {frozenset(a["labels"].items()): bool(a["status"]["inhibitedBy"]) for a in alerts}
        if got.get(frozenset(sentinel[1]["labels"].items())):
            break
        assert time.monotonic() < deadline, "the inhibitor never processed the alerts"
        time.sleep(0.1)
    expected = {frozenset(a["labels"].items()): inhibited for a, inhibited in SCENARIO}
    assert {labels: got.get(labels) for labels in expected} == expected
