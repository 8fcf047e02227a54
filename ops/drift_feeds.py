"""The I/O of ``vigil drift detect``'s sources: a CDC topic's column and a polled Postgres query.

Each is a generator of ``(value, at)`` samples for the one detect loop (:func:`ops.drift_cli.detect`);
the decisions (which column, which rows, what a value is) are the pure :mod:`streams.drift_sources`.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
from confluent_kafka import KafkaError, KafkaException

from schemas.errors import ConfigurationError, PoisonError, ServiceError
from streams.drift_sources import (
    Sample,
    change_sample,
    check_query_columns,
    query_sample,
    watermark_query,
)
from streams.kafka import make_consumer
from streams.settings import Settings
from streams.views import MessageParts, change_event, headers_to_dict, is_cdc_topic

POLL_S = 0.5


def default_group(topic: str, field: str) -> str:
    return f"vigil-drift-detect.{topic}.{field}"


def cdc_samples(
    settings: Settings, topic: str, field: str, *, group: str, stop: threading.Event
) -> Iterator[Sample]:
    """``after[field]`` of each change event on ``topic``, read by consumer group ``group`` from its
    committed offset (the topic's beginning the first time). A sample's offset is stored once the
    next one is asked for, i.e. after the detect loop has scored (and published) it, and committed
    in the background and at the end; ``stop`` ends the feed."""
    if not is_cdc_topic(topic):
        raise ConfigurationError(
            f"--topic {topic!r}: give a Debezium topic, cdc.<schema>.<table> (vigil inspect topics lists them)"
        )
    consumer = make_consumer(settings, group, **{"enable.partition.eof": False})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            raise ConfigurationError(
                f"--topic {topic!r} does not exist: start the table's connector (vigil connectors "
                "apply / status); Debezium creates the topic at the table's first change event"
            )
        consumer.subscribe([topic])
        while not stop.is_set():
            message = consumer.poll(POLL_S)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise ConfigurationError(f"--topic {topic!r} disappeared: {error.str()}")
                if error.fatal():
                    raise ServiceError(f"reading {topic}: {error.str()}")
                continue
            sample = _sample_of(message, field)
            if sample is not None:
                yield sample
            consumer.store_offsets(message)
    except KafkaException as exc:
        raise ServiceError(f"reading {topic}: {exc}") from exc
    finally:
        consumer.close()  # commits the stored offsets


def _sample_of(message: Any, field: str) -> Sample | None:
    timestamp_type, timestamp_ms = message.timestamp()
    parts = MessageParts(
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        key=message.key(),
        value=message.value(),
        headers=headers_to_dict(message.headers()),
        timestamp_ms=timestamp_ms if timestamp_type else None,
    )
    try:
        event = change_event(parts)
    except PoisonError as exc:  # poison is data: say so and go on
        print(f"skipped {parts.topic}[{parts.partition}]@{parts.offset}: {exc}", file=sys.stderr, flush=True)
        return None
    if event is None:  # a tombstone
        return None
    return change_sample(event, field, parts.timestamp_ms)


def query_samples(settings: Settings, query: str, *, every: float, stop: threading.Event) -> Iterator[Sample]:
    """The rows of ``query`` (time, value), polled every ``every`` seconds; each poll returns only
    rows whose time is after the newest time already read, so no row is scored twice. ``stop`` ends
    the feed."""
    if every <= 0:
        raise ConfigurationError("--every must be a positive number of seconds")
    url = settings.require_database_url()
    try:
        conn = psycopg.connect(url, autocommit=True)
    except psycopg.OperationalError as exc:
        raise ServiceError(f"cannot reach Postgres for --query: {exc}") from exc
    with conn:
        _check_query(conn, query)
        watermark: Any = None
        first = True
        while not stop.is_set():
            try:
                rows = conn.execute(watermark_query(query, first=first), {"watermark": watermark}).fetchall()
            except psycopg.Error as exc:
                raise ConfigurationError(f"--query failed: {exc}".rstrip()) from exc
            first = False
            for at, value in rows:
                if at is None:
                    continue
                sample = query_sample(at, value)
                watermark = at
                yield sample
                if stop.is_set():
                    return
            stop.wait(every)


def _check_query(conn: psycopg.Connection[Any], query: str) -> None:
    body = query.strip().rstrip(";").strip()
    if not body:
        raise ConfigurationError('--query is empty: give "SELECT observed_at, value FROM …"')
    try:
        cursor = conn.execute(f"SELECT * FROM ({body.replace('%', '%%')}) AS q LIMIT 0")
    except psycopg.errors.UndefinedColumn as exc:
        raise ConfigurationError(
            f"--query names a column its table does not have: {exc.diag.message_primary}; "
            "check the names with \\d <table> in psql"
        ) from exc
    except psycopg.errors.UndefinedTable as exc:
        raise ConfigurationError(
            f"--query reads a table that does not exist: {exc.diag.message_primary}"
        ) from exc
    except psycopg.Error as exc:
        raise ConfigurationError(f"--query is not a valid SELECT: {exc}".rstrip()) from exc
    check_query_columns([column.name for column in cursor.description or []])
