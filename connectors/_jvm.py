"""The Java side of the bridge: Debezium's ChangeConsumer and CompletionCallback in Python.

Imported only once the JVM runs (JPype resolves the interfaces when the classes are defined).
Records are marked processed, and the batch finished, only after ``handle`` returned, that is
after Kafka acknowledged every record of the batch; if it raises, nothing of the batch is marked
and the engine stops, so the batch is delivered again after a restart (at-least-once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import jpype
from jpype import JImplements, JOverride

from connectors.records import RawRecord

_F = TypeVar("_F", bound=Callable[..., Any])


def _override(method: _F) -> _F:
    """``JOverride``, typed: the method implements a Java interface method (camelCase names)."""
    return cast(_F, JOverride(method))


JProperties: Any = jpype.JClass("java.util.Properties")
JDebeziumEngine: Any = jpype.JClass("io.debezium.engine.DebeziumEngine")
JJson: Any = jpype.JClass("io.debezium.engine.format.Json")


def to_raw(record: Any) -> RawRecord:
    """The record's strings (the JVM runs with ``convertStrings``: Java strings arrive as ``str``)."""
    java_headers = record.headers()
    headers = () if java_headers.isEmpty() else tuple((h.getKey(), h.getValue()) for h in java_headers)
    return RawRecord(record.destination(), record.key(), record.value(), headers)


@JImplements("io.debezium.engine.DebeziumEngine$ChangeConsumer")
class ChangeConsumer:
    def __init__(self, handle: Callable[[list[RawRecord]], None]) -> None:
        self._handle = handle

    @_override
    def handleBatch(self, records: Any, committer: Any) -> None:
        batch = list(records)
        self._handle([to_raw(r) for r in batch])
        for record in batch:
            committer.markProcessed(record)
        committer.markBatchFinished()

    @_override
    def supportsTombstoneEvents(self) -> bool:
        return True


@JImplements("io.debezium.engine.DebeziumEngine$CompletionCallback")
class CompletionCallback:
    def __init__(self, done: Callable[[bool, str, str | None], None]) -> None:
        self._done = done

    @_override
    def handle(self, success: bool, message: Any, error: Any) -> None:
        self._done(bool(success), str(message) if message is not None else "", _describe(error))


def _describe(error: Any) -> str | None:
    if error is None:
        return None
    cause = error
    while cause.getCause() is not None and cause.getCause() != cause:
        cause = cause.getCause()
    return f"{error}" if cause is error else f"{error} (caused by {cause})"


def build_engine(properties: dict[str, str], consumer: ChangeConsumer, completion: CompletionCallback) -> Any:
    """A Debezium engine with JSON keys, values and headers (headers carry the outbox ``id``)."""
    props = JProperties()
    for key, value in properties.items():
        props.setProperty(key, value)
    return (
        JDebeziumEngine.create(JJson, JJson, JJson).using(props).using(completion).notifying(consumer).build()
    )
