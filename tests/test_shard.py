"""--shard N/M: M exporters cover every account exactly once, and the split is stable."""

import secrets
import subprocess
import sys

import pytest

from exporter.config import ConfigError, Shard, parse_shard
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
