"""exporter-toolkit web config: parsing, TLS (trustme certificates), client certificates, basic auth,
headers, rate limit, and a real Prometheus scraping over TLS with basic auth."""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
import trustme
import yaml
from helpers_exposition import registry_exposition
from helpers_prometheus import prometheus
from prometheus_client import CollectorRegistry, Counter, Gauge

from exporter.web import BasicAuth, WebConfigError, WebHandlers, WebServer, load_web_config, parse_web_config

PASSWORD = "scrape-secret"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def pki(tmp_path: Path, ca: trustme.CA) -> Path:
    """server.pem (key + chain for 127.0.0.1), ca.pem, and a client certificate client.pem."""
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    ca.issue_cert("prometheus.example").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "client.pem"))
    return tmp_path


def write(path: Path, content: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(content))
    return str(path)


def client_context(pki: Path, *, cert: bool = False, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if cert:
        context.load_cert_chain(str(pki / "client.pem"))
    if max_version is not None:
        context.maximum_version = max_version
    return context


def handlers() -> WebHandlers:
    snapshot = CollectorRegistry()
    Gauge("qubicle_queue_active_sessions", "Callers in the queue now.", ["queue_name"],
          registry=snapshot).labels("Support").set(3)
    live = CollectorRegistry()
    Counter("qubicle_api_requests", "Requests to Kazoo.", registry=live).inc(7)
    expo = registry_exposition(snapshot, live)
    return WebHandlers(expo.render, lambda: "<h1>qubicle-exporter</h1>", lambda: True, lambda: True)


@asynccontextmanager
async def https_server(config: str) -> AsyncIterator[str]:
    server = await WebServer.start(handlers(), "127.0.0.1:0", config)
    try:
        yield f"https://127.0.0.1:{server.bound[0][1]}"
    finally:
        await server.stop()


# ---- parsing ----------------------------------------------------------------------------------

def test_a_full_config_parses(pki):
    config = load_web_config(write(pki / "web.yml", {
        "tls_server_config": {
            "cert_file": "server.pem", "key_file": "server.pem", "client_ca_file": "ca.pem",
            "client_auth_type": "RequireAndVerifyClientCert", "client_allowed_sans": ["prometheus.example"],
            "min_version": "TLS12", "max_version": "TLS13", "prefer_server_cipher_suites": True,
            "cipher_suites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"],
        },
        "http_server_config": {"http2": True, "headers": {"X-Frame-Options": "deny", "Content-Security-Policy": ""}},
        "basic_auth_users": {"prometheus": HASH},
        "rate_limit": {"interval": "1m30s", "burst": 5},
    }))
    assert config.tls is not None
    assert config.tls.cert_file == pki / "server.pem"  # relative to the file's directory
    assert config.tls.client_auth == ssl.CERT_REQUIRED
    assert config.tls.min_version == ssl.TLSVersion.TLSv1_2 and config.tls.max_version == ssl.TLSVersion.TLSv1_3
    assert config.tls.cipher_suites == ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384")
    assert config.headers == {"X-Frame-Options": "deny"}  # blank means unset
    assert config.rate_limit == (90.0, 5)
    assert config.basic_auth is not None and config.basic_auth.check(basic("prometheus", PASSWORD))
    assert config.ssl_context() is not None


def test_paths_are_relative_to_the_config_file_not_the_cwd(pki, tmp_path, monkeypatch):
    sub = pki / "conf"
    sub.mkdir()
    (sub / "server.pem").write_bytes((pki / "server.pem").read_bytes())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_web_config(write(sub / "web.yml", {"tls_server_config": {"cert_file": "server.pem",
                                                                             "key_file": "server.pem"}}))
    assert config.tls is not None and config.tls.cert_file == sub / "server.pem"


@pytest.mark.parametrize("content", [None, {}, {"tls_server_config": {}, "basic_auth_users": {}}])
def test_an_empty_config_means_plain_http_without_auth(tmp_path, content):
    path = tmp_path / "web.yml"
    path.write_text("" if content is None else yaml.safe_dump(content))
    config = load_web_config(str(path))
    assert config.tls is None and config.basic_auth is None and config.ssl_context() is None


