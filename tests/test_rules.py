"""The shipped Prometheus rules, checked and unit-tested with the real promtool.

Every promtool unit-test file under alerts/tests/ runs as its own test case, so a failure names
the file. A missing promtool is a failure, not a skip: the rules are part of the product.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import debian_tool

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "alerts"
RULES = ALERTS / "qubicle.rules.yml"
ALERT_RULES = ALERTS / "qubicle.alerts.yml"
OVERRIDES = ALERTS / "overrides.example.yml"
RULE_FILES = [RULES, ALERT_RULES, OVERRIDES]
UNIT_TESTS = sorted((ALERTS / "tests").glob("*.yaml"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"
ALERTS_DOC = ROOT / "docs" / "alerts.md"

# Placeholders the user replaces, each with one sed shown in docs/alerts.md.
RUNBOOK_BASE = "https://runbooks.example.net/qubicle-exporter/runbooks.md#"
ACCOUNT_IN_SUMMARY = "{{ $account := $labels.account_id }}"
GRAFANA_BASE = "https://grafana.example.net"

# Pinned: the dashboards use these names.
PINNED_RECORDS = {
    "queue:qubicle_queue_sessions:rate5m",
    "queue:qubicle_queue_missed_sessions:rate5m",
    "queue:qubicle_queue_abandoned_sessions:rate5m",
    "queue:qubicle_queue_sessions:increase1h",
    "queue:qubicle_queue_missed_sessions:increase1h",
    "queue:qubicle_queue_abandoned_sessions:increase1h",
    "queue:qubicle_queue_sessions:increase30m",
    "queue:qubicle_queue_abandoned_sessions:increase30m",
    "queue:qubicle_queue_abandoned_sessions:ratio30m",
    "queue:qubicle_queue_available_recipients:ratio",
    "queue:qubicle_queue_wait_timeout:ratio",
}

# Pinned: alert name -> (for, severities). The wallboard's colours follow the same defaults.
PINNED_ALERTS = {
    "QubicleSessionsMissed": ("0m", {"warning"}),
    "QubicleAbandonRateHigh": ("5m", {"warning", "critical"}),
    "QubicleCallersWaitingNoAgentReady": ("2m", {"critical"}),
    "QubicleNoAgentsLoggedIn": ("10m", {"warning"}),
    "QubicleEstimatedWaitHigh": ("5m", {"warning", "critical"}),
    "QubicleCallersNearTimeout": ("1m", {"warning"}),
    "QubicleKazooUnreachable": ("2m", {"critical"}),
    "QubicleExporterDown": ("5m", {"critical"}),
    "QubicleDataStale": ("2m", {"warning"}),
    "QubicleAccountHasNoQueues": ("1h", {"warning"}),
    "QubiclePollHidesQueues": ("5m", {"warning"}),
}
QUEUE_ALERTS = {"QubicleSessionsMissed", "QubicleAbandonRateHigh", "QubicleCallersWaitingNoAgentReady",
                "QubicleNoAgentsLoggedIn", "QubicleEstimatedWaitHigh", "QubicleCallersNearTimeout"}
ACCOUNT_ALERTS = {"QubicleKazooUnreachable", "QubicleDataStale", "QubicleAccountHasNoQueues"}


def promtool() -> str:
    return debian_tool("promtool")


def run_promtool(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120)


def rules_of(path: Path) -> list[dict]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def alert_rules() -> list[dict]:
    return [rule for rule in rules_of(ALERT_RULES) if "alert" in rule]


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


# --- promtool ------------------------------------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(rule_file: Path):
    result = run_promtool("check", "rules", "--lint=all", "--lint-fatal", rule_file)
    assert result.returncode == 0, result.stdout + result.stderr


def test_there_are_unit_tests():
    assert len(UNIT_TESTS) >= 7, [p.name for p in UNIT_TESTS]


@pytest.mark.e2e
@pytest.mark.parametrize("unit_test", UNIT_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests(unit_test: Path):
    result = run_promtool("test", "rules", unit_test.relative_to(ROOT))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# The unit tests must be able to fail: break the rules in a copy and watch promtool catch it.
HIDES_FOR = "qubicle_poll_hidden_queues > 0\n        for: {}"
MUTATIONS = [
    # (file to change, old text, new text, unit test that must now fail)
    ("qubicle.rules.yml", "expr: vector(0.10)", "expr: vector(0.12)", "abandon_rate.yaml"),
    ("qubicle.rules.yml", "expr: vector(10)", "expr: vector(9)", "abandon_rate.yaml"),
    ("qubicle.rules.yml", "expr: vector(120)", "expr: vector(150)", "estimated_wait.yaml"),
    ("qubicle.alerts.yml", "for: 2m", "for: 1m", "callers_waiting_no_agent_ready.yaml"),
    ("qubicle.alerts.yml", "for: 10m", "for: 11m", "no_agents_logged_in.yaml"),
    ("qubicle.alerts.yml", "[15m]", "[10m]", "sessions_missed.yaml"),
    ("qubicle.alerts.yml", "> 120", ">= 120", "exporter.yaml"),
    ("qubicle.alerts.yml", "queue {{ $labels.queue_name }} of account {{ $account }}.'",
     "queue {{ $labels.queue_name }}.'", "sessions_missed.yaml"),
    ("qubicle.alerts.yml", "for: 1h", "for: 2h", "account_has_no_queues.yaml"),
    ("qubicle.alerts.yml", "qubicle_up == 1", "qubicle_up >= 0", "account_has_no_queues.yaml"),
    ("qubicle.alerts.yml", "qubicle_poll_hidden_queues > 0", "qubicle_poll_hidden_queues > 1",
     "poll_hides_queues.yaml"),
    ("qubicle.alerts.yml", HIDES_FOR.format("5m"), HIDES_FOR.format("2m"), "poll_hides_queues.yaml"),
    # Without the override file, the overridden queues fire like the others.
    ("tests/overrides.yaml", "  - ../overrides.example.yml\n", "", "overrides.yaml"),
]


@pytest.mark.e2e
@pytest.mark.parametrize("target,old,new,unit_test", MUTATIONS,
                         ids=[f"{m[0]}:{m[1].strip()}->{m[2].strip() or 'removed'}" for m in MUTATIONS])
def test_unit_tests_catch_a_broken_rule(tmp_path: Path, target: str, old: str, new: str, unit_test: str):
    copy = tmp_path / "alerts"
    shutil.copytree(ALERTS, copy)
    path = copy / target
    text = path.read_text()
    assert old in text, f"{old!r} not in {target}: update this mutation"
    path.write_text(text.replace(old, new))
    result = run_promtool("test", "rules", copy / "tests" / unit_test)
    assert result.returncode != 0, f"{unit_test} still passes after {old!r} -> {new!r} in {target}"
    # ... while the untouched copy passes (the failure comes from the change, not the copy).
    shutil.copy(ALERTS / target, path)
    assert run_promtool("test", "rules", copy / "tests" / unit_test).returncode == 0


# --- names and shape ------------------------------------------------------------------------------

def test_pinned_recording_rules_exist():
    recorded = {rule["record"] for rule in rules_of(RULES) if "record" in rule}
    assert recorded >= PINNED_RECORDS, PINNED_RECORDS - recorded
    for name in recorded:
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", name), f"{name} is not level:metric:operation"


def test_alerts_match_the_pinned_table():
    seen: dict[str, tuple[set[str], set[str]]] = {}
    for rule in alert_rules():
        fors, severities = seen.setdefault(rule["alert"], (set(), set()))
        fors.add(rule["for"])
        severities.add(rule["labels"]["severity"])
    assert set(seen) == set(PINNED_ALERTS)
    for name, (for_, severities) in PINNED_ALERTS.items():
        assert seen[name] == ({for_}, severities), name


def test_daily_gauges_never_feed_a_rule():
    """They fall to 0 at midnight: rules count with the exporter's monotonic *_total counters."""
    for path in RULE_FILES:
        for rule in rules_of(path):
            assert "qubicle_queue_daily_" not in rule["expr"], (path.name, rule.get("alert") or rule.get("record"))


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_alert_annotations(rule: dict):
    name = rule["alert"]
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    assert annotations["runbook_url"] == RUNBOOK_BASE + name.lower()
    description = annotations["description"]
    if name in QUEUE_ALERTS:
        # Queue names repeat across accounts: the summary names the account, through one
        # assignment at its start (the one place to change to show an account's name instead).
        summary = annotations["summary"]
        assert summary.startswith(ACCOUNT_IN_SUMMARY) and summary.count("$account :=") == 1, summary
        assert "{{ $account }}" in summary and "$labels.queue_name" in summary, summary
        assert "$labels.queue_name" in description and "$labels.account_id" in description
        assert "$value" in description
        assert annotations["dashboard_url"] == (
            f"{GRAFANA_BASE}/d/qubicle-wallboard?var-account={{{{ $labels.account_id | urlquery }}}}"
            f"&var-queue={{{{ $labels.queue_id | urlquery }}}}")
    else:
        assert annotations["dashboard_url"].startswith(f"{GRAFANA_BASE}/d/qubicle-exporter")
    if name in ACCOUNT_ALERTS:
        assert "$labels.account_id" in description
    if name in QUEUE_ALERTS | ACCOUNT_ALERTS:
        # The summary names the account by its name, from qubicle_account_info (its id where unknown).
        assert 'query (printf "qubicle_account_info{account_id=%q}" $labels.account_id)' in annotations["summary"]
        assert ".Labels.account_name" in annotations["summary"]


