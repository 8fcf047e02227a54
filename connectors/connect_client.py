"""A small client for the Kafka Connect REST API: create or update, list, status, restart tasks.

Errors name what to fix: an unreachable Connect says which URL was tried and which variable sets
it; a refused config carries Connect's own ``message`` and ``error_code``; a rebalance in progress
(409) is a :class:`RetryableError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from connectors.config import ConnectorSpec
from schemas.errors import ConfigurationError, RetryableError, ServiceError, VigilError


@dataclass(frozen=True)
class TaskStatus:
    id: int
    state: str
    worker_id: str = ""
    trace: str | None = None


@dataclass(frozen=True)
class ConnectorStatus:
    name: str
    state: str
    worker_id: str = ""
    tasks: tuple[TaskStatus, ...] = ()
    type: str = ""

    @property
    def running(self) -> bool:
        return self.state == "RUNNING" and all(t.state == "RUNNING" for t in self.tasks)

    @property
    def failed_tasks(self) -> list[TaskStatus]:
        return [t for t in self.tasks if t.state == "FAILED"]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConnectorStatus:
        connector = data.get("connector") or {}
        tasks = tuple(
            TaskStatus(int(t["id"]), str(t.get("state", "")), str(t.get("worker_id", "")), t.get("trace"))
            for t in data.get("tasks") or []
        )
        return cls(
            name=str(data.get("name", "")),
            state=str(connector.get("state", "UNKNOWN")),
            worker_id=str(connector.get("worker_id", "")),
            tasks=tasks,
            type=str(data.get("type", "")),
        )


@dataclass(frozen=True)
class ApplyResult:
    name: str
    created: bool
    status: ConnectorStatus | None
    restarted_tasks: list[int] = field(default_factory=list)


class ConnectClient:
    """Talks to one Kafka Connect cluster at ``base_url`` (``VIGIL_CONNECT_URL``)."""

    def __init__(
        self, base_url: str, *, timeout: float = 30.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ConnectClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, json: Any = None) -> httpx.Response:
        try:
            response = self._client.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise ServiceError(
                f"Kafka Connect at {self.base_url} did not answer ({exc.__class__.__name__}: {exc}); "
                "check VIGIL_CONNECT_URL (unset: Vigil's embedded Connect, started by `vigil services up`)"
            ) from exc
        if response.status_code >= 400:
            raise _error(method, path, response)
        return response

    def connectors(self) -> list[str]:
        """GET /connectors."""
        data = self._request("GET", "/connectors").json()
        if not isinstance(data, list):
            raise ServiceError(f"Kafka Connect at {self.base_url}: GET /connectors did not return a list")
        return sorted(str(name) for name in data)

    def put_config(self, spec: ConnectorSpec) -> bool:
        """PUT /connectors/{name}/config: create (returns True) or update (False) the connector."""
        config = {**spec.config, "name": spec.name}
        response = self._request("PUT", f"/connectors/{_seg(spec.name)}/config", json=config)
        return response.status_code == 201

    def status(self, name: str) -> ConnectorStatus:
        """GET /connectors/{name}/status."""
        return ConnectorStatus.from_json(self._request("GET", f"/connectors/{_seg(name)}/status").json())

    def restart_task(self, name: str, task_id: int) -> None:
        """POST /connectors/{name}/tasks/{id}/restart."""
        self._request("POST", f"/connectors/{_seg(name)}/tasks/{task_id}/restart")

    def restart(self, name: str) -> None:
        """POST /connectors/{name}/restart?includeTasks=true: the connector and all its tasks."""
        self._request("POST", f"/connectors/{_seg(name)}/restart?includeTasks=true&onlyFailed=false")

    def delete(self, name: str) -> bool:
        """DELETE /connectors/{name}; False if there was no such connector."""
        try:
            self._request("DELETE", f"/connectors/{_seg(name)}")
        except VigilError as exc:
            if exc.code == "404":
                return False
            raise
        return True

    def apply(self, spec: ConnectorSpec) -> ApplyResult:
        """Create or update ``spec``, then restart any of its tasks that have failed."""
        created = self.put_config(spec)
        try:
            status = self.status(spec.name)
        except VigilError as exc:
            if exc.code != "404":
                raise
            return ApplyResult(spec.name, created, None)  # not started yet: no status to act on
        restarted = []
        for task in status.failed_tasks:
            self.restart_task(spec.name, task.id)
            restarted.append(task.id)
        return ApplyResult(spec.name, created, status, restarted)


def _seg(name: str) -> str:
    return quote(name, safe="")


def _error(method: str, path: str, response: httpx.Response) -> VigilError:
    try:
        body = response.json()
        message = str(body.get("message") or body)
    except ValueError:
        message = response.text.strip() or response.reason_phrase
    code = str(response.status_code)
    text = f"Kafka Connect refused {method} {path} ({response.status_code}): {message}"
    if response.status_code == 409:
        return RetryableError(f"{text}; Connect is rebalancing, try again", code=code)
    if response.status_code in (400, 422):
        return ConfigurationError(f"{text}; fix the connector file", code=code)
    if response.status_code == 404:
        return ServiceError(text, code=code)
    return ServiceError(text, code=code)
