"""The cdc benchmark's peer: the Debezium embedded engine alone, counting change records.

``bench/java/EngineAlone.java`` runs the Debezium Postgres connector in the embedded engine (no
Kafka Connect worker, no Kafka) with a consumer that only counts the records of one topic. Its
classpath is ``bench/java/pom.xml``, resolved once into the shared Java cache
(:func:`ops.services.java.resolve_classpath`); the program is compiled with ``javac`` once per
version of its source into that cache folder. The engine's config is the bench connector's own
(:func:`engine_config`), so the connector settings that matter (``plugin.name``, ``poll.interval.ms``,
decimal and time handling) are the same in both runs. The program writes one JSON object per line
on stdout (:func:`parse_line`); :class:`EnginePeer` runs it and follows its count.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from ops.services.java import JavaParts, find_java, require_tool, resolve_classpath
from ops.services.jvm import JvmService
from schemas.errors import ConfigurationError

SOURCE = Path(__file__).resolve().parent / "java" / "EngineAlone.java"
POM = SOURCE.parent / "pom.xml"
MAIN_CLASS = "EngineAlone"
#: How the records reach the counting consumer: ``connect`` as SourceRecords (the engine alone),
#: ``json`` serialized by Kafka Connect's JsonConverter as a Connect worker does before producing.
FORMATS = ("connect", "json")

#: Keys of a connector's config that Kafka Connect reads (converter classes, transforms, task count)
#: or that serve the Connect deployment only (its heartbeat row, its metric tags): the engine gets
#: the rest, which is what configures the Debezium connector itself. The converters' own settings
#: (``value.converter.schemas.enable``) stay: the engine's JsonConverter reads them in ``json`` mode.
CONNECT_ONLY_KEYS = frozenset(
    {"name", "tasks.max", "key.converter", "value.converter", "header.converter", "custom.metric.tags"}
)
CONNECT_ONLY_PREFIXES = ("transforms", "predicates", "heartbeat.")


def engine_config(connector: Mapping[str, str], *, name: str, slot: str, table: str) -> dict[str, str]:
    """The embedded engine's properties from a Connect connector's config (with its database
    address filled in): the connector's own settings, its own replication slot and publication
    (``slot``), only ``table`` captured, no snapshot (only changes after the engine is up count) and
    offsets in memory, flushed every second as the embedded Connect worker does."""
    config = {
        k: v
        for k, v in connector.items()
        if k not in CONNECT_ONLY_KEYS and not k.startswith(CONNECT_ONLY_PREFIXES)
    }
    config.update(
        {
            "name": name,
            "slot.name": slot,
            "publication.name": slot,
            "table.include.list": table,
            "snapshot.mode": "no_data",
            "offset.storage": "org.apache.kafka.connect.storage.MemoryOffsetBackingStore",
            "offset.flush.interval.ms": "1000",
        }
    )
    return config


def _escape(text: str, *, key: bool) -> str:
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if key:
        for char in "=: #!":
            out = out.replace(char, "\\" + char)
    elif out.startswith(" "):
        out = "\\" + out
    return out


def properties_text(props: Mapping[str, str]) -> str:
    """``props`` in ``java.util.Properties`` file syntax (backslashes and separators escaped)."""
    return "".join(f"{_escape(k, key=True)}={_escape(v, key=False)}\n" for k, v in props.items())


@dataclass(frozen=True)
class EngineReport:
    """One line of the peer's stdout."""

    #: ``polling`` (the connector's task polls), ``progress`` or ``stopped``.
    event: str
    count: int = 0
    #: Unix seconds when the first and the latest counted batch reached the consumer (0 before any).
    first_at: float = 0.0
    last_at: float = 0.0
    error: str | None = None


