"""The log pipeline's last line of defence: known secrets and secret-shaped values never reach a line."""

import io
import json

from exporter import logs

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJl"
KEY = "0123456789abcdef" * 4


def test_secrets_are_redacted_everywhere_in_an_event():
    stream = io.StringIO()
    logs.configure("debug", "json", stream=stream)
    logs.REDACTOR.add(KEY)
    log = logs.get_logger("test")
    log.warning("oops", error=f"request with key {KEY} failed", auth_token="abc", nested={"url": f"/x?t={JWT}"},
                items=[KEY, "fine"], addresses=["127.0.0.1:1"], count=3)
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    text = stream.getvalue()
    assert KEY not in text and JWT not in text and "abc" not in text
    assert line["auth_token"] == logs.REDACTED
    assert line["items"] == [logs.REDACTED, "fine"]
    assert line["addresses"] == ["127.0.0.1:1"]  # structure is kept, not stringified
    assert line["count"] == 3


def test_library_lines_and_their_tracebacks_are_json_too():
    """asyncio's and APScheduler's lines go through the standard library: in a JSON log they are
    JSON as well, the traceback a field, and redacted like ours."""
    import logging

    stream = io.StringIO()
    logs.configure("info", "json", stream=stream)
    logs.REDACTOR.add(KEY)
    try:
        raise OSError(24, f"Too many open files near {KEY}")
    except OSError:
        logging.getLogger("asyncio").exception("socket.accept() out of system resource")
    lines = stream.getvalue().strip().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert (line["event"], line["level"], line["logger"]) == ("socket.accept() out of system resource", "error",
                                                             "asyncio")
    assert "Traceback" in line["exception"] and "Too many open files" in line["exception"]
    assert KEY not in stream.getvalue()
