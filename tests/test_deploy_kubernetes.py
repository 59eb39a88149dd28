"""deploy/kubernetes: rendered by the real `kubectl kustomize`, validated against Kubernetes' schemas,
its PrometheusRule checked by promtool, its shards proved to cover every account exactly once.

A missing kubectl or promtool is a failure, not a skip (make tools installs them).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from conftest import ROOT, exporter_process, free_port
from prometheus_client.parser import text_string_to_metric_families

from exporter.cli import parse_args
from exporter.config import DEFAULT_PORT, Shard
from exporter.shard import in_shard

KUBE = ROOT / "deploy" / "kubernetes"
OVERLAYS = {"default": KUBE, "four-shards": KUBE / "examples" / "four-shards"}
RULE_FILES = ("qubicle.rules.yml", "qubicle.alerts.yml")
# Schemas of the Kubernetes releases still in common use, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.27", "1.30", kubernetes_validate.latest_version())
CORE_API_VERSIONS = {"v1", "apps/v1"}
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}



def _load_generator() -> ModuleType:
    # By path and under its own name: dashboards/generate.py is `generate` for other tests.
    spec = importlib.util.spec_from_file_location("kubernetes_generate", KUBE / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _load_generator()


def kubectl() -> str:
    path = shutil.which("kubectl")
    assert path, "kubectl is not on PATH: install Debian's 'kubernetes-client' package (make tools)"
    return path


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is not on PATH: install Debian's 'prometheus' package (make tools)"
    return path


_RENDERED: dict[str, list[dict[str, Any]]] = {}


def render(overlay: str) -> list[dict[str, Any]]:
    if overlay not in _RENDERED:
        result = subprocess.run([kubectl(), "kustomize", str(OVERLAYS[overlay])], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        _RENDERED[overlay] = [d for d in yaml.safe_load_all(result.stdout) if d]
    return copy.deepcopy(_RENDERED[overlay])


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def pod_environment(docs: list[dict[str, Any]]) -> dict[str, str]:
    """What the container's process sees: envFrom ConfigMaps, then env (which wins), as the kubelet does."""
    c = container(docs)
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        env.update(one(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in c.get("env", []):
        assert "value" in var, f"{var['name']}: only literal values are understood here"
        env[var["name"]] = var["value"]
    return env


def secret_mount_path(docs: list[dict[str, Any]], secret: str) -> str:
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    volume = next(v["name"] for v in pod["volumes"] if v.get("secret", {}).get("secretName") == secret)
    return next(m["mountPath"] for m in container(docs)["volumeMounts"] if m["name"] == volume)


# --- rendering and schemas ---------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_kustomize_renders_the_expected_objects(overlay):
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in render(overlay))
    assert kinds == sorted([
        ("StatefulSet", "qubicle-exporter"), ("Service", "qubicle-exporter"),
        ("ServiceMonitor", "qubicle-exporter"), ("PrometheusRule", "qubicle-exporter"),
        ("ConfigMap", "qubicle-exporter-dashboard"), ("ConfigMap", "qubicle-queues-dashboard"),
        ("ConfigMap", "qubicle-wallboard-dashboard"), ("ConfigMap", "qubicle-agents-dashboard"),
        ("ConfigMap", next(d["metadata"]["name"] for d in render(overlay)
                           if d["metadata"]["name"].startswith("qubicle-exporter-settings-"))),
    ])


@pytest.mark.e2e
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_core_objects_validate_strictly_against_kubernetes_schemas(overlay, version):
    docs = render(overlay)
    core = [d for d in docs if d["apiVersion"] in CORE_API_VERSIONS]
    # Everything else is the Prometheus Operator's, checked below on its own terms.
    assert {d["kind"] for d in docs if d not in core} == OPERATOR_KINDS
    for doc in core:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.e2e
def test_strict_validation_catches_a_misplaced_field():
    statefulset = one(render("default"), "StatefulSet")
    # A field one level off (it belongs in the container's securityContext) is silently ignored by a
    # lax check and by `kubectl apply` without --validate=strict: the schema check must refuse it.
    statefulset["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSIONS[1], strict=True)


# --- the pod ------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_pod_runs_unprivileged_with_a_read_only_root():
    docs = render("default")
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    c = container(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    assert "USER 10001" in (ROOT / "Dockerfile").read_text()
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
    assert pod["automountServiceAccountToken"] is False


def quantity(text: str | int) -> float:
    """Kubernetes quantities used here: cores ("1", "100m") and bytes ("128Mi") -> cores or MB."""
    text = str(text)
    if text.endswith("m"):
        return int(text[:-1]) / 1000
    if text.endswith("Mi"):
        return int(text[:-2]) * 1024 * 1024 / 1e6
    return float(text)


@pytest.mark.e2e
def test_resources_cover_the_benchmarked_figures():
    results = (ROOT / "bench" / "RESULTS.md").read_text()
    # The resources table's row at 10,000 queues: avg CPU (% of one core), RSS, peak RSS (MB).
    row = re.search(r"^10,000\s+\d+ s\s+\d+\s+([\d.]+) %\s+(\d+) MB\s+(\d+) MB$", results, re.M)
    assert row, "bench/RESULTS.md's resources table changed shape"
    cpu, rss, peak = float(row.group(1)) / 100, int(row.group(2)), int(row.group(3))
    resources = container(render("default"))["resources"]
    assert quantity(resources["requests"]["cpu"]) >= cpu
    assert quantity(resources["requests"]["memory"]) >= rss
    assert quantity(resources["limits"]["memory"]) >= 1.5 * peak  # headroom over the peak: an OOM kill loses counters
    assert quantity(resources["limits"]["cpu"]) >= 10 * cpu  # the render after a poll is a burst


@pytest.mark.e2e
def test_api_key_is_a_file_from_a_secret_and_settings_from_the_environment():
    docs = render("default")
    env = pod_environment(docs)
    assert "QUBICLE_API_KEY" not in env  # never the key itself in the environment
    key_dir = secret_mount_path(docs, "qubicle-exporter-kazoo")
    assert env["QUBICLE_API_KEY_FILE"].startswith(key_dir.rstrip("/") + "/")
    for name in ("QUBICLE_KAZOO_URL", "QUBICLE_ACCOUNT_ID", "QUBICLE_SHARD_FROM_HOSTNAME"):
        assert env.get(name), name


@pytest.mark.e2e
@pytest.mark.parametrize(("overlay", "replicas"), [("default", 1), ("four-shards", 4)])
def test_n_pods_named_by_ordinal_cover_every_account_exactly_once(overlay, replicas, tmp_path):
    docs = render(overlay)
    statefulset = one(docs, "StatefulSet")
    assert statefulset["spec"]["replicas"] == replicas
    env = pod_environment(docs)
    key = tmp_path / "api-key"
    key.write_text("k" * 64)
    env["QUBICLE_API_KEY_FILE"] = str(key)
    shards: list[Shard] = []
    for ordinal in range(replicas):
        # Kubernetes sets HOSTNAME to the pod's name: <StatefulSet name>-<ordinal>.
        settings = parse_args([], environ={**env, "HOSTNAME": f"{statefulset['metadata']['name']}-{ordinal}"})[1]
        assert settings.shard is not None
        shards.append(settings.shard)
    accounts = [f"{i:032x}" for i in range(3000)]
    for account in accounts:
        assert sum(in_shard(account, shard) for shard in shards) == 1, account


def scrape_up(url: str) -> dict[str, float]:
    families = text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text)
    return {s.labels["account_id"]: s.value for f in families for s in f.samples if s.name == "qubicle_up"}


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.2)


@pytest.mark.e2e
def test_four_shard_pods_poll_a_real_kazoo_without_overlap(make_simulator, tmp_path):
    """The four-shards overlay's pods as real processes against the simulator: a reseller with
    sub-accounts, discovered as descendants (the manifest's settings), split with no overlap."""
    # No rate limit: four exporters share one simulator here, where a platform's shards would not.
    sim = make_simulator(accounts=1, sub_accounts=11, queues_per_account=1, seed=5, speed=0, rate_limit=False)
    reseller = sim.account_ids[0]
    everyone = {reseller, *sim.sub_account_ids(reseller)}
    assert len(everyone) == 12
    docs = render("four-shards")
    name = one(docs, "StatefulSet")["metadata"]["name"]
    key = tmp_path / "api-key"
    key.write_text(sim.api_key)
    env = {**pod_environment(docs), "QUBICLE_KAZOO_URL": sim.url, "QUBICLE_ACCOUNT_ID": reseller,
           "QUBICLE_API_KEY_FILE": str(key)}
    assert env["QUBICLE_DISCOVER_DESCENDANTS"] == "true"
    from contextlib import ExitStack

    with ExitStack() as stack:
        pods = [stack.enter_context(exporter_process(env={**env, "HOSTNAME": f"{name}-{i}"}, ready=False))
                for i in range(4)]
        seen: list[dict[str, float]] = []

        def all_polled() -> bool:
            seen[:] = [scrape_up(p.url) for p in pods]
            return set().union(*seen) == everyone and all(v == 1 for s in seen for v in s.values())

        wait_for("the four shards together poll every account", all_polled)
    assert sum(len(s) for s in seen) == len(everyone), f"an account polled twice: {seen}"


@pytest.mark.e2e
def test_probes_keep_a_pod_with_kazoo_down_scraped(tmp_path):
    """Readiness must not depend on Kazoo: with Kazoo unreachable from the start, the probe the
    manifest uses answers 200 and the pod serves qubicle_up 0, which Prometheus must see."""
    docs = render("default")
    c = container(docs)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert ports[c[probe]["httpGet"]["port"]] == DEFAULT_PORT
    assert c["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert one(docs, "Service")["spec"]["publishNotReadyAddresses"] is True
    key = tmp_path / "api-key"
    key.write_text("k" * 64)
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    env = {**pod_environment(docs), "QUBICLE_KAZOO_URL": dead, "QUBICLE_API_KEY_FILE": str(key),
           "HOSTNAME": "qubicle-exporter-0", "QUBICLE_INTERVAL": "1", "QUBICLE_DISCOVER_DESCENDANTS": "false"}
    with exporter_process(env=env, ready=False) as pod:
        wait_for("qubicle_up 0 for the unreachable account", lambda: 0.0 in scrape_up(pod.url).values())
        assert pod.get(c["readinessProbe"]["httpGet"]["path"]).status_code == 200
        assert pod.get(c["livenessProbe"]["httpGet"]["path"]).status_code == 200
        # The endpoint the manifest does NOT use for readiness would have taken the pod out.
        assert pod.get("/-/ready").status_code == 503


# --- Service, ServiceMonitor and the alerts' job label -----------------------------------------


def alert_job() -> str:
    alerts = (ROOT / "alerts" / "qubicle.alerts.yml").read_text()
    jobs = set(re.findall(r'up\{job="([^"]+)"\}', alerts))
    assert len(jobs) == 1, jobs
    return jobs.pop()


@pytest.mark.e2e
def test_service_monitor_scrapes_the_pods_as_the_job_the_alerts_expect():
    docs = render("default")
    service, monitor = one(docs, "Service"), one(docs, "ServiceMonitor")
    pod_labels = one(docs, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    # The operator takes the job label's value from this Service label.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == alert_job()
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    container_ports = {p["name"]: p["containerPort"] for p in container(docs)["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        port = service_ports[endpoint["port"]]
        assert container_ports[port["targetPort"]] == DEFAULT_PORT
        assert endpoint["path"] == "/metrics"
    assert one(docs, "StatefulSet")["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"  # each pod its own target, one per shard


# --- generated PrometheusRule and dashboard ConfigMaps -------------------------------------------


@pytest.mark.e2e
def test_prometheus_rule_groups_equal_the_shipped_rule_files():
    rule = one(render("default"), "PrometheusRule")
    shipped = [g for name in RULE_FILES for g in yaml.safe_load((ROOT / "alerts" / name).read_text())["groups"]]
    assert rule["spec"]["groups"] == shipped


@pytest.mark.e2e
def test_prometheus_rule_passes_promtool(tmp_path):
    rule = one(render("default"), "PrometheusRule")
    path = tmp_path / "prometheusrule.rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    result = subprocess.run([promtool(), "check", "rules", "--lint=all", "--lint-fatal", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in rule['spec']['groups'])} rules found" in result.stdout


@pytest.mark.e2e
def test_dashboard_config_maps_equal_the_dashboards():
    maps = [d for d in render("default")
            if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"].get("labels", {})]
    files = {p.name: p.read_text() for p in (ROOT / "dashboards").glob("*.json")}
    assert len(files) == 4
    shipped: dict[str, str] = {}
    for config_map in maps:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        shipped.update(config_map["data"])
    assert shipped == files
    for text in shipped.values():
        json.loads(text)


def test_generated_objects_fit_kubectl_apply():
    """Client-side `kubectl apply` keeps the whole object in an annotation limited to 256 KiB (and a
    ConfigMap holds at most 1 MiB): a dashboard growing past it would apply only server-side."""
    for name in generate.render():
        for doc in yaml.safe_load_all((KUBE / "base" / "generated" / name).read_text()):
            assert len(json.dumps(doc)) < 256 * 1024, f"{name}: {doc['metadata']['name']} is too big"


def test_generated_files_are_up_to_date():
    for name, text in generate.render().items():
        committed = (KUBE / "base" / "generated" / name).read_text()
        assert committed == text, f"deploy/kubernetes/base/generated/{name} is stale: run make kubernetes"


def test_generator_check_mode_detects_a_stale_file(tmp_path, monkeypatch):
    monkeypatch.setattr(generate, "OUT", tmp_path)
    assert generate.main([]) == 0 and generate.main(["--check"]) == 0
    stale = tmp_path / "prometheusrule.yaml"
    stale.write_text(stale.read_text().replace("for: 2m", "for: 3m", 1))
    assert generate.main(["--check"]) == 1


def test_generated_rule_tracks_an_edited_alert(tmp_path, monkeypatch):
    """The generator reads alerts/ at run time, not a copy: change a rule, the PrometheusRule follows."""
    alerts = tmp_path / "alerts"
    shutil.copytree(ROOT / "alerts", alerts)
    (tmp_path / "dashboards").mkdir()
    text = (alerts / "qubicle.alerts.yml").read_text()
    (alerts / "qubicle.alerts.yml").write_text(text.replace("severity: critical", "severity: page", 1))
    monkeypatch.setattr(generate, "ROOT", tmp_path)
    groups = yaml.safe_load(generate.prometheus_rule())["spec"]["groups"]
    severities = {r.get("labels", {}).get("severity") for g in groups for r in g["rules"]}
    assert "page" in severities
