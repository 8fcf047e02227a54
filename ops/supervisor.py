"""Runs Vigil's parts as child processes and restarts a crashed one with backoff.

``vigil up`` uses it for the worker and sinks (the connectors run in Kafka Connect): each part is
its own process, so one crash neither takes the others down nor loses work — each part resumes
from its committed offsets.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from agents.backoff import backoff_delay
from streams.settings import Settings

log = logging.getLogger(__name__)


def vigil_argv(*args: str) -> list[str]:
    """The command line of a ``vigil`` subcommand, with this interpreter."""
    return [sys.executable, "-m", "ops", *args]


def child_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child: the resolved stack, so children never start services themselves."""
    env = dict(os.environ)
    env.update(
        {
            "VIGIL_HOME": str(Path(settings.home).absolute()),
            "VIGIL_DATABASE_URL": settings.require_database_url(),
            "VIGIL_KAFKA_BOOTSTRAP": settings.require_bootstrap(),
        }
    )
    if settings.connect_url is not None:
        env["VIGIL_CONNECT_URL"] = settings.connect_url
    if settings.schema_registry_url is not None:
        env["VIGIL_SCHEMA_REGISTRY_URL"] = settings.schema_registry_url
    if settings.kafka_session_timeout_ms is not None:
        env["VIGIL_KAFKA_SESSION_TIMEOUT_MS"] = str(settings.kafka_session_timeout_ms)
    env.update(extra or {})
    return env


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    logfile: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0

    def start(self) -> None:
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with self.logfile.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.started_at = time.monotonic()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Supervisor:
    """Keeps its children running until :meth:`stop`."""

    logdir: Path
    children: list[Child] = field(default_factory=list)

    def add(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        child = Child(name, argv, env, self.logdir / f"{name}.log")
        self.children.append(child)
        return child

    def start(self) -> None:
        for child in self.children:
            child.start()

    def poll(self) -> list[str]:
        """Restart children that exited (with backoff); return messages about what happened."""
        events = []
        now = time.monotonic()
        for child in self.children:
            if child.proc is None or child.running:
                continue
            if child.next_start == 0.0:
                if now - child.started_at > 60:
                    child.restarts = 0  # it ran for a while: this is a new failure, not a loop
                child.restarts += 1
                delay = backoff_delay(child.restarts, base=1.0, max_delay=30.0)
                child.next_start = now + delay
                events.append(
                    f"{child.name} exited with {child.proc.returncode}; restarting in {delay:.1f}s "
                    f"(see {child.logfile})"
                )
            elif now >= child.next_start:
                child.next_start = 0.0
                child.start()
                events.append(f"{child.name} restarted")
        return events

    def stop(self, timeout: float = 30.0) -> None:
        for child in self.children:
            if child.running and child.proc is not None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
