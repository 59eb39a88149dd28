"""Mutation check of the alert and recording rules: does `promtool test rules` catch each small bug?

For every `expr` in alerts/*.yml it flips each comparator (> >= < <= == !=) and moves each
numeric literal one step up and down, one mutant at a time, in a copy of alerts/, and runs every
unit test of alerts/tests/ on the copy. A mutant the tests still pass "survives": either a
boundary no test sits on, or a change no user could see (docs/testing.md lists them with why).

    python scripts/mutate_rules.py            # all rule files; exit 1 if a mutant not in ACCEPTED survives
    python scripts/mutate_rules.py --list     # the mutants only, no promtool

Label matchers ({queue_id!=""}), range selectors ([30m]) and `for:` durations are not mutated.
Not part of `make test`: it runs promtool once per mutant (about a minute in all).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "alerts"
FLIPS = {">": ">=", ">=": ">", "<": "<=", "<=": "<", "==": "!=", "!=": "=="}
TOKEN = re.compile(r"(?P<cmp>>=|<=|==|!=|>|<)|(?P<num>(?<![\w.])\d+(?:\.\d+)?(?![\w.]))")


# Survivors that change nothing a user can see, with why (docs/testing.md). Keyed by rule and by
# the mutated token and its context as printed; a survivor not listed here fails the run.
ACCEPTED = {
    ("QubicleAbandonRateHigh (warning)", "> in '...eue_sessions_total[30m]) > 0) > on (account_id,...'", ">="):
        "0 callers is already excluded by the min_sessions gate (>= 10 by default), and 0/0 is NaN",
    ("QubicleAbandonRateHigh (warning)", "0 in '...e_sessions_total[30m]) > 0) > on (account_id, q...'", "1"):
        "a queue with 1 caller in 30m is below the min_sessions gate (10 by default)",
    ("QubicleAbandonRateHigh (critical)", "> in '...eue_sessions_total[30m]) > 0) > on (account_id,...'", ">="):
        "0 callers is already excluded by the min_sessions gate (>= 10 by default), and 0/0 is NaN",
    ("QubicleAbandonRateHigh (critical)", "0 in '...e_sessions_total[30m]) > 0) > on (account_id, q...'", "1"):
        "a queue with 1 caller in 30m is below the min_sessions gate (10 by default)",
}


@dataclass(frozen=True)
class Mutant:
    file: str
    rule: str  # record or alert name, with its severity for alerts
    index: int  # the rule's position in the file (alerts share names across severities)
    before: str
    after: str
    expr: str  # the mutated expression

    def __str__(self) -> str:
        return f"{self.file} {self.rule}: {self.before} -> {self.after}"


def _outside_selectors(expr: str) -> Iterator[tuple[int, int]]:
    """Spans of `expr` outside {label matchers}, [ranges] and "strings"."""
    depth, quote, start = 0, "", 0
    for i, ch in enumerate(expr):
        if quote:
            if ch == quote and expr[i - 1] != "\\":
                quote = ""
                if depth == 0:
                    start = i + 1
            continue
        if ch in "\"'" and depth == 0:
            yield start, i
            quote = ch
        elif ch in "{[":
            if depth == 0:
                yield start, i
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                start = i + 1
    if depth == 0 and not quote:
        yield start, len(expr)


def _bumps(number: str) -> list[str]:
    if "." in number:
        decimals = len(number.split(".")[1])
        step, value = 10 ** -decimals, float(number)
        return [f"{value + step:.{decimals}f}", f"{max(value - step, 0):.{decimals}f}"]
    value = int(number)
    return [str(value + 1)] + ([str(value - 1)] if value > 0 else [])


def expr_mutants(expr: str) -> Iterator[tuple[str, str, str]]:
    """(before, after, mutated expression) for every comparator flip and numeric bump in `expr`."""
    for lo, hi in _outside_selectors(expr):
        for match in TOKEN.finditer(expr, lo, hi):
            if match.group("cmp"):
                replacements = [FLIPS[match.group("cmp")]]
            else:
                replacements = [b for b in _bumps(match.group("num")) if b != match.group("num")]
            for new in replacements:
                context = expr[max(0, match.start() - 25):match.end() + 25].replace("\n", " ")
                mutated = expr[:match.start()] + new + expr[match.end():]
                yield f"{match.group()} in '...{' '.join(context.split())}...'", new, mutated


def mutants(rule_files: list[Path]) -> Iterator[tuple[Mutant, Path, dict]]:
    for path in rule_files:
        data = yaml.safe_load(path.read_text())
        index = 0
        for g, group in enumerate(data["groups"]):
            for r, rule in enumerate(group["rules"]):
                name = rule.get("record") or f"{rule['alert']} ({rule.get('labels', {}).get('severity', '')})"
                for before, after, expr in expr_mutants(rule["expr"]):
                    copy = yaml.safe_load(path.read_text())
                    copy["groups"][g]["rules"][r]["expr"] = expr
                    yield Mutant(path.name, name, index, before, after, expr), path, copy
                index += 1


def killed(mutated: dict, path: Path, promtool: str) -> bool:
    with tempfile.TemporaryDirectory(prefix="qubicle-rules-mutant-") as tmp:
        copy = Path(tmp) / "alerts"
        shutil.copytree(ALERTS, copy)
        (copy / path.name).write_text(yaml.safe_dump(mutated, sort_keys=False))
        tests = sorted(str(p.relative_to(copy)) for p in (copy / "tests").glob("*.yaml"))
        result = subprocess.run([promtool, "test", "rules", *tests], cwd=copy, capture_output=True, text=True,
                                timeout=300, check=False)
        return result.returncode != 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    args = parser.parse_args()
    rule_files = [ALERTS / "qubicle.rules.yml", ALERTS / "qubicle.alerts.yml"]
    found = list(mutants(rule_files))
    if args.list:
        for mutant, _, _ in found:
            print(mutant)
        return 0
    promtool = shutil.which("promtool")
    if not promtool:
        print("promtool is not installed (Debian package prometheus; run `make tools`)", file=sys.stderr)
        return 2
    survivors, accepted = [], []
    for mutant, path, mutated in found:
        if not killed(mutated, path, promtool):
            reason = ACCEPTED.get((mutant.rule, mutant.before, mutant.after))
            (accepted if reason else survivors).append(mutant)
            print(f"{'accepted' if reason else 'SURVIVED'} {mutant}" + (f" ({reason})" if reason else ""), flush=True)
    print(f"rules: {len(found)} mutants, {len(found) - len(survivors) - len(accepted)} killed, "
          f"{len(accepted)} survived as accepted, {len(survivors)} survived unexplained")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
