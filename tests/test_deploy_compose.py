"""deploy/compose: what can be checked without a Docker engine, checked for real.

The compose file is resolved by Docker Compose itself (`docker compose config`, or Debian's
`docker-compose config`), and each container's view of its mounts is rebuilt in a temporary
directory, on which the real promtool and amtool check the configurations as the containers
would load them. Not run here: the containers themselves (no engine on these machines).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import ROOT

from exporter.cli import parse_args

COMPOSE = ROOT / "deploy" / "compose"
BASE = COMPOSE / "compose.yaml"
KAZOO = COMPOSE / "compose.kazoo.yaml"
KAZOO_ENV = {"KAZOO_URL": "https://kazoo.example.net:8443", "KAZOO_ACCOUNT_ID": "3f0b1c2d4e5f60718293a4b5c6d7e8f9"}

pytestmark = pytest.mark.e2e


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=60).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    assert legacy, "neither `docker compose` nor docker-compose: install Debian's 'docker-compose' (make tools)"
    return [legacy]


def run_config(*files: Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = compose_command() + [a for f in files for a in ("-f", str(f))] + ["config"]
    # Only what compose needs: no stray KAZOO_* or COMPOSE_* variables of the machine running the tests.
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
               **(env or {})}
    return subprocess.run(argv, cwd=cwd, env=environ, capture_output=True, text=True, timeout=120)


def config(*files: Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_config(*files, cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host path, container path) of a service's bind mounts, in either output style of compose."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume["type"] == "bind":
                mounts.append((Path(volume["source"]), volume["target"]))
        else:
            source, target = volume.split(":")[:2]
            if source.startswith("/"):
                mounts.append((Path(source), target))
    return mounts


def container_view(service: dict[str, Any], root: Path) -> Path:
    """The service's bind mounts copied under `root` at their container paths."""
    for source, target in bind_mounts(service):
        dest = root / target.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, dest)
    return root


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_compose_file_parses_and_paths_resolve_from_its_own_folder(tmp_path):
    from_root = config(BASE, cwd=ROOT)
    assert set(from_root["services"]) == {"qubicle-exporter", "prometheus", "alertmanager", "grafana"}
    # From the compose folder and from anywhere else: the same paths (relative to the file, not the shell).
    assert config(Path("compose.yaml"), cwd=COMPOSE) == from_root
    assert config(BASE, cwd=tmp_path) == from_root


def test_every_mounted_path_and_the_build_exist():
    services = config(BASE)["services"]
    mounts = [m for s in services.values() for m in bind_mounts(s)]
    assert len(mounts) >= 6
    for source, target in mounts:
        assert source.exists(), f"{source} (mounted at {target}) does not exist"
        assert source.resolve().is_relative_to(ROOT), source
    build = services["qubicle-exporter"]["build"]
    assert Path(build["context"]) == ROOT
    assert (Path(build["context"]) / build.get("dockerfile", "Dockerfile")).is_file()


def test_images_are_official_and_pinned():
    services = config(BASE)["services"]
    for name in ("prometheus", "alertmanager", "grafana"):
        image = services[name]["image"]
        repository, _, tag = image.rpartition(":")
        assert repository in {"prom/prometheus", "prom/alertmanager", "grafana/grafana"}, image
        assert tag and tag != "latest" and tag[-1].isdigit(), f"{name}: {image} is not pinned to a version"


