"""The state file an embedded connector keeps under ``$VIGIL_HOME/connectors/`` for ``status``.

``vigil connectors run`` rewrites ``<name>.state.json`` about once a second: its pid, when it
started, when Kafka last acknowledged one of its records, how many, and whether it runs, stopped
or failed. Readers decide liveness from the pid, so a process killed with SIGKILL reads as not
running even though its last state says ``running``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_DIR = "connectors"
SUFFIX = ".state.json"


@dataclass(frozen=True)
class ConnectorState:
    connector: str
    pid: int
    state: str  # "starting", "running", "restarting", "stopped" or "failed"
    started_at: float
    updated_at: float
    events: int = 0
    last_event_at: float | None = None
    last_source_ts_ms: int | None = None
    error: str | None = None


def state_dir(home: Path) -> Path:
    return home / STATE_DIR


def state_path(home: Path, connector: str) -> Path:
    return state_dir(home) / f"{connector}{SUFFIX}"


def write_state(home: Path, state: ConnectorState) -> None:
    """Replace the state file atomically."""
    path = state_path(home, state.connector)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(state)))
    tmp.replace(path)


def read_state(home: Path, connector: str) -> ConnectorState | None:
    try:
        data = json.loads(state_path(home, connector).read_text())
        return ConnectorState(**data)
    except (OSError, ValueError, TypeError):
        return None
