"""structlog set-up: JSON lines for machines, console for humans, and a last-line redaction of secrets."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

# The exporter never logs a secret on purpose; these patterns catch one that slipped through
# (an exception text quoting a header, a JWT inside a URL). Kazoo tokens are JWTs, API keys are
# 64 hex characters and md5 credentials are 32.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_SECRET_KEYS = re.compile(r"(?i)(token|api_key|apikey|password|secret|credentials|authorization)")
REDACTED = "[REDACTED]"


class SecretRedactor:
    """Removes known secret values and secret-shaped strings from every event."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets = [s for s in secrets if s and len(s) >= 4]

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4 and secret not in self._secrets:
            self._secrets.append(secret)

    def scrub(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return _JWT.sub(REDACTED, value)

    def _clean(self, key: str, value: Any) -> Any:
        if isinstance(value, (bool, int, float)) or value is None:
            return value
        if _SECRET_KEYS.search(key) and key != "event":
            return REDACTED
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set)):
            return [self._clean(key, v) for v in value]
        return self.scrub(str(value))

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in list(event.items()):
            event[key] = self._clean(key, value)
        return event


REDACTOR = SecretRedactor()


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    elif fmt == "logfmt":
        renderer = structlog.processors.LogfmtRenderer(key_order=["timestamp", "level", "event"])
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            REDACTOR,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    # Libraries log through the standard library; only their warnings are worth a line
    # (aiohttp's client logs nothing per request, its access log would log every scrape).
    # Their lines go through the same renderer: in JSON, a library's traceback (asyncio's,
    # APScheduler's) is a field of one JSON line, never plain text among them.
    handler = logging.StreamHandler(stream)
    if fmt == "console":
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    else:
        handler.setFormatter(structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                               structlog.processors.TimeStamper(fmt="iso", utc=True)],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info, REDACTOR, renderer],
        ))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def get_logger(name: str = "qubicle") -> Any:
    return structlog.get_logger(name)
