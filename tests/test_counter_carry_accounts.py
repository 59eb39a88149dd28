"""The counter carry forgets an account that is no longer polled: if it comes back, its counters start
again from 0 (as after a restart), never with a burst of everything counted while it was away."""

from exporter.snapshot import CounterCarry

A, B = "a" * 32, "b" * 32


def sessions(carry: CounterCarry, account_id: str, daily: float) -> float:
    return carry.update(account_id, "q1", "n1", {"daily_sessions": daily})["daily_sessions"]


def test_a_forgotten_account_starts_again_from_zero_and_the_others_keep_counting():
    carry = CounterCarry()
    assert [sessions(carry, A, 5), sessions(carry, A, 8)] == [0, 3]
    assert [sessions(carry, B, 1), sessions(carry, B, 2)] == [0, 1]
    carry.forget_account(A)
    assert sessions(carry, A, 20) == 0  # not 15: the calls while it was not polled are no burst
    assert sessions(carry, B, 4) == 3


def test_forgetting_an_account_never_counted_is_harmless():
    """The poller forgets every account that leaves, also one whose polls never brought figures."""
    carry = CounterCarry()
    assert sessions(carry, A, 5) == 0
    carry.forget_account(B)
    assert sessions(carry, A, 6) == 1
