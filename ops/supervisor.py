"""Runs Vigil's parts as child processes and restarts a crashed one with backoff.

``vigil up`` uses it for the worker and sinks (the connectors run in Kafka Connect): each part is
its own process, so one crash neither takes the others down nor loses work — each part resumes
from its committed offsets. :meth:`Supervisor.stop` forwards the signal that stopped ``vigil up``
(SIGINT or SIGTERM) to every child and waits for each to finish its graceful stop; a child still
running after the timeout is killed, and the messages say so (a killed worker loses nothing either:
its unacked events are redelivered and deduplicated).
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

    @property
    def state(self) -> str:
        """``not started``, ``running``, ``restarting`` (exited, restart scheduled) or ``exited``."""
        if self.proc is None:
            return "not started"
        if self.proc.poll() is None:
            return "running"
        return "restarting" if self.next_start else "exited"


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

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> list[Stopped]:
        """Send ``signum`` to every running child, wait up to ``timeout`` seconds in all, kill the
        ones still running; return how each child stopped, in order."""
        started = time.monotonic()
        stopping = [c for c in self.children if c.running]
        for child in stopping:
            assert child.proc is not None
            child.proc.send_signal(signum)
        deadline = started + timeout
        stopped = []
        for child in stopping:
            assert child.proc is not None
            killed = False
            try:
                code = child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                code, killed = child.proc.wait(), True
            stopped.append(
                Stopped(child.name, child.proc.pid, code, time.monotonic() - started, killed, child.logfile)
            )
        for child in self.children:
            child.next_start = 0.0  # a restart that was pending will not happen
        return stopped


@dataclass(frozen=True)
class Stopped:
    """How one child stopped."""

    name: str
    pid: int
    returncode: int
    seconds: float
    #: It did not stop within the timeout and was killed.
    killed: bool
    logfile: Path

    @property
    def message(self) -> str:
        if self.killed:
            return (
                f"{self.name} (pid {self.pid}) did not stop in time: killed after {self.seconds:.0f}s "
                f"(see {self.logfile})"
            )
        return f"{self.name} (pid {self.pid}) stopped with exit code {self.returncode} in {self.seconds:.1f}s"
