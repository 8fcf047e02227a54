"""What the steps of ``vigil up --demo`` share: the running pipeline, the script, what earlier
steps found, and the file sink's lines."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from rich.console import Console
from rich.markup import escape

from ops.supervisor import Supervisor
from streams.demo_script import Script
from streams.settings import Settings

#: Longest wait of any one step before the demo gives up (naming the logs).
STEP_TIMEOUT_S = 120.0

T = TypeVar("T")


@dataclass
class Story:
    """What the steps share: the running pipeline, the script, and what earlier steps found."""

    settings: Settings
    console: Console
    supervisor: Supervisor
    stop: threading.Event
    sink_file: Path
    script: Script
    batch: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    #: The database's clock when the story began: everything counted in the summary is newer.
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return self.settings.require_database_url()

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, *params: object) -> Any:
        rows = self.query(sql, *params)
        return rows[0][0] if rows else None

    def say(self, text: str) -> None:
        self.console.print(text)

    def wait_for(
        self, what: str, check: Callable[[], T | None], *, timeout: float = STEP_TIMEOUT_S, every: float = 0.5
    ) -> T:
        """Poll ``check`` until it returns something (not None or False); stop the demo after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.stop.is_set():
            for message in self.supervisor.poll():
                self.say(f"[yellow]{escape(message)}[/]")
            found = check()
            if found:
                return found
            if time.monotonic() > deadline:
                break
            self.stop.wait(every)
        if self.stop.is_set():
            raise SystemExit("demo interrupted")
        raise SystemExit(
            f"demo stopped: no {what} after {timeout:.0f} s; see the logs in {self.supervisor.logdir}"
        )


def sink_lines(sink_file: Path, match: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """The file sink's lines that ``match``."""
    if not sink_file.exists():
        return []
    found = []
    for line in sink_file.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and match(entry):
            found.append(entry)
    return found


def payload_of(entry: dict[str, Any]) -> dict[str, Any]:
    payload = entry.get("payload")
    return payload if isinstance(payload, dict) else {}