def test_every_runbook_url_has_a_section():
    anchors = {github_anchor(line.lstrip("#")) for line in RUNBOOKS.read_text().splitlines()
               if line.startswith("## ")}
    for rule in alert_rules():
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor in anchors, f"docs/runbooks.md has no section for #{anchor}"


@pytest.mark.e2e
def test_the_seds_in_the_docs_replace_every_placeholder(tmp_path: Path):
    """docs/alerts.md shows one sed per placeholder URL: run them as a user would, on a copy."""
    seds = re.findall(r"`(sed -i '[^']+' qubicle\.alerts\.yml)`", ALERTS_DOC.read_text())
    assert len(seds) == 2, seds
    copy = tmp_path / "qubicle.alerts.yml"
    shutil.copy(ALERT_RULES, copy)
    for command in seds:
        subprocess.run(command, shell=True, cwd=tmp_path, check=True, timeout=30)
    assert "example.net" not in copy.read_text()
    assert run_promtool("check", "rules", copy).returncode == 0
    before = {(r["alert"], r["labels"]["severity"]): r["annotations"] for r in alert_rules()}
    for rule in rules_of(copy):
        annotations = rule["annotations"]
        original = before[rule["alert"], rule["labels"]["severity"]]
        for key in ("runbook_url", "dashboard_url"):
            assert annotations[key] != original[key], (rule["alert"], key)
        # only the base changed: the anchor still names the runbook's section
        assert annotations["runbook_url"].rsplit("#", 1)[1] == original["runbook_url"].rsplit("#", 1)[1]


