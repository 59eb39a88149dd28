"""A real Alertmanager (Debian's prometheus-alertmanager) and a webhook receiver, on loopback."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from conftest import free_port, http_ok, managed_process


@dataclass
class WebhookReceiver:
    """Collects Alertmanager's webhook notifications (one JSON document per POST)."""

    url: str
    notifications: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alerts(self) -> list[dict[str, Any]]:
        with self.lock:
            return [alert for n in self.notifications for alert in n.get("alerts", [])]


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                receiver.notifications.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def alertmanager(config_yaml: str, timeout: float = 30.0) -> Iterator[str]:
    """Starts Alertmanager with this configuration; yields its base URL."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert binary, "prometheus-alertmanager is not installed (Debian package prometheus-alertmanager)"
    config_dir = Path(tempfile.mkdtemp(prefix="qubicle-am-config-"))
    (config_dir / "alertmanager.yml").write_text(config_yaml)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [binary, f"--config.file={config_dir / 'alertmanager.yml'}", f"--storage.path={config_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]
    try:
        with managed_process(argv, name="alertmanager", ready=http_ok(f"{url}/-/ready"), timeout=timeout):
            yield url
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)
