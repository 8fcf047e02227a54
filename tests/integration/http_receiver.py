"""A real HTTP server on loopback that records what webhook sinks send it, per Idempotency-Key."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Received:
    path: str
    key: str | None
    body: Any


@dataclass
class Receiver:
    """What the server got, and how it answers: ``plan[id]`` is a list of statuses to give in turn."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    plan: dict[str, list[int]] = field(default_factory=dict)
    on_request: Callable[[Received], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, received: Received) -> int:
        with self.lock:
            self.requests.append(received)
            planned = self.plan.get(received.key or "")
            status = planned.pop(0) if planned else 200
            hook = self.on_request
        if hook is not None:
            hook(received)
        return status

    def keys(self) -> Counter[str]:
        with self.lock:
            return Counter(r.key or "" for r in self.requests)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status = self.server.receiver.record(
            Received(self.path, self.headers.get("Idempotency-Key"), json.loads(body))
        )
        self.send_response(status)
        if status == 503:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client killed mid-request breaks the pipe; that is the point of the test


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server.receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