BAD = [
    ({"tls_server_conf": {}}, "web config: unknown key 'tls_server_conf'"),
    ({"tls_server_config": {"cert_file": "server.pem"}}, "cert_file and key_file are both required"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.pem", "ciphers": []}},
     "tls_server_config: unknown key 'ciphers'"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.pem", "min_version": "TLS9"}},
     "tls_server_config.min_version: expected one of TLS10, TLS11, TLS12, TLS13, got 'TLS9'"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.pem", "min_version": "TLS13",
                            "max_version": "TLS12"}}, "tls_server_config.max_version: TLS12 is below min_version"),
    ({"tls_server_config": {"cert_file": "missing.pem", "key_file": "missing.pem"}},
     "cannot load certificate or key .*missing.pem.*No such file"),
    ({"tls_server_config": {"cert_file": "ca.pem", "key_file": "ca.pem"}}, "cannot load certificate or key"),
    ({"tls_server_config": {"cert_file": 42, "key_file": "server.pem"}},
     "tls_server_config.cert_file: expected a non-empty string"),
    ({"tls_server_config": {"cert_file": "server.pem", "cert": "PEM", "key_file": "server.pem"}},
     "cert and cert_file are exclusive"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.pem",
                            "client_auth_type": "RequireAndVerifyClientCert"}}, "client_ca_file: required"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.pem", "client_auth_type": "Always"}},
     "client_auth_type: expected one of NoClientCert"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.pem",
                            "client_auth_type": "RequireAnyClientCert", "client_ca_file": "ca.pem"}},
     "RequireAnyClientCert .* is not supported; use RequireAndVerifyClientCert"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.pem", "client_ca_file": "ca.pem"}},
     "client_ca_file: set client_auth_type too"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.pem", "client_allowed_sans": ["x"]}},
     "client_allowed_sans: requires client_auth_type RequireAndVerifyClientCert"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.pem",
                            "cipher_suites": ["TLS_RSA_WITH_RC4_128_SHA"]}},
     "cipher_suites: unknown or insecure cipher suite 'TLS_RSA_WITH_RC4_128_SHA'"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.pem", "curve_preferences": ["X25519"]}},
     "curve_preferences: not supported"),
    ({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.pem",
                            "prefer_server_cipher_suites": "yes"}}, "prefer_server_cipher_suites: expected true"),
    ({"tls_server_config": "server.pem"}, "tls_server_config: expected a mapping, got str"),
    ({"basic_auth_users": {"bob": "hunter2"}}, r"basic_auth_users.bob: expected a bcrypt hash"),
    ({"basic_auth_users": {"bob": "$2y$10$short"}}, r"basic_auth_users.bob: expected a bcrypt hash"),
    ({"basic_auth_users": {"bo:b": HASH}}, "basic_auth_users: user name 'bo:b' must be"),
    ({"basic_auth_users": ["bob"]}, "basic_auth_users: expected a mapping, got list"),
    ({"http_server_config": {"http3": True}}, "http_server_config: unknown key 'http3'"),
    ({"http_server_config": {"http2": "on"}}, "http_server_config.http2: expected true or false"),
    ({"http_server_config": {"headers": {"Server": "x"}}}, "header 'Server' cannot be set"),
    ({"http_server_config": {"headers": {"X-Frame-Options": "allow"}}},
     "headers.X-Frame-Options: expected one of deny, sameorigin, got 'allow'"),
    ({"http_server_config": {"headers": {"X-Content-Type-Options": "sniff"}}}, "expected one of nosniff"),
    ({"rate_limit": {"interval": "1 second", "burst": 1}}, "rate_limit.interval: expected a duration"),
    ({"rate_limit": {"interval": "1s", "burst": -1}}, "rate_limit.burst: expected a non-negative integer"),
    ({"rate_limit": {"interval": "1s"}}, "rate_limit.burst: must be at least 1"),
    ({"rate_limit": {"interval": "1s", "burst": 1, "per": "ip"}}, "rate_limit: unknown key 'per'"),
    (["tls_server_config"], "web config: expected a mapping, got list"),
]


