"""Every way --web.config.file can be wrong, and the one line that says so: the whole message, so
that the key (or file) it names, what it expected and what it got are all held to what users read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exporter.web import WebConfigError, parse_web_config

TLS = {"cert_file": "server.pem", "key_file": "server.pem"}
CA = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n"
HASH = "$2y$04$" + "a" * 53

MESSAGES: list[tuple[Any, str]] = [
    # the shape of the file
    ([1], "web config: expected a mapping, got list"),
    ({"tls": {}}, "web config: unknown key 'tls'"),
    ({"tls_server_config": ["server.pem"]}, "tls_server_config: expected a mapping, got list"),
    ({"http_server_config": "on"}, "http_server_config: expected a mapping, got str"),
    ({"http_server_config": {"headers": ["X-Frame-Options"]}}, "http_server_config.headers: expected a mapping, got list"),
    ({"basic_auth_users": "bob"}, "basic_auth_users: expected a mapping, got str"),
    ({"rate_limit": 5}, "rate_limit: expected a mapping, got int"),
    # tls_server_config: which values are strings, lists, exclusive, required
    ({"tls_server_config": {**TLS, "cert_file": ""}}, "tls_server_config.cert_file: expected a non-empty string"),
    ({"tls_server_config": {**TLS, "key_file": 3}}, "tls_server_config.key_file: expected a non-empty string"),
    ({"tls_server_config": {**TLS, "min_version": 12}}, "tls_server_config.min_version: expected a non-empty string"),
    ({"tls_server_config": {**TLS, "cipher_suites": "TLS_RSA_WITH_AES_128_GCM_SHA256"}},
     "tls_server_config.cipher_suites: expected a list of strings"),
    ({"tls_server_config": {**TLS, "cipher_suites": [""]}}, "tls_server_config.cipher_suites: expected a list of strings"),
    ({"tls_server_config": {**TLS, "cipher_suites": [None]}},
     "tls_server_config.cipher_suites: expected a list of strings"),
    ({"tls_server_config": {**TLS, "client_allowed_sans": [1]}},
     "tls_server_config.client_allowed_sans: expected a list of strings"),
    ({"tls_server_config": {**TLS, "cert": CA}}, "tls_server_config: cert and cert_file are exclusive, set one"),
    ({"tls_server_config": {**TLS, "key": "KEY"}}, "tls_server_config: key and key_file are exclusive, set one"),
    ({"tls_server_config": {**TLS, "client_ca": CA, "client_ca_file": "ca.pem"}},
     "tls_server_config: client_ca and client_ca_file are exclusive, set one"),
    ({"tls_server_config": {"key_file": "server.pem"}},
     "tls_server_config: cert_file and key_file are both required (or inline cert and key)"),
    ({"tls_server_config": {"cert": CA}},
     "tls_server_config: cert_file and key_file are both required (or inline cert and key)"),
    ({"tls_server_config": {"cert_file": "server.pem", "key": ""}},
     "tls_server_config.key: expected a non-empty string"),
    ({"tls_server_config": {"min_version": "TLS12"}},
     "tls_server_config: cert_file and key_file are both required (or inline cert and key)"),
    # client certificates
    ({"tls_server_config": {**TLS, "client_auth_type": "RequestClientCert", "client_ca_file": "ca.pem"}},
     "tls_server_config.client_auth_type: RequestClientCert (no certificate verification) is not supported; "
     "use RequireAndVerifyClientCert"),
    ({"tls_server_config": {**TLS, "client_auth_type": "RequireAnyClientCert"}},
     "tls_server_config.client_auth_type: RequireAnyClientCert (no certificate verification) is not supported; "
     "use RequireAndVerifyClientCert"),
    ({"tls_server_config": {**TLS, "client_auth_type": "Always"}},
     "tls_server_config.client_auth_type: expected one of NoClientCert, VerifyClientCertIfGiven, "
     "RequireAndVerifyClientCert, got 'Always'"),
    ({"tls_server_config": {**TLS, "client_auth_type": "VerifyClientCertIfGiven"}},
     "tls_server_config.client_ca_file: required with client_auth_type VerifyClientCertIfGiven"),
    ({"tls_server_config": {**TLS, "client_ca": CA}},
     "tls_server_config.client_ca_file: set client_auth_type too (e.g. RequireAndVerifyClientCert)"),
    ({"tls_server_config": {**TLS, "client_ca_file": "ca.pem", "client_auth_type": "NoClientCert"}},
     "tls_server_config.client_ca_file: set client_auth_type too (e.g. RequireAndVerifyClientCert)"),
    ({"tls_server_config": {**TLS, "client_ca": CA, "client_auth_type": "VerifyClientCertIfGiven",
                            "client_allowed_sans": ["prometheus.example"]}},
     "tls_server_config.client_allowed_sans: requires client_auth_type RequireAndVerifyClientCert"),
    # versions, ciphers, curves
    ({"tls_server_config": {**TLS, "min_version": "TLS1.2"}},
     "tls_server_config.min_version: expected one of TLS10, TLS11, TLS12, TLS13, got 'TLS1.2'"),
    ({"tls_server_config": {**TLS, "max_version": "TLS14"}},
     "tls_server_config.max_version: expected one of TLS10, TLS11, TLS12, TLS13, got 'TLS14'"),
    ({"tls_server_config": {**TLS, "max_version": "TLS11"}},  # below the default minimum, TLS12
     "tls_server_config.max_version: TLS11 is below min_version"),
    ({"tls_server_config": {**TLS, "min_version": "TLS11", "max_version": "TLS10"}},
     "tls_server_config.max_version: TLS10 is below min_version"),
    ({"tls_server_config": {**TLS, "cipher_suites": ["TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"]}},
     "tls_server_config.cipher_suites: unknown or insecure cipher suite 'TLS_AES_128_GCM_SHA256'"),
    ({"tls_server_config": {**TLS, "curve_preferences": ["X25519"]}},
     "tls_server_config.curve_preferences: not supported by this exporter (Python's ssl cannot set a curve "
     "list); remove it"),
    ({"tls_server_config": {**TLS, "curve_preferences": "X25519"}},
     "tls_server_config.curve_preferences: expected a list of strings"),
    ({"tls_server_config": {**TLS, "prefer_server_cipher_suites": 1}},
     "tls_server_config.prefer_server_cipher_suites: expected true or false"),
    ({"tls_server_config": {**TLS, "prefer_server_cipher_suites": None}},
     "tls_server_config.prefer_server_cipher_suites: expected true or false"),
    # users
    ({"basic_auth_users": {"": HASH}}, "basic_auth_users: user name '' must be a non-empty string without ':'"),
    ({"basic_auth_users": {5: HASH}}, "basic_auth_users: user name 5 must be a non-empty string without ':'"),
    ({"basic_auth_users": {"pro:metheus": HASH}},
     "basic_auth_users: user name 'pro:metheus' must be a non-empty string without ':'"),
    ({"basic_auth_users": {"bob": 5}}, "basic_auth_users.bob: expected a bcrypt hash ($2y$10$..., 60 characters)"),
    ({"basic_auth_users": {"bob": HASH + "a"}},
     "basic_auth_users.bob: expected a bcrypt hash ($2y$10$..., 60 characters)"),
    ({"basic_auth_users": {"bob": "$2x$04$" + "a" * 53}},
     "basic_auth_users.bob: expected a bcrypt hash ($2y$10$..., 60 characters)"),
    # http_server_config
    ({"http_server_config": {"http3": True}}, "http_server_config: unknown key 'http3'"),
    ({"http_server_config": {"http2": "yes"}}, "http_server_config.http2: expected true or false"),
    ({"http_server_config": {"headers": {"Server": "qubicle"}}},
     "http_server_config.headers: header 'Server' cannot be set (allowed: Content-Security-Policy, "
     "X-Frame-Options, X-Content-Type-Options, X-XSS-Protection, Strict-Transport-Security)"),
    ({"http_server_config": {"headers": {"X-Frame-Options": 1}}},
     "http_server_config.headers.X-Frame-Options: expected a string"),
    ({"http_server_config": {"headers": {"X-Frame-Options": "allow-from"}}},
     "http_server_config.headers.X-Frame-Options: expected one of deny, sameorigin, got 'allow-from'"),
    ({"http_server_config": {"headers": {"X-Content-Type-Options": "sniff"}}},
     "http_server_config.headers.X-Content-Type-Options: expected one of nosniff, got 'sniff'"),
    ({"http_server_config": {"headers": {"Content-Security-Policy": "default-src 'self'\nSet-Cookie: a=b"}}},
     "http_server_config.headers.Content-Security-Policy: must be one line"),
    ({"http_server_config": {"headers": {"Strict-Transport-Security": "max-age=1\rSet-Cookie: a=b"}}},
     "http_server_config.headers.Strict-Transport-Security: must be one line"),
    ({"http_server_config": {"headers": {"X-XSS-Protection": "0\r\n"}}},
     "http_server_config.headers.X-XSS-Protection: must be one line"),
    # rate_limit
    ({"rate_limit": {"interval": "1s", "burst": 1, "per": "ip"}}, "rate_limit: unknown key 'per'"),
    ({"rate_limit": {"interval": "5", "burst": 1}},
     "rate_limit.interval: expected a duration such as 100ms, 1s or 1m, got '5'"),
    ({"rate_limit": {"interval": 5, "burst": 1}},
     "rate_limit.interval: expected a duration such as 100ms, 1s or 1m, got 5"),
    ({"rate_limit": {"interval": True, "burst": 1}},
     "rate_limit.interval: expected a duration such as 100ms, 1s or 1m, got True"),
    ({"rate_limit": {"interval": 1.5, "burst": 1}},
     "rate_limit.interval: expected a duration such as 100ms, 1s or 1m, got 1.5"),
    ({"rate_limit": {"interval": "1s", "burst": True}}, "rate_limit.burst: expected a non-negative integer"),
    ({"rate_limit": {"interval": "1s", "burst": "2"}}, "rate_limit.burst: expected a non-negative integer"),
    ({"rate_limit": {"interval": "1s", "burst": -1}}, "rate_limit.burst: expected a non-negative integer"),
    ({"rate_limit": {"interval": "1s"}}, "rate_limit.burst: must be at least 1 when interval is set"),
    ({"rate_limit": {"interval": "1s", "burst": 0}}, "rate_limit.burst: must be at least 1 when interval is set"),
]


@pytest.mark.parametrize(("content", "message"), MESSAGES, ids=[m[:60] for _, m in MESSAGES])
def test_each_mistake_is_one_line_naming_it(content, message):
    with pytest.raises(WebConfigError) as info:
        parse_web_config(content, Path("/etc/qubicle"))
    assert str(info.value) == message
