"""Command line: flags, QUBICLE_* environment variables and a YAML file -> one validated Settings.

Precedence, highest first: command-line flag, environment variable, --config file, default.
Secrets are read only from files (--api-key-file, --auth-token-file, --password-file) or from the
environment (QUBICLE_API_KEY, QUBICLE_AUTH_TOKEN, QUBICLE_PASSWORD), never from a flag value that
`ps` would show.
"""

from __future__ import annotations

import argparse
import difflib
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, NoReturn

from exporter import __version__, yamlsafe
from exporter.config import (
    DEFAULT_TEXT,
    DERIVED,
    ConfigError,
    DemoSettings,
    Secrets,
    Settings,
    Shard,
    parse_account_ids,
    parse_shard,
    shard_from_hostname,
    validate,
    with_derived_defaults,
)

PROG = "qubicle-exporter"
ENV_PREFIX = "QUBICLE_"


def _bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _choice(*choices: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        value = str(text).strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return value

    return convert


def _optional_int(text: str) -> int | None:
    return None if str(text).strip() == "" else int(text)


@dataclass(frozen=True)
class Option:
    name: str  # the flag without dashes; also the YAML key and (upper-cased) the env variable
    convert: Callable[[str], Any]
    help: str
    aliases: tuple[str, ...] = ()
    boolean: bool = False
    repeatable: bool = False
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_").replace(".", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()


OPTIONS: tuple[Option, ...] = (
    Option("config", str, "YAML file with any of these settings (keys as the flag names)", metavar="FILE"),
    Option("kazoo-url", str, "Crossbar base URL, e.g. http://kazoo.example.net:8000", metavar="URL"),
    Option("account-id", str, "account to poll; repeat it, or comma-separate (env)", repeatable=True, metavar="ID"),
    Option("discover-descendants", _bool, "also poll every descendant account of the configured ones", boolean=True),
    Option("auth-token-file", str, "file holding a fixed X-Auth-Token", metavar="FILE"),
    Option("api-key-file", str, "file holding a 64-character Kazoo API key", metavar="FILE"),
    Option("username", str, "Kazoo user name (with --password-file and --account-name)"),
    Option("password-file", str, "file holding the Kazoo user's password", metavar="FILE"),
    Option("account-name", str, "account name for user authentication"),
    Option("interval", float, "seconds between polls", metavar="SECONDS"),
    Option("discovery-interval", float, "seconds between queue/account discoveries", metavar="SECONDS"),
    Option("max-concurrency", int,
           "most accounts polled at once (fewer, down to 10, while a poll fits in half the interval)", metavar="N"),
    Option("max-data-age", float, "drop queue series older than this after failures",
           metavar="SECONDS"),
    Option("poll-timeout", float, "give up on one account's poll after this long",
           metavar="SECONDS"),
    Option("status-batch-size", int, "queue ids per 'queue list status' request", metavar="N"),
    Option("status-via-post", _bool, "send list status as POST ...?verb=GET (for proxies that drop GET bodies)",
           boolean=True),
    Option("page-size", _optional_int, "page size for Crossbar listings", metavar="N"),
    Option("wait-unit", _choice("seconds", "milliseconds"), "unit of Kazoo's wait figures"),
    Option("connect-timeout", float, "seconds to connect to Kazoo", metavar="SECONDS"),
    Option("read-timeout", float, "seconds to wait for Kazoo's answer", metavar="SECONDS"),
    Option("request-timeout", float, "seconds one request may take in all, connect to last byte",
           metavar="SECONDS"),
    Option("max-answer-bytes", int, "refuse a Kazoo answer larger than this once decoded", metavar="BYTES"),
    Option("max-pages", int, "give up on a listing longer than this many pages", metavar="N"),
    Option("retries", int, "extra attempts on connection errors, 5xx and 429", metavar="N"),
    Option("ca-file", str, "CA bundle to verify Kazoo's TLS certificate", metavar="FILE"),
    Option("insecure-skip-verify", _bool, "do NOT verify Kazoo's TLS certificate (logs a warning)", boolean=True),
    Option("listen", str, "address to serve on", aliases=("--web.listen-address",),
           metavar="HOST:PORT"),
    Option("web-config-file", str, "exporter-toolkit web config (TLS, basic auth)", aliases=("--web.config.file",),
           metavar="FILE"),
    Option("metrics-path", str, "path of the metrics", aliases=("--web.telemetry-path",),
           metavar="PATH"),
    Option("alert-thresholds", str, "rule file with per-queue alert thresholds, for the wallboard's colours; "
           "repeatable (see alerts/overrides.example.yml)", repeatable=True, metavar="FILE"),
    Option("log-level", _choice("debug", "info", "warning", "error"), "debug, info, warning or error",
           aliases=("--log.level",)),
    Option("log-format", _choice("auto", "json", "console", "logfmt"),
           "auto (JSON unless a terminal), json, console or logfmt", aliases=("--log.format",)),
    Option("shard", str, "poll only the accounts of shard N of M (e.g. 1/3)", metavar="N/M"),
    Option("agent-status", _bool, "fetch agents' states (one batched request per account per poll; "
           "--no-agent-status turns it off)", boolean=True),
    Option("agent-status-batch-size", int, "agent ids per agent status request", metavar="N"),
    Option("queue-settings", _bool, "read each queue's settings and members from its document, spread over "
           "polls (--no-queue-settings turns it off)", boolean=True),
    Option("account-names", _bool, "read account names (--no-account-names turns it off)", boolean=True),
    Option("settings-interval", float, "seconds between refreshes of queue settings, members, agent and "
           "account names", metavar="SECONDS"),
    Option("agent-metrics", _bool, "also export one series set per agent (state, calls, missed calls)",
           boolean=True),
    Option("shard-from-hostname", int, "split accounts into M shards; this one is the host name's -<ordinal> "
           "suffix + 1 (StatefulSet pod name-0 is shard 1/M)", metavar="M"),
    Option("demo", _bool, "run against the embedded Qubicle simulator", boolean=True),
    Option("demo-speed", float, "simulated seconds per real second in --demo", metavar="X"),
    Option("demo-seed", int, "random seed of the --demo simulator", metavar="N"),
    Option("demo-accounts", int, "accounts in the --demo simulator", metavar="N"),
    Option("demo-queues", int, "queues per account in the --demo simulator", metavar="N"),
)
_BY_DEST = {o.dest: o for o in OPTIONS}
_SECRET_ENV = {"auth_token": "QUBICLE_AUTH_TOKEN", "api_key": "QUBICLE_API_KEY", "password": "QUBICLE_PASSWORD"}
# Read by others, not by the settings: the container's HEALTHCHECK (Dockerfile).
_OTHER_ENV = ("QUBICLE_HEALTHCHECK_URL",)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line naming the problem; the usage block is for --help.
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        usage=f"{PROG} [run | check] [options]",
        # No prefix matching: "--api-key X" must not pass for --api-key-file (and echo the secret
        # in "cannot read X"), nor any other unfinished flag for a real one.
        allow_abbrev=False,
        description="Prometheus exporter for 2600Hz Kazoo Qubicle call-center queues. "
        "Subcommands: 'run' (the default, may be omitted) polls Kazoo and serves the metrics; 'check' "
        "authenticates, prints every queue's status and exits. Every flag also reads "
        f"{ENV_PREFIX}<FLAG> (upper case, dashes to underscores).",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    for option in OPTIONS:
        flags = [f"--{option.name}", *option.aliases]
        default = default_text(option)
        help_text = f"{option.help} (default {default})" if default else option.help
        if option.boolean:
            parser.add_argument(*flags, dest=option.dest, action=argparse.BooleanOptionalAction, help=help_text)
        elif option.repeatable:
            parser.add_argument(*flags, dest=option.dest, action="append", help=help_text, metavar=option.metavar)
        else:
            parser.add_argument(*flags, dest=option.dest, help=help_text, metavar=option.metavar)
    return parser


def _convert(option: Option, raw: Any, source: str) -> Any:
    if option.repeatable:
        return raw if isinstance(raw, list) else [str(raw)]
    if option.boolean and isinstance(raw, bool):
        return raw
    try:
        return option.convert(str(raw))
    except (TypeError, ValueError) as exc:
        reason = str(exc) if "expected" in str(exc) else f"invalid value {raw!r}"
        raise ConfigError(f"--{option.name} ({source}): {reason}") from None


def _load_yaml(path: str) -> dict[str, Any]:
    data = yamlsafe.load_file(path, "--config", ConfigError)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {path} must be a mapping of setting names to values")
    values: dict[str, Any] = {}
    for key, raw in data.items():
        dest = str(key).replace("-", "_").replace(".", "_")
        if dest in _SECRET_ENV:
            raise ConfigError(f"--config: {key!r} cannot be set in the file; use {dest.replace('_', '-')}-file")
        option = _BY_DEST.get(dest)
        if option is None or dest == "config":
            raise ConfigError(f"--config: unknown setting {key!r} in {path}")
        if option.repeatable and isinstance(raw, list):
            raw = [str(v) for v in raw]
        values[dest] = _convert(option, raw, "config file")
    return values


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if option.env in environ:
            raw = environ[option.env]
            values[option.dest] = [raw] if option.repeatable else _convert(option, raw, f"${option.env}")
    _warn_unknown_env(environ)
    return values


SECRET_FILE_MAX = 8192  # bytes; tokens, API keys and passwords are far shorter


def _warn_unknown_env(environ: Mapping[str, str]) -> None:
    """A misspelt QUBICLE_* variable would be ignored in silence: name it and the closest one we read.
    Only names are shown, never values (QUBICLE_APIKEY may well hold the key)."""
    known = [o.env for o in OPTIONS] + list(_SECRET_ENV.values()) + list(_OTHER_ENV)
    for name in sorted(n for n in environ if n.startswith(ENV_PREFIX) and n not in known):
        # Compared without the common prefix, which would make every name look close.
        close = difflib.get_close_matches(name[len(ENV_PREFIX):], [k[len(ENV_PREFIX):] for k in known], n=1,
                                          cutoff=0.6)
        hint = f" (did you mean {ENV_PREFIX}{close[0]}?)" if close else ""
        print(f"{PROG}: warning: unknown environment variable {name} ignored{hint}", file=sys.stderr)


def _read_secret(path: str, flag: str) -> str:
    # At most SECRET_FILE_MAX + 1 bytes are read: a wrong path (a log, a disk image) is refused
    # without being loaded whole (a 1 GiB file once took 2 GB).
    try:
        with open(path, "rb") as f:
            raw = f.read(SECRET_FILE_MAX + 1)
    except OSError as exc:
        raise ConfigError(f"--{flag}: cannot read {path}: {exc.strerror}") from None
    if len(raw) > SECRET_FILE_MAX:
        raise ConfigError(f"--{flag}: {path} is larger than {SECRET_FILE_MAX} bytes; it should hold one secret")
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"--{flag}: {path} is not UTF-8 text") from None
    if not value:
        raise ConfigError(f"--{flag}: {path} is empty")
    return value


