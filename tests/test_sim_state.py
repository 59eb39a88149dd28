"""The simulator's state at scale: lazy catching up, the account tree, ids under a seed, midnights."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from exporter.simulator.model import QueueModel
from exporter.simulator.state import SimState, SimulatorConfig

MORNING = datetime(2026, 11, 24, 9, 0, tzinfo=ZoneInfo("UTC"))


def all_queues(state: SimState) -> list[tuple[str, QueueModel]]:
    return [(a.id, q) for a in state.accounts.values() for q in a.queues.values()]


def test_advance_is_lazy_and_a_read_queue_catches_up_to_the_same_figures():
    lazy = SimState(SimulatorConfig(accounts=3, queues_per_account=4, seed=12, speed=0, start=MORNING))
    eager = SimState(SimulatorConfig(accounts=3, queues_per_account=4, seed=12, speed=0, start=MORNING))
    for _ in range(5 * 12):  # five busy hours in five-minute jumps
        lazy.advance(300)
        eager.advance(300)
        for _, queue in all_queues(eager):  # what advance() used to do: move every queue at once
            queue.advance(eager.now())
    # Nobody read the lazy queues: the jumps did not touch them.
    assert all(queue.now == MORNING.timestamp() for _, queue in all_queues(lazy))
    for (account, queue), (_, reference) in zip(all_queues(lazy), all_queues(eager), strict=True):
        read = lazy.queue(account, queue.queue_id)
        assert read is queue and queue.now == reference.now == lazy.now()
        assert queue.status(True) == reference.status(True)
        assert queue.daily == reference.daily
    assert sum(q.daily.total for _, q in all_queues(lazy)) > 100  # a busy morning, not ten idle zeros


def test_descendants_of_three_thousand_accounts_without_scanning_them_all():
    state = SimState(SimulatorConfig(accounts=1000, sub_accounts=2, queues_per_account=0, seed=2, speed=0,
                                     no_qubicle_accounts=3, empty_accounts=2))
    assert len(state.accounts) == 1 + 3000 + 3 + 2 + 1  # master, customers and sites, odd ones, foreign

    class NoScan(dict):
        def values(self):  # the account tree must be walked by its index, not by reading every account
            raise AssertionError("descendants() scanned every account")

    accounts = state.accounts
    state.accounts = NoScan(accounts)
    try:
        everyone = state.descendants(state.master.id)
        sites = state.descendants(state.top[500])
        leaf = state.descendants(sites[0].id)
        foreign = state.descendants(state.foreign)
    finally:
        state.accounts = accounts
    expected = {a for a in accounts if a not in (state.master.id, state.foreign)}
    assert len(everyone) == len(expected) == 3005 and {a.id for a in everyone} == expected
    assert {a.id for a in sites} == {a.id for a in accounts.values() if a.parent == state.top[500]}
    assert [a.name for a in sites] == ["Customer 501 site 1", "Customer 501 site 2"]
    assert leaf == [] and foreign == []
    assert all(state.in_tree(state.top[500], a.id) for a in sites)


def test_same_seed_same_ids_whatever_logins_came_between():
    quiet = SimState(SimulatorConfig(accounts=2, queues_per_account=2, seed=5, speed=0, start=MORNING))
    busy = SimState(SimulatorConfig(accounts=2, queues_per_account=2, seed=5, speed=0, start=MORNING))
    tokens = {busy.issue_token() for _ in range(5)} | {busy.issue_token(busy.top[0], ttl=60)}
    assert len(tokens) == 6  # still unique
    assert busy.api_key == quiet.api_key and busy.top == quiet.top
    account = quiet.top[1]
    assert busy.create_queue(account, "Later") == quiet.create_queue(account, "Later")
    assert list(busy.accounts[account].queues) == list(quiet.accounts[account].queues)
    later = [list(s.accounts[account].queues.values())[-1] for s in (busy, quiet)]
    assert list(later[0].agents) == list(later[1].agents)  # agent ids come from the same stream


def test_local_midnight_is_worked_out_once_a_day_and_still_right_across_a_dst_change(monkeypatch):
    zone = ZoneInfo("America/New_York")
    # New York leaves summer time at 02:00 on 1 November 2026: a 25-hour day.
    state = SimState(SimulatorConfig(accounts=1, queues_per_account=1, seed=8, speed=0, timezone="America/New_York",
                                     start=datetime(2026, 10, 31, 8, 0, tzinfo=zone)))
    ((account, queue),) = all_queues(state)
    worked_out: list[float] = []
    original = QueueModel._next_midnight

    def next_midnight(self: QueueModel, t: float) -> float:
        worked_out.append(original(self, t))
        return worked_out[-1]

    monkeypatch.setattr(QueueModel, "_next_midnight", next_midnight)
    days: dict[date, int] = {}
    for _ in range(int(48 * 3600 / 600)):  # 31 October 08:00 -> 2 November 08:00, read every 10 minutes
        state.advance(600)
        state.queue(account, queue.queue_id)
        day = queue.day
        assert isinstance(day, date)
        days[day] = max(days.get(day, 0), queue.daily.total)
    # Once at each midnight passed, not at each of thousands of events; the 25-hour day included.
    assert [datetime.fromtimestamp(t, zone) for t in worked_out] == [datetime(2026, 11, 2, tzinfo=zone),
                                                                     datetime(2026, 11, 3, tzinfo=zone)]
    assert worked_out[1] - worked_out[0] == 24 * 3600 and queue.midnight == worked_out[1]
    assert list(days) == [date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 2)]
    assert days[date(2026, 10, 31)] > 30 and days[date(2026, 11, 2)] < days[date(2026, 11, 1)]