@pytest.mark.parametrize(("content", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_bad_web_configs_are_one_line_naming_the_key(pki, content, message):
    with pytest.raises(WebConfigError, match=message) as info:
        load_web_config(write(pki / "web.yml", content))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("text", "message"), [("a: [", "is not valid YAML"), (None, "cannot read")])
def test_unreadable_files(tmp_path, text, message):
    path = tmp_path / "web.yml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(WebConfigError, match=message):
        load_web_config(str(path))


def test_secrets_never_appear_in_errors_or_reprs(pki):
    with pytest.raises(WebConfigError) as info:
        parse_web_config({"basic_auth_users": {"bob": "my-plain-password"}}, pki)
    assert "my-plain-password" not in str(info.value)
    key_pem = (pki / "server.pem").read_text()
    key_match = re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----\n", key_pem, re.DOTALL)
    assert key_match is not None
    key_only = key_match[0]
    config = parse_web_config({"tls_server_config": {"cert": "not a certificate", "key": key_only},
                               "basic_auth_users": {"bob": HASH}}, pki)
    assert HASH not in repr(config) and key_only not in repr(config) and "bob" in repr(config)
    with pytest.raises(WebConfigError, match="cannot load certificate or key") as info:
        config.ssl_context()
    assert key_only[40:80] not in str(info.value)


def test_inline_certificate_key_and_client_ca(pki):
    server = (pki / "server.pem").read_text()
    config = parse_web_config({"tls_server_config": {
        "cert": server, "key": server, "client_ca": (pki / "ca.pem").read_text(),
        "client_auth_type": "VerifyClientCertIfGiven"}}, pki)
    context = config.ssl_context()
    assert context is not None and context.verify_mode == ssl.CERT_OPTIONAL
    assert not list(Path(tempfile.gettempdir()).glob("qubicle-tls-*.pem"))  # the private copies are gone


# ---- basic auth -------------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "ok"), [
    (basic("prometheus", PASSWORD), True),
    ("basic " + base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode(), True),  # scheme is case-insensitive
    (basic("prometheus", "wrong"), False),
    (basic("nobody", PASSWORD), False),
    (basic("prometheus", PASSWORD + "x"), False),
    (basic("prometheus", ""), False),
    (None, False), ("", False), ("Bearer abc", False), ("Basic", False), ("Basic !!!not-base64", False),
    ("Basic " + base64.b64encode(b"no-colon").decode(), False),
    ("Basic " + base64.b64encode(b"prometheus:\xff\xfe").decode(), False),  # not UTF-8: no crash
    (basic("prometheus", "p" * 100), False),  # bcrypt >= 5 refuses > 72 bytes: a no, not a crash
])
def test_basic_auth_checks(header, ok):
    auth = BasicAuth({"prometheus": HASH})
    assert auth.check(header) is ok
    assert auth.check(header) is ok  # the cached verdict agrees


def test_verdicts_are_cached_and_the_cache_is_bounded():
    auth = BasicAuth({"prometheus": HASH}, cache_size=2)
    good = basic("prometheus", PASSWORD)
    assert auth.cached(good) is None  # not yet checked: needs a bcrypt
    assert auth.check(good)
    assert auth.cached(good) is True
    assert not auth.check(basic("prometheus", "a")) and auth.cached(basic("prometheus", "a")) is False
    auth.check(basic("prometheus", "b"))
    auth.check(basic("prometheus", "c"))
    assert auth.cached(basic("prometheus", "a")) is None  # evicted: the failures' cache holds two
    assert auth.cached(good) is True  # failures never evict a success
    assert auth.cached(None) is False


async def test_basic_auth_over_https(pki):
    config = write(pki / "web.yml", {"tls_server_config": {"cert_file": "server.pem", "key_file": "server.pem"},
                                     "basic_auth_users": {"prometheus": HASH}})
    async with https_server(config) as url, httpx.AsyncClient(verify=client_context(pki)) as client:
        missing = await client.get(url + "/metrics")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"].startswith('Basic realm="qubicle-exporter"')
        assert (await client.get(url + "/metrics", auth=("prometheus", "wrong"))).status_code == 401
        assert (await client.get(url + "/metrics", auth=("nobody", PASSWORD))).status_code == 401
        ok = await client.get(url + "/metrics", auth=("prometheus", PASSWORD))
        assert ok.status_code == 200 and 'qubicle_queue_active_sessions{queue_name="Support"} 3.0' in ok.text
        # Like the exporter-toolkit: every path is protected, health endpoints included.
        for path in ("/", "/-/healthy", "/-/ready"):
            assert (await client.get(url + path)).status_code == 401
            assert (await client.get(url + path, auth=("prometheus", PASSWORD))).status_code == 200
        assert PASSWORD not in missing.text


async def test_tls_needs_a_trusted_certificate_and_honours_min_version(pki):
    config = write(pki / "web.yml", {"tls_server_config": {"cert_file": "server.pem", "key_file": "server.pem",
                                                           "min_version": "TLS13"}})
    async with https_server(config) as url:
        async with httpx.AsyncClient(verify=client_context(pki)) as client:
            assert (await client.get(url + "/-/healthy")).text == "OK\n"
        async with httpx.AsyncClient() as untrusting:  # system CAs only
            with pytest.raises(httpx.ConnectError):
                await untrusting.get(url + "/-/healthy")
        async with httpx.AsyncClient(verify=client_context(pki, max_version=ssl.TLSVersion.TLSv1_2)) as old:
            with pytest.raises(httpx.ConnectError):
                await old.get(url + "/-/healthy")
        async with httpx.AsyncClient() as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get(url.replace("https:", "http:") + "/-/healthy")


