"""Validated settings: every bad value becomes a one-line ConfigError naming the setting."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

DEFAULT_PORT = 10147
DEFAULT_LISTEN = f"0.0.0.0:{DEFAULT_PORT}"

# Kazoo ids are 32 lower-case hex characters; validating them early turns a typo into a clear
# start-up error instead of a 404 on every poll.
_ACCOUNT_ID = re.compile(r"^[0-9a-f]{32}$")

WaitUnit = Literal["seconds", "milliseconds"]
LogFormat = Literal["auto", "json", "console", "logfmt"]
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """A setting is wrong; the message is one line and names it."""


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as written on the command line: --shard 2/3
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Secrets:
    """Kept apart from Settings so that printing settings can never print a secret."""

    auth_token: str | None = None
    api_key: str | None = None
    password: str | None = None

    def __repr__(self) -> str:
        present = [n for n in ("auth_token", "api_key", "password") if getattr(self, n)]
        return f"Secrets(<{', '.join(present) or 'none'} set>)"


@dataclass(frozen=True)
class DemoSettings:
    enabled: bool = False
    speed: float = 10.0
    seed: int | None = 1
    accounts: int = 2
    queues: int = 4


@dataclass(frozen=True)
class Settings:
    kazoo_url: str | None = None
    account_ids: tuple[str, ...] = ()
    secrets: Secrets = field(default_factory=Secrets)
    username: str | None = None
    account_name: str | None = None
    discover_descendants: bool = False
    interval: float = 10.0
    discovery_interval: float = 120.0
    max_concurrency: int = 10
    max_data_age: float = 30.0
    poll_timeout: float = 10.0
    status_batch_size: int = 100
    status_via_post: bool = False
    page_size: int | None = None
    wait_unit: WaitUnit = "seconds"
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    retries: int = 2
    request_timeout: float | None = None  # None: 3 x read_timeout (see kazoo.ClientSettings.request_deadline)
    max_answer_bytes: int = 8 * 1024 * 1024
    max_pages: int = 1000
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    listen: str = DEFAULT_LISTEN
    web_config_file: str | None = None
    metrics_path: str = "/metrics"
    log_level: str = "info"
    log_format: LogFormat = "auto"
    shard: Shard | None = None
    demo: DemoSettings = field(default_factory=DemoSettings)


def redact_url(text: str) -> str:
    """A URL safe to echo, however malformed: no user or password (anything before an "@" in the
    authority, "https//admin:PW@kz" included), no query and no fragment (they may carry a password)."""
    text = re.split(r"[?#]", text, maxsplit=1)[0]
    scheme, sep, rest = text.partition("//") if "//" in text else ("", "", text)
    if "@" in rest:  # the last "@": a password may hold "/" or "@" itself
        rest = "***@" + rest.rpartition("@")[2]
    return f"{scheme}{sep}{rest}"


def parse_shard(text: str) -> Shard:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ConfigError(f"--shard: expected N/M such as 1/3, got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise ConfigError(f"--shard: N must be between 1 and M, got {text!r}")
    return Shard(index, count)


def parse_account_ids(values: list[str]) -> tuple[str, ...]:
    ids: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip().lower()
            if not part:
                continue
            if not _ACCOUNT_ID.match(part):
                raise ConfigError(f"--account-id: {part!r} is not a Kazoo account id (32 hex characters)")
            if part not in ids:
                ids.append(part)
    return tuple(ids)


def validate(settings: Settings) -> Settings:
    """Checks what only makes sense across settings; raises ConfigError."""

    def positive(name: str, value: float) -> None:
        if not value > 0:
            raise ConfigError(f"--{name}: must be greater than 0, got {value:g}")

    positive("interval", settings.interval)
    positive("discovery-interval", settings.discovery_interval)
    positive("max-data-age", settings.max_data_age)
    positive("poll-timeout", settings.poll_timeout)
    positive("connect-timeout", settings.connect_timeout)
    positive("read-timeout", settings.read_timeout)
    if settings.request_timeout is not None:
        positive("request-timeout", settings.request_timeout)
    if settings.max_answer_bytes < 1024:
        raise ConfigError(f"--max-answer-bytes: must be at least 1024, got {settings.max_answer_bytes}")
    if settings.max_pages < 1:
        raise ConfigError(f"--max-pages: must be at least 1, got {settings.max_pages}")
    if settings.max_concurrency < 1:
        raise ConfigError(f"--max-concurrency: must be at least 1, got {settings.max_concurrency}")
    if not 1 <= settings.status_batch_size <= 1000:
        raise ConfigError(f"--status-batch-size: must be between 1 and 1000, got {settings.status_batch_size}")
    if settings.page_size is not None and settings.page_size < 1:
        raise ConfigError(f"--page-size: must be at least 1, got {settings.page_size}")
    if settings.retries < 0:
        raise ConfigError(f"--retries: must be 0 or more, got {settings.retries}")
    if settings.max_data_age < settings.interval:
        raise ConfigError(
            f"--max-data-age: must be at least --interval ({settings.interval:g}s), got {settings.max_data_age:g}s"
        )
    if settings.log_level not in LOG_LEVELS:
        raise ConfigError(f"--log-level: must be one of {', '.join(LOG_LEVELS)}, got {settings.log_level!r}")
    if not settings.metrics_path.startswith("/"):
        raise ConfigError(f"--web.telemetry-path: must start with '/', got {settings.metrics_path!r}")
    if settings.demo.enabled:
        return settings
    if not settings.kazoo_url:
        raise ConfigError("--kazoo-url: required (or use --demo)")
    if not re.match(r"^https?://[^/\s]+", settings.kazoo_url):
        raise ConfigError(f"--kazoo-url: expected http(s)://host[:port], got {redact_url(settings.kazoo_url)!r}")
    if not settings.account_ids:
        raise ConfigError("--account-id: at least one account id is required")
    s = settings.secrets
    ways = [bool(s.auth_token), bool(s.api_key), bool(settings.username or s.password)]
    if sum(ways) == 0:
        raise ConfigError(
            "credentials: set one of --auth-token-file, --api-key-file, or --username with --password-file"
        )
    if sum(ways) > 1:
        raise ConfigError("credentials: set only one of an auth token, an API key, or a username and password")
    if s.api_key is not None and len(s.api_key) != 64:
        raise ConfigError(f"--api-key-file: a Kazoo API key is exactly 64 characters, got {len(s.api_key)}")
    if ways[2]:
        if not settings.username:
            raise ConfigError("--username: required with --password-file")
        if not s.password:
            raise ConfigError("--password-file: required with --username")
        if not settings.account_name:
            raise ConfigError("--account-name: required with --username")
    return settings
