"""A call center per queue: agents on shifts, callers arriving, waiting, answered, abandoning, timing out.

Event-driven and lazy: a queue's model only advances, from event to event, when someone reads
it, so tens of thousands of idle queues cost nothing between polls.

Invariants (checked by the tests): available <= logged in <= configured recipients, and today's
total = answered + missed + abandoned + still waiting.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

# Share of the peak arrival rate by hour of the day: quiet nights, a morning and an afternoon peak.
_PROFILE = [0.02, 0.01, 0.01, 0.01, 0.01, 0.02, 0.05, 0.2, 0.5, 0.85, 1.0, 0.95,
            0.7, 0.8, 0.95, 0.9, 0.75, 0.5, 0.3, 0.2, 0.12, 0.08, 0.05, 0.03]
QUEUE_DEFAULTS = {
    "queue_type": "queue_basic",
    "queue_router": "route_round_robin",
    "timeout": 600,
    "ring_timeout": 20,
    "tick_time": 1000,
    "agent_wrapup_time": 30,
    "force_away_on_reject": False,
    "timeout_if_size_exceeds": 0,
    "timeout_immediately_if_empty": False,
    "hold_treatment": "",
}


@dataclass
class Caller:
    arrived: float
    gives_up: float  # arrival + patience


@dataclass
class Agent:
    user_id: str
    shift_start: float  # hours of the local day
    shift_end: float
    state: str = "out"  # out | ready | away | ringing | busy | wrapup
    until: float = math.inf  # end of the current ringing/busy/wrapup/away period
    caller: Caller | None = None
    # Qubicle's per-login figures of the recipient: they start again at each login.
    login_at: float = 0.0
    changed_at: float = 0.0  # last state change
    calls: int = 0  # calls handled
    missed: int = 0  # calls offered (rung) and not taken
    talk: float = 0.0  # seconds of the calls handled


@dataclass
class Daily:
    total: int = 0
    answered: int = 0
    missed: int = 0
    abandoned: int = 0
    wait_sum: float = 0.0


@dataclass
class QueueModel:
    queue_id: str
    name: str
    rng: random.Random
    tz: ZoneInfo
    now: float  # simulated unix time the model has reached
    settings: dict[str, object] = field(default_factory=lambda: dict(QUEUE_DEFAULTS))
    agents: dict[str, Agent] = field(default_factory=dict)
    peak_per_hour: float = 30.0
    talk_mean: float = 180.0
    patience_mean: float = 120.0
    answer_probability: float = 0.95
    node: str = "qubicle@kz1.example.net"
    waiting: deque[Caller] = field(default_factory=deque)
    daily: Daily = field(default_factory=Daily)
    day: object = None
    next_arrival: float = math.inf
    arrival_due: bool = False
    next_minute: float = 0.0
    midnight: float = 0.0  # the next local midnight, cached: working it out was most of an event's cost
    rr: int = 0

    def __post_init__(self) -> None:
        self.day = self._local(self.now).date()
        self._draw_arrival(self.now)
        self.next_minute = self.now
        self.midnight = self._next_midnight(self.now)
        self._shift_changes(self.now)

    # ---- time -------------------------------------------------------------------------------

    def _local(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, self.tz)

    def _next_midnight(self, t: float) -> float:
        local = self._local(t)
        midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), self.tz)
        return midnight.timestamp()

    def _draw_arrival(self, t: float) -> None:
        # The rate follows the hour of the day: a gap longer than a minute is not taken as drawn
        # but redrawn a minute later with the rate then (exact, as exponential gaps are memoryless).
        rate = self.peak_per_hour * _PROFILE[self._local(t).hour] / 3600.0
        gap = self.rng.expovariate(rate) if rate > 0 else math.inf
        self.arrival_due = gap <= 60.0
        self.next_arrival = t + min(gap, 60.0)

    def advance(self, to: float) -> None:
        while True:
            midnight = self.midnight
            candidates = [self.next_arrival, self.next_minute, midnight]
            candidates += [a.until for a in self.agents.values() if a.until < math.inf]
            if self.waiting:
                timeout = self.setting("timeout")
                candidates.append(min(c.gives_up for c in self.waiting))
                candidates.append(self.waiting[0].arrived + timeout)
            t = min(candidates)
            if t > to:
                self.now = to
                return
            self.now = t
            if t >= midnight:
                self.midnight = self._next_midnight(t)
                self.reset_daily()
            if t >= self.next_minute:
                self.next_minute = t + 60.0
                self._shift_changes(t)
            self._end_periods(t)
            self._give_up(t)
            if t >= self.next_arrival:
                if self.arrival_due:
                    self._arrive(t)
                self._draw_arrival(t)
            self._route(t)

    # ---- events -----------------------------------------------------------------------------

    def reset_daily(self) -> None:
        """Midnight, or the queue's process restarting: figures start again from what is waiting now."""
        ringing = sum(1 for a in self.agents.values() if a.state == "ringing")
        self.daily = Daily(total=len(self.waiting) + ringing)
        self.day = self._local(self.now).date()

    def _shift_changes(self, t: float) -> None:
        hour = self._local(t).hour + self._local(t).minute / 60.0
        for agent in self.agents.values():
            on_shift = agent.shift_start <= hour < agent.shift_end
            if on_shift and agent.state == "out":
                agent.state, agent.until = "ready", math.inf
                agent.login_at, agent.changed_at, agent.calls, agent.missed, agent.talk = t, t, 0, 0, 0.0
            elif not on_shift and agent.state in ("ready", "away"):
                agent.state, agent.until, agent.changed_at = "out", math.inf, t
            elif agent.state == "ready" and self.rng.random() < 0.01:
                # A break: coffee, a meeting, paperwork.
                agent.state, agent.until = "away", t + self.rng.uniform(120, 900)
                agent.changed_at = t

    def _end_periods(self, t: float) -> None:
        wrapup = self.setting("agent_wrapup_time")
        for agent in self.agents.values():
            if agent.until > t:
                continue
            agent.changed_at = t
            if agent.state == "ringing":
                caller = agent.caller
                agent.caller = None
                if caller is not None and self.rng.random() < self.answer_probability:
                    self._answer(agent, caller, t)
                else:
                    agent.missed += 1
                    if caller is not None:
                        self.waiting.appendleft(caller)  # back to the head of the queue
                    forced = bool(self.settings["force_away_on_reject"])
                    agent.state, agent.until = ("away", t + 300.0) if forced else ("ready", math.inf)
            elif agent.state == "busy":
                agent.state, agent.until = ("wrapup", t + wrapup) if wrapup > 0 else ("ready", math.inf)
            elif agent.state in ("wrapup", "away"):
                agent.state, agent.until = "ready", math.inf

    def _answer(self, agent: Agent, caller: Caller, t: float) -> None:
        self.daily.answered += 1
        self.daily.wait_sum += t - caller.arrived
        talk = self.rng.expovariate(1.0 / self.talk_mean)
        agent.state, agent.until = "busy", t + talk
        agent.calls += 1
        agent.talk += talk

    def _give_up(self, t: float) -> None:
        timeout = self.setting("timeout")
        kept: deque[Caller] = deque()
        for caller in self.waiting:
            if t >= caller.arrived + timeout:
                self.daily.missed += 1
            elif t >= caller.gives_up:
                self.daily.abandoned += 1
            else:
                kept.append(caller)
        self.waiting = kept

    def _arrive(self, t: float) -> None:
        self.daily.total += 1
        size_limit = int(self.setting("timeout_if_size_exceeds"))
        if (size_limit and len(self.waiting) >= size_limit) or (
            self.settings["timeout_immediately_if_empty"] and self.logged_in() == 0
        ):
            self.daily.missed += 1
            return
        self.waiting.append(Caller(arrived=t, gives_up=t + self.rng.expovariate(1.0 / self.patience_mean)))

    def _route(self, t: float) -> None:
        ring = self.setting("ring_timeout")
        ready = [a for a in self.agents.values() if a.state == "ready"]
        if not ready or not self.waiting:
            return
        # Round robin: start after the agent who got the last call.
        self.rr = (self.rr + 1) % len(ready)
        ready = ready[self.rr:] + ready[: self.rr]
        for agent in ready:
            if not self.waiting:
                break
            caller = self.waiting.popleft()
            agent.state, agent.caller, agent.changed_at = "ringing", caller, t
            # Most agents pick up within a few seconds; the ones who do not, ring out.
            agent.until = t + (self.rng.uniform(2, 8) if self.rng.random() < self.answer_probability else ring)

    def burst(self, outcome: str, count: int) -> None:
        self.daily.total += count
        if outcome == "abandoned":
            self.daily.abandoned += count
        elif outcome == "missed":
            self.daily.missed += count
        elif outcome == "answered":
            self.daily.answered += count
        else:
            raise ValueError(f"outcome must be abandoned, missed or answered, got {outcome!r}")

    # ---- figures ----------------------------------------------------------------------------

    def logged_in(self) -> int:
        return sum(1 for a in self.agents.values() if a.state != "out")

    def estimated_wait(self) -> int:
        ready = sum(1 for a in self.agents.values() if a.state == "ready")
        if ready > len(self.waiting):
            return 0
        handling = max(1, sum(1 for a in self.agents.values() if a.state in ("busy", "wrapup", "ringing", "ready")))
        per_call = self.talk_mean + self.setting("agent_wrapup_time")
        return int(round((len(self.waiting) + 1) * per_call / handling))

    def setting(self, key: str) -> float:
        """A numeric queue setting; the control API may have written it as a string, as Kazoo may."""
        value = self.settings[key]
        if not isinstance(value, (int, float, str)):
            raise TypeError(f"queue setting {key!r} is not a number: {value!r}")
        return float(value)

    def status(self, longest_wait: bool) -> dict[str, object]:
        waiting = len(self.waiting) + sum(1 for a in self.agents.values() if a.state == "ringing")
        d = self.daily
        stats: dict[str, object] = {
            "estimated_wait": self.estimated_wait(),
            "average_wait": int(round(d.wait_sum / d.answered)) if d.answered else 0,
            "recipient_count": len(self.agents),
            "active_session_count": waiting,
            "total_sessions": d.total,
            "missed_sessions": d.missed,
            "abandoned_sessions": d.abandoned,
        }
        if longest_wait:
            arrivals = [c.arrived for c in self.waiting] + [a.caller.arrived for a in self.agents.values() if a.caller]
            stats["longest_wait"] = int(self.now - min(arrivals)) if arrivals else 0
        return {
            "active_recipient_count": self.logged_in(),
            "available_recipient_count": sum(1 for a in self.agents.values() if a.state == "ready"),
            "stats": stats,
            "node": self.node,
        }

    def answered_plus_outcomes(self) -> int:
        """answered + missed + abandoned + still waiting (ringing callers are still waiting)."""
        d = self.daily
        ringing = sum(1 for a in self.agents.values() if a.state == "ringing")
        return d.answered + d.missed + d.abandoned + len(self.waiting) + ringing

    def sessions(self) -> list[dict[str, object]]:
        callers = list(self.waiting) + [a.caller for a in self.agents.values() if a.caller]
        return [{"session_id": f"{self.queue_id[:8]}-{int(c.arrived * 1000)}", "entered": int(c.arrived),
                 "wait": int(self.now - c.arrived)} for c in callers]

    def add_agent(self, user_id: str) -> None:
        if user_id not in self.agents:
            start = self.rng.choice([7.0, 8.0, 8.5, 9.0, 10.0, 12.0])
            self.agents[user_id] = Agent(user_id, start, min(24.0, start + self.rng.choice([6.0, 8.0, 9.0])))
            self._shift_changes(self.now)

    def remove_agent(self, user_id: str) -> None:
        agent = self.agents.pop(user_id, None)
        if agent is not None and agent.caller is not None:
            self.waiting.appendleft(agent.caller)
