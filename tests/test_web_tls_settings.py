"""tls_server_config settings as a client meets them in the handshake: min and max version (equal
ones included), the cipher order (prefer_server_cipher_suites, either way), and the one-line errors
that name the certificate, key or CA file that cannot be loaded."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import yaml

from exporter.web import WebConfigError, WebHandlers, WebServer, load_web_config

# trustme's certificates carry ECDSA keys.
AES128 = ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256")
AES256 = ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384")


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    return tmp_path


def write(pki: Path, tls: dict[str, Any]) -> str:
    path = pki / "web.yml"
    path.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": "server.pem", "key_file": "server.pem", **tls}}))
    return str(path)


@asynccontextmanager
async def https_port(config: str) -> AsyncIterator[int]:
    handlers = WebHandlers(lambda accept, encoding: (b"qubicle_up 1.0\n", {"Content-Type": "text/plain"}),
                           lambda: "<h1>qubicle-exporter</h1>", lambda: True, lambda: True)
    server = await WebServer.start(handlers, "127.0.0.1:0", config)
    try:
        yield server.bound[0][1]
    finally:
        await server.stop()


def client(pki: Path, *, minimum: ssl.TLSVersion | None = None, maximum: ssl.TLSVersion | None = None,
           ciphers: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    if ciphers is not None:
        context.set_ciphers(ciphers)
    return context


async def handshake(port: int, context: ssl.SSLContext) -> tuple[str, str]:
    """The TLS version and cipher the server agreed to."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1")
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        return ssl_object.version(), ssl_object.cipher()[0]
    finally:
        writer.close()


@pytest.mark.parametrize(("version", "name", "other"), [
    ("TLS12", "TLSv1.2", ssl.TLSVersion.TLSv1_3), ("TLS13", "TLSv1.3", ssl.TLSVersion.TLSv1_2)])
async def test_min_version_equal_to_max_version_pins_that_version(pki, version, name, other):
    config = write(pki, {"min_version": version, "max_version": version})
    async with https_port(config) as port:
        assert (await handshake(port, client(pki)))[0] == name
        with pytest.raises(OSError):  # a client that speaks only the other version: an alert, or reset
            await handshake(port, client(pki, minimum=other, maximum=other))
        async with httpx.AsyncClient(verify=client(pki)) as http:
            assert (await http.get(f"https://127.0.0.1:{port}/metrics")).text == "qubicle_up 1.0\n"


async def test_max_version_caps_what_the_server_agrees_to(pki):
    async with https_port(write(pki, {"max_version": "TLS12"})) as port:
        assert (await handshake(port, client(pki)))[0] == "TLSv1.2"
    async with https_port(write(pki, {})) as port:  # no max_version: TLS 1.3 when the client has it
        assert (await handshake(port, client(pki)))[0] == "TLSv1.3"


@pytest.mark.parametrize(("prefer", "chosen"), [(None, AES128[1]), (True, AES128[1]), (False, AES256[1])])
async def test_prefer_server_cipher_suites_decides_whose_order_wins(pki, prefer, chosen):
    # The server lists AES-128 first, the client AES-256 first; cipher suites are TLS 1.2's.
    tls: dict[str, Any] = {"max_version": "TLS12", "cipher_suites": [AES128[0], AES256[0]]}
    if prefer is not None:
        tls["prefer_server_cipher_suites"] = prefer  # the default, as in the toolkit, is true
    async with https_port(write(pki, tls)) as port:
        assert await handshake(port, client(pki, ciphers=f"{AES256[1]}:{AES128[1]}")) == ("TLSv1.2", chosen)


async def test_cipher_suites_limit_what_the_server_agrees_to(pki):
    async with https_port(write(pki, {"max_version": "TLS12", "cipher_suites": [AES256[0]]})) as port:
        assert (await handshake(port, client(pki)))[1] == AES256[1]
        with pytest.raises(OSError):  # an alert, or the connection reset
            await handshake(port, client(pki, ciphers=AES128[1]))


