"""What the benchmarks that run workers share: throwaway databases, worker processes, ``/proc`` readings.

Every benchmark creates its own databases (dropped again in a ``finally``) and starts its workers as
OS processes (stopped with SIGTERM, killed after 30 s), so a run leaves nothing behind but its
topics on the broker and its logs under a temporary directory.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import httpx
import psycopg
from confluent_kafka import KafkaException

from agents.feed import FEED_THREAD_PREFIX
from agents.ledger import LEDGER_THREAD
from agents.named_thread import os_thread_name
from ops import migrations
from streams.kafka import make_admin
from streams.lag import describe_group
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
VIGIL = Path(sys.executable).parent / "vigil"


def admin_url(settings: Settings) -> str:
    return settings.require_database_url().rsplit("/", 1)[0] + "/postgres"


def fresh_database(settings: Settings, name: str, *, migrate: bool = True) -> str:
    """Create database ``name`` (migrated to Vigil's head unless told not to); return its URL."""
    with psycopg.connect(admin_url(settings), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = settings.require_database_url().rsplit("/", 1)[0] + f"/{name}"
    if migrate:
        migrations.upgrade(url)
    return url


def drop_database(settings: Settings, name: str) -> None:
    with psycopg.connect(admin_url(settings), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: When this process (the bench run) started: workers read the ledger only from a little before.
RUN_STARTED = time.time()
LEDGER_MARGIN_S = 300.0


def ledger_window() -> dict[str, str]:
    """``VIGIL_PROCESSED_RETENTION_DAYS`` for a worker of this run: its ledger reader starts at the
    records of this run (less a margin) instead of a week of earlier runs' records, which are of
    other (dropped) databases and would only be read and skipped. Rows are pruned when older than
    the window, which is fixed when the worker starts: a worker that runs longer than the run's age
    at its start plus the margin prunes its own first rows (count progress in ``vigil.runs``)."""
    seconds = time.time() - RUN_STARTED + LEDGER_MARGIN_S
    return {"VIGIL_PROCESSED_RETENTION_DAYS": f"{seconds / 86400:.6f}"}


def free_port() -> int:
    """A TCP port free right now on the loopback (each worker's /metrics gets its own)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_env(
    settings: Settings, *, home: Path, db_url: str, app_id: str, extra: Mapping[str, str] = {}
) -> dict[str, str]:
    """The environment of a ``vigil worker`` on the bench's stack: no ``VIGIL_*`` of the caller's,
    except settings named in ``VIGIL_BENCH_WORKER_ENV`` (``NAME=value,NAME=value``: an experiment,
    e.g. ``VIGIL_BATCH_WINDOW_MS=10``, that every worker of the run gets)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    chosen = dict(
        pair.strip().split("=", 1)
        for pair in os.environ.get("VIGIL_BENCH_WORKER_ENV", "").split(",")
        if "=" in pair
    )
    env["PYTHONPATH"] = str(ROOT)
    env.update(
        {
            "VIGIL_HOME": str(home),
            "VIGIL_DATABASE_URL": db_url,
            "VIGIL_KAFKA_BOOTSTRAP": settings.require_bootstrap(),
            "VIGIL_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "VIGIL_APP_ID": app_id,
            "VIGIL_OUTBOX_RELAY": "false",
            "VIGIL_BUILTIN_AGENTS": "false",
            **ledger_window(),
            **chosen,
            **extra,
        }
    )
    return env


def spawn(argv: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=dict(env), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def spawn_worker(module: str, env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    return spawn([str(VIGIL), "worker", "-A", module], env, log)


def stop(proc: subprocess.Popen[bytes], signum: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Ask ``proc`` to stop with ``signum``; kill it after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signum)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def check_alive(proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"{what}: process exited ({proc.returncode}):\n{tail(log)}")


def _stat(path: str) -> tuple[str, float]:
    """The name and user + system CPU seconds in a ``/proc`` ``stat`` file (a process's or a
    thread's); raises ``OSError`` when it is gone."""
    stat = Path(path).read_text()
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat.rsplit(")", 1)[1].split()
    return name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux ``/proc``); 0 when unknown."""
    try:
        return _stat(f"/proc/{pid}/stat")[1]
    except (OSError, IndexError, ValueError):
        return 0.0


#: The parts :func:`cpu_split` puts a process's threads in.
LOOP, LIBRDKAFKA, OTHER_THREADS = "event loop", "librdkafka", "other threads"
FEEDS, LEDGER_READER = "feeds", "ledger reader"
#: Vigil's threads with a part of their own, by the start of their OS name
#: (:class:`agents.named_thread.NamedThread`; Linux keeps 15 bytes of it).
NAMED_PARTS = (
    (os_thread_name(FEED_THREAD_PREFIX).decode(), FEEDS),
    (os_thread_name(LEDGER_THREAD).decode(), LEDGER_READER),
)


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """Each live thread of ``pid``: its id, and its name and user + system CPU seconds (``/proc``).
    A thread that ended is missing (its CPU stays in :func:`cpu_seconds`)."""
    found: dict[int, tuple[str, float]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            found[int(tid)] = _stat(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            continue
    return found


#: HotSpot's JIT compiler threads, by the start of their OS names ("C2 CompilerThread0": Linux keeps
#: 15 bytes of it).
JIT_THREADS = ("C1 CompilerThre", "C2 CompilerThre")


def jit_seconds(pid: int) -> float:
    """CPU seconds the JIT compiler threads of JVM ``pid`` have used. Only live threads count:
    HotSpot may end a compiler thread it added under load, and its CPU then drops out (with two
    cores it runs one C1 and one C2 thread, and keeps both)."""
    return sum(seconds for name, seconds in thread_cpu(pid).values() if name.startswith(JIT_THREADS))


def cpu_split(
    pid: int, before: Mapping[int, tuple[str, float]], after: Mapping[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds each part of process ``pid`` spent between two :func:`thread_cpu` readings: its
    main thread (where a worker's event loop runs), librdkafka's threads (named ``rdk:…``), the
    agents' feeds and the ledger reader (:data:`NAMED_PARTS`, each only when it has a thread) and
    the others (Python's other threads: watches, the scheduler). A thread that started in between
    counts from zero."""
    split = {LOOP: 0.0, LIBRDKAFKA: 0.0}
    others = 0.0
    for tid, (name, seconds) in after.items():
        spent = seconds - before.get(tid, (name, 0.0))[1]
        named = next((part for prefix, part in NAMED_PARTS if name.startswith(prefix)), None)
        if tid == pid:
            split[LOOP] += spent
        elif name.startswith("rdk:"):
            split[LIBRDKAFKA] += spent
        elif named is not None:
            split[named] = split.get(named, 0.0) + spent
        else:
            others += spent
    split[OTHER_THREADS] = others
    return split


def split_text(split: Mapping[str, float], count: int, digits: int = 0) -> str:
    """`` (event loop 380, librdkafka 120, other threads 40)``: µs per row or event of each part of
    a :func:`cpu_split` (``digits`` after the point), if measured."""
    if not split or not count:
        return ""
    return (
        " ("
        + ", ".join(f"{part} {seconds * 1e6 / count:,.{digits}f}" for part, seconds in split.items())
        + ")"
    )


def _machine_ticks() -> list[int]:
    """Clock ticks of every core since boot, from ``/proc/stat``'s first line: user nice system idle
    iowait irq softirq steal (guest time is counted in user already)."""
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (not idle, not waiting for I/O) since boot, from ``/proc/stat``."""
    fields = _machine_ticks()
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def sched_seconds(pid: int, tid: int | None = None) -> tuple[float, float]:
    """(seconds on a core, seconds runnable but waiting for one) of a thread since it started, from
    ``/proc/<pid>/task/<tid>/schedstat``; the process's main thread unless ``tid`` is given."""
    text = Path(f"/proc/{pid}/task/{tid or pid}/schedstat").read_text().split()
    return int(text[0]) / 1e9, int(text[1]) / 1e9


#: The parts of a thread's wall time :func:`time_split` tells apart.
ON_CORE, WAITING_FOR_CORE, IDLE = "on a core", "waiting for a core", "idle"


def time_split(before: tuple[float, float], after: tuple[float, float], wall_s: float) -> dict[str, float]:
    """Percent of ``wall_s`` a thread spent on a core, runnable but waiting for one (the machine's
    other work had them), and idle (waiting for I/O, a lock, a timer), from two :func:`sched_seconds`."""
    if wall_s <= 0:
        return {}
    on = 100.0 * (after[0] - before[0]) / wall_s
    waiting = 100.0 * (after[1] - before[1]) / wall_s
    return {ON_CORE: on, WAITING_FOR_CORE: waiting, IDLE: max(0.0, 100.0 - on - waiting)}


def steal_ticks() -> tuple[int, int]:
    """(stolen, all) clock ticks of every core since boot, from ``/proc/stat``: stolen ones are
    those the hypervisor gave to other guests while this machine had work to run."""
    fields = _machine_ticks()
    return fields[7], sum(fields)


class StealWatch(threading.Thread):
    """Samples :func:`steal_ticks` every ``interval`` seconds until :meth:`stop`: ``samples`` holds
    (epoch seconds, stolen, all) for :func:`steal_per_second`."""

    def __init__(self, interval: float = 0.25) -> None:
        super().__init__(name="bench-steal-watch", daemon=True)
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = [(time.time(), *steal_ticks())]
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.samples.append((time.time(), *steal_ticks()))

    def stop(self) -> list[tuple[float, int, int]]:
        self._done.set()
        self.join()
        self.samples.append((time.time(), *steal_ticks()))
        return self.samples


def steal_per_second(samples: Sequence[tuple[float, int, int]], start: float) -> list[float]:
    """Percent of the machine's CPU stolen in each whole second from ``start`` (epoch seconds), from
    :class:`StealWatch` samples: each interval between two samples counts in the second it ends in."""
    stolen: dict[int, int] = {}
    total: dict[int, int] = {}
    for (_, s0, a0), (at, s1, a1) in pairwise(samples):
        if at < start:
            continue
        second = int(at - start)
        stolen[second] = stolen.get(second, 0) + s1 - s0
        total[second] = total.get(second, 0) + a1 - a0
    return [
        100.0 * stolen.get(s, 0) / total[s] if total.get(s) else 0.0
        for s in range(max(total, default=-1) + 1)
    ]


def busy_cores(window_s: float) -> float:
    """How many cores' worth of CPU the whole machine used over the next ``window_s`` seconds."""
    before = machine_busy_seconds()
    time.sleep(window_s)
    return (machine_busy_seconds() - before) / window_s


def wait_quiet(max_cores: float = 0.6, quiet_s: int = 3, timeout: float = 90.0) -> float:
    """Wait until the machine used less than ``max_cores`` for ``quiet_s`` seconds in a row, at most
    ``timeout``; return the seconds waited. A benchmark run right after another one otherwise pays
    for what the one before left behind: after ``bench cdc``'s bulk inserts the broker's and
    Connect's JVMs used about a fifth of a core each for tens of seconds, and the first seconds of
    ``bench latency`` had its worst latencies."""
    started = time.monotonic()
    calm = 0
    while calm < quiet_s and time.monotonic() - started < timeout:
        calm = calm + 1 if busy_cores(1.0) < max_cores else 0
    return time.monotonic() - started


def rss_bytes(pid: int) -> int:
    """Resident set size of a live process (``VmRSS`` in ``/proc/<pid>/status``); 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def tail(log: Path, chars: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$")


def metric_value(exposition: str, name: str, labels: Mapping[str, str]) -> float | None:
    """One sample of a Prometheus text exposition: ``name{labels…}`` (all of ``labels`` must match)."""
    for line in exposition.splitlines():
        match = _SAMPLE.match(line.strip())
        if match is None or match["name"] != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match["value"])
    return None


def consumed(port: int, agent: str, client: httpx.Client) -> int:
    """Events ``agent`` took from Kafka so far, from its worker's ``/metrics`` (0 before it serves)."""
    try:
        text = client.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0
    value = metric_value(text, "vigil_events_consumed_total", {"agent": agent})
    return int(value or 0)


@dataclass
class Rate:
    """Events/s of a run measured from outside: from the first poll that sees progress (t0) to the
    first that sees all ``n`` (t1), so process start and group join are left out (``startup``)."""

    rate: float
    startup: float
    counted: int
    seconds: float
    #: CPU seconds the processes spent between t0 and t1, per event counted (0 when unknown).
    cpu_per_event: float = 0.0
    #: Events already counted at t0 (taken before the window opened).
    before: int = 0


def measure_rate(
    label: str,
    count: Callable[[], int],
    n: int,
    workers: Sequence[tuple[subprocess.Popen[bytes], Path]],
    stall: float = 180.0,
    poll: float = 0.2,
) -> Rate:
    """Poll ``count`` until it reaches ``n``; fail when it does not move for ``stall`` seconds."""
    spawned = time.monotonic()
    progressed, seen = spawned, -1
    t0: float | None = None
    c0 = 0
    cpu0 = 0.0
    last_print = spawned
    while True:
        now = time.monotonic()
        done = count()
        if t0 is None and done > 0:
            t0, c0 = now, done
            cpu0 = sum(cpu_seconds(p.pid) for p, _ in workers)
        if done >= n and t0 is not None:
            if now <= t0 or done == c0:
                raise RuntimeError(f"{label}: all {n} events in one poll; raise --scale to measure")
            cpu = sum(cpu_seconds(p.pid) for p, _ in workers) - cpu0
            return Rate((n - c0) / (now - t0), t0 - spawned, n - c0, now - t0, cpu / (n - c0), c0)
        for proc, log in workers:
            check_alive(proc, log, f"{label} at {done}/{n}")
        if done != seen:
            progressed, seen = now, done
        if now - progressed > stall:
            tails = "\n".join(tail(log) for _, log in workers)
            raise RuntimeError(f"{label}: stuck at {done}/{n} for {stall:.0f}s:\n{tails}")
        if now - last_print > 30:
            print(f"    {label}: {done:,}/{n:,}", flush=True)
            last_print = now
        time.sleep(max(0.0, poll - (time.monotonic() - now)))


def wait_slot_active(url: str, slot: str, timeout: float = 120.0) -> None:
    """Wait until a connector streams from ``slot``: from then on no change is missed."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
            if row is not None and row[0]:
                return
            time.sleep(0.3)
    raise RuntimeError(f"replication slot {slot} never became active")


def log_dir(prefix: str) -> Path:
    """A folder for a benchmark's process logs and homes (readable by the postgres user)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def wait_group_settled(settings: Settings, group: str, members: int, timeout: float = 60.0) -> None:
    """Wait until consumer group ``group`` is stable with ``members`` members. A worker's consumers
    join one after the other, and the group rebalances when the last one joins (about a second
    after the first was given the partitions): a steady-state measure starts after that."""
    admin = make_admin(settings, quiet=True)
    deadline = time.monotonic() + timeout
    seen = "not described"
    while time.monotonic() < deadline:
        try:
            view = describe_group(admin, group)
        except KafkaException as exc:
            seen = str(exc)
        else:
            seen = f"{view.state.name}, {view.members} member(s)"
            if view.stable and view.members == members:
                return
        time.sleep(0.25)
    raise RuntimeError(
        f"consumer group {group} not stable with {members} member(s) in {timeout:.0f}s: {seen}"
    )
