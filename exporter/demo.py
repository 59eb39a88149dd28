"""--demo: the embedded Qubicle simulator on a free loopback port, and the settings pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import time as dt_time
from typing import TYPE_CHECKING

import structlog

from exporter.config import DemoSettings, Secrets, Settings, parse_listen
from exporter.web.config import load_web_config

if TYPE_CHECKING:
    from exporter.simulator import SimulatorConfig

log = structlog.get_logger("qubicle")


# The demo's call center: its clock starts at 10:00 local time today, a busy morning whatever the hour
# of the demo (agents are off shift at night); every other queue gives up on callers after 2 or 2.5
# minutes, about their patience, so missed calls show beside abandoned ones (600 s, Qubicle's default,
# outlasts nearly every caller).
DEMO_TIMEZONE = "UTC"
DEMO_START = dt_time(10, 0)
DEMO_QUEUE_TIMEOUTS: tuple[int | None, ...] = (None, 120, None, 150)


def demo_config(demo: DemoSettings) -> SimulatorConfig:
    from exporter.simulator import SimulatorConfig

    return SimulatorConfig(accounts=demo.accounts, queues_per_account=demo.queues, seed=demo.seed, speed=demo.speed,
                           timezone=DEMO_TIMEZONE, start_at_local=DEMO_START, queue_timeouts=DEMO_QUEUE_TIMEOUTS)


def exporter_url(settings: Settings) -> str | None:
    """The URL a person on this machine opens for the metrics (None where --listen cannot tell: port 0)."""
    try:
        host, port = parse_listen(settings.listen)
        tls = settings.web_config_file is not None and load_web_config(settings.web_config_file).tls is not None
    except ValueError:
        return None  # the server's start reports it
    if port == 0:
        return None
    if host in (None, "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}{settings.metrics_path}"


@contextmanager
def demo_kazoo(settings: Settings) -> Iterator[Settings]:
    """Starts the embedded simulator on a free loopback port and points the settings at it."""
    if not settings.demo.enabled:
        yield settings
        return
    from exporter.simulator import Simulator

    url = exporter_url(settings)
    if url:
        # Before the simulator's own URL, so that the first address in the demo's log is the one to open.
        log.info("demo_exporter", metrics_url=url,
                 hint="the exporter's metrics; the simulator below stands in for Kazoo")
    demo = settings.demo
    simulator = Simulator(demo_config(demo))
    simulator.start(host="127.0.0.1", port=0)
    try:
        log.info("demo_simulator", url=simulator.url, accounts=len(simulator.account_ids), speed=demo.speed,
                 simulated_start=simulator.now().isoformat(timespec="seconds"))
        yield replace(
            settings,
            kazoo_url=simulator.url,
            account_ids=tuple(simulator.account_ids),
            secrets=Secrets(api_key=simulator.api_key),
            username=None,
            account_name=None,
        )
    finally:
        simulator.stop()
