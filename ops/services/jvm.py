"""What the embedded Kafka broker and Kafka Connect worker share: one detached JVM per service.

Each service keeps its folder under ``$VIGIL_HOME`` with a state file (pid and ports, chosen once
and kept), its generated config, a log4j2 config that sends its log to ``<name>.log``, and a
``<name>.out`` for what the JVM prints before logging starts. The JVM runs in its own session so
that it outlives the command that started it; ``stop`` ends only the process Vigil recorded, after
checking that the pid still runs that service's main class with that config file.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ops.services.java import JavaParts, find_java
from ops.services.procs import cmdline, free_port, pid_alive, port_is_free, terminate
from schemas.errors import ConfigurationError, ServiceError, VigilError

log = logging.getLogger(__name__)

# Popen objects of JVMs started by this process. Kept referenced so that collecting one does not
# warn that its (deliberately detached) child is still running.
_SPAWNED: list[subprocess.Popen[bytes]] = []

LOG4J2 = """\
# Written by Vigil at each start.
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {logfile}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
{extra}"""


def write_properties(path: Path, props: dict[str, str], header: str) -> None:
    lines = [f"# {header}", *(f"{k}={v}" for k, v in props.items())]
    path.write_text("\n".join(lines) + "\n")


#: G1's region size, MB. An object of half a region or more is "humongous": G1 allocates it in whole
#: regions of the old generation, and each such allocation may start a concurrent marking cycle.
#: A heap under 2 GB gets 1 MB regions, so every 512 KB batch of Connect's producer
#: (``producer.batch.size``) arrived at the broker as a humongous request buffer: in a bench cdc
#: run the broker went through 66 marking cycles, nearly all started by a humongous allocation,
#: each with a Remark pause (up to 57 ms) while Connect, one request in flight, waited. With 4 MB
#: regions: 20 cycles in a run, one of them started by a humongous allocation. Kafka's own
#: operations guide runs brokers with ``-XX:G1HeapRegionSize=16M`` (on 6 GB heaps);
#: docker-compose.yml passes the same flags.
G1_REGION_MB = 4


class JvmService:
    """One JVM whose pid and ports are kept in ``root/<name>.json``."""

    #: Short name: the state, log and config files are named after it.
    name: str
    main_class: str
    heap: str = "512m"
    #: Extra log4j2 property lines (quieter loggers).
    log4j_extra: str = ""
    #: GC settings; Kafka's launch scripts set these (KAFKA_JVM_PERFORMANCE_OPTS) for the broker and
    #: Connect alike, and launching ``java`` directly skips the scripts. Without them (G1's default
    #: 200 ms pause goal) the p99 of commit → Kafka latency in bench/bench_cdc.py was 199 ms; with
    #: them 33 to 60 ms.
    performance_options: tuple[str, ...] = (
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        f"-XX:G1HeapRegionSize={G1_REGION_MB}m",
    )

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()
        self.statefile = self.root / f"{self.name}.json"
        self.logfile = self.root / f"{self.name}.log"
        self.outfile = self.root / f"{self.name}.out"
        self.config = self.root / f"{self.name}.properties"
        #: Every collection's pause, as Kafka's own launch scripts log it (two files of 10 MB at most).
        self.gclog = self.root / f"{self.name}-gc.log"

    # -- kept state -------------------------------------------------------------------------

    def state(self) -> dict[str, object]:
        try:
            data = json.loads(self.statefile.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, **update: object) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {**self.state(), **update}
        tmp = self.statefile.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.statefile)

    def kept_port(self, key: str) -> int:
        """The port saved under ``key``, else a free one (saved); error if the kept one is taken."""
        value = self.state().get(key)
        if isinstance(value, int):
            # A JVM killed a moment ago may not have released its sockets yet.
            deadline = time.monotonic() + 10.0
            while not port_is_free(value) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not port_is_free(value):
                raise ConfigurationError(
                    f"the embedded {self.name}'s port {value} (kept in {self.statefile}) is taken by "
                    f"another process: stop that process, or remove {self.root} to start afresh "
                    "(its data is lost)"
                )
            return value
        port = free_port()
        self.save(**{key: port})
        return port

    def port(self, key: str) -> int | None:
        value = self.state().get(key)
        return value if isinstance(value, int) else None

    # -- the process ------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of the JVM Vigil started, if it still runs (and really is this service)."""
        value = self.state().get("pid")
        if not isinstance(value, int) or not pid_alive(value):
            return None
        argv = cmdline(value)
        if self.main_class not in argv or not any(str(self.config) in arg for arg in argv):
            return None
        return value

    def spawn(
        self,
        java: JavaParts,
        args: list[str],
        *,
        jvm_args: list[str] | None = None,
        classpath: str | None = None,
    ) -> subprocess.Popen[bytes]:
        log4j = self.root / f"{self.name}-log4j2.properties"
        log4j.write_text(LOG4J2.format(logfile=self.logfile, extra=self.log4j_extra))
        argv = [
            find_java(),
            f"-Xmx{self.heap}",
            "-Xms64m",
            *self.performance_options,
            f"-Xlog:gc:file={self.gclog}:time,uptime:filecount=2,filesize=10M",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            *(jvm_args or []),
            "-cp",
            classpath or java.classpath,
            self.main_class,
            *args,
        ]
        with self.outfile.open("ab") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        _SPAWNED.append(proc)
        self.save(pid=proc.pid)
        return proc

    def wait_ready(
        self, ready: Callable[[], bool], timeout: float, proc: subprocess.Popen[bytes] | None = None
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Right after the fork, /proc still shows the parent's command line: ask the child itself.
            exited = proc.poll() is not None if proc is not None else self.pid() is None
            if exited:
                raise ServiceError(
                    f"the embedded {self.name} exited at start; see {self.logfile} and {self.outfile}"
                )
            if ready():
                return
            time.sleep(0.2)
        raise ServiceError(
            f"the embedded {self.name} was not ready within {timeout:.0f}s; see {self.logfile}"
        )

    def launch(
        self,
        java: JavaParts,
        args: list[str],
        ready: Callable[[], bool],
        timeout: float,
        *,
        address: str,
        jvm_args: list[str] | None = None,
        classpath: str | None = None,
    ) -> None:
        """Spawn the JVM and wait until ``ready``; a JVM that does not get there is ended."""
        proc = self.spawn(java, args, jvm_args=jvm_args, classpath=classpath)
        try:
            self.wait_ready(ready, timeout, proc)
        except ServiceError:
            terminate(proc.pid)
            raise
        log.info("embedded %s up on %s (pid %d)", self.name, address, proc.pid)

    def already_running(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Whether the recorded JVM runs and becomes ready; False if there is none, or it died
        meanwhile (killed a moment ago, say): then the caller starts a new one."""
        if self.pid() is None:
            return False
        try:
            self.wait_ready(ready, timeout)
        except ServiceError:
            if self.pid() is None:
                return False
            raise
        return True

    @staticmethod
    def answers(address: str | None, probe: Callable[[str], object]) -> bool:
        """Whether the service at ``address`` answers ``probe`` (which raises a VigilError if not)."""
        if address is None:
            return False
        try:
            probe(address)
        except VigilError:
            return False
        return True

    def stop(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        # A broker flushes and closes its logs on SIGTERM; give it time before SIGKILL.
        terminate(pid, timeout=30.0)
        return True
