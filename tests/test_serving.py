"""/metrics serving: rendered once per poll, negotiated formats, gzip, endpoints, TLS and basic auth."""

from __future__ import annotations

import gzip
import subprocess
from collections.abc import AsyncIterator

import bcrypt
import httpx
import pytest
import trustme
import yaml
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition import Exposition
from exporter.web import WebHandlers, WebServer, parse_listen
from exporter.webconfig import WebConfigError, load_web_config
from helpers_prometheus import prometheus

ODD = ['say "hi"', "back\\slash", "new\nline", "Ünïcødé 客服 ☎"]


class CountingCollector:
    """A collector that counts how often it is rendered."""

    def __init__(self) -> None:
        self.collects = 0
        self.names = list(ODD)

    def collect(self):  # type: ignore[no-untyped-def]
        self.collects += 1
        family = GaugeMetricFamily("qubicle_queue_active_sessions", "callers", labels=["queue_name"])
        for i, name in enumerate(self.names):
            family.add_metric([name], float(i))
        yield family

    def describe(self):  # type: ignore[no-untyped-def]
        return []


@pytest.fixture
def exposition() -> tuple[Exposition, CountingCollector, Counter]:
    collector = CountingCollector()
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(collector)
    live = CollectorRegistry()
    requests = Counter("qubicle_api_requests", "requests", registry=live)
    return Exposition(snapshot, live), collector, requests


def families(body: bytes) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(body.decode())}


def test_rendered_once_per_poll_whatever_the_scrapes(exposition):
    expo, collector, requests = exposition
    expo.refresh()
    for _ in range(20):
        body, _ = expo.render(None, None)
        requests.inc()
    assert collector.collects == 1
    # The live part stays current between polls.
    assert families(body)["qubicle_api_requests"][0].value == 19
    collector.names = ["only one"]
    expo.refresh()
    body, _ = expo.render(None, None)
    assert [s.labels["queue_name"] for s in families(body)["qubicle_queue_active_sessions"]] == ["only one"]
    assert collector.collects == 2


def test_before_the_first_poll_only_the_live_part_is_served(exposition):
    expo, collector, _ = exposition
    body, headers = expo.render(None, None)
    assert {name.removesuffix("_created") for name in families(body)} == {"qubicle_api_requests"}
    assert collector.collects == 0
    assert headers["Content-Type"].startswith("text/plain; version=")


def test_openmetrics_has_one_eof_at_the_end(exposition):
    expo, _, _ = exposition
    expo.refresh()
    body, headers = expo.render("application/openmetrics-text; version=1.0.0,text/plain;q=0.5", None)
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.count(b"# EOF") == 1 and body.endswith(b"# EOF\n")
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse

    names = {f.name for f in om_parse(body.decode())}
    assert {"qubicle_queue_active_sessions", "qubicle_api_requests"} <= names


@pytest.mark.parametrize("accept", [None, "application/openmetrics-text; version=1.0.0"])
def test_gzip_is_one_member_holding_both_parts(exposition, accept):
    expo, _, requests = exposition
    expo.refresh()
    plain, _ = expo.render(accept, None)
    requests.inc()  # the live part changes between two scrapes; the cached deflate must not
    plain_now, _ = expo.render(accept, None)
    zipped, headers = expo.render(accept, "gzip, deflate")
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped) == plain_now
    # One gzip member: zlib's gzip mode stops at the end of the first member, as httpx does.
    import zlib

    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert decoder.decompress(zipped) == plain_now and decoder.unused_data == b""
    assert plain != plain_now


def test_gzip_refused_with_q0(exposition):
    expo, _, _ = exposition
    expo.refresh()
    _, headers = expo.render(None, "gzip;q=0, identity")
    assert "Content-Encoding" not in headers


def test_odd_label_values_pass_promtool_and_the_parser(exposition, tmp_path):
    expo, _, _ = exposition
    expo.refresh()
    body, _ = expo.render(None, None)
    names = {s.labels["queue_name"] for s in families(body)["qubicle_queue_active_sessions"]}
    assert names == set(ODD)
    path = tmp_path / "m.prom"
    path.write_bytes(body)
    result = subprocess.run(["promtool", "check", "metrics"], stdin=path.open("rb"), capture_output=True, text=True)
    assert result.returncode in (0, 3) and "error" not in result.stderr.lower(), result.stderr


