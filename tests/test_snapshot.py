"""Daily-reset counter logic: Kazoo's daily figures become counters that never go down."""

from exporter.snapshot import CounterCarry

A, Q = "a" * 32, "q1"


def feed(carry: CounterCarry, *figures: tuple[str | None, float]) -> list[float]:
    return [carry.update(A, Q, node, {"daily_missed_sessions": v})["daily_missed_sessions"] for node, v in figures]


def test_counter_starts_at_zero_on_first_figure_and_counts_increases():
    # The exporter may start late in the day: 40 missed calls already happened, but they must
    # not look like a burst to increase().
    assert feed(CounterCarry(), ("n1", 40), ("n1", 41), ("n1", 41), ("n1", 45)) == [0, 1, 1, 5]


def test_exporter_restart_starts_again_from_zero():
    before = feed(CounterCarry(), ("n1", 10), ("n1", 12))
    after_restart = feed(CounterCarry(), ("n1", 12), ("n1", 13))
    assert before == [0, 2]
    assert after_restart == [0, 1]


def test_midnight_reset_counts_the_new_figure_as_the_increase():
    # 23:59:50 -> 100 missed; 00:00:00 rollover -> 0; then 3 more.
    assert feed(CounterCarry(), ("n1", 98), ("n1", 100), ("n1", 0), ("n1", 3)) == [0, 2, 2, 5]


def test_reset_with_figure_already_above_zero_is_not_lost():
    # The rollover happened between two polls and two calls were missed since.
    assert feed(CounterCarry(), ("n1", 50), ("n1", 2)) == [0, 2]


def test_node_change_is_a_reset_even_if_the_figure_grew():
    # The queue process moved to another node: its figures restarted from 0 there and reached 7,
    # which is higher than the 5 seen before; the increase is 7, not 2.
    assert feed(CounterCarry(), ("n1", 5), ("n2", 7), ("n2", 8)) == [0, 7, 8]


def test_missing_figure_keeps_the_total_and_does_not_reset():
    carry = CounterCarry()
    carry.update(A, Q, "n1", {"daily_sessions": 10})
    carry.update(A, Q, "n1", {"daily_sessions": 12})
    assert carry.update(A, Q, "n1", {}) == {"daily_sessions": 2}
    assert carry.update(A, Q, "n1", {"daily_sessions": 15}) == {"daily_sessions": 5}


def test_unknown_node_does_not_count_as_a_move():
    assert feed(CounterCarry(), ("n1", 5), (None, 6), ("n1", 7)) == [0, 1, 2]


def test_counters_are_per_queue_and_forgotten_queues_start_again():
    carry = CounterCarry()
    carry.update(A, "q1", "n", {"daily_sessions": 5})
    carry.update(A, "q2", "n", {"daily_sessions": 50})
    assert carry.update(A, "q1", "n", {"daily_sessions": 6}) == {"daily_sessions": 1}
    assert carry.update(A, "q2", "n", {"daily_sessions": 53}) == {"daily_sessions": 3}
    carry.forget_queues(A, keep={"q1"})
    assert carry.update(A, "q2", "n", {"daily_sessions": 60}) == {"daily_sessions": 0}
    assert carry.update(A, "q1", "n", {"daily_sessions": 7}) == {"daily_sessions": 2}


def test_a_node_move_is_seen_across_an_answer_without_node():
    # Kazoo left `node` out of one answer (6, node unknown) between n1 and n2: the queue still
    # moved from n1 to n2, so 8 is a fresh day's figure, not 2 more.
    assert feed(CounterCarry(), ("n1", 5), (None, 6), ("n2", 8)) == [0, 1, 9]
    assert feed(CounterCarry(), ("n1", 5), (None, 6), (None, 7), ("n1", 8)) == [0, 1, 2, 3]  # no move: no reset


def test_every_move_is_a_reset_not_only_the_first():
    # n1 -> n2 -> n3, the figure growing after each move: each move restarts the count.
    assert feed(CounterCarry(), ("n1", 5), ("n2", 3), ("n3", 4)) == [0, 3, 7]
