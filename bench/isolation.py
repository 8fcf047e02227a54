"""The benchmarks' own stack: a state directory of their own, emptied before each run, and a word on
any other Vigil stack found running on the machine.

A stack that has served the demo or the tests carries load that is not the benchmark's. Measured on
our 2-core machine (session 19): the demo's two Debezium connectors, idle, kept ~21% of a core busy
(each Connect task thread is handed back an empty poll every ``poll.interval.ms``, 10 ms in the
packaged connectors); on that stack, with ~4 GB of topics left by earlier runs, one Vigil worker ran
8,445 and 9,828 events/s against 11,281 and 12,326 on an empty state directory, alternated in the
same hour. So ``python -m bench`` points ``VIGIL_HOME`` at :func:`bench_home`, stops whatever stack
runs there and empties it (``--keep-state`` keeps it, for quick repeated runs), and names the other
stacks still running, whose JVMs and Postgres share the cores with the benchmark.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from ops.services.connect import EmbeddedConnect
from ops.services.kafka import EmbeddedKafka
from ops.services.procs import cmdline

#: Where the benchmarks' stack lives unless ``VIGIL_BENCH_HOME`` says otherwise.
BENCH_HOME_ENV = "VIGIL_BENCH_HOME"
DEFAULT_HOME = Path(__file__).resolve().parents[1] / ".vigil-bench"
#: What a Vigil state directory holds (``ops.services`` and the worker): a directory holding
#: anything else is not emptied.
STATE_ENTRIES = frozenset({"postgres", "kafka", "connect", "registry", "logs", "faust", "demo"})
#: The configuration file each embedded JVM is started with, ``<home>/<service>/<service>.properties``
#: (:class:`ops.services.jvm.JvmService`'s ``config``).
_JVM_CONFIGS = {f"{service.name}.properties": service.name for service in (EmbeddedKafka, EmbeddedConnect)}


def bench_home() -> Path:
    """The benchmarks' state directory: ``VIGIL_BENCH_HOME``, or ``.vigil-bench`` in the checkout."""
    configured = os.environ.get(BENCH_HOME_ENV)
    return Path(configured).resolve() if configured else DEFAULT_HOME


def check_emptiable(home: Path) -> None:
    """Refuse to empty a directory that is not a Vigil state directory (a mistyped
    ``VIGIL_BENCH_HOME`` must not cost anyone their files)."""
    if not home.exists():
        return
    if not home.is_dir():
        raise RuntimeError(f"{home} is not a directory: point {BENCH_HOME_ENV} at a state directory")
    strangers = sorted(p.name for p in home.iterdir() if p.name not in STATE_ENTRIES)
    if strangers:
        raise RuntimeError(
            f"{home} holds {', '.join(strangers[:5])}, which is not Vigil's state: the benchmarks empty "
            f"their state directory before a run; point {BENCH_HOME_ENV} at a directory of their own, "
            "or pass --keep-state"
        )


def use_bench_home(home: Path, *, fresh: bool) -> None:
    """Make ``home`` the state directory of this process and of those it starts; if ``fresh``, stop
    the stack running there and empty it first."""
    os.environ["VIGIL_HOME"] = str(home)
    if not fresh:
        return
    check_emptiable(home)
    if home.exists():
        from ops.services import stack
        from streams.settings import load_settings

        stack.down(load_settings())
        shutil.rmtree(home)


def stack_home_of(argv: Sequence[str]) -> tuple[Path, str] | None:
    """The state directory and the service of an embedded Vigil service, from its command line
    (``/proc/<pid>/cmdline``), or None: a JVM started with ``<home>/kafka/kafka.properties`` or
    ``<home>/connect/connect.properties``, or a postmaster with ``-D <home>/postgres/data``."""
    for i, arg in enumerate(argv):
        path = Path(arg)
        if path.name in _JVM_CONFIGS and path.parent.name == _JVM_CONFIGS[path.name]:
            return path.parent.parent, _JVM_CONFIGS[path.name]
        if arg == "-D" and Path(argv[0]).name == "postgres" and i + 1 < len(argv):
            data = Path(argv[i + 1])
            if data.name == "data" and data.parent.name == "postgres":
                return data.parent.parent, "postgres"
    return None


def _command_lines() -> Iterator[tuple[int, list[str]]]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (argv := cmdline(int(entry.name))):
            yield int(entry.name), argv


def other_stacks(home: Path) -> dict[str, list[str]]:
    """The embedded Vigil stacks running on this machine outside ``home``: state directory →
    ``["kafka pid 123", …]``."""
    found: dict[str, list[str]] = {}
    for pid, argv in _command_lines():
        where = stack_home_of(argv)
        if where is None or where[0].resolve() == home.resolve():
            continue
        found.setdefault(str(where[0]), []).append(f"{where[1]} pid {pid}")
    return found


def other_stacks_text(found: dict[str, list[str]]) -> str:
    """A warning naming the other stacks and how to stop them, or "" when there are none."""
    if not found:
        return ""
    lines = [
        "other Vigil stacks are running; their JVMs and Postgres share the cores with the benchmarks "
        "and skew the figures:"
    ]
    for home, services in sorted(found.items()):
        lines.append(f"  {home}: {', '.join(services)}  (stop: VIGIL_HOME={home} vigil services down)")
    return "\n".join(lines)
