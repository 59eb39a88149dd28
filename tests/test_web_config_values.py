"""What a valid --web.config.file turns into: durations, the rate limit's off switches, headers
as written, users, and the flag named in a file-level error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exporter.web import WebConfigError, load_web_config, parse_web_config

HASH = "$2y$04$" + "a" * 53


def parsed(content: dict[str, Any]) -> Any:
    return parse_web_config(content, Path("/etc/qubicle"))


@pytest.mark.parametrize(("interval", "seconds"), [
    ("100ms", 0.1), ("1s", 1.0), ("2m", 120.0), ("1h", 3600.0), ("1m30s", 90.0), ("1h1m1s1ms", 3661.001),
    (" 5s ", 5.0), ("250ms", 0.25)])
def test_durations(interval, seconds):
    assert parsed({"rate_limit": {"interval": interval, "burst": 3}}).rate_limit == pytest.approx((seconds, 3))


@pytest.mark.parametrize("rate_limit", [
    None, {}, {"burst": 5}, {"interval": "0", "burst": 5}, {"interval": 0, "burst": 5}, {"interval": "0"},
    {"interval": "0", "burst": 0}])
def test_no_interval_or_a_zero_one_means_no_rate_limit(rate_limit):
    assert parsed({"rate_limit": rate_limit}).rate_limit is None


def test_headers_are_sent_as_written_and_blank_ones_are_unset():
    config = parsed({"http_server_config": {"headers": {
        "X-Frame-Options": "SAMEORIGIN", "X-Content-Type-Options": "NoSniff", "X-XSS-Protection": "",
        "Content-Security-Policy": "default-src 'self'"}, "http2": False}})
    assert config.headers == {"X-Frame-Options": "SAMEORIGIN", "X-Content-Type-Options": "NoSniff",
                              "Content-Security-Policy": "default-src 'self'"}


def test_every_bcrypt_variant_htpasswd_and_the_toolkit_write_is_accepted():
    users = {"a": HASH, "b": "$2a$04$" + "b" * 53, "c": "$2b$12$" + "c" * 53}
    config = parsed({"basic_auth_users": users})
    assert config.basic_auth is not None and config.basic_auth.user_count == 3


def test_file_level_errors_name_the_flag_and_the_file(tmp_path):
    missing = tmp_path / "missing.yml"
    with pytest.raises(WebConfigError) as info:
        load_web_config(str(missing))
    assert str(info.value) == f"--web.config.file: cannot read {missing}: No such file or directory"
    broken = tmp_path / "web.yml"
    broken.write_text("basic_auth_users:\n  prometheus: [\n")
    with pytest.raises(WebConfigError) as info:
        load_web_config(str(broken))
    assert str(info.value) == f"--web.config.file: {broken} is not valid YAML at line 3"
