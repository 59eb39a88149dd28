"""The HTTP server started from a web config file written as a user would, serving a fixed one-line
/metrics: for tests of what the web config turns on (TLS, basic auth, rate limit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml

from exporter.web import WebHandlers, WebServer

METRICS = b"qubicle_up 1.0\n"


def page() -> tuple[bytes, dict[str, str]]:
    return METRICS, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}


@asynccontextmanager
async def served_with_web_config(tmp_path: Path, config: dict[str, Any]) -> AsyncIterator[int]:
    """The server's port, with `config` written to tmp_path/web.yml (relative paths in it resolve there)."""
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(config))
    handlers = WebHandlers(lambda accept, encoding: page(), lambda: "<h1>qubicle-exporter</h1>",
                           lambda: True, lambda: True)
    server = await WebServer.start(handlers, "127.0.0.1:0", str(path))
    try:
        yield server.bound[0][1]
    finally:
        await server.stop()
