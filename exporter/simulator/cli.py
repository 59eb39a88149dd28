"""`qubicle-simulator`: the Qubicle API simulator as a standalone process."""

from __future__ import annotations

import argparse
import signal
import sys
import textwrap
import threading
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from exporter.simulator import Faults, Simulator, SimulatorConfig


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected host:port, got {text!r}")
    return host or "127.0.0.1", int(port)


def _zone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"unknown time zone {text!r}") from None
    return text


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text!r}")
    return value


def _epilog() -> str:
    # From the defaults the simulator really uses, so the help cannot drift from what it accepts.
    config = SimulatorConfig()
    fault_fields = textwrap.fill(", ".join(f.name for f in fields(Faults)), width=100,
                                 initial_indent=" " * 22, subsequent_indent=" " * 22)
    return f"""\
At start it prints its URL, an API key (64 characters, drawn from --seed), the master account's id
and the ids of its top-level accounts, one "name: value" line each.

Authentication, as Crossbar's:
  API key          PUT /v2/api_auth  {{"data": {{"api_key": "<the printed api_key>"}}}}
  user credentials PUT /v2/user_auth with user name {config.username!r}, password {config.password!r}
                   and account name {config.account_name!r} (or account realm 'sim.example.net'):
                   {{"data": {{"credentials": md5("{config.username}:{config.password}"), "account_name": "..."}}}}
                   e.g. qubicle-exporter check --username {config.username} --password-file FILE \\
                        --account-name '{config.account_name}' --account-id ... --kazoo-url URL
  Tokens are JWTs with an absolute "exp" (--token-ttl); the master account sees every account.

Control API (not Kazoo's), while it runs:
  GET  /sim/faults    the current faults
  PUT  /sim/faults    {{"error_rate": 0.1, "down": true, ...}}, fields left out stay as they are:
{fault_fields}
  POST /sim/burst     {{"account_id", "queue_id", "outcome": "abandoned"|"missed"|"answered", "count"}}
  POST /sim/restart   {{"account_id", "queue_id"}} (daily figures to 0, a new node)
  POST /sim/advance   {{"seconds": 3600}} (move the simulated clock)
"""


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="qubicle-simulator",
                description="A Kazoo Qubicle (Crossbar) API simulator over a simulated call center.",
                epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", type=_listen, default=("127.0.0.1", 8000), metavar="HOST:PORT",
                   help="address to serve on (default 127.0.0.1:8000; port 0: a free one)")
    p.add_argument("--accounts", type=int, default=3, metavar="N",
                   help="top-level accounts under the master account, each with its queues (default 3)")
    p.add_argument("--queues", type=int, default=5, metavar="N", help="queues per account (default 5)")
    p.add_argument("--sub-accounts", type=int, default=0, metavar="N",
                   help="sub-accounts under each account, with queues too (default 0)")
    p.add_argument("--agents", type=float, default=6, metavar="N",
                   help="agents per queue, varies by +-2 (default 6); below 1, the share of queues with one agent")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="random seed: the same seed gives the same ids, API key and traffic (default: random)")
    p.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="simulated seconds per real second; 0 freezes the clock (default 1)")
    p.add_argument("--start", type=datetime.fromisoformat, default=None, metavar="ISO8601",
                   help="simulated start time, e.g. 2026-11-24T10:00 (default: now)")
    p.add_argument("--timezone", type=_zone, default="UTC", metavar="ZONE",
                   help="daily totals reset at midnight here (default UTC)")
    p.add_argument("--token-ttl", type=float, default=3600.0, metavar="SECONDS",
                   help="lifetime of the auth tokens it issues (their JWT exp; default 3600)")
    p.add_argument("--no-rate-limit", action="store_true",
                   help="turn off Crossbar's rate-limit bucket (100 tokens, 10/s, 35 per authentication)")
    p.add_argument("--latency", type=float, default=0.0, metavar="SECONDS",
                   help="fault: every answer takes this long (default 0)")
    p.add_argument("--error-rate", type=_rate, default=0.0, metavar="SHARE",
                   help="fault: share of requests answered 500 or 503, 0 to 1 (default 0)")
    p.add_argument("--rate-limit-rate", type=_rate, default=0.0, metavar="SHARE",
                   help="fault: share of requests answered 429 regardless of the bucket, 0 to 1 (default 0)")
    p.add_argument("--non-json-rate", type=_rate, default=0.0, metavar="SHARE",
                   help="fault: share of requests answered 502 with an HTML page, as a proxy would (default 0)")
    p.add_argument("--token-expire-every", type=int, default=0, metavar="N",
                   help="fault: a token stops working after N requests, before its exp (default 0: never)")
    p.add_argument("--queue-churn-per-minute", type=float, default=0.0, metavar="X",
                   help="fault: queues created or deleted at random, per minute (default 0)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.accounts < 0 or args.queues < 0 or args.speed < 0:
        print("qubicle-simulator: error: --accounts, --queues and --speed must not be negative", file=sys.stderr)
        return 2
    start = args.start
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=ZoneInfo(args.timezone))
    config = SimulatorConfig(
        accounts=args.accounts, queues_per_account=args.queues, sub_accounts=args.sub_accounts,
        agents_per_queue=args.agents, seed=args.seed, speed=args.speed, start=start, timezone=args.timezone,
        token_ttl=args.token_ttl, rate_limit=not args.no_rate_limit,
        faults=Faults(latency=args.latency, error_rate=args.error_rate, rate_limit_rate=args.rate_limit_rate,
                      non_json_rate=args.non_json_rate, token_expire_every=args.token_expire_every,
                      queue_churn_per_minute=args.queue_churn_per_minute),
    )
    simulator = Simulator(config)
    host, port = args.listen
    try:
        simulator.start(host=host, port=port)
    except OSError as exc:
        print(f"qubicle-simulator: error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"url: {simulator.url}", flush=True)
    print(f"api_key: {simulator.api_key}", flush=True)
    print(f"master_account_id: {simulator.master_account_id}", flush=True)
    print(f"account_ids: {','.join(simulator.account_ids)}", flush=True)
    stop.wait()
    simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