def test_prometheus_config_passes_promtool_with_the_rules_as_the_container_sees_them(tmp_path):
    services = config(BASE)["services"]
    prometheus = services["prometheus"]
    config_flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_file = container_view(prometheus, tmp_path) / config_flag.split("=", 1)[1].lstrip("/")
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH: install Debian's 'prometheus' package (make tools)"
    result = subprocess.run([promtool, "check", "config", "--lint=all", "--lint-fatal", str(config_file)],
                            capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # promtool checks the rule files the config names: both shipped files, every rule in them.
    shipped = [yaml.safe_load((ROOT / "alerts" / n).read_text()) for n in ("qubicle.rules.yml", "qubicle.alerts.yml")]
    for data in shipped:
        assert f"SUCCESS: {sum(len(g['rules']) for g in data['groups'])} rules found" in output, output
    # Its targets are the stack's services, on the ports they serve.
    prom = yaml.safe_load(config_file.read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "qubicle")
    assert job["static_configs"][0]["targets"] == [f"qubicle-exporter:{exporter_port(services)}"]
    assert exporter_port(services) in container_ports(services["qubicle-exporter"])
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert 9093 in container_ports(services["alertmanager"])


def port_text(port: Any) -> str:
    """host_ip:published:target, whichever syntax compose printed."""
    if isinstance(port, dict):
        return f"{port.get('host_ip', '')}:{port.get('published', '')}:{port['target']}"
    return str(port).split("/")[0]


def container_ports(service: dict[str, Any]) -> set[int]:
    return {int(port_text(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])}


def exporter_port(services: dict[str, Any]) -> int:
    settings = parse_args([], environ=environment(services["qubicle-exporter"]))[1]
    return int(settings.listen.rsplit(":", 1)[1])


def test_alertmanager_config_passes_amtool(tmp_path):
    alertmanager = config(BASE)["services"]["alertmanager"]
    config_flag = next(a for a in alertmanager["command"] if a.startswith("--config.file="))
    config_file = container_view(alertmanager, tmp_path) / config_flag.split("=", 1)[1].lstrip("/")
    amtool = shutil.which("amtool")
    assert amtool, "amtool is not on PATH: install Debian's 'prometheus-alertmanager' package (make tools)"
    result = subprocess.run([amtool, "check-config", str(config_file)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_grafana_provisioning_points_at_the_mounted_dashboards_and_opens_on_the_wallboard(tmp_path):
    services = config(BASE)["services"]
    grafana = services["grafana"]
    view = container_view(grafana, tmp_path)
    providers = list((view / "etc/grafana/provisioning/dashboards").glob("*.yml"))
    assert providers
    for provider_file in providers:
        for provider in yaml.safe_load(provider_file.read_text())["providers"]:
            folder = view / provider["options"]["path"].lstrip("/")
            assert sorted(p.name for p in folder.glob("*.json")) == sorted(
                p.name for p in (ROOT / "dashboards").glob("*.json"))
    env = environment(grafana)
    home = view / env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].lstrip("/")
    assert home.is_file() and '"uid": "qubicle-wallboard"' in home.read_text()
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"  # "no other step": no login in front of the wallboard
    datasources = [d for f in (view / "etc/grafana/provisioning/datasources").glob("*.yml")
                   for d in yaml.safe_load(f.read_text())["datasources"]]
    url = urlsplit(next(d["url"] for d in datasources if d["type"] == "prometheus"))
    assert url.hostname in services and url.hostname == "prometheus"
    assert url.port in container_ports(services["prometheus"])
    assert any(port_text(p).startswith("127.0.0.1:3000:") for p in grafana["ports"])


def test_the_exporter_runs_the_demo_by_default():
    settings = parse_args([], environ=environment(config(BASE)["services"]["qubicle-exporter"]))[1]
    assert settings.demo.enabled
    assert settings.listen == "0.0.0.0:10147"


def test_kazoo_override_reads_the_api_key_from_a_compose_secret(tmp_path):
    merged = config(BASE, KAZOO, env=KAZOO_ENV)
    exporter = merged["services"]["qubicle-exporter"]
    env = environment(exporter)
    assert "QUBICLE_API_KEY" not in env
    secret = exporter["secrets"][0]
    name = secret["source"] if isinstance(secret, dict) else secret
    assert Path(merged["secrets"][name]["file"]) == COMPOSE / "kazoo-api-key"
    # Compose mounts a secret at /run/secrets/<name>: where the exporter reads the key.
    assert env["QUBICLE_API_KEY_FILE"] == f"/run/secrets/{name}"
    key = tmp_path / "key"
    key.write_text("k" * 64)
    settings = parse_args([], environ={**env, "QUBICLE_API_KEY_FILE": str(key)})[1]
    assert not settings.demo.enabled
    assert settings.kazoo_url == KAZOO_ENV["KAZOO_URL"]
    assert settings.account_ids == (KAZOO_ENV["KAZOO_ACCOUNT_ID"],)
    assert "kazoo-api-key" in (COMPOSE / ".gitignore").read_text().split()


def test_kazoo_override_without_the_url_fails_naming_it():
    result = run_config(BASE, KAZOO, env={"KAZOO_ACCOUNT_ID": KAZOO_ENV["KAZOO_ACCOUNT_ID"]})
    assert result.returncode != 0
    assert "KAZOO_URL" in result.stderr
