"""Basic auth against the web config's bcrypt hashes: a cache of verdicts, and a gate in front of bcrypt.

Security code, kept apart from the YAML schema (config.py) and the serving (server.py).

Under a flood of wrong passwords (issue 12: 200 concurrent made a good, not yet cached credential
wait 14.7 s; 1,100 evicted the cached good one):
- successes and failures are cached apart, so failures only ever evict failures;
- bcrypt runs one at a time behind BcryptGate, which serves configured users before unknown ones
  and lets each client address have only a few checks waiting: a flood from one address is
  answered 429 at once (no bcrypt), and a scrape from another address waits a few bcrypts at most.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import heapq
import itertools
import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor

import bcrypt


class BasicAuth:
    """Checks `Authorization: Basic` headers against bcrypt hashes, as the exporter-toolkit does.

    Verdicts are cached, keyed by a SHA-256 of user, stored hash and password, so a scrape storm
    costs one bcrypt per distinct credential instead of one per request; the caches hold digests
    only, never a password. Successes and failures have separate caches: a flood of wrong
    passwords evicts older failures, never a credential known to be good. bcrypt runs one at a time (like the toolkit's mutex) so
    a flood of wrong passwords takes one core, not all of them. Unknown users are checked against
    a dummy hash of the same cost as the real ones, so timing does not reveal which users exist.
    """

    def __init__(self, users: dict[str, str], cache_size: int = 1024, good_cache_size: int = 256) -> None:
        self._users = {u.encode(): h.encode() for u, h in users.items()}
        self._good: OrderedDict[bytes, None] = OrderedDict()  # only credentials bcrypt said yes to
        self._bad: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size
        self._good_cache_size = good_cache_size
        self._cache_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()
        cost = max((int(h[4:6]) for h in self._users.values()), default=10)
        self._dummy = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(rounds=cost))

    def __repr__(self) -> str:
        return f"BasicAuth(users={sorted(u.decode() for u in self._users)})"

    @property
    def user_count(self) -> int:
        return len(self._users)

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
        return self._lookup(self._key(*credentials))

    def known_user(self, header: str | None) -> bool:
        """Whether the header names a configured user (cheap: no bcrypt). Decides the queue only."""
        credentials = self._credentials(header)
        return credentials is not None and credentials[0] in self._users

    def _lookup(self, key: bytes) -> bool | None:
        with self._cache_lock:
            for cache, verdict in ((self._good, True), (self._bad, False)):
                if key in cache:
                    cache.move_to_end(key)
                    return verdict
            return None

    def check(self, header: str | None) -> bool:
        """True if the header carries a configured user and its password. May take a bcrypt (~70 ms)."""
        credentials = self._credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        key = self._key(user, password)
        cached = self._lookup(key)
        if cached is not None:
            return cached
        known = user in self._users
        with self._bcrypt_lock:
            try:
                ok = bcrypt.checkpw(password, self._users.get(user, self._dummy))
            except ValueError:  # bcrypt >= 5 refuses passwords over 72 bytes
                ok = False
        verdict = ok and known
        cache, size = (self._good, self._good_cache_size) if verdict else (self._bad, self._cache_size)
        with self._cache_lock:
            cache[key] = None
            while len(cache) > size:
                cache.popitem(last=False)
        return verdict


class BcryptGate:
    """Lets one bcrypt check run at a time, in an order that a flood cannot starve.

    Waiting checks are served configured users first (a guess at an unknown user can wait), then
    in arrival order. Each client address may have `per_peer` checks running or waiting and the
    whole queue holds `max_waiting`: beyond either, run() answers None at once without bcrypt
    (the server says 429). So a flood from one address occupies a few places, and a scrape from
    another waits for at most those few plus the configured users' checks ahead of it. Used on
    the event loop only (no locks); the check itself runs in `executor`'s thread.
    """

    def __init__(self, per_peer: int = 4, max_waiting: int = 64) -> None:
        self.per_peer = per_peer
        self.max_waiting = max_waiting
        self._busy = False
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []  # (priority, arrival, wake-up)
        self._arrival = itertools.count()
        self._per_peer: Counter[str] = Counter()

    async def run(self, peer: str, known_user: bool, check: Callable[[], bool],
                  executor: Executor | None = None) -> bool | None:
        """check()'s verdict, or None when refused (too many checks waiting, from `peer` or in all)."""
        if self._per_peer[peer] >= self.per_peer or len(self._waiting) >= self.max_waiting:
            return None
        self._per_peer[peer] += 1
        try:
            await self._acquire(0 if known_user else 1)
            try:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(executor, check)
            finally:
                self._release()
        finally:
            self._per_peer[peer] -= 1
            if not self._per_peer[peer]:
                del self._per_peer[peer]

    async def _acquire(self, priority: int) -> None:
        if not self._busy:
            self._busy = True
            return
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._arrival), wake))
        try:
            await wake
        except asyncio.CancelledError:
            if wake.done() and not wake.cancelled():
                self._release()  # the turn was handed over just as the client left: pass it on
            else:
                self._forget(wake)
            raise

    def _forget(self, wake: asyncio.Future[None]) -> None:
        self._waiting = [entry for entry in self._waiting if entry[2] is not wake]
        heapq.heapify(self._waiting)

    def _release(self) -> None:
        while self._waiting:
            _, _, wake = heapq.heappop(self._waiting)
            if not wake.done():
                wake.set_result(None)  # the turn passes on; _busy stays True
                return
        self._busy = False