def parse_line(line: str) -> EngineReport | None:
    """The report on one stdout line of the peer; None for a line that is not one."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        return None
    try:
        return EngineReport(
            event=data["event"],
            count=int(data.get("count", 0)),
            first_at=float(data.get("first_at", 0.0)),
            last_at=float(data.get("last_at", 0.0)),
            error=str(data["error"]) if data.get("error") is not None else None,
        )
    except (TypeError, ValueError):
        return None


def rows_per_second(rows: int, started: float, last: float) -> float:
    """``rows`` over the seconds from ``started`` (first commit) to ``last`` (last row seen)."""
    if last <= started:
        raise ValueError(f"the last row arrived at {last}, not after the start at {started}")
    return rows / (last - started)


def _find_javac() -> str:
    return require_tool(
        "javac",
        "the cdc benchmark's peer is compiled with javac, which is not installed (a Java runtime alone "
        "has no compiler): run `apt-get install openjdk-17-jdk-headless` (or `make bench`, which installs it)",
    )


def build(cache: Path | None = None) -> tuple[JavaParts, Path]:
    """The peer's classpath and compiled classes, resolved and compiled on first use."""
    find_java()
    parts = resolve_classpath(POM, cache)
    classes = parts.root / f"classes-{hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]}"
    if (classes / f"{MAIN_CLASS}.class").is_file():
        return parts, classes
    javac = _find_javac()
    # Compile into a private folder and move it into place whole, as the classpath itself is.
    work = Path(tempfile.mkdtemp(prefix=f".{classes.name}-", dir=parts.root))
    try:
        done = subprocess.run(
            [javac, "-d", str(work), "-cp", parts.classpath, str(SOURCE)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise ConfigurationError(
                f"javac could not compile {SOURCE}:\n{(done.stdout + done.stderr)[-3000:]}"
            )
        try:
            os.rename(work, classes)
        except OSError:
            if not (classes / f"{MAIN_CLASS}.class").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return parts, classes


class EnginePeer:
    """The peer as a running process; its stdout is followed by a thread. Use as a context manager:
    leaving it closes the process's stdin (the engine stops and releases its slot) and waits."""

    def __init__(self, config: Mapping[str, str], topic: str, *, fmt: str = "connect", log: Path) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
        self.config, self.topic, self.fmt, self.log = dict(config), topic, fmt, log
        self.latest = EngineReport("none")
        self.polling = threading.Event()
        self.stopped = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> EnginePeer:
        parts, classes = build()
        properties = self.log.parent / "engine.properties"
        properties.write_text(properties_text(self.config))
        argv = [
            find_java(),
            f"-Xmx{JvmService.heap}",
            "-Xms64m",
            *JvmService.performance_options,  # the embedded Connect worker's GC settings
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp",
            f"{classes}{os.pathsep}{parts.classpath}",
            MAIN_CLASS,
            str(properties),
            self.topic,
            self.fmt,
        ]
        with self.log.open("ab") as err:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1
            )
        assert self._proc.stdout is not None
        self._reader = threading.Thread(target=self._follow, args=(self._proc.stdout,), daemon=True)
        self._reader.start()
        return self

    @property
    def pid(self) -> int | None:
        """The engine JVM's process id, once it runs."""
        return self._proc.pid if self._proc is not None else None

    def _follow(self, out: IO[str]) -> None:
        for line in out:
            report = parse_line(line)
            if report is None:
                continue
            if report.event == "polling":
                self.polling.set()
            else:
                self.latest = report
            if report.event == "stopped":
                self.stopped.set()
        self.stopped.set()

    def _check(self, what: str) -> None:
        if self.stopped.is_set():
            error = self.latest.error or f"exit {self._proc.poll() if self._proc else '?'}"
            raise RuntimeError(f"the engine-alone peer stopped {what}: {error}\n{self._tail()}")

    def _tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_polling(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.polling.wait(0.2):
            self._check("before its connector polled")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the engine-alone peer did not poll within {timeout:.0f}s\n{self._tail()}"
                )

    def wait_for(self, count: int, timeout: float) -> float:
        """Wait until ``count`` records were counted; return when the last of them arrived."""
        deadline = time.monotonic() + timeout
        while (latest := self.latest).count < count:
            self._check(f"at {latest.count} of {count} records")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"only {latest.count} of {count} rows reached the engine in {timeout:.0f}s"
                )
            time.sleep(0.02)
        return latest.last_at

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._reader is not None:
            self._reader.join(5)
