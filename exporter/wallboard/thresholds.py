"""Alert thresholds for the wallboard's colours, read from the same rule files Prometheus loads.

The shipped defaults are those of alerts/qubicle.rules.yml (a test keeps the two equal). A user
who overrides thresholds per account or per queue (alerts/overrides.example.yml) points the
exporter at that file with --alert-thresholds, so the wallboard colours where the alerts fire.
Rules are read as Prometheus reads them: a `record:` of one of the threshold names, an `expr:` of
`vector(<number>)` (or a plain number), and labels {} (default), {account_id} (one account) or
{account_id, queue_id} (one queue). The most specific wins, as in qubicle.rules.yml.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from exporter import yamlsafe
from exporter.config import ConfigError


class ThresholdsError(ConfigError):
    """A thresholds file is wrong; the message is one line and names the file and rule."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    abandon_ratio_warning: float = 0.10
    abandon_ratio_critical: float = 0.25
    abandon_min_sessions: float = 10.0
    estimated_wait_warning: float = 120.0  # seconds
    estimated_wait_critical: float = 300.0


_DEFAULT = Thresholds()

# Recorded name in the rule files -> Thresholds field.
RECORDS: Mapping[str, str] = MappingProxyType({
    "qubicle:abandon_ratio_threshold:warning": "abandon_ratio_warning",
    "qubicle:abandon_ratio_threshold:critical": "abandon_ratio_critical",
    "qubicle:abandon_ratio_threshold:min_sessions": "abandon_min_sessions",
    "qubicle:estimated_wait_threshold_seconds:warning": "estimated_wait_warning",
    "qubicle:estimated_wait_threshold_seconds:critical": "estimated_wait_critical",
})
_VECTOR = re.compile(r"\s*(?:vector\s*\(\s*([^()\s]+)\s*\)|([^()\s]+))\s*")


@dataclass(frozen=True)
class ThresholdRules:
    """Overrides by scope; `for_queue` resolves the thresholds in force for one queue."""

    default: Mapping[str, float] = field(default_factory=dict)
    accounts: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    queues: Mapping[tuple[str, str], Mapping[str, float]] = field(default_factory=dict)

    def for_queue(self, account_id: str, queue_id: str) -> Thresholds:
        base = _DEFAULT
        changes: dict[str, float] = {**self.default, **self.accounts.get(account_id, {}),
                                     **self.queues.get((account_id, queue_id), {})}
        return replace(base, **changes) if changes else base


DEFAULT_RULES = ThresholdRules()


def _number(expr: Any, where: str) -> float:
    if isinstance(expr, bool):
        raise ThresholdsError(f"{where}: expr must be vector(<number>), got {expr!r}")
    if isinstance(expr, int | float):
        value = float(expr)
    else:
        match = _VECTOR.fullmatch(str(expr))
        try:
            value = float(match.group(1) or match.group(2)) if match else math.nan
        except ValueError:
            value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ThresholdsError(f"{where}: expr must be vector(<number>) with a number >= 0, got {str(expr).strip()!r}")
    return value


def parse_rules(data: Any, source: str) -> Iterable[tuple[str, str, str, float]]:
    """(account_id, queue_id, field, value) of every threshold rule; '' where a label is absent."""
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, list):
        raise ThresholdsError(f"--alert-thresholds: {source}: expected a Prometheus rule file with 'groups:'")
    for g, group in enumerate(groups, 1):
        rules = group.get("rules", []) if isinstance(group, dict) else None
        if not isinstance(rules, list):
            raise ThresholdsError(f"--alert-thresholds: {source}: group {g} has no list of rules")
        for r, rule in enumerate(rules, 1):
            if not isinstance(rule, dict) or rule.get("record") not in RECORDS:
                continue  # alerts and other recordings are Prometheus' business, not the wallboard's
            where = f"--alert-thresholds: {source}: group {g} rule {r} ({rule['record']})"
            labels = rule.get("labels") or {}
            if not isinstance(labels, dict):
                raise ThresholdsError(f"{where}: labels must be a mapping")
            account, queue = str(labels.get("account_id") or ""), str(labels.get("queue_id") or "")
            if queue and not account:
                raise ThresholdsError(f"{where}: a queue_id needs its account_id")
            yield account, queue, RECORDS[rule["record"]], _number(rule.get("expr"), where)


def load_thresholds(paths: Iterable[str]) -> ThresholdRules:
    """Reads rule files in order (a later file's rule of the same scope wins); raises ThresholdsError."""
    default: dict[str, float] = {}
    accounts: dict[str, dict[str, float]] = {}
    queues: dict[tuple[str, str], dict[str, float]] = {}
    for path in paths:
        data = yamlsafe.load_file(path, "--alert-thresholds", ThresholdsError)
        for account, queue, name, value in parse_rules(data, path):
            scope = queues.setdefault((account, queue), {}) if queue else (
                accounts.setdefault(account, {}) if account else default)
            scope[name] = value
    return ThresholdRules(default=default, accounts=accounts, queues=queues)


THRESHOLD_FIELDS = tuple(f.name for f in fields(Thresholds))