def parse_args(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> tuple[str, Settings]:
    """Returns (command, settings); raises ConfigError. argparse exits 2 itself on bad flags."""
    environ = os.environ if environ is None else environ
    args = list(argv)
    command = "run"
    if args and args[0] in ("check", "run"):
        command = args.pop(0)
    flags = vars(build_parser().parse_args(args))
    for dest, raw in list(flags.items()):
        flags[dest] = _convert(_BY_DEST[dest], raw, "flag")

    env = _from_env(environ)
    config_path = flags.get("config") or env.get("config")
    values: dict[str, Any] = {}
    if config_path:
        values.update(_load_yaml(config_path))
    values.update(env)
    values.update(flags)
    return command, _settings(values, environ)


def _settings(v: dict[str, Any], environ: Mapping[str, str]) -> Settings:
    """Settings from the merged values: what was given replaces the dataclass defaults."""
    secrets = {}
    for name, env_name in _SECRET_ENV.items():
        file_flag = f"{name.replace('_', '-')}-file"
        if v.get(f"{name}_file"):
            secrets[name] = _read_secret(v[f"{name}_file"], file_flag)
        elif environ.get(env_name):
            secrets[name] = environ[env_name].strip()
    demo = DemoSettings(enabled=v.get("demo", False),
                        **{name: v[f"demo_{name}"] for name in _DEMO_FIELDS if f"demo_{name}" in v})
    given = {name: v[name] for name in _PLAIN_FIELDS if name in v}
    settings = replace(
        Settings(),
        **given,
        kazoo_url=(v.get("kazoo_url") or "").rstrip("/") or None,
        account_ids=parse_account_ids(v.get("account_id", [])),
        secrets=Secrets(**secrets),
        alert_thresholds=tuple(p for value in v.get("alert_thresholds", []) for p in value.split(",") if p.strip()),
        shard=_shard(v, environ),
        demo=demo,
    )
    return validate(with_derived_defaults(settings, set(given)))


# Settings fields set from the option of the same name as given; the others are built above.
_PLAIN_FIELDS = frozenset(f.name for f in fields(Settings)) - {"kazoo_url", "account_ids", "secrets", "shard", "demo",
                                                                "alert_thresholds"}
_DEMO_FIELDS = tuple(f.name for f in fields(DemoSettings) if f.name != "enabled")


def default_text(option: Option) -> str | None:
    """The option's default as its help says it, from the one place defaults are written."""
    name = option.dest
    if name in DERIVED:
        return DERIVED[name][1]
    if name in DEFAULT_TEXT:
        return DEFAULT_TEXT[name]
    if name.startswith("demo_") and name.removeprefix("demo_") in _DEMO_FIELDS:
        value = getattr(DemoSettings(), name.removeprefix("demo_"))
    elif name in _PLAIN_FIELDS:
        value = getattr(Settings(), name)
    else:
        return None
    if value is None or isinstance(value, bool):
        return None
    return f"{value:g}" if isinstance(value, float) else str(value)


def _shard(v: dict[str, Any], environ: Mapping[str, str]) -> Shard | None:
    count = v.get("shard_from_hostname")
    if v.get("shard") and count is not None:
        raise ConfigError("--shard and --shard-from-hostname exclude each other: give one")
    if count is not None:
        # $HOSTNAME first: Kubernetes sets it to the pod's name, and tests can set it.
        return shard_from_hostname(environ.get("HOSTNAME") or socket.gethostname(), count)
    return parse_shard(v["shard"]) if v.get("shard") else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        command, settings = parse_args(argv)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if command == "check":
        from exporter.check import run_check

        return run_check(settings)
    from exporter.app import run

    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
