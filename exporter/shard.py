"""Stable account -> shard mapping for --shard N/M: several exporters split one platform, no overlap."""

from __future__ import annotations

import hashlib

from exporter.config import Shard


def shard_of(account_id: str, count: int) -> int:
    """1-based shard of an account. sha256, not hash(): Python salts str hashes per process."""
    digest = hashlib.sha256(account_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def in_shard(account_id: str, shard: Shard) -> bool:
    return shard_of(account_id, shard.count) == shard.index
