"""The README's recipes, run as written: a newcomer copies them, so they must work.

No Docker engine here: the image's HEALTHCHECK command (read from the Dockerfile) and the README's
replacement for it run as plain processes beside a real exporter, as they would in the container.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import ROOT, exporter_process, free_port

pytestmark = pytest.mark.e2e  # starts processes (the exporter, sh, the image's health check)


README = (ROOT / "README.md").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYTHON_BIN = str(Path(sys.executable).parent)


def _sh(command: str, *, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    # `python` and `python3` resolve to this interpreter, which has the exporter's packages.
    full_env = {"PATH": f"{PYTHON_BIN}:/usr/bin:/bin", **(env or {})}
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60, env=full_env, cwd=cwd)


def _bcrypt_one_liner() -> str:
    found: list[str] = re.findall(r"^\s*(python3 -c '[^']*bcrypt[^']*' < prometheus\.password)$", README,
                                  flags=re.M)
    assert len(found) == 1, found
    return found[0]


def _web_config_with_user(tmp_path: Path, password: str) -> Path:
    (tmp_path / "prometheus.password").write_text(password + "\n")  # as an editor saves it
    result = _sh(_bcrypt_one_liner(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    hashed = result.stdout.strip()
    assert password not in hashed
    config = tmp_path / "web.yml"
    config.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": hashed}}))
    return config


def test_the_bcrypt_one_liner_makes_a_hash_the_exporter_accepts(tmp_path: Path) -> None:
    config = _web_config_with_user(tmp_path, "correct horse battery staple")
    with exporter_process("--demo", "--web.config.file", str(config), probe=False) as exporter:
        url = exporter.url + "/-/healthy"
        assert httpx.get(url, auth=("prometheus", "correct horse battery staple"), timeout=30).status_code == 200
        assert httpx.get(url, auth=("prometheus", "correct horse battery staple\n"), timeout=30).status_code == 401
        assert httpx.get(url, timeout=30).status_code == 401


def _healthcheck() -> tuple[list[str], str, int]:
    """The Dockerfile's HEALTHCHECK command, its default URL and the port the image exposes."""
    command = json.loads(re.search(r"^HEALTHCHECK .*\\\n\s*CMD (\[.*\])$", DOCKERFILE, flags=re.M).group(1))  # type: ignore[union-attr]
    default_url = re.search(r"^ENV QUBICLE_HEALTHCHECK_URL=(\S+)$", DOCKERFILE, flags=re.M).group(1)  # type: ignore[union-attr]
    exposed = int(re.search(r"^EXPOSE (\d+)$", DOCKERFILE, flags=re.M).group(1))  # type: ignore[union-attr]
    return command, default_url, exposed


def test_the_readme_documents_the_healthcheck_url_and_its_default() -> None:
    _, default_url, exposed = _healthcheck()
    assert default_url == f"http://127.0.0.1:{exposed}/-/healthy"
    docker = README.split("## Running in a container", 1)[1].split("\n## ", 1)[0]
    assert "`QUBICLE_HEALTHCHECK_URL`" in docker and f"`{default_url}`" in docker
    assert "-e QUBICLE_HEALTHCHECK_URL=http://127.0.0.1:10148/-/healthy" in docker
    assert "--listen 0.0.0.0:10148" in docker


def test_the_image_healthcheck_follows_its_url_and_fails_behind_basic_auth(tmp_path: Path) -> None:
    command, _, _ = _healthcheck()
    assert command[0] == "python"

    def healthcheck(url: str) -> int:
        return subprocess.run([sys.executable, *command[1:]], env={"QUBICLE_HEALTHCHECK_URL": url},
                              capture_output=True, timeout=30).returncode

    with exporter_process("--demo", ready=False) as exporter:
        assert healthcheck(exporter.url + "/-/healthy") == 0
    assert healthcheck(f"http://127.0.0.1:{free_port()}/-/healthy") != 0  # nothing listens there
    config = _web_config_with_user(tmp_path, "pw")
    with exporter_process("--demo", "--web.config.file", str(config), probe=False) as exporter:
        assert healthcheck(exporter.url + "/-/healthy") != 0  # why the README says to replace it


def test_the_readme_healthcheck_for_tls_or_basic_auth_works(tmp_path: Path) -> None:
    docker = README.split("## Running in a container", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"--health-cmd ('[^']+')", docker)
    assert found, docker
    health_cmd = shlex.split(found.group(1))[0]  # what Docker receives, run by /bin/sh -c as Docker does
    assert "10147" in health_cmd
    config = _web_config_with_user(tmp_path, "pw")
    with exporter_process("--demo", "--web.config.file", str(config), probe=False) as exporter:
        port = exporter.url.rsplit(":", 1)[1]
        assert _sh(health_cmd.replace("10147", port)).returncode == 0
    assert _sh(health_cmd.replace("10147", str(free_port()))).returncode != 0
