"""Which accounts to poll: the configured ones, their descendants if asked, this instance's shard.

Shared by the poller and `check`, so that both watch exactly the same accounts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from exporter.config import Settings
from exporter.kazoo import KazooClient, KazooError
from exporter.shard import in_shard

# (parent account id, reason, message) for a descendants listing that failed.
OnError = Callable[[str, str, str], None]


class AccountResolver:
    def __init__(self, settings: Settings, client: KazooClient, *, clock: Callable[[], float] = time.time,
                 on_error: OnError = lambda parent, reason, message: None) -> None:
        self._settings = settings
        self._client = client
        self._clock = clock
        self._on_error = on_error
        self._descendants: dict[str, list[str]] = {}
        # Names the descendants listings carried: account names without a request of their own.
        self.names: dict[str, str] = {}
        self._listed_at = float("-inf")

    async def resolve(self) -> list[str]:
        """Configured accounts first, then descendants, each once, limited to the shard.

        Descendants are listed again every --discovery-interval, each parent's listing under
        --poll-timeout: a Kazoo that answers slowly or pages forever must not stop the polls. A
        failed listing keeps the last known descendants: a failed discovery never drops accounts.
        It is tried again at the next poll, not after --discovery-interval: until it succeeds, the
        exporter may be watching the parents alone.
        """
        settings = self._settings
        if settings.discover_descendants and self._clock() - self._listed_at >= settings.discovery_interval:
            listed = [await self._list(parent) for parent in settings.account_ids]
            if all(listed):
                self._listed_at = self._clock()
        ordered = dict.fromkeys(settings.account_ids)
        for parent in settings.account_ids:
            ordered.update(dict.fromkeys(self._descendants.get(parent, [])))
        return [a for a in ordered if settings.shard is None or in_shard(a, settings.shard)]

    async def _list(self, parent: str) -> bool:
        timeout = self._settings.poll_timeout
        try:
            async with asyncio.timeout(timeout):
                children = await self._client.list_descendants(parent)
        except KazooError as exc:
            self._on_error(parent, exc.reason, str(exc))
        except TimeoutError:
            self._on_error(parent, "timeout", f"listing descendants took longer than {timeout:g}s")
        else:
            self._descendants[parent] = [a.id for a in children]
            self.names.update((a.id, a.name) for a in children if a.name != a.id)
            return True
        return False