@pytest.mark.parametrize(("sans", "status"), [(None, 200), (["prometheus.example"], 200), (["other.example"], 403)])
async def test_client_certificates(pki, sans, status):
    tls: dict[str, Any] = {"cert_file": "server.pem", "key_file": "server.pem", "client_ca_file": "ca.pem",
                           "client_auth_type": "RequireAndVerifyClientCert"}
    if sans:
        tls["client_allowed_sans"] = sans
    async with https_server(write(pki / "web.yml", {"tls_server_config": tls})) as url:
        async with httpx.AsyncClient(verify=client_context(pki, cert=True)) as client:
            assert (await client.get(url + "/metrics")).status_code == status
        async with httpx.AsyncClient(verify=client_context(pki)) as anonymous:
            with pytest.raises(httpx.HTTPError):  # TLS 1.3 reports the missing certificate after the handshake
                await anonymous.get(url + "/metrics")


async def test_configured_headers_are_on_every_response(pki):
    config = write(pki / "web.yml", {
        "tls_server_config": {"cert_file": "server.pem", "key_file": "server.pem"},
        "http_server_config": {"headers": {"Strict-Transport-Security": "max-age=31536000",
                                           "X-Content-Type-Options": "nosniff"}},
        "basic_auth_users": {"prometheus": HASH},
    })
    async with https_server(config) as url, httpx.AsyncClient(verify=client_context(pki)) as client:
        for response in (await client.get(url + "/metrics", auth=("prometheus", PASSWORD)),
                         await client.get(url + "/metrics"), await client.get(url + "/nope")):
            assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
            assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_rate_limit(pki):
    config = write(pki / "web.yml", {"rate_limit": {"interval": "1h", "burst": 2}})
    server = await WebServer.start(handlers(), "127.0.0.1:0", config)
    try:
        async with httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{server.bound[0][1]}/-/healthy"
            statuses = [(await client.get(url)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
    finally:
        await server.stop()


# ---- a real Prometheus ------------------------------------------------------------------------

@contextmanager
def server_in_thread(config: str) -> Iterator[int]:
    """The WebServer on its own event loop in a thread, so that this test can block on Prometheus."""
    loop = asyncio.new_event_loop()
    started: dict[str, Any] = {}
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            started["server"] = loop.run_until_complete(WebServer.start(handlers(), "127.0.0.1:0", config))
        except BaseException as exc:  # noqa: BLE001 - reported to the test below, whatever it is
            started["error"] = exc
        ready.set()
        if "server" in started:
            loop.run_forever()
            loop.run_until_complete(started["server"].stop())
        loop.close()

    thread = threading.Thread(target=run, name="web-server-under-test")
    thread.start()
    ready.wait(30)
    try:
        if "error" in started:
            raise started["error"]
        yield started["server"].bound[0][1]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.mark.e2e
def test_real_prometheus_scrapes_over_tls_with_basic_auth(pki):
    config = write(pki / "web.yml", {"tls_server_config": {"cert_file": "server.pem", "key_file": "server.pem"},
                                     "basic_auth_users": {"prometheus": HASH}})
    with server_in_thread(config) as port:
        def job(name: str, password: str) -> dict[str, Any]:
            return {"job_name": name, "scheme": "https", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                    "tls_config": {"ca_file": str(pki / "ca.pem")},
                    "basic_auth": {"username": "prometheus", "password": password}}

        with prometheus({"global": {"scrape_interval": "1s"},
                         "scrape_configs": [job("qubicle", PASSWORD), job("intruder", "guess")]}) as prom:
            prom.wait_for('up{job="qubicle"}', lambda r: len(r) == 1 and r[0]["value"][1] == "1")
            # Prometheus asks for OpenMetrics + gzip: both parts of the single gzip member arrive.
            assert prom.value('qubicle_queue_active_sessions{job="qubicle",queue_name="Support"}') == 3
            assert prom.value('qubicle_api_requests_total{job="qubicle"}') == 7
            prom.wait_for('up{job="intruder"}', lambda r: len(r) == 1 and r[0]["value"][1] == "0")
            intruder = [t for t in prom.targets() if t["labels"]["job"] == "intruder"]
            assert "401" in intruder[0]["lastError"]
