"""Basic auth against the web config's bcrypt hashes, with a cache of verdicts.

Security code, kept apart from the YAML schema (config.py) and the serving (server.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading
from collections import OrderedDict

import bcrypt


class BasicAuth:
    """Checks `Authorization: Basic` headers against bcrypt hashes, as the exporter-toolkit does.

    Results (good and bad) are cached, keyed by a SHA-256 of user, stored hash and password, so a
    scrape storm costs one bcrypt per distinct credential instead of one per request; the cache
    holds digests only, never a password. bcrypt runs one at a time (like the toolkit's mutex) so
    a flood of wrong passwords takes one core, not all of them. Unknown users are checked against
    a dummy hash of the same cost as the real ones, so timing does not reveal which users exist.
    """

    def __init__(self, users: dict[str, str], cache_size: int = 1024) -> None:
        self._users = {u.encode(): h.encode() for u, h in users.items()}
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()
        cost = max((int(h[4:6]) for h in self._users.values()), default=10)
        self._dummy = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(rounds=cost))

    def __repr__(self) -> str:
        return f"BasicAuth(users={sorted(u.decode() for u in self._users)})"

    @staticmethod
    def _credentials(header: str | None) -> tuple[bytes, bytes] | None:
        if not header:
            return None
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        user, colon, password = decoded.partition(b":")
        return (user, password) if colon else None

    def _key(self, user: bytes, password: bytes) -> bytes:
        stored = self._users.get(user, self._dummy)
        return hashlib.sha256(b"\0".join((user.hex().encode(), stored, password.hex().encode()))).digest()

    def cached(self, header: str | None) -> bool | None:
        """The cached verdict for this header, None if it needs a bcrypt check (cheap: no bcrypt)."""
        credentials = self._credentials(header)
        if credentials is None:
            return False
        key = self._key(*credentials)
        with self._cache_lock:
            verdict = self._cache.get(key)
            if verdict is not None:
                self._cache.move_to_end(key)
            return verdict

    def check(self, header: str | None) -> bool:
        """True if the header carries a configured user and its password. May take a bcrypt (~70 ms)."""
        credentials = self._credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        key = self._key(user, password)
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        known = user in self._users
        with self._bcrypt_lock:
            try:
                ok = bcrypt.checkpw(password, self._users.get(user, self._dummy))
            except ValueError:  # bcrypt >= 5 refuses passwords over 72 bytes
                ok = False
        verdict = ok and known
        with self._cache_lock:
            self._cache[key] = verdict
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return verdict
