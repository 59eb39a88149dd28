"""Prometheus exporter-toolkit web configuration (--web.config.file): the YAML schema and the TLS context.

The same YAML that node_exporter and every Go exporter read, so operators reuse what they have
(https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md):

    tls_server_config:
      cert_file: server.crt            # or cert: <PEM text>
      key_file: server.key             # or key: <PEM text>
      client_auth_type: RequireAndVerifyClientCert   # with client_ca_file (or client_ca)
      client_ca_file: clients-ca.crt
      client_allowed_sans: [prometheus.example]
      min_version: TLS12
    http_server_config:
      headers: {Strict-Transport-Security: max-age=31536000}
    basic_auth_users:
      prometheus: $2y$10$...   # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')
    rate_limit: {interval: 100ms, burst: 20}

Relative paths are relative to the file's directory, as in the toolkit. Unknown keys and bad
values are errors naming the key. Where Python's ssl cannot do what Go's crypto/tls does, the
key is refused rather than silently ignored:
- client_auth_type RequestClientCert and RequireAnyClientCert (a certificate accepted without
  verification; the toolkit's docs call them insecure): use RequireAndVerifyClientCert.
- curve_preferences: Python's ssl sets no curve list.
- http_server_config.http2 is accepted and has no effect: this server speaks HTTP/1.1.
As with the Go exporters, SIGHUP reads the file again (server.WebServer.reload): certificates and
keys, users, headers and rate limit take effect for new connections; other tls_server_config
changes, and turning TLS on or off, need a restart and are refused with a log line.
Basic auth's checking lives in auth.py, the rate limiter in ratelimit.py.
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter import yamlsafe
from exporter.web.auth import BasicAuth

_TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                 "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
                "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
_CLIENT_AUTH_UNSUPPORTED = ("RequestClientCert", "RequireAnyClientCert")
# Go's crypto/tls names (the toolkit's cipher_suites) -> OpenSSL's. Only the suites Go's
# tls.CipherSuites() lists; its insecure ones (RC4, 3DES, CBC-SHA256) are refused, as the toolkit does.
_CIPHERS = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",  # Go's older alias
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
_TLS_KEYS = {"cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file",
             "client_allowed_sans", "min_version", "max_version", "cipher_suites", "prefer_server_cipher_suites",
             "curve_preferences"}
_HTTP_KEYS = {"http2", "headers"}
_TOP_KEYS = {"tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"}
# The toolkit lets only these be set, with these values where it restricts them.
_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None, "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",), "X-XSS-Protection": None, "Strict-Transport-Security": None,
}
_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
_DURATION = re.compile(r"(?:(\d+)(ms|s|m|h))+|0")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class WebConfigError(ValueError):
    """One line naming the key that is wrong."""


@dataclass(frozen=True)
class TLSConfig:
    cert_file: Path | None = None
    key_file: Path | None = None
    cert: str | None = field(default=None, repr=False)
    key: str | None = field(default=None, repr=False)  # a secret: never in a repr
    client_ca_file: Path | None = None
    client_ca: str | None = field(default=None, repr=False)
    client_auth: ssl.VerifyMode = ssl.CERT_NONE
    client_allowed_sans: tuple[str, ...] = ()
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion | None = None
    cipher_suites: tuple[str, ...] = ()  # OpenSSL names
    prefer_server_cipher_suites: bool = True


@dataclass(frozen=True)
class WebConfig:
    tls: TLSConfig | None = None
    basic_auth: BasicAuth | None = None
    headers: dict[str, str] = field(default_factory=dict)
    rate_limit: tuple[float, int] | None = None  # (interval seconds, burst)

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        tls = self.tls
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.minimum_version = tls.min_version
            if tls.max_version is not None:
                context.maximum_version = tls.max_version
            if tls.cipher_suites:
                context.set_ciphers(":".join(tls.cipher_suites))
            # Python's server context prefers the server's order already: false must clear it.
            if tls.prefer_server_cipher_suites:
                context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
            else:
                context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
        except (ValueError, ssl.SSLError) as exc:
            raise WebConfigError(f"tls_server_config: {exc}") from None
        self.load_certificate(context)
        try:
            if tls.client_ca_file is not None:
                context.load_verify_locations(cafile=str(tls.client_ca_file))
            elif tls.client_ca is not None:
                context.load_verify_locations(cadata=tls.client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"tls_server_config: cannot load client CA ({tls.client_ca_file or 'inline'}): "
                                 f"{_reason(exc)}") from None
        context.verify_mode = tls.client_auth
        return context


    def load_certificate(self, context: ssl.SSLContext) -> None:
        """Loads the certificate chain and key into `context`, replacing any it had: new
        handshakes use them (SIGHUP's certificate rotation), connections already open keep theirs."""
        tls = self.tls
        assert tls is not None
        try:
            with _pem_path(tls.cert_file, tls.cert) as cert, _pem_path(tls.key_file, tls.key) as key:
                context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            sources = ", ".join(str(p) if p else "inline" for p in (tls.cert_file, tls.key_file))
            raise WebConfigError(f"tls_server_config: cannot load certificate or key ({sources}): "
                                 f"{_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    # The error's reason only (e.g. "No such file or directory", "PEM_LIB"): never any PEM content.
    if isinstance(exc, ssl.SSLError):
        return exc.reason or exc.strerror or "invalid PEM"
    return exc.strerror or type(exc).__name__


@contextmanager
def _pem_path(path: Path | None, inline: str | None) -> Iterator[str]:
    """A path to the PEM: the configured file, or the inline text in a private file removed at once
    (ssl loads certificates and keys from files only)."""
    if path is not None:
        yield str(path)
        return
    assert inline is not None
    fd, name = tempfile.mkstemp(prefix="qubicle-tls-", suffix=".pem")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(inline)
        yield name
    finally:
        os.unlink(name)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _string(data: dict[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise WebConfigError(f"{where}.{key}: expected a non-empty string")
    return value


def _strings(data: dict[str, Any], key: str, where: str) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise WebConfigError(f"{where}.{key}: expected a list of strings")
    return value


def _check_keys(data: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise WebConfigError(f"{where}: unknown key {key!r}")


def _parse_tls(data: dict[str, Any], base_dir: Path) -> TLSConfig:
    where = "tls_server_config"
    _check_keys(data, _TLS_KEYS, where)
    s = {k: _string(data, k, where) for k in ("cert", "key", "client_ca", "cert_file", "key_file",
                                               "client_ca_file", "client_auth_type", "min_version", "max_version")}
    for inline, file in (("cert", "cert_file"), ("key", "key_file"), ("client_ca", "client_ca_file")):
        if s[inline] and s[file]:
            raise WebConfigError(f"{where}: {inline} and {file} are exclusive, set one")
    if not (s["cert"] or s["cert_file"]) or not (s["key"] or s["key_file"]):
        raise WebConfigError(f"{where}: cert_file and key_file are both required (or inline cert and key)")

    auth_type = s["client_auth_type"] or "NoClientCert"
    if auth_type in _CLIENT_AUTH_UNSUPPORTED:
        raise WebConfigError(f"{where}.client_auth_type: {auth_type} (no certificate verification) is not "
                             "supported; use RequireAndVerifyClientCert")
    if auth_type not in _CLIENT_AUTH:
        raise WebConfigError(f"{where}.client_auth_type: expected one of {', '.join(_CLIENT_AUTH)}, got {auth_type!r}")
    has_ca = bool(s["client_ca_file"] or s["client_ca"])
    if auth_type != "NoClientCert" and not has_ca:
        raise WebConfigError(f"{where}.client_ca_file: required with client_auth_type {auth_type}")
    if has_ca and auth_type == "NoClientCert":
        raise WebConfigError(f"{where}.client_ca_file: set client_auth_type too (e.g. RequireAndVerifyClientCert)")
    sans = _strings(data, "client_allowed_sans", where)
    if sans and auth_type != "RequireAndVerifyClientCert":
        raise WebConfigError(f"{where}.client_allowed_sans: requires client_auth_type RequireAndVerifyClientCert")

    def version(key: str) -> ssl.TLSVersion | None:
        value = s[key]
        if value is None:
            return None
        if value not in _TLS_VERSIONS:
            raise WebConfigError(f"{where}.{key}: expected one of {', '.join(_TLS_VERSIONS)}, got {value!r}")
        return _TLS_VERSIONS[value]

    min_version = version("min_version") or ssl.TLSVersion.TLSv1_2
    max_version = version("max_version")
    if max_version is not None and max_version < min_version:
        raise WebConfigError(f"{where}.max_version: {s['max_version']} is below min_version")

    ciphers = []
    for name in _strings(data, "cipher_suites", where):
        if name not in _CIPHERS:
            raise WebConfigError(f"{where}.cipher_suites: unknown or insecure cipher suite {name!r}")
        ciphers.append(_CIPHERS[name])
    if _strings(data, "curve_preferences", where):
        raise WebConfigError(f"{where}.curve_preferences: not supported by this exporter (Python's ssl "
                             "cannot set a curve list); remove it")
    prefer = data.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise WebConfigError(f"{where}.prefer_server_cipher_suites: expected true or false")

    def path(key: str) -> Path | None:
        value = s[key]
        return base_dir / value if value else None

    return TLSConfig(
        cert_file=path("cert_file"), key_file=path("key_file"), cert=s["cert"], key=s["key"],
        client_ca_file=path("client_ca_file"), client_ca=s["client_ca"], client_auth=_CLIENT_AUTH[auth_type],
        client_allowed_sans=tuple(sans), min_version=min_version, max_version=max_version,
        cipher_suites=tuple(ciphers), prefer_server_cipher_suites=prefer,
    )


def _parse_users(data: dict[str, Any]) -> dict[str, str]:
    users = {}
    for user, hashed in data.items():
        if not isinstance(user, str) or not user or ":" in user:
            raise WebConfigError(f"basic_auth_users: user name {user!r} must be a non-empty string without ':'")
        if not isinstance(hashed, str) or not _BCRYPT.fullmatch(hashed):
            # The value is a secret (or a password pasted by mistake): never echo it.
            raise WebConfigError(f"basic_auth_users.{user}: expected a bcrypt hash ($2y$10$..., 60 characters)")
        users[user] = hashed
    return users


def _parse_headers(data: dict[str, Any]) -> dict[str, str]:
    where = "http_server_config.headers"
    headers = {}
    for name, value in data.items():
        if name not in _HEADERS:
            raise WebConfigError(f"{where}: header {name!r} cannot be set (allowed: {', '.join(_HEADERS)})")
        if not isinstance(value, str):
            raise WebConfigError(f"{where}.{name}: expected a string")
        allowed = _HEADERS[name]
        if value and allowed is not None and value.lower() not in allowed:
            raise WebConfigError(f"{where}.{name}: expected one of {', '.join(allowed)}, got {value!r}")
        if "\n" in value or "\r" in value:
            raise WebConfigError(f"{where}.{name}: must be one line")
        if value:  # blank means unset, as in the toolkit
            headers[name] = value
    return headers


def _duration(value: Any, where: str) -> float:
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not _DURATION.fullmatch(text):
        raise WebConfigError(f"{where}: expected a duration such as 100ms, 1s or 1m, got {value!r}")
    return sum(int(n) * _SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


def _parse_rate_limit(data: dict[str, Any]) -> tuple[float, int] | None:
    _check_keys(data, {"interval", "burst"}, "rate_limit")
    if not data:
        return None
    interval = _duration(data.get("interval", "0"), "rate_limit.interval")
    burst = data.get("burst", 0)
    if not isinstance(burst, int) or isinstance(burst, bool) or burst < 0:
        raise WebConfigError("rate_limit.burst: expected a non-negative integer")
    if interval == 0:
        return None  # 0 disables the limiter, as in the toolkit
    if burst == 0:
        raise WebConfigError("rate_limit.burst: must be at least 1 when interval is set")
    return interval, burst


def parse_web_config(data: Any, base_dir: Path) -> WebConfig:
    """The validated config from parsed YAML; relative paths resolve against `base_dir`."""
    data = _mapping(data, "web config")
    _check_keys(data, _TOP_KEYS, "web config")
    tls_data = _mapping(data.get("tls_server_config"), "tls_server_config")
    http = _mapping(data.get("http_server_config"), "http_server_config")
    _check_keys(http, _HTTP_KEYS, "http_server_config")
    if not isinstance(http.get("http2", True), bool):
        raise WebConfigError("http_server_config.http2: expected true or false")
    users = _parse_users(_mapping(data.get("basic_auth_users"), "basic_auth_users"))
    return WebConfig(
        tls=_parse_tls(tls_data, base_dir) if tls_data else None,
        basic_auth=BasicAuth(users) if users else None,
        headers=_parse_headers(_mapping(http.get("headers"), "http_server_config.headers")),
        rate_limit=_parse_rate_limit(_mapping(data.get("rate_limit"), "rate_limit")),
    )


def load_web_config(path: str) -> WebConfig:
    """Reads and validates the file, and loads the certificates now: a bad file fails at start,
    not at the first TLS handshake."""
    data = yamlsafe.load_file(path, "--web.config.file", WebConfigError)
    config = parse_web_config(data, Path(path).resolve().parent)
    config.ssl_context()
    return config
