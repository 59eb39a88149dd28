"""Prometheus exporter-toolkit web configuration (--web.config.file): TLS and basic auth.

The same YAML that node_exporter and every Go exporter read, so operators reuse what they have:

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
      client_ca_file: clients-ca.crt
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...   # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')

Relative paths are relative to the file's directory, as in the toolkit. Unknown keys are errors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ssl
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

_TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                 "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "RequestClientCert": ssl.CERT_OPTIONAL,
                "RequireAnyClientCert": ssl.CERT_REQUIRED, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
                "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
_TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version",
             "cipher_suites", "prefer_server_cipher_suites", "curve_preferences", "client_allowed_sans"}
_HTTP_KEYS = {"http2", "headers"}
_TOP_KEYS = {"tls_server_config", "http_server_config", "basic_auth_users"}


class WebConfigError(ValueError):
    """One line naming the key that is wrong."""


class BasicAuth:
    """bcrypt checks, with successful ones cached so that a scrape storm is not bcrypt-bound."""

    def __init__(self, users: dict[str, str], cache_size: int = 64) -> None:
        self._users = {u: h.encode() for u, h in users.items()}
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        # A fixed hash to compare against for unknown users, so they cost as much as known ones.
        self._dummy = bcrypt.hashpw(b"qubicle-exporter", bcrypt.gensalt(rounds=4))

    def check(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        stored = self._users.get(user)
        # The cache key hashes the credentials with the stored hash: nothing reusable is kept.
        key = hashlib.sha256(b"%s\0%s\0%s" % (user.encode(), password.encode(), stored or b"")).digest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return True
        ok = bcrypt.checkpw(password.encode(), stored or self._dummy) and stored is not None
        if ok:
            with self._lock:
                self._cache[key] = None
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return ok


@dataclass(frozen=True)
class TLSConfig:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth: ssl.VerifyMode = ssl.CERT_NONE
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion | None = None


@dataclass(frozen=True)
class WebConfig:
    tls: TLSConfig | None = None
    basic_auth: BasicAuth | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = self.tls.min_version
        if self.tls.max_version is not None:
            context.maximum_version = self.tls.max_version
        try:
            context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
            if self.tls.client_ca_file is not None:
                context.load_verify_locations(cafile=str(self.tls.client_ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"tls_server_config: cannot load certificate or key: {exc}") from None
        context.verify_mode = self.tls.client_auth
        return context


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebConfigError(f"{where}: expected a mapping")
    return value


def parse_web_config(data: Any, base_dir: Path) -> WebConfig:
    data = _mapping(data, "web config")
    for key in data:
        if key not in _TOP_KEYS:
            raise WebConfigError(f"web config: unknown key {key!r}")

    tls = None
    tls_data = _mapping(data.get("tls_server_config"), "tls_server_config")
    if tls_data:
        for key in tls_data:
            if key not in _TLS_KEYS:
                raise WebConfigError(f"tls_server_config: unknown key {key!r}")
        if not tls_data.get("cert_file") or not tls_data.get("key_file"):
            raise WebConfigError("tls_server_config: cert_file and key_file are both required")
        auth_type = tls_data.get("client_auth_type", "NoClientCert")
        if auth_type not in _CLIENT_AUTH:
            raise WebConfigError(f"tls_server_config.client_auth_type: unknown value {auth_type!r}")
        ca = tls_data.get("client_ca_file")
        if auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert") and not ca:
            raise WebConfigError(f"tls_server_config.client_ca_file: required with client_auth_type {auth_type}")

        def version(key: str) -> ssl.TLSVersion | None:
            value = tls_data.get(key)
            if value is None:
                return None
            if value not in _TLS_VERSIONS:
                raise WebConfigError(f"tls_server_config.{key}: expected one of {', '.join(_TLS_VERSIONS)}, got {value!r}")
            return _TLS_VERSIONS[value]

        tls = TLSConfig(
            cert_file=base_dir / str(tls_data["cert_file"]),
            key_file=base_dir / str(tls_data["key_file"]),
            client_ca_file=base_dir / str(ca) if ca else None,
            client_auth=_CLIENT_AUTH[auth_type],
            min_version=version("min_version") or ssl.TLSVersion.TLSv1_2,
            max_version=version("max_version"),
        )

    users = _mapping(data.get("basic_auth_users"), "basic_auth_users")
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise WebConfigError(f"basic_auth_users.{user}: expected a bcrypt hash")

    http = _mapping(data.get("http_server_config"), "http_server_config")
    for key in http:
        if key not in _HTTP_KEYS:
            raise WebConfigError(f"http_server_config: unknown key {key!r}")
    headers = {str(k): str(v) for k, v in _mapping(http.get("headers"), "http_server_config.headers").items()}
    return WebConfig(tls=tls, basic_auth=BasicAuth({str(u): h for u, h in users.items()}) if users else None,
                     headers=headers)


def load_web_config(path: str) -> WebConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise WebConfigError(f"--web.config.file: cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise WebConfigError(f"--web.config.file: {path} is not valid YAML") from None
    config = parse_web_config(data, Path(path).resolve().parent)
    config.ssl_context()  # fail at start, not at the first TLS handshake
    return config
