"""The bcrypt gate's queue (auth.BcryptGate): one check at a time, configured users first, a few
places per client address and in all, and a client that gives up (a scraper's timeout, a closed
connection) frees its place at once while the others still waiting keep theirs.

Real checks in a real executor thread; the first check of each test holds bcrypt until released,
so that who waits, who is refused and in which order they run does not depend on speed."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Callable

import bcrypt
import pytest

from exporter.web.auth import BasicAuth, BcryptGate

DEADLINE = 30.0  # generous: two loaded cores


class Checks:
    """check("name") for BcryptGate.run: records the order the checks ran in; the checks named in
    `blocking` hold bcrypt (signal `running[name]`, then wait for `release[name]`)."""

    def __init__(self, *blocking: str) -> None:
        self.served: list[str] = []
        self.running = {name: threading.Event() for name in blocking}
        self.release = {name: threading.Event() for name in blocking}

    def __enter__(self) -> Checks:
        return self

    def __exit__(self, *exc: object) -> None:
        for event in self.release.values():  # a failed test leaves no thread waiting out DEADLINE
            event.set()

    def __call__(self, name: str) -> Callable[[], bool]:
        def check() -> bool:
            if name in self.running:
                self.running[name].set()
                self.release[name].wait(DEADLINE)
            self.served.append(name)
            return True
        return check

    async def until_running(self, name: str, task: asyncio.Task[bool | None]) -> None:
        deadline = time.monotonic() + DEADLINE
        while not self.running[name].is_set():
            if task.done():  # it ended without running its check: say how
                pytest.fail(f"{name} ended before its check ran: {task.result()!r}")
            assert time.monotonic() < deadline, f"{name} did not start its check"
            await asyncio.sleep(0.01)

    async def hold(self, gate: BcryptGate, name: str = "holder", peer: str = "10.0.0.1") -> asyncio.Task[bool | None]:
        task = asyncio.create_task(gate.run(peer, True, self(name)))
        await self.until_running(name, task)
        return task


async def queued(gate: BcryptGate, peer: str, known: bool, check: Callable[[], bool]) -> asyncio.Task[bool | None]:
    task = asyncio.create_task(gate.run(peer, known, check))
    await asyncio.sleep(0)  # run() reaches the queue without awaiting anything else
    assert not task.done()
    return task


async def test_a_client_that_gives_up_frees_its_place_and_the_others_keep_theirs():
    gate = BcryptGate(per_peer=4, max_waiting=2)
    with Checks("holder") as checks:
        holder = await checks.hold(gate)
        leaving = await queued(gate, "10.0.0.2", True, checks("leaving"))
        staying = await queued(gate, "10.0.0.3", True, checks("staying"))
        assert await gate.run("10.0.0.4", True, checks("refused")) is None  # the queue is full

        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        newcomer = await queued(gate, "10.0.0.4", True, checks("newcomer"))  # its place is free: queued, not refused

        checks.release["holder"].set()
        results = await asyncio.wait_for(asyncio.gather(holder, staying, newcomer), DEADLINE)
        assert list(results) == [True, True, True]
        assert checks.served == ["holder", "staying", "newcomer"]  # one at a time, in order


async def test_configured_users_are_checked_before_unknown_ones_then_in_arrival_order():
    gate = BcryptGate()
    with Checks("holder") as checks:
        holder = await checks.hold(gate)
        tasks = [await queued(gate, f"10.0.1.{n}", known, checks(name))
                 for n, (name, known) in enumerate([("unknown-1", False), ("known-1", True),
                                                    ("unknown-2", False), ("known-2", True)])]
        checks.release["holder"].set()
        await asyncio.wait_for(asyncio.gather(holder, *tasks), DEADLINE)
        assert checks.served == ["holder", "known-1", "known-2", "unknown-1", "unknown-2"]


async def test_each_address_has_at_most_per_peer_checks_running_or_waiting():
    gate = BcryptGate(per_peer=2, max_waiting=64)
    with Checks("holder", "second", "holder-again") as checks:
        holder = await checks.hold(gate, peer="10.0.0.1")  # running: one of 10.0.0.1's two
        second = await queued(gate, "10.0.0.1", True, checks("second"))
        assert await gate.run("10.0.0.1", True, checks("third")) is None  # refused at once, no check
        other = await queued(gate, "10.0.0.2", True, checks("other"))  # another address is not held back

        checks.release["holder"].set()
        assert await asyncio.wait_for(holder, DEADLINE) is True
        await checks.until_running("second", second)
        # One of 10.0.0.1's two has finished, one is running: one more may come, not two.
        third = await queued(gate, "10.0.0.1", True, checks("third"))
        assert await gate.run("10.0.0.1", True, checks("fourth")) is None
        checks.release["second"].set()
        await asyncio.wait_for(asyncio.gather(second, other, third), DEADLINE)
        # All of them done: 10.0.0.1 has its two places again.
        holder = await checks.hold(gate, "holder-again", peer="10.0.0.1")
        again = await queued(gate, "10.0.0.1", True, checks("again"))
        checks.release["holder-again"].set()
        assert list(await asyncio.wait_for(asyncio.gather(holder, again), DEADLINE)) == [True, True]
        assert checks.served == ["holder", "second", "other", "third", "holder-again", "again"]


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_known_user_decides_the_queue_by_the_user_name_alone():
    auth = BasicAuth({"prometheus": bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)).decode()})
    assert auth.known_user(header("prometheus", "wrong"))  # a configured user, whatever the password
    assert not auth.known_user(header("nobody", "prometheus"))  # the password is not a user name
    assert not auth.known_user(header("Prometheus", "secret"))
    for bad in (None, "", "Bearer prometheus", "Basic !!!", "Basic " + base64.b64encode(b"prometheus").decode()):
        assert not auth.known_user(bad), bad


async def test_by_default_four_checks_per_address_and_sixty_four_waiting_in_all():
    gate = BcryptGate()
    with Checks("holder") as checks:
        holder = await checks.hold(gate, peer="10.0.0.1")
        mine = [await queued(gate, "10.0.0.1", True, checks(f"mine-{n}")) for n in range(3)]
        assert await gate.run("10.0.0.1", True, checks("fifth")) is None
        others = [await queued(gate, f"10.0.2.{n}", False, checks(f"other-{n}")) for n in range(61)]
        assert await gate.run("10.0.3.1", False, checks("sixty-fifth")) is None  # 3 + 61 waiting
        checks.release["holder"].set()
        assert all(await asyncio.wait_for(asyncio.gather(holder, *mine, *others), DEADLINE))
        assert len(checks.served) == 65
