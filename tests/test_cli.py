"""Flags, QUBICLE_* environment variables and the YAML file end in one validated Settings."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from exporter import __version__
from exporter.cli import parse_args
from exporter.config import ConfigError, Shard

ACC1, ACC2 = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
KEY = "k" * 64


@pytest.fixture
def key_file(tmp_path: Path) -> str:
    path = tmp_path / "api-key"
    path.write_text(KEY + "\n")
    return str(path)


def base(key_file: str) -> list[str]:
    return ["--kazoo-url", "http://kazoo.test:8000/", "--account-id", ACC1, "--api-key-file", key_file]


def test_flags_make_settings_with_defaults(key_file):
    command, s = parse_args(base(key_file), environ={})
    assert command == "run"
    assert s.kazoo_url == "http://kazoo.test:8000"
    assert s.account_ids == (ACC1,)
    assert s.secrets.api_key == KEY
    # --poll-timeout defaults below the interval (3/4): one stuck account must not make every poll
    # run into the next tick, which would be skipped, halving every healthy account's rate.
    assert (s.interval, s.max_data_age, s.poll_timeout, s.status_batch_size) == (10.0, 30.0, 7.5, 100)
    assert s.listen == "0.0.0.0:10147"


def test_every_flag_reads_an_environment_variable(key_file):
    env = {
        "QUBICLE_KAZOO_URL": "https://kz.test",
        "QUBICLE_ACCOUNT_ID": f"{ACC1}, {ACC2}",
        "QUBICLE_API_KEY_FILE": key_file,
        "QUBICLE_INTERVAL": "5",
        "QUBICLE_DISCOVER_DESCENDANTS": "true",
        "QUBICLE_SHARD": "2/3",
        "QUBICLE_WAIT_UNIT": "milliseconds",
    }
    _, s = parse_args([], environ=env)
    assert s.account_ids == (ACC1, ACC2)
    assert s.interval == 5 and s.max_data_age == 15  # 3 intervals by default
    assert s.discover_descendants is True
    assert s.shard == Shard(2, 3)
    assert s.wait_unit == "milliseconds"


USER_CREDENTIALS = {"username", "password-file", "account-name"}
REQUIRED = {"kazoo-url", "account-id", "api-key-file", "auth-token-file", *USER_CREDENTIALS}


def sample_values(tmp_path: Path) -> dict[str, str]:
    """A value other than the default for every option, as its flag or environment variable spells it."""
    files = {"config": "interval: 7\n", "api-key": "a" * 64 + "\n", "token": "eyJhbGciOiJub25lIn0.e30.\n",
             "password": "pa55:word\n", "web.yml": "{}\n"}
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    import trustme  # the CA file is checked with the other settings: a real one

    trustme.CA().cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    return {
        "config": str(tmp_path / "config"), "kazoo-url": "https://kz.test:8443", "account-id": f"{ACC1},{ACC2}",
        "discover-descendants": "true", "auth-token-file": str(tmp_path / "token"),
        "api-key-file": str(tmp_path / "api-key"), "username": "alice", "password-file": str(tmp_path / "password"),
        "account-name": "acme", "interval": "7.5", "discovery-interval": "300", "max-concurrency": "3",
        "max-data-age": "99", "poll-timeout": "4", "status-batch-size": "25", "status-via-post": "true",
        "page-size": "50", "wait-unit": "milliseconds", "connect-timeout": "1.5", "read-timeout": "20",
        "retries": "5", "ca-file": str(tmp_path / "ca.pem"), "insecure-skip-verify": "true",
        "listen": "127.0.0.1:9999", "web-config-file": str(tmp_path / "web.yml"), "metrics-path": "/m",
        "log-level": "debug", "log-format": "logfmt", "shard": "2/3", "demo": "true", "demo-speed": "60",
        "demo-seed": "5", "demo-accounts": "3", "demo-queues": "2",
        "alert-thresholds": str(Path(__file__).parent.parent / "alerts" / "overrides.example.yml"),
        "shard-from-hostname": "3", "request-timeout": "12", "max-answer-bytes": "4096", "max-pages": "7",
        # Booleans that default to on: --no-<flag>, as the variable's "false".
        "agent-status": "false", "queue-settings": "false", "account-names": "false", "agent-metrics": "true",
        "agent-status-batch-size": "40", "settings-interval": "900",
    }


# What else an option reads from the environment, given alike to the flag's and the variable's run.
CONTEXT_ENV = {"shard-from-hostname": {"HOSTNAME": "qubicle-exporter-1"}}


def test_every_option_reads_its_environment_variable_like_its_flag(tmp_path, key_file):
    from exporter.cli import OPTIONS

    samples = sample_values(tmp_path)
    assert {o.name for o in OPTIONS} == set(samples), "every option needs a sample value here"
    for option in OPTIONS:
        value = samples[option.name]
        # The other settings a valid run needs, as flags; credentials of the kind the option belongs to.
        if option.name in USER_CREDENTIALS:
            credentials = {"username": "bob", "password-file": key_file, "account-name": "other"}
        elif option.name == "auth-token-file":
            credentials = {}
        else:
            credentials = {"api-key-file": key_file}
        rest = {"kazoo-url": "http://kazoo.test:8000/", "account-id": ACC1, **credentials}
        rest.pop(option.name, None)
        base = [arg for name, v in rest.items() for arg in (f"--{name}", v)]
        flag = [f"--{option.name}"] if option.boolean else [f"--{option.name}", value]
        if option.boolean and value == "false":
            flag = [f"--no-{option.name}"]
        context = CONTEXT_ENV.get(option.name, {})
        _, by_flag = parse_args([*base, *flag], environ=dict(context))
        _, by_env = parse_args(base, environ={**context, option.env: value})
        assert by_env == by_flag, option.name
        try:
            _, without = parse_args(base, environ=dict(context))
        except ConfigError:
            assert option.name in REQUIRED, option.name  # the variable supplied what was missing
            continue
        assert without != by_env, f"{option.env}={value} changed nothing"


def test_secret_values_come_from_the_environment_too():
    env = {"QUBICLE_KAZOO_URL": "http://kz.test", "QUBICLE_ACCOUNT_ID": ACC1, "QUBICLE_AUTH_TOKEN": "tok-123"}
    _, s = parse_args([], environ=env)
    assert s.secrets.auth_token == "tok-123"
    assert "tok-123" not in repr(s)


def test_config_file_then_env_then_flags(tmp_path, key_file):
    config = tmp_path / "qubicle.yml"
    config.write_text(f"kazoo-url: http://from-file:8000\naccount_id: [{ACC1}]\ninterval: 20\n"
                      f"api-key-file: {key_file}\nmax-concurrency: 4\n")
    _, s = parse_args(["--config", str(config), "--interval", "7"], environ={"QUBICLE_MAX_CONCURRENCY": "8"})
    assert s.kazoo_url == "http://from-file:8000"
    assert s.interval == 7
    assert s.max_concurrency == 8


def test_go_exporter_flag_spellings(key_file):
    _, s = parse_args(base(key_file) + ["--web.listen-address", ":9999", "--log.level", "debug",
                                        "--log.format", "json", "--web.config.file", "/etc/web.yml"], environ={})
    assert (s.listen, s.log_level, s.log_format, s.web_config_file) == (":9999", "debug", "json", "/etc/web.yml")


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        (["--interval", "0"], {}, "--interval: must be greater than 0"),
        (["--shard", "4/3"], {}, "--shard"),
        (["--account-id", "not-an-id"], {}, "--account-id: 'not-an-id'"),
        (["--wait-unit", "hours"], {}, "--wait-unit (flag): expected one of seconds, milliseconds"),
        (["--max-data-age", "5"], {}, "--max-data-age: must be at least --interval"),
        ([], {"QUBICLE_INTERVAL": "soon"}, "--interval ($QUBICLE_INTERVAL): invalid value 'soon'"),
        ([], {"QUBICLE_DEMO": "maybe"}, "--demo ($QUBICLE_DEMO): expected true or false"),
    ],
)
def test_bad_values_name_the_setting(key_file, extra, env, message):
    with pytest.raises(ConfigError) as info:
        parse_args(base(key_file) + extra, environ=env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_api_key_length_is_checked_without_printing_it(tmp_path):
    short = tmp_path / "key"
    short.write_text("secret-short-key")
    with pytest.raises(ConfigError) as info:
        parse_args(["--kazoo-url", "http://kz", "--account-id", ACC1, "--api-key-file", str(short)], environ={})
    assert "exactly 64 characters, got 16" in str(info.value)
    assert "secret-short-key" not in str(info.value)


def test_missing_credentials_and_conflicting_ones(key_file, tmp_path):
    with pytest.raises(ConfigError, match="credentials: set one of"):
        parse_args(["--kazoo-url", "http://kz", "--account-id", ACC1], environ={})
    with pytest.raises(ConfigError, match="only one"):
        parse_args(base(key_file), environ={"QUBICLE_AUTH_TOKEN": "t"})
    pw = tmp_path / "pw"
    pw.write_text("hunter2")
    with pytest.raises(ConfigError, match="--account-name: required"):
        parse_args(["--kazoo-url", "http://kz", "--account-id", ACC1, "--username", "Bob",
                    "--password-file", str(pw)], environ={})


def test_config_file_rejects_unknown_keys_and_secrets(tmp_path):
    bad = tmp_path / "c.yml"
    bad.write_text("kazoo-url: http://kz\nintervall: 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'intervall'"):
        parse_args(["--config", str(bad)], environ={})
    bad.write_text("api_key: abc\n")
    with pytest.raises(ConfigError, match="cannot be set in the file"):
        parse_args(["--config", str(bad)], environ={})
    bad.write_text("kazoo-url: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        parse_args(["--config", str(bad)], environ={})


def test_demo_needs_no_kazoo_settings():
    _, s = parse_args(["--demo", "--demo-speed", "60"], environ={})
    assert s.demo.enabled and s.demo.speed == 60


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})


@pytest.mark.e2e
def test_bad_flag_exits_2_with_one_line():
    for args in (["--interval", "x", "--demo"], ["--no-such-flag"], ["--interval", "-1", "--demo"]):
        result = run_cli(*args)
        assert result.returncode == 2, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("qubicle-exporter: error:")


@pytest.mark.e2e
def test_a_bad_ca_file_exits_2_with_one_line(tmp_path):
    key = tmp_path / "key"
    key.write_text(KEY)
    result = run_cli("--kazoo-url", "https://kz.test", "--account-id", ACC1, "--api-key-file", str(key),
                     "--ca-file", str(tmp_path / "missing.pem"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "ca_file" in lines[0].replace("-", "_"), result.stderr


@pytest.mark.e2e
def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"qubicle-exporter {__version__}"


def test_readme_documents_every_flag_and_env_var():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = readme.split("<!-- flags-table:start -->")[1].split("<!-- flags-table:end -->")[0]
    from exporter.cli import OPTIONS

    for option in OPTIONS:
        assert f"`--{option.name}`" in table, option.name
        assert f"`{option.env}`" in table, option.env
        for alias in option.aliases:
            assert f"`{alias}`" in table, alias


@pytest.mark.e2e
def test_help_shows_every_subcommand_that_the_architecture_names():
    architecture = (Path(__file__).parent.parent / "docs" / "architecture.md").read_text()
    row = next(line for line in architecture.splitlines() if line.startswith("| `exporter/cli.py`"))
    named = re.findall(r"`(\w+)`(?: \(default\))?(?: and|\s*\|)", row.split("subcommands", 1)[1])
    assert set(named) == {"run", "check"}, row
    result = run_cli("--help")
    assert result.returncode == 0
    usage = result.stdout.splitlines()[0]
    for name in named:
        assert name in re.findall(r"\w+", usage), usage
        assert f"'{name}'" in result.stdout  # and described
    for name in named:  # each one really is a subcommand
        assert run_cli(name, "--version").returncode == 0


# ---- issue 12: nothing echoed that may be a secret, nothing misspelt ignored in silence -------------

@pytest.mark.parametrize("url", ["https//admin:PW-s3cret@kz.test:8000", "kz.test/?password=PW-s3cret",
                                 "ftp://kz.test/v2?password=PW-s3cret#PW-s3cret", "admin:PW-s3cret@kz.test"])
def test_a_malformed_kazoo_url_is_named_without_its_userinfo_or_query(key_file, url):
    with pytest.raises(ConfigError) as info:
        parse_args(["--kazoo-url", url, "--account-id", ACC1, "--api-key-file", key_file], environ={})
    assert str(info.value).startswith("--kazoo-url: expected http(s)://host[:port], got ")
    assert "PW-s3cret" not in str(info.value) and "kz.test" in str(info.value)


@pytest.mark.e2e
@pytest.mark.parametrize("url", ["http://admin:PW-s3cret@kz.test:8000", "http://kz.test:8000/?password=PW-s3cret"])
def test_a_wellformed_kazoo_url_with_userinfo_or_query_exits_2_without_echoing_it(tmp_path, url):
    key = tmp_path / "key"
    key.write_text(KEY)
    result = run_cli("--kazoo-url", url, "--account-id", ACC1, "--api-key-file", str(key))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "PW-s3cret" not in result.stderr + result.stdout


@pytest.mark.e2e
@pytest.mark.parametrize("flag", ["--api-key", "--password", "--auth-token", "--api-key-f"])
def test_secret_flags_are_not_abbreviations_of_the_file_flags(flag):
    result = run_cli("--kazoo-url", "http://kz.test", "--account-id", ACC1, flag, "PW-s3cret")
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr
    assert "cannot read" not in result.stderr


@pytest.mark.e2e
def test_every_flag_must_be_spelt_out():
    for args in (["--inter", "5", "--demo"], ["--dem"]):
        result = run_cli(*args)
        assert result.returncode == 2, args
        assert "unrecognized arguments" in result.stderr


def test_a_misspelt_environment_variable_is_named_with_the_closest_one(key_file, capsys):
    parse_args(base(key_file), environ={"QUBICLE_INTERVALL": "5", "QUBICLE_APIKEY": "PW-s3cret",
                                        "QUBICLE_ZZZ": "1", "QUBICLE_HEALTHCHECK_URL": "http://x", "OTHER": "1"})
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "qubicle-exporter: warning: unknown environment variable QUBICLE_APIKEY ignored (did you mean QUBICLE_API_KEY?)",
        ("qubicle-exporter: warning: unknown environment variable QUBICLE_INTERVALL ignored "
         "(did you mean QUBICLE_INTERVAL?)"),
        "qubicle-exporter: warning: unknown environment variable QUBICLE_ZZZ ignored",
    ]


def test_known_environment_variables_cause_no_warning(key_file, capsys):
    parse_args(base(key_file), environ={"QUBICLE_INTERVAL": "5", "QUBICLE_API_KEY": KEY, "QUBICLE_REQUEST_TIMEOUT": "9"})
    assert capsys.readouterr().err == ""


def test_limit_flags(key_file):
    _, s = parse_args(base(key_file), environ={})
    assert (s.request_timeout, s.max_answer_bytes, s.max_pages) == (None, 8 * 1024 * 1024, 1000)
    _, s = parse_args(base(key_file) + ["--request-timeout", "7.5", "--max-answer-bytes", "2048", "--max-pages", "9"],
                      environ={})
    assert (s.request_timeout, s.max_answer_bytes, s.max_pages) == (7.5, 2048, 9)
    for extra, message in ((["--request-timeout", "0"], "--request-timeout: must be greater than 0"),
                           (["--max-answer-bytes", "10"], "--max-answer-bytes: must be at least 1024"),
                           (["--max-pages", "0"], "--max-pages: must be at least 1")):
        with pytest.raises(ConfigError, match=message):
            parse_args(base(key_file) + extra, environ={})
