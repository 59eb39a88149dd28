"""TLS from a web config file as users write it: certificate and key in two files (the usual
layout of cert-manager, certbot and most PKIs), served through the HTTP server."""

from __future__ import annotations

import ssl

import httpx
import trustme
import yaml

from exporter.web import WebHandlers, WebServer


def page() -> tuple[bytes, dict[str, str]]:
    return b"qubicle_up 1.0\n", {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}


async def test_certificate_and_key_in_separate_files(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "tls.crt"))
    cert.private_key_pem.write_to_path(str(tmp_path / "tls.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    config = tmp_path / "web.yml"
    config.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": "tls.crt", "key_file": "tls.key"}}))
    handlers = WebHandlers(lambda accept, encoding: page(), lambda: "<h1>qubicle-exporter</h1>",
                           lambda: True, lambda: True)
    server = await WebServer.start(handlers, "127.0.0.1:0", str(config))
    try:
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        async with httpx.AsyncClient(verify=context) as client:
            response = await client.get(f"https://127.0.0.1:{server.bound[0][1]}/metrics")
        assert response.status_code == 200 and response.text == "qubicle_up 1.0\n"
    finally:
        await server.stop()
