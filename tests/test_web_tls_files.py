"""TLS from a web config file as users write it: certificate and key in two files (the usual
layout of cert-manager, certbot and most PKIs), served through the HTTP server."""

from __future__ import annotations

import ssl

import httpx
import trustme
from helpers_web import METRICS, served_with_web_config


async def test_certificate_and_key_in_separate_files(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "tls.crt"))
    cert.private_key_pem.write_to_path(str(tmp_path / "tls.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    config = {"tls_server_config": {"cert_file": "tls.crt", "key_file": "tls.key"}}
    async with served_with_web_config(tmp_path, config) as port:
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        async with httpx.AsyncClient(verify=context) as client:
            response = await client.get(f"https://127.0.0.1:{port}/metrics")
        assert response.status_code == 200 and response.content == METRICS
