"""Qubicle recipients (agents) as Crossbar shows them, made from the queue models' agents.

Each agent has a home queue (the QueueModel whose shifts, breaks, rings, calls and wrap-ups it
lives); a few are also members of the next queue of their account, where they set themselves
away (Qubicle's per-queue availability): ready at home, away there. Names, shared memberships and
spellings are derived from the ids, not drawn from the random generator, so that seeded figures
stay what they were.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from exporter.simulator.model import Agent, QueueModel

GREGORIAN_OFFSET = 62_167_219_200
_FIRST = ["Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kofi", "Lena",
          "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Vera", "Wei", "Yara"]
_LAST = ["Alvarez", "Brown", "Chen", "Dubois", "Evans", "Fischer", "García", "Haddad", "Ivanova", "Jensen",
         "Kowalski", "Larsen", "Moreau", "Nguyen", "O'Brien", "Patel"]
# The model's states -> Qubicle's availability_state, as the REST documentation spells it.
STATES = {"out": "Not-Logged-In", "ready": "Ready", "away": "Away", "ringing": "Call-Offer",
          "busy": "On-A-Call", "wrapup": "Wrapup-Time"}
CASES = ("title", "lower", "snake")


def _hash(text: str) -> int:
    return zlib.crc32(text.encode())


def agent_name(user_id: str) -> str:
    h = _hash(user_id)
    return f"{_FIRST[h % len(_FIRST)]} {_LAST[(h // 31) % len(_LAST)]}"


def spelled(state: str, case: str, user_id: str) -> str:
    """Qubicle's spelling of a state; "mixed" picks one per agent (answers and websocket events differ)."""
    if case == "mixed":
        case = CASES[_hash(user_id + "case") % len(CASES)]
    text = STATES[state]
    if case == "lower":
        return text.lower()
    if case == "snake":
        return text.lower().replace("-", "_")
    return text


def timestamp(t: float, unit: str) -> int:
    if unit == "unix":
        return int(t)
    if unit == "milliseconds":
        return int(t * 1000)
    return int(t) + GREGORIAN_OFFSET  # Kazoo's default clock


@dataclass(frozen=True)
class Recipient:
    user_id: str
    home: QueueModel
    agent: Agent
    away_in: tuple[str, ...]  # queues where it is a member but has set itself away


def recipients(queues: list[QueueModel]) -> dict[str, Recipient]:
    """Every agent of an account's queues, with its away-only memberships (1 agent in 7 has one)."""
    found: dict[str, Recipient] = {}
    for i, queue in enumerate(queues):
        following = queues[(i + 1) % len(queues)] if len(queues) > 1 else None
        for user_id, agent in queue.agents.items():
            shared = following is not None and _hash(user_id + "shared") % 7 == 0
            found[user_id] = Recipient(user_id, queue, agent, (following.queue_id,) if shared and following else ())
    return found


def members(queue: QueueModel, everyone: dict[str, Recipient]) -> list[str]:
    """The queue's members: its own agents and those of other queues that also belong to it."""
    return [*queue.agents, *(r.user_id for r in everyone.values() if queue.queue_id in r.away_in)]


def status(recipient: Recipient, case: str, unit: str) -> dict[str, Any]:
    """One recipient's status object, as GET .../qubicle_recipients/{id}/status gives it."""
    agent, home = recipient.agent, recipient.home
    data: dict[str, Any] = {
        "available": agent.state == "ready",
        "availability_state": spelled(agent.state, case, recipient.user_id),
        "queue_availability": {home.queue_id: True, **dict.fromkeys(recipient.away_in, False)}
        if recipient.away_in else {},
        "offered_call": None,
        "handling_call": None,
        "wiretapping_recipient": None,
        "node": home.node,
    }
    call = agent.caller
    if agent.state == "ringing" and call is not None:
        data["offered_call"] = {"queue_id": home.queue_id, "queue_enter_time": timestamp(call.arrived, unit)}
    elif agent.state == "busy":
        data["handling_call"] = {"queue_id": home.queue_id}
    if agent.state != "out":
        data["stats"] = {
            "total_calls": agent.calls,
            "missed_calls": agent.missed,
            "avg_call_time": int(round(agent.talk / agent.calls)) if agent.calls else 0,
            "login_time": timestamp(agent.login_at, unit),
            "last_action_time": timestamp(agent.changed_at, unit),
        }
    return data
