"""--shard N/M and --shard-from-hostname M: M exporters cover every account exactly once, and the split is stable."""

import re
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.cli import parse_args
from exporter.config import ConfigError, Settings, Shard, parse_shard, shard_from_hostname
from exporter.shard import in_shard, shard_of


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16])
def test_shards_cover_every_account_exactly_once(count):
    accounts = [secrets.token_hex(16) for _ in range(2000)]
    owners = {a: [i for i in range(1, count + 1) if in_shard(a, Shard(i, count))] for a in accounts}
    assert all(len(o) == 1 for o in owners.values())
    sizes = [sum(1 for o in owners.values() if o == [i]) for i in range(1, count + 1)]
    # sha256 spreads ids evenly: no shard gets less than half its fair share.
    assert min(sizes) > len(accounts) / count / 2


# (account id, M) -> shard, as released. A user's shard layout must not move on upgrade: if one of
# these changes, every exporter of a sharded platform watches other accounts than before.
GOLDEN = {
    "0123456789abcdef0123456789abcdef": {2: 1, 3: 2, 5: 3, 7: 3, 16: 7},
    "3f0b2c1d4e5f60718293a4b5c6d7e8f9": {2: 2, 3: 2, 5: 3, 7: 4, 16: 4},
    "fedcba9876543210fedcba9876543210": {2: 1, 3: 3, 5: 5, 7: 2, 16: 3},
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": {2: 1, 3: 1, 5: 1, 7: 7, 16: 7},
    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb": {2: 1, 3: 3, 5: 2, 7: 1, 16: 15},
    "00000000000000000000000000000001": {2: 2, 3: 3, 5: 1, 7: 1, 16: 8},
    "9a1c0e6f2b3d4c5e8f7a6b5c4d3e2f10": {2: 1, 3: 3, 5: 5, 7: 2, 16: 1},
}


def test_the_mapping_is_the_released_one():
    got = {account: {m: shard_of(account, m) for m in shards} for account, shards in GOLDEN.items()}
    assert got == GOLDEN
    assert all(in_shard(account, Shard(index, m)) for account, shards in GOLDEN.items() for m, index in shards.items())


@pytest.mark.e2e
def test_mapping_is_stable_across_processes():
    ids = [f"{i:032x}" for i in range(50)]
    here = [shard_of(a, 5) for a in ids]
    code = f"from exporter.shard import shard_of; print([shard_of(a, 5) for a in {ids!r}])"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123"}).stdout.strip()
    assert there == str(here)


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "a/b", "1-3", ""])
def test_bad_shards_are_rejected(text):
    with pytest.raises(ConfigError, match="--shard"):
        parse_shard(text)


# --- --shard-from-hostname M: a StatefulSet's pod <name>-<ordinal> is shard ordinal+1 of M -------

ACCOUNT = "0123456789abcdef0123456789abcdef"


def settings_on(hostname: str, *args: str, key_file: Path) -> Settings:
    env = {"HOSTNAME": hostname, "QUBICLE_KAZOO_URL": "http://kazoo.test:8000", "QUBICLE_ACCOUNT_ID": ACCOUNT,
           "QUBICLE_API_KEY_FILE": str(key_file)}
    return parse_args(list(args), environ=env)[1]


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-key"
    path.write_text("k" * 64)
    return path


@pytest.mark.parametrize(("hostname", "count", "shard"), [
    ("qubicle-exporter-0", 1, Shard(1, 1)),
    ("qubicle-exporter-0", 4, Shard(1, 4)),
    ("qubicle-exporter-3", 4, Shard(4, 4)),
    ("web-12", 13, Shard(13, 13)),
    # setHostnameAsFQDN: the pod's name is the first label.
    ("qubicle-exporter-2.qubicle-exporter.monitoring.svc.cluster.local", 3, Shard(3, 3)),
])
def test_shard_from_hostname(hostname, count, shard):
    assert shard_from_hostname(hostname, count) == shard


@pytest.mark.parametrize(("hostname", "count", "message"), [
    ("qubicle-exporter-4", 4, "is ordinal 4, but there are only 4 shard(s) (ordinals 0-3)"),
    ("qubicle-exporter", 2, "does not end in -<ordinal>"),
    ("qubicle-exporter-7f9c-xk2lp", 2, "does not end in -<ordinal>"),  # a Deployment's pod: no ordinal
    ("", 2, "does not end in -<ordinal>"),
    ("qubicle-exporter-0", 0, "at least 1"),
])
def test_bad_hostnames_and_counts_are_one_line_errors(hostname, count, message):
    with pytest.raises(ConfigError) as info:
        shard_from_hostname(hostname, count)
    assert message in str(info.value) and "--shard-from-hostname" in str(info.value)
    assert "\n" not in str(info.value)


def test_flag_and_environment_read_the_pod_name(key_file):
    assert settings_on("qubicle-exporter-2", "--shard-from-hostname", "3", key_file=key_file).shard == Shard(3, 3)
    env_only = parse_args([], environ={"HOSTNAME": "qubicle-exporter-1", "QUBICLE_SHARD_FROM_HOSTNAME": "2",
                                       "QUBICLE_KAZOO_URL": "http://kazoo.test:8000", "QUBICLE_ACCOUNT_ID": ACCOUNT,
                                       "QUBICLE_API_KEY_FILE": str(key_file)})[1]
    assert env_only.shard == Shard(2, 2)


def test_without_hostname_variable_the_system_host_name_is_used(key_file):
    env = {"QUBICLE_KAZOO_URL": "http://kazoo.test:8000", "QUBICLE_ACCOUNT_ID": ACCOUNT,
           "QUBICLE_API_KEY_FILE": str(key_file)}
    name = socket.gethostname()
    ordinal = re.fullmatch(r".*-(\d+)", name.split(".")[0])
    if ordinal and int(ordinal.group(1)) < 1000:
        shard = parse_args(["--shard-from-hostname", "1000"], environ=env)[1].shard
        assert shard == Shard(int(ordinal.group(1)) + 1, 1000)
    else:
        with pytest.raises(ConfigError, match=re.escape(repr(name))):
            parse_args(["--shard-from-hostname", "1000"], environ=env)


def test_shard_and_shard_from_hostname_exclude_each_other(key_file):
    with pytest.raises(ConfigError, match="--shard and --shard-from-hostname exclude each other"):
        settings_on("qubicle-exporter-0", "--shard", "1/2", "--shard-from-hostname", "2", key_file=key_file)


@pytest.mark.parametrize("count", [1, 2, 4, 7])
def test_n_pods_cover_every_account_exactly_once(count, key_file):
    shards = [settings_on(f"qubicle-exporter-{i}", "--shard-from-hostname", str(count), key_file=key_file).shard
              for i in range(count)]
    assert sorted(s.index for s in shards if s) == list(range(1, count + 1))
    accounts = [secrets.token_hex(16) for _ in range(1000)]
    for account in accounts:
        assert sum(in_shard(account, s) for s in shards if s) == 1
