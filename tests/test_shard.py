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