def test_readme_loads_the_rules_as_the_alerts_doc_does():
    """The README repeats docs/alerts.md's "Loading them": the two must not drift apart."""
    def section(text: str) -> str:
        return text.split("### Loading them", 1)[1].split("\n### ", 1)[0]

    assert section((ROOT / "README.md").read_text()) == section(ALERTS_DOC.read_text())
    for needed in ("evaluation_interval:", "alerting:", "alertmanagers:"):
        assert needed in section(ALERTS_DOC.read_text()), needed


def test_the_docs_prometheus_yml_passes_promtool_check_config(tmp_path: Path):
    """The "Loading them" example, with the rule files where it names them, is a valid config."""
    block = ALERTS_DOC.read_text().split("### Loading them", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert "/etc/prometheus/qubicle/" in block
    for rule_file in (RULES, ALERT_RULES):
        shutil.copy(rule_file, tmp_path)
    config = tmp_path / "prometheus.yml"
    config.write_text(block.replace("/etc/prometheus/qubicle/", f"{tmp_path}/"))
    result = run_promtool("check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout, result.stdout


def test_the_deploy_prometheus_config_is_valid_and_evaluates_as_documented():
    """deploy/prometheus/prometheus.yml, as it stands in the checkout, loads both rule files."""
    deploy = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    result = run_promtool("check", "config", deploy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout, result.stdout
    config = yaml.safe_load(deploy.read_text())
    assert config["global"]["evaluation_interval"] == "10s"  # docs/alerts.md says so
    assert "`deploy/prometheus/prometheus.yml` uses 10 s" in " ".join(ALERTS_DOC.read_text().split())


def test_runbook_sections_say_what_to_check_and_how_to_silence():
    sections = re.split(r"^## ", RUNBOOKS.read_text(), flags=re.M)[1:]
    by_name = {section.split("\n", 1)[0].strip(): section for section in sections}
    for name in PINNED_ALERTS:
        assert name in by_name, name
        body = by_name[name]
        for heading in ("### What it means", "### What to check", "### How to silence"):
            assert heading in body, f"{name}: {heading}"


def test_docs_name_every_alert_and_recording_rule():
    text = ALERTS_DOC.read_text()
    for name in [*PINNED_ALERTS, *PINNED_RECORDS]:
        assert f"`{name}`" in text, name
    for rule in rules_of(RULES):
        if "record" in rule:
            assert rule["record"] in text, rule["record"]


@pytest.mark.e2e
def test_every_for_stands_on_its_own_line_and_can_be_shortened(tmp_path: Path):
    """An end-to-end test shortens the for: durations with a line rewrite: that must stay valid."""
    text = ALERT_RULES.read_text()
    lines = re.findall(r"^ +for: \d+[smh]$", text, flags=re.M)
    assert len(lines) == len(alert_rules())
    short = tmp_path / "qubicle.alerts.yml"
    short.write_text(re.sub(r"^( +)for: \d+[smh]$", r"\1for: 2s", text, flags=re.M))
    result = run_promtool("check", "rules", short)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {rule["for"] for group in yaml.safe_load(short.read_text())["groups"] for rule in group["rules"]} == {"2s"}


def test_every_alert_and_severity_is_tested_firing_and_silent():
    firing: set[tuple[str, str]] = set()
    silent: set[str] = set()
    for path in UNIT_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    firing |= {(case["alertname"], alert["exp_labels"]["severity"]) for alert in case["exp_alerts"]}
                else:
                    silent.add(case["alertname"])
    expected = {(name, severity) for name, (_, severities) in PINNED_ALERTS.items() for severity in severities}
    assert expected <= firing, expected - firing
    assert set(PINNED_ALERTS) <= silent, set(PINNED_ALERTS) - silent


def test_override_example_only_records_labelled_thresholds():
    """An override without account_id would collide with the shipped default."""
    defaults = {rule["record"] for rule in rules_of(RULES) if rule["record"].startswith("qubicle:")}
    for rule in rules_of(OVERRIDES):
        assert rule["record"] in defaults, rule["record"]
        assert "account_id" in rule.get("labels", {}), rule
