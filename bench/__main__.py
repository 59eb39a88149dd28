"""`python -m bench [scrape|poll|client|resources|growth|hostile|agents] [--quick]`: run the benchmarks and print their tables."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

from bench import agents, client, growth, hostile, poll, resources, scrape
from exporter import logs


def machine() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
                     platform.machine())
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("which", nargs="*",
                        help="scrape, poll, client, resources, growth, hostile and/or agents (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and a shorter resource run")
    args = parser.parse_args(argv)
    kinds = ["scrape", "poll", "client", "resources", "growth", "hostile", "agents"]
    which = args.which or kinds
    unknown = set(which) - set(kinds)
    if unknown:
        parser.error(f"unknown benchmark {sorted(unknown)[0]!r}: choose one of {', '.join(kinds)}")
    logs.configure("warning", "console", stream=sys.stderr)  # the poll summary lines would drown the tables
    print(f"machine: {machine()}\n", flush=True)
    if "scrape" in which:
        print(scrape.report(scrape.run(scrapes=10 if args.quick else 30)), "\n", flush=True)
    if "poll" in which:
        print(poll.report(poll.run(polls=2 if args.quick else 5)), "\n", flush=True)
        # 50,000 queues: where reusing unchanged queues' lines has to halve the CPU per poll.
        print(poll.report(poll.run(queues=50, polls=2 if args.quick else 5)), "\n", flush=True)
    if "client" in which:
        print(client.report(client.run(rounds=2 if args.quick else 5)), "\n", flush=True)
    if "resources" in which:
        print(resources.report(resources.run(warmup=20 if args.quick else 30, measure=40 if args.quick else 120)),
              "\n", flush=True)
    if "growth" in which:
        print(growth.report(growth.run(repeat=1 if args.quick else 3, measure=30 if args.quick else 60)), flush=True)
    if "agents" in which:
        print(agents.report(agents.run(polls=2 if args.quick else 3)), "\n", flush=True)
    if "hostile" in which:
        print(hostile.report(hostile.run()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
