"""Hostile clients at the connection level: a header read timeout, a connection limit, and a
once-a-while log line when the process runs out of file descriptors.

Slowloris (issue 12): sockets sending their headers a byte a second were kept forever, and 300 of
them against a 256-file limit made every accept fail (scrapes too) and the log flood. aiohttp has
no header read timeout (its keepalive_timeout measures idleness, and only recent releases start it
at accept), so each connection's protocol is wrapped here, which needs only aiohttp's public
protocol factory (AppRunner.server):

- A request must arrive whole within HEADER_TIMEOUT: counted from the accept (TLS handshake
  included) for the first request, and from its first byte for a later one on a kept-alive
  connection (as Go's ReadHeaderTimeout). Past it the connection is closed. "Arrived" is told by
  the outermost middleware (ConnectionGuard.middleware), which runs once aiohttp has parsed the
  headers.
- At most `max_connections` are open. One more evicts the oldest connection that is not serving
  a request (slow headers or idle keep-alive), so a flood of slow sockets cannot lock out a
  scrape; if every connection is busy serving, the new one is closed at once.
- When an accept fails for want of descriptors anyway (other files, a low `ulimit -n`), asyncio
  reports it once a second with a traceback; AcceptErrorLog makes that one JSON line a minute and
  sheds a quarter of the connections still reading their headers.
"""

from __future__ import annotations

import asyncio
import errno
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

log = structlog.get_logger("qubicle.web")

HEADER_TIMEOUT = 10.0  # seconds; a real client sends its headers in one packet
_FD_RESERVE = 64  # descriptors kept for the Kazoo client, logs, the event loop, the simulator
_MAX_CONNECTIONS = 1024
_FD_LOG_INTERVAL = 60.0  # seconds between two "out of file descriptors" lines
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def default_max_connections() -> int:
    """Half of what the file-descriptor limit leaves after a reserve, 16 to 1024: connections then
    run out before descriptors do, and the exporter keeps some for Kazoo."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _MAX_CONNECTIONS
    return max(16, min(_MAX_CONNECTIONS, (soft - _FD_RESERVE) // 2))


class _Connection(asyncio.Protocol):
    """Stands between asyncio and aiohttp's protocol for one connection; forwards every call."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self.transport: asyncio.BaseTransport | None = None
        self.serving = False  # a request is being answered
        self.idle_since = 0.0  # loop time its last response was handed over
        self.refused = False
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if not self._guard.admit(self):
            self.refused = True
            transport.close()
            return
        self.arm()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if self._deadline is None and not self.serving:
            self.arm()  # the first byte of a request on a kept-alive connection
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self.refused else self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        self._guard.forget(self)
        if not self.refused:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    @property
    def reading(self) -> bool:
        """Waiting for a request's headers (the deadline runs)."""
        return self._deadline is not None

    def arm(self) -> None:
        self.disarm()
        self._deadline = asyncio.get_running_loop().call_later(self._guard.header_timeout, self._too_slow)

    def disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.serving and self.transport is not None:
            self._guard.timed_out += 1
            self.transport.close()


class ConnectionGuard:
    """The header read timeout and the connection limit for one server (see the module's doc)."""

    def __init__(self, header_timeout: float = HEADER_TIMEOUT, max_connections: int | None = None) -> None:
        self.header_timeout = header_timeout
        self.max_connections = max_connections or default_max_connections()
        self._open: dict[asyncio.BaseTransport, _Connection] = {}  # in order of arrival
        self.timed_out = 0  # connections closed for slow headers
        self.evicted = 0  # connections closed to make room, or refused

    def protocol_factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Connection(self, inner())

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def admit(self, connection: _Connection) -> bool:
        if len(self._open) >= self.max_connections:
            victim = self._victim()
            self.evicted += 1
            if victim is None:
                return False
            self.forget(victim)
            if victim.transport is not None:
                victim.transport.close()
        assert connection.transport is not None
        self._open[connection.transport] = connection
        return True

    def _victim(self) -> _Connection | None:
        """The oldest connection still reading its headers; else the longest idle one (a response
        just handed over may still be being written: it is the most recently idle, taken last)."""
        idle: _Connection | None = None
        for connection in self._open.values():
            if connection.serving:
                continue
            if connection.reading:
                return connection
            if idle is None or connection.idle_since < idle.idle_since:
                idle = connection
        return idle

    def shed(self) -> int:
        """Out of descriptors (accept failed): closes a quarter of the connections still reading
        their headers, oldest first, so the next accept (asyncio retries in a second) finds one."""
        reading = [c for c in self._open.values() if c.reading and not c.serving]
        victims = reading[: max(1, len(reading) // 4)] if reading else []
        for victim in victims:
            self.forget(victim)
            if victim.transport is not None:
                victim.transport.close()
        self.evicted += len(victims)
        return len(victims)

    def forget(self, connection: _Connection) -> None:
        if connection.transport is not None and self._open.get(connection.transport) is connection:
            del self._open[connection.transport]

    @web.middleware
    async def middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Outermost: the headers are in; the deadline stops until the response is sent."""
        connection = self._open.get(request.transport) if request.transport is not None else None
        if connection is None:
            return await handler(request)
        connection.disarm()
        connection.serving = True
        try:
            return await handler(request)
        finally:
            # The response may still be being written after this returns (see _victim). The next
            # request's first byte arms the deadline again.
            connection.serving = False
            connection.idle_since = asyncio.get_running_loop().time()


class AcceptErrorLog:
    """A loop exception handler that turns asyncio's "socket.accept() out of system resource"
    (once per listening socket per second, with a traceback) into one JSON line a minute with a
    count, and calls `on_exhausted` (ConnectionGuard.shed) each time. Every other context goes to
    the handler that was there before."""

    _RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = _FD_LOG_INTERVAL,
                 clock: Callable[[], float] = time.monotonic, on_exhausted: Callable[[], object] | None = None) -> None:
        self._loop = loop
        self._on_exhausted = on_exhausted
        self._previous = loop.get_exception_handler()
        self._interval = interval
        self._clock = clock
        self._last = float("-inf")
        self.suppressed = 0

    def install(self) -> None:
        self._loop.set_exception_handler(self)

    def uninstall(self) -> None:
        if self._loop.get_exception_handler() is self:
            self._loop.set_exception_handler(self._previous)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in self._RESOURCE_ERRORS and "accept" in context.get("message", ""):
            if self._on_exhausted is not None:
                self._on_exhausted()
            now = self._clock()
            if now - self._last < self._interval:
                self.suppressed += 1
                return
            self._last = now
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            log.error("accept_failed", error=errno.errorcode.get(exc.errno or 0, str(exc.errno)),
                      reason="out of file descriptors or memory; new connections wait",
                      open_files_limit=soft, suppressed_since_last=self.suppressed,
                      next_report_in_seconds=self._interval)
            self.suppressed = 0
            return
        if self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)
