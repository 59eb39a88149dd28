"""A real exporter process behind --web.config.file (TLS + basic auth), scraped by a real Prometheus.

The exposition, the web server and the web configuration have their own tests
(test_exposition.py, test_web.py, test_webconfig.py); this one proves the whole path.
"""

from __future__ import annotations

import bcrypt
import pytest
import trustme
import yaml
from conftest import exporter_process
from helpers_prometheus import prometheus

pytestmark = pytest.mark.e2e  # starts processes or needs Debian's tools

PASSWORD = "scrape-secret"


@pytest.fixture
def tls_files(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    config = tmp_path / "web.yml"
    config.write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": "server.pem", "key_file": "server.pem"},  # relative to the file
        "basic_auth_users": {"prometheus": hashed},
    }))
    return config, tmp_path / "ca.pem"


def test_real_prometheus_scrapes_over_tls_with_basic_auth(tls_files, tmp_path):
    """A real exporter process with --web.config.file, scraped by a real Prometheus."""
    config, ca = tls_files
    with exporter_process("--demo", "--interval", "1", "--web.config.file", str(config), ready=False,
                          probe=False) as exporter:
        target = exporter.url.removeprefix("http://")
        with prometheus({
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [{
                "job_name": "qubicle", "scheme": "https", "static_configs": [{"targets": [target]}],
                "tls_config": {"ca_file": str(ca)},
                "basic_auth": {"username": "prometheus", "password": PASSWORD},
            }],
        }) as prom:
            prom.wait_for('up{job="qubicle"}', lambda r: len(r) == 1 and r[0]["value"][1] == "1")
            prom.wait_for("count(qubicle_queue_info)", lambda r: bool(r) and float(r[0]["value"][1]) == 8)
