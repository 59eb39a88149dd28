"""Hostile files handed to the exporter: YAML alias bombs in --config and --web.config.file, and a
huge file where a secret was expected. Each is refused with one line, quickly, without blowing up."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from exporter.cli import SECRET_FILE_MAX, parse_args
from exporter.config import ConfigError
from exporter.web import WebConfigError, load_web_config

ACC = "0123456789abcdef0123456789abcdef"
ROOT = Path(__file__).resolve().parent.parent


def alias_bomb(key: str, levels: int = 9) -> str:
    """The "billion laughs" under one key the exporter reads (an unknown key would be refused
    before anything is expanded): 9 levels of 9 aliases each, 9**9 strings once expanded."""
    items = ['&l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    items += [f"&l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels)]
    *parents, leaf = key.split(".")
    text = "".join(f"{'  ' * i}{parent}:\n" for i, parent in enumerate(parents))
    return text + f"{'  ' * len(parents)}{leaf}: [{', '.join(items)}]\n"


def test_an_alias_in_the_config_file_is_refused_with_one_line(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("account-id: &ids [" + ACC + "]\ndemo: true\ninterval: 5\nextra: *ids\n")
    with pytest.raises(ConfigError) as error:
        parse_args(["--config", str(config)], environ={})
    assert str(error.value) == (f"--config: {config}: YAML aliases are not accepted (*ids at line 4); "
                                "write the value out")


def test_an_alias_in_the_web_config_is_refused_with_one_line(tmp_path):
    config = tmp_path / "web.yml"
    config.write_text("http_server_config:\n  headers: &h {X-Frame-Options: deny}\nbasic_auth_users: *h\n")
    with pytest.raises(WebConfigError, match=r"YAML aliases are not accepted \(\*h at line 3\)"):
        load_web_config(str(config))


def test_anchors_without_aliases_still_load(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("interval: &i 5\ndemo: true\n")
    assert parse_args(["--config", str(config)], environ={})[1].interval == 5


def _limit_memory() -> None:
    # The machine is shared: if the bomb went off anyway, it must die here, not take 1.2 GB.
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.e2e
@pytest.mark.parametrize("flag,key", [("--config", "account-id"),
                                      ("--web.config.file", "rate_limit.interval")])
def test_an_alias_bomb_is_refused_at_once(tmp_path, flag, key):
    bomb = tmp_path / "bomb.yml"
    bomb.write_text(alias_bomb(key))
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--demo", "--listen", "127.0.0.1:0", "--log-format", "json", flag, str(bomb)],
        capture_output=True, text=True, timeout=30, cwd=ROOT, preexec_fn=_limit_memory,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "aliases are not accepted" in line]
    assert len(errors) == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_a_huge_secret_file_is_refused_before_it_is_read(tmp_path):
    huge = tmp_path / "api-key"
    with open(huge, "wb") as f:  # sparse: 64 MiB on paper, nothing on disk
        f.truncate(64 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as error:
            parse_args(["--kazoo-url", "http://kazoo.test", "--account-id", ACC, "--api-key-file", str(huge)],
                       environ={})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(error.value) == (f"--api-key-file: {huge} is larger than {SECRET_FILE_MAX} bytes; "
                                "it should hold one secret")
    assert peak < 1 << 20  # the file is 64 MiB: it was not read whole


def test_a_secret_file_of_the_limit_is_still_read(tmp_path):
    key = tmp_path / "api-key"
    key.write_text("k" * 64 + "\n" + " " * (SECRET_FILE_MAX - 65))
    assert key.stat().st_size == SECRET_FILE_MAX
    settings = parse_args(["--kazoo-url", "http://kazoo.test", "--account-id", ACC, "--api-key-file", str(key)],
                          environ={})[1]
    assert settings.secrets.api_key == "k" * 64
