"""The table of figures is the one place a queue figure is spelled: adding one there is enough."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from exporter import figures
from exporter.check import AGENTS_COLUMN, COLUMNS

NEW_FIGURE = ('    Figure("callers_again", ("stats", "active_session_count"), "qubicle_queue_test_callers",\n'
              '           "A figure added by a test.", column="test col"),\n')

# Run inside a copy of the package whose table has one more entry: one poll of a simulator,
# the exposition as /metrics serves it, and the parser's view of one status object.
SCRIPT = """
import asyncio, time
from exporter import selfmetrics
from exporter.config import Secrets, Settings, client_settings
from exporter.kazoo import KazooClient, parse_queue_status
from exporter.poller import Poller
from exporter.exposition import joined
from exporter.render import render
from exporter.simulator import Simulator, SimulatorConfig

status, bad = parse_queue_status({"stats": {"active_session_count": 4}})
print("parsed", status.values["callers_again"])
sim = Simulator(SimulatorConfig(accounts=1, queues_per_account=2, seed=3, speed=0))
sim.start(host="127.0.0.1", port=0)
sim.advance(3 * 3600)
try:
    settings = Settings(kazoo_url=sim.url, account_ids=tuple(sim.account_ids), secrets=Secrets(api_key=sim.api_key))
    async def main():
        client = KazooClient(client_settings(settings))
        try:
            return await Poller(settings, client, selfmetrics.create(process=False)).poll()
        finally:
            await client.aclose()
    snapshot = asyncio.run(main())
    print(joined(render(snapshot, time.time(), max_data_age=60)).decode())
finally:
    sim.stop()
"""


@pytest.fixture
def extended(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "exporter", tmp_path / "exporter", ignore=shutil.ignore_patterns("__pycache__"))
    table = tmp_path / "exporter" / "figures.py"
    text = table.read_text()
    anchor = "FIGURES: tuple[Figure, ...] = (\n"
    assert anchor in text
    table.write_text(text.replace(anchor, anchor + NEW_FIGURE))
    return tmp_path


def run(where: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=where, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(where)})
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.e2e
def test_a_figure_added_to_the_table_is_parsed_served_and_shown_by_check(extended: Path):
    out = run(extended, "-c", SCRIPT)
    assert "parsed 4.0" in out
    assert "# HELP qubicle_queue_test_callers A figure added by a test.\n# TYPE qubicle_queue_test_callers gauge" in out
    added = {line.split("{", 1)[1] for line in out.splitlines() if line.startswith("qubicle_queue_test_callers{")}
    waiting = {line.split("{", 1)[1] for line in out.splitlines() if line.startswith("qubicle_queue_active_sessions{")}
    assert len(added) == 2 and added == waiting  # same labels, same values: the same field of Kazoo's answer
    table = run(extended, "-m", "exporter", "check", "--demo")
    header = re.split(r"\s{2,}", table.splitlines()[0].strip())
    assert header[:5] == ["account", "name", "queue", "test col", "waiting"]  # first in the table, first column


def test_the_table_drives_the_check_columns_and_every_name_is_unique():
    assert ("account", "name", "queue", *(f.column for f in figures.FIGURES if f.column),
            *(s.column for s in figures.SETTINGS if s.column), AGENTS_COLUMN, "node") == COLUMNS
    names = [f.metric for f in figures.FIGURES] + [f.counter for f in figures.COUNTED]
    names += [s.metric for s in figures.SETTINGS] + [metric for _, metric, _ in figures.AGENT_COUNTERS]
    names += [figures.ACCOUNT_INFO, figures.ACCOUNT_AGENTS, figures.QUEUE_AGENTS, figures.AGENT_STATE,
              figures.AGENT_AVERAGE_CALL, figures.QUEUE_INFO, *(name for name, _ in figures.ACCOUNT_METRICS)]
    assert len(names) == len(set(names))
    assert all(f.metric.endswith("_seconds") for f in figures.FIGURES if f.unit == "wait")
    assert all((f.counter or "").endswith("_total") for f in figures.COUNTED)
    assert not any(f.metric.endswith("_total") for f in figures.FIGURES)