def test_files_that_cannot_be_loaded_are_named(pki):
    def error(tls: dict[str, Any]) -> str:
        with pytest.raises(WebConfigError) as info:
            load_web_config(write(pki, tls))
        return str(info.value)

    missing = pki / "missing.pem"
    assert error({"cert_file": "missing.pem", "key_file": "server.pem"}) == (
        f"tls_server_config: cannot load certificate or key ({missing}, {pki / 'server.pem'}): No such file or directory")
    (pki / "garbage.pem").write_text("not a certificate\n")
    assert error({"cert_file": "garbage.pem"}).startswith(
        f"tls_server_config: cannot load certificate or key ({pki / 'garbage.pem'}, {pki / 'server.pem'}): [SSL] PEM lib")
    assert error({"cert_file": None, "key_file": None, "cert": "not a certificate", "key": "not a key"}).startswith(
        "tls_server_config: cannot load certificate or key (inline, inline): [SSL] PEM lib")
    key = (pki / "server.pem").read_text()
    assert error({"cert_file": None, "cert": "not a certificate", "key_file": "server.pem"}).startswith(
        f"tls_server_config: cannot load certificate or key (inline, {pki / 'server.pem'}): [SSL] PEM lib")
    assert error({"key_file": None, "key": key, "cert_file": "garbage.pem"}).startswith(
        f"tls_server_config: cannot load certificate or key ({pki / 'garbage.pem'}, inline): [SSL] PEM lib")
    verify = {"client_auth_type": "RequireAndVerifyClientCert"}
    assert error({**verify, "client_ca_file": "missing.pem"}) == (
        f"tls_server_config: cannot load client CA ({missing}): No such file or directory")
    assert error({**verify, "client_ca_file": "garbage.pem"}) == (
        f"tls_server_config: cannot load client CA ({pki / 'garbage.pem'}): NO_CERTIFICATE_OR_CRL_FOUND")
    assert error({**verify, "client_ca": "not a certificate"}).startswith(
        "tls_server_config: cannot load client CA (inline): no start line")


@pytest.mark.parametrize("prefer", [True, False])
def test_python_s_secure_defaults_are_kept_either_way(pki, prefer):
    # No compression (CRIME), no SSLv3, OpenSSL's bug workarounds: only the cipher preference differs.
    context = load_web_config(write(pki, {"prefer_server_cipher_suites": prefer})).ssl_context()
    assert context is not None
    default = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).options
    assert context.options | ssl.OP_CIPHER_SERVER_PREFERENCE == default | ssl.OP_CIPHER_SERVER_PREFERENCE
    assert bool(context.options & ssl.OP_CIPHER_SERVER_PREFERENCE) is prefer


async def test_an_inline_client_ca_verifies_client_certificates(pki):
    ca = trustme.CA()  # the clients' own CA, given inline
    ca.issue_cert("prometheus.example").private_key_and_cert_chain_pem.write_to_path(str(pki / "client.pem"))
    config = write(pki, {"client_auth_type": "RequireAndVerifyClientCert", "client_ca": ca.cert_pem.bytes().decode()})
    async with https_port(config) as port:
        context = client(pki)
        context.load_cert_chain(str(pki / "client.pem"))
        async with httpx.AsyncClient(verify=context) as http:
            assert (await http.get(f"https://127.0.0.1:{port}/metrics")).status_code == 200
        stranger = trustme.CA().issue_cert("prometheus.example")
        stranger.private_key_and_cert_chain_pem.write_to_path(str(pki / "stranger.pem"))
        context = client(pki)
        context.load_cert_chain(str(pki / "stranger.pem"))
        async with httpx.AsyncClient(verify=context) as http:
            with pytest.raises(httpx.HTTPError):  # TLS 1.3 reports the refusal after the handshake
                await http.get(f"https://127.0.0.1:{port}/metrics")