@pytest.mark.parametrize(("text", "expected"), [("127.0.0.1:80", ("127.0.0.1", 80)), (":9", (None, 9)),
                                                 ("[::1]:10147", ("::1", 10147)), ("host.example:1", ("host.example", 1))])
def test_listen_addresses(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["10147", "host:", "host:99999", "[::1:80", "a:b:c"])
def test_bad_listen_addresses(text):
    with pytest.raises(ValueError, match="--listen"):
        parse_listen(text)


@pytest.fixture
async def server(exposition) -> AsyncIterator[tuple[str, dict[str, bool]]]:
    expo, _, _ = exposition
    expo.refresh()
    state = {"ready": False}
    handlers = WebHandlers(expo.render, lambda: "<h1>qubicle-exporter</h1>", lambda: True, lambda: state["ready"])
    web = await WebServer.start(handlers, "127.0.0.1:0")
    yield "http://%s:%d" % web.bound[0], state
    await web.stop()


async def test_endpoints(server):
    url, state = server
    async with httpx.AsyncClient() as client:
        assert (await client.get(url + "/-/healthy")).status_code == 200
        assert (await client.get(url + "/-/ready")).status_code == 503
        state["ready"] = True
        assert (await client.get(url + "/-/ready")).status_code == 200
        assert "qubicle-exporter" in (await client.get(url + "/")).text
        assert (await client.head(url + "/metrics")).status_code == 200
        assert (await client.get(url + "/nope")).status_code == 404
        response = await client.get(url + "/metrics", headers={"Accept-Encoding": "gzip"})
        assert response.headers["Content-Encoding"] == "gzip"
        assert "qubicle_queue_active_sessions" in response.text and "qubicle_api_requests" in response.text


# ---- exporter-toolkit web config --------------------------------------------------------------

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


@pytest.mark.parametrize(("content", "message"), [
    ({"tls_server_config": {"cert_file": "a"}}, "cert_file and key_file are both required"),
    ({"tls_server_conf": {}}, "unknown key 'tls_server_conf'"),
    ({"tls_server_config": {"cert_file": "a", "key_file": "b", "min_version": "TLS9"}}, "min_version"),
    ({"basic_auth_users": {"bob": "plaintext"}}, "basic_auth_users.bob: expected a bcrypt hash"),
    ({"tls_server_config": {"cert_file": "missing.pem", "key_file": "missing.pem"}}, "cannot load certificate"),
    ({"tls_server_config": {"cert_file": "a", "key_file": "b", "client_auth_type": "RequireAndVerifyClientCert"}},
     "client_ca_file: required"),
])
def test_bad_web_configs_name_the_key(tmp_path, content, message):
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(WebConfigError, match=message):
        load_web_config(str(path))


async def test_tls_and_basic_auth(exposition, tls_files):
    expo, _, _ = exposition
    expo.refresh()
    config, ca = tls_files
    handlers = WebHandlers(expo.render, lambda: "", lambda: True, lambda: True)
    web = await WebServer.start(handlers, "127.0.0.1:0", str(config))
    url = "https://127.0.0.1:%d" % web.bound[0][1]
    try:
        async with httpx.AsyncClient(verify=str(ca)) as client:
            assert (await client.get(url + "/metrics")).status_code == 401
            assert (await client.get(url + "/metrics", auth=("prometheus", "wrong"))).status_code == 401
            assert (await client.get(url + "/metrics", auth=("nobody", PASSWORD))).status_code == 401
            ok = await client.get(url + "/metrics", auth=("prometheus", PASSWORD))
            assert ok.status_code == 200 and "qubicle_queue_active_sessions" in ok.text
            assert (await client.get(url + "/-/healthy")).headers["WWW-Authenticate"].startswith("Basic")
        async with httpx.AsyncClient() as untrusting:
            with pytest.raises(httpx.ConnectError):
                await untrusting.get(url + "/metrics")
    finally:
        await web.stop()


def test_real_prometheus_scrapes_over_tls_with_basic_auth(tls_files, tmp_path):
    """A real exporter process with --web.config.file, scraped by a real Prometheus."""
    from conftest import exporter_process

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
