"""A Qubicle API simulator: Crossbar's endpoints and habits over a simulated call center.

    with Simulator(SimulatorConfig(accounts=2, queues_per_account=4, seed=1, speed=60)) as sim:
        print(sim.url, sim.api_key, sim.account_ids)

It runs in its own thread with its own event loop, so tests, benchmarks and `--demo` can start it
from anywhere. See server.py for the control API of a standalone simulator.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from datetime import datetime
from typing import Any

from aiohttp import web

from exporter.simulator.server import SET_FAULTS, CrossbarApp
from exporter.simulator.state import Faults, SimState, SimulatorConfig

__all__ = ["Faults", "Simulator", "SimulatorConfig"]


class Simulator:
    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self._state = SimState(self.config)
        self._crossbar = CrossbarApp(self._state)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._host = "127.0.0.1"
        self.port = 0
        self._churn_task: asyncio.Task[None] | None = None

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="qubicle-simulator", daemon=True)
        self._thread.start()
        self._call(self._start_server(port))

    async def _start_server(self, port: int) -> None:
        app = self._crossbar.application()
        app[SET_FAULTS] = self.set_faults
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        await self._open(port)
        self._churn_task = asyncio.get_running_loop().create_task(self._churn())

    async def _open(self, port: int) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self._host, port, reuse_address=True)
        await self._site.start()
        self.port = self._runner.addresses[0][1]

    async def _close_site(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def _churn(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            rate = self._state.faults.queue_churn_per_minute
            if rate > 0 and self._crossbar.rng.random() < rate / 60.0:
                self._state.churn()

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            if self._churn_task is not None:
                self._churn_task.cancel()
            if self._runner is not None:
                await self._runner.cleanup()

        self._call(shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coroutine: Any) -> Any:
        assert self._loop is not None, "the simulator is not started"
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    # ---- what clients need -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def api_key(self) -> str:
        return self._state.api_key

    @property
    def master_account_id(self) -> str:
        return self._state.master.id

    @property
    def account_ids(self) -> list[str]:
        return list(self._state.top)

    @property
    def foreign_account_id(self) -> str:
        return self._state.foreign

    @property
    def no_qubicle_account_ids(self) -> list[str]:
        return list(self._state.no_qubicle)

    @property
    def empty_account_ids(self) -> list[str]:
        return list(self._state.empty)

    def sub_account_ids(self, account_id: str) -> list[str]:
        with self._state.lock:
            return [a.id for a in self._state.descendants(account_id)]

    # ---- faults ---------------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return replace(self._state.faults)

    def set_faults(self, faults: Faults) -> None:
        was_down = self._state.faults.down
        with self._state.lock:
            self._state.faults = replace(faults)
        if self._loop is None or faults.down == was_down:
            return
        # Down means down: the port is closed, so clients see connections refused.
        coroutine = self._close_site() if faults.down else self._open(self.port)
        if threading.current_thread() is self._thread:
            asyncio.ensure_future(coroutine)
        else:
            self._call(coroutine)

    # ---- the call center ------------------------------------------------------------------------

    def queues(self, account_id: str) -> list[tuple[str, str]]:
        with self._state.lock:
            return [(q.queue_id, q.name) for q in self._state.accounts[account_id].queues.values()]

    def create_queue(self, account_id: str, name: str, **settings: object) -> str:
        return self._state.create_queue(account_id, name, **settings)

    def delete_queue(self, account_id: str, queue_id: str) -> None:
        self._state.delete_queue(account_id, queue_id)

    def delete_account(self, account_id: str) -> None:
        self._state.delete_account(account_id)

    def move_account(self, account_id: str, parent: str) -> None:
        self._state.move_account(account_id, parent)

    def restart_queue(self, account_id: str, queue_id: str) -> None:
        self._state.restart_queue(account_id, queue_id)

    def burst(self, account_id: str, queue_id: str, outcome: str, count: int) -> None:
        with self._state.lock:
            queue = self._state.queue(account_id, queue_id)
            if queue is None:
                raise KeyError(queue_id)
            queue.burst(outcome, count)

    def status(self, account_id: str, queue_id: str) -> dict[str, Any]:
        with self._state.lock:
            queue = self._state.queue(account_id, queue_id)
            if queue is None:
                raise KeyError(queue_id)
            return queue.status(self.config.longest_wait)

    def totals_consistent(self, account_id: str, queue_id: str) -> bool:
        """today's total == answered + missed + abandoned + still waiting."""
        with self._state.lock:
            queue = self._state.queue(account_id, queue_id)
            assert queue is not None
            return queue.daily.total == queue.answered_plus_outcomes()

    def advance(self, seconds: float) -> None:
        self._state.advance(seconds)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._state.now(), self._state.tz)

    def issue_token(self, account_id: str | None = None, ttl: float | None = None) -> str:
        return self._state.issue_token(account_id, ttl)

    @property
    def tokens_issued(self) -> int:
        return self._state.issued

    @property
    def last_token(self) -> str:
        """The token issued last (tests search outputs for it)."""
        return self._state.last_issued

    @property
    def request_count(self) -> int:
        return self._state.request_count

    @property
    def requests_by_endpoint(self) -> dict[str, int]:
        with self._state.lock:
            return dict(self._state.requests_by_endpoint)

    def wait_until_listening(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.port == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
