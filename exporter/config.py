"""Validated settings: every bad value becomes a one-line ConfigError naming the setting.

Defaults are written once, here (the Kazoo client's own from kazoo.ClientSettings); the CLI's help
texts are derived from them. validate() is the one place that checks what a user gave: the layers
below may assert their invariants, but a user never reaches them with a bad value.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from exporter.kazoo import ClientSettings, Credentials

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
    max_concurrency: int = 64  # a ceiling: the poller uses what half the interval needs (poller.py)
    max_data_age: float = 30.0  # derived: see DERIVED
    poll_timeout: float = 7.5  # derived: see DERIVED
    status_batch_size: int = ClientSettings.status_batch_size
    status_via_post: bool = ClientSettings.status_via_post
    page_size: int | None = ClientSettings.page_size
    wait_unit: WaitUnit = "seconds"
    connect_timeout: float = ClientSettings.connect_timeout
    read_timeout: float = ClientSettings.read_timeout
    retries: int = ClientSettings.retries
    request_timeout: float | None = ClientSettings.request_timeout  # None: 3 x --read-timeout
    max_answer_bytes: int = ClientSettings.max_answer_bytes
    max_pages: int = ClientSettings.max_pages
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    listen: str = DEFAULT_LISTEN
    web_config_file: str | None = None
    metrics_path: str = "/metrics"
    alert_thresholds: tuple[str, ...] = ()  # rule files with threshold overrides, for the wallboard's colours
    log_level: str = "info"
    log_format: LogFormat = "auto"
    shard: Shard | None = None
    # Agents, queue settings and account names (each request kind can be turned off).
    agent_status: bool = True
    agent_status_batch_size: int = 100
    queue_settings: bool = True
    account_names: bool = True
    settings_interval: float = 600.0
    agent_metrics: bool = False
    demo: DemoSettings = field(default_factory=DemoSettings)


# Defaults that follow --interval unless set: (how, as the help text says it).
# --poll-timeout stays below the interval so that one stuck account ends its poll before the next
# tick: with a whole interval, every poll would run into the next tick, which APScheduler then
# skips, and every healthy account would be polled at half the rate.
DERIVED: dict[str, tuple[float, str]] = {
    "max_data_age": (3.0, "3 x --interval"),
    "poll_timeout": (0.75, "3/4 of --interval"),
}


# What the help says of a default that is no plain value.
DEFAULT_TEXT: dict[str, str] = {
    "page_size": "Crossbar's",
    "request_timeout": "3 x --read-timeout",
    "max_answer_bytes": "8 MiB",
}


def with_derived_defaults(settings: Settings, given: set[str]) -> Settings:
    """`settings` with the defaults that follow --interval filled in, except those in `given`."""
    derived: dict[str, Any] = {name: settings.interval * factor for name, (factor, _) in DERIVED.items()
                               if name not in given}
    return replace(settings, **derived)


_LISTEN = re.compile(r"(?:\[([0-9A-Fa-f:.%a-z]+)\]|([A-Za-z0-9._-]*)):(\d{1,5})")


def parse_listen(listen: str) -> tuple[str | None, int]:
    """'host:port', '[::1]:port' or ':port' (every interface) -> (host or None, port)."""
    match = _LISTEN.fullmatch(listen.strip()) if isinstance(listen, str) else None
    if not match:
        raise ConfigError(f"--listen: expected host:port, [ipv6]:port or :port, got {listen!r}")
    host = match.group(1) or match.group(2) or None
    if match.group(1) is not None:
        try:
            ipaddress.IPv6Address(match.group(1))
        except ValueError:
            raise ConfigError(f"--listen: {match.group(1)!r} is not an IPv6 address") from None
    port = int(match.group(3))
    if port > 65535:
        raise ConfigError(f"--listen: port {port} is out of range (0-65535)")
    return host, port


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


def shard_from_hostname(hostname: str, count: int) -> Shard:
    """A StatefulSet's pod `<name>-<ordinal>` takes shard ordinal+1 of `count` (pod -0 is shard 1/M)."""
    if count < 1:
        raise ConfigError(f"--shard-from-hostname: the number of shards must be at least 1, got {count}")
    # The first label only: with setHostnameAsFQDN the host name is <pod>.<service>.<namespace>.svc...
    match = re.fullmatch(r".*-(\d+)", hostname.strip().split(".")[0])
    if not match:
        raise ConfigError(f"--shard-from-hostname: host name {hostname!r} does not end in -<ordinal> "
                          "(a StatefulSet's pod name); use --shard N/M elsewhere")
    ordinal = int(match.group(1))
    if ordinal >= count:
        raise ConfigError(f"--shard-from-hostname: host name {hostname!r} is ordinal {ordinal}, but there are "
                          f"only {count} shard(s) (ordinals 0-{count - 1}): set it to the StatefulSet's replicas")
    return Shard(ordinal + 1, count)


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
    """Every check of what a user gave, in one place; raises ConfigError naming the setting."""

    def positive(name: str, value: float) -> None:
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"--{name}: must be greater than 0, got {value:g}")

    positive("interval", settings.interval)
    positive("discovery-interval", settings.discovery_interval)
    positive("max-data-age", settings.max_data_age)
    positive("poll-timeout", settings.poll_timeout)
    positive("connect-timeout", settings.connect_timeout)
    positive("settings-interval", settings.settings_interval)
    if not 1 <= settings.agent_status_batch_size <= 1000:
        raise ConfigError(
            f"--agent-status-batch-size: must be between 1 and 1000, got {settings.agent_status_batch_size}")
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
    parse_listen(settings.listen)
    if settings.alert_thresholds:
        from exporter.wallboard.thresholds import load_thresholds  # not at import: it reads rule files

        load_thresholds(settings.alert_thresholds)  # ThresholdsError names --alert-thresholds and the file
    demo = settings.demo
    if demo.enabled:
        if demo.speed < 0 or demo.accounts < 1 or demo.queues < 1:
            raise ConfigError("--demo-speed must be >= 0 and --demo-accounts, --demo-queues at least 1")
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
    try:  # what the Kazoo client checks of its own (URL form, secrets' characters, the CA file)
        client_settings(settings)
    except ValueError as exc:
        raise ConfigError(str(exc).replace("ca_file:", "--ca-file:").replace("kazoo base url:", "--kazoo-url:")) from None
    return settings


def client_settings(settings: Settings) -> ClientSettings:
    """The Kazoo client's settings from the exporter's."""
    s = settings.secrets
    credentials = Credentials(
        token=s.auth_token,
        api_key=s.api_key,
        username=settings.username if s.password else None,
        password=s.password,
        account_name=settings.account_name if s.password else None,
    )
    return ClientSettings(
        base_url=settings.kazoo_url or "",
        credentials=credentials,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries=settings.retries,
        verify_tls=not settings.insecure_skip_verify,
        ca_file=settings.ca_file,
        status_batch_size=settings.status_batch_size,
        status_via_post=settings.status_via_post,
        page_size=settings.page_size,
        max_connections=max(settings.max_concurrency * 2, 10),
        request_timeout=settings.request_timeout,
        max_answer_bytes=settings.max_answer_bytes,
        max_pages=settings.max_pages,
    )
