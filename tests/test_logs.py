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
