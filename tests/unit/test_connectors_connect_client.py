"""The Kafka Connect REST client against the REST contract, served by a small local fake Connect.

Kafka Connect itself cannot start from the jars shipped here (connectors/LIMITATIONS.md), so this
server implements the endpoints the client calls, with Connect's status codes and error bodies.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from connectors.config import ConnectorSpec, parse_connector
from connectors.connect_client import ConnectClient
from ops import connectors_cli
from schemas.errors import ConfigurationError, RetryableError, ServiceError
from streams.settings import Settings

PACKAGED = Path(__file__).resolve().parents[2] / "connectors"


class FakeConnect:
    """In-memory Connect: connectors, their configs, and task states."""

    def __init__(self) -> None:
        self.configs: dict[str, dict[str, str]] = {}
        self.task_states: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str]] = []
        self.rebalancing = False
        self.fail_new_tasks = False


def _handler(fake: FakeConnect) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, body: object | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(code)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, code: int, message: str) -> None:
            self._send(code, {"error_code": code, "message": message})

        def do_GET(self) -> None:
            fake.requests.append(("GET", self.path))
            if self.path == "/connectors":
                return self._send(200, sorted(fake.configs))
            match = re.fullmatch(r"/connectors/([^/]+)/status", self.path)
            if match:
                name = match.group(1)
                if name not in fake.configs:
                    return self._error(404, f"No status found for connector {name}")
                tasks = [
                    {
                        "id": i,
                        "state": s,
                        "worker_id": "w:8083",
                        **({"trace": "boom"} if s == "FAILED" else {}),
                    }
                    for i, s in enumerate(fake.task_states[name])
                ]
                return self._send(
                    200,
                    {
                        "name": name,
                        "connector": {"state": "RUNNING", "worker_id": "w:8083"},
                        "tasks": tasks,
                        "type": "source",
                    },
                )
            return self._error(404, "HTTP 404 Not Found")

        def do_PUT(self) -> None:
            fake.requests.append(("PUT", self.path))
            match = re.fullmatch(r"/connectors/([^/]+)/config", self.path)
            if not match:
                return self._error(404, "HTTP 404 Not Found")
            if fake.rebalancing:
                return self._error(409, "Cannot complete request because of a conflicting operation")
            name = match.group(1)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if "connector.class" not in body:
                return self._error(400, "Connector config {} contains no connector type")
            if body.get("name", name) != name:
                return self._error(400, "Connector name configuration does not match connector name in URL")
            created = name not in fake.configs
            fake.configs[name] = body
            if created:
                fake.task_states[name] = ["FAILED" if fake.fail_new_tasks else "RUNNING"]
            self._send(201 if created else 200, {"name": name, "config": body, "tasks": [], "type": "source"})

        def do_POST(self) -> None:
            fake.requests.append(("POST", self.path))
            match = re.fullmatch(r"/connectors/([^/]+)/tasks/(\d+)/restart", self.path)
            if not match or match.group(1) not in fake.configs:
                return self._error(404, "Unknown connector")
            fake.task_states[match.group(1)][int(match.group(2))] = "RUNNING"
            self._send(204)

    return Handler


@pytest.fixture
def connect() -> Iterator[tuple[FakeConnect, str]]:
    fake = FakeConnect()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def spec(name: str = "c1", **config: str) -> ConnectorSpec:
    return parse_connector({"name": name, "config": {"connector.class": "X", **config}})


def test_apply_creates_then_updates(connect: tuple[FakeConnect, str]) -> None:
    fake, url = connect
    with ConnectClient(url) as client:
        first = client.apply(spec(**{"slot.name": "a"}))
        second = client.apply(spec(**{"slot.name": "b"}))
        assert client.connectors() == ["c1"]
    assert first.created and not second.created
    assert fake.configs["c1"]["slot.name"] == "b"
    assert fake.configs["c1"]["name"] == "c1"
    assert second.status is not None and second.status.running


def test_apply_restarts_failed_tasks(connect: tuple[FakeConnect, str]) -> None:
    fake, url = connect
    fake.fail_new_tasks = True
    with ConnectClient(url) as client:
        result = client.apply(spec())
        assert result.restarted_tasks == [0]
        assert ("POST", "/connectors/c1/tasks/0/restart") in fake.requests
        status = client.status("c1")
    assert status.running
    assert result.status is not None and result.status.failed_tasks[0].trace == "boom"


def test_refused_config_carries_connects_message(connect: tuple[FakeConnect, str]) -> None:
    _, url = connect
    with (
        ConnectClient(url) as client,
        pytest.raises(ConfigurationError, match="contains no connector type") as info,
    ):
        client.put_config(ConnectorSpec("c1", {}))
    assert info.value.code == "400"


def test_rebalance_is_retryable(connect: tuple[FakeConnect, str]) -> None:
    fake, url = connect
    fake.rebalancing = True
    with ConnectClient(url) as client, pytest.raises(RetryableError, match="rebalancing"):
        client.apply(spec())


def test_unknown_connector_status_is_a_404(connect: tuple[FakeConnect, str]) -> None:
    _, url = connect
    with ConnectClient(url) as client, pytest.raises(ServiceError) as info:
        client.status("nope")
    assert info.value.code == "404"


def test_unreachable_connect_names_the_variable() -> None:
    with (
        ConnectClient("http://127.0.0.1:9", timeout=2) as client,
        pytest.raises(ServiceError, match="VIGIL_CONNECT_URL"),
    ):
        client.connectors()


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200), out


def test_cli_apply_puts_the_packaged_files(connect: tuple[FakeConnect, str], tmp_path: Path) -> None:
    fake, url = connect
    settings = Settings(connect_url=url, home=tmp_path, database_url=None, connectors=None)
    console, out = _console()
    connectors_cli.apply(settings, console)
    assert set(fake.configs) == {"vigil-demo", "vigil-outbox"}
    # the file's config is sent as is: Connect sees the docker-compose database values
    assert fake.configs["vigil-demo"]["database.hostname"] == "postgres"
    assert "created" in out.getvalue()
    connectors_cli.apply(settings, console, [str(PACKAGED / "demo.json")])
    assert "updated" in out.getvalue()


def test_cli_status_reads_connect(connect: tuple[FakeConnect, str], tmp_path: Path) -> None:
    _, url = connect
    settings = Settings(connect_url=url, home=tmp_path, database_url=None, connectors=None)
    with ConnectClient(url) as client:
        client.apply(spec("vigil-demo"))
    healths = {h.name: h for h in connectors_cli.connector_health(settings)}
    assert healths["vigil-demo"].running and healths["vigil-demo"].mode == "connect"
    assert not healths["vigil-outbox"].running
    assert "vigil connectors apply" in healths["vigil-outbox"].detail
    console, out = _console()
    assert not connectors_cli.status(settings, console)
    assert "vigil-demo" in out.getvalue()
