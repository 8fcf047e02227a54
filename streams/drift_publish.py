"""Publishing drift events to ``drift.events``: the Python API behind the CLI, the HTTP ingest and
``vigil drift detect``.

Each record is keyed by its fingerprint (one fingerprint, one partition: the router sees its events
in order) and carries its id in ``vigil-event-id`` (and as its trace id). :func:`publish_records`
returns only after the broker acknowledged every record, so a caller that answers someone else
(the HTTP ingest's 202) answers after the events are safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from confluent_kafka import Producer

from schemas.codec import Codec
from schemas.errors import ServiceError
from streams import headers
from streams.catalog import DRIFT_EVENTS
from streams.drift_events import drift_record
from streams.kafka import make_producer
from streams.outgoing import Outgoing
from streams.produce import produce_all
from streams.settings import Settings


class DriftPublisher:
    """A producer and a codec for drift events; reuse one for many calls."""

    def __init__(self, settings: Settings, *, producer: Producer | None = None, codec: Codec | None = None):
        self.producer = producer or make_producer(settings)
        self.codec = codec or Codec.from_registry_url(settings.schema_registry_url)
        self.topic = DRIFT_EVENTS

    def publish_records(self, records: Sequence[Mapping[str, Any]], *, timeout: float = 30.0) -> list[str]:
        """Produce ``records`` (``DriftEvent`` dicts) and wait for the broker; return their ids.

        Raises :class:`~schemas.errors.RetryableError` when the broker did not acknowledge them all
        (a resend is safe: the ids are stable), :class:`ServiceError` when it refused one for good.
        """
        messages = [
            Outgoing(
                self.topic,
                str(record["fingerprint"]).encode(),
                self.codec.encode("DriftEvent", record),
                (
                    (headers.EVENT_ID, str(record["id"]).encode()),
                    (headers.TRACE_ID, str(record["id"]).encode()),
                ),
                tag=str(record["id"]),
            )
            for record in records
        ]
        produce_all(self.producer, messages, what="drift events", timeout=timeout, refusal=ServiceError)
        return [str(record["id"]) for record in records]

    def close(self) -> None:
        self.producer.flush(10)


def publish_drift(
    settings: Settings,
    *,
    source: str,
    metric: str,
    value: float,
    severity: str = "warning",
    labels: Mapping[str, str] | None = None,
    observed_at: datetime | None = None,
    statistic: str = "external",
    score: float | None = None,
    publisher: DriftPublisher | None = None,
) -> str:
    """Publish one drift event from monitoring code; return its id once Kafka acknowledged it."""
    record = drift_record(
        source=source,
        metric=metric,
        value=value,
        severity=severity,
        labels=labels,
        observed_at=observed_at,
        statistic=statistic,
        score=score,
    )
    own = publisher is None
    pub = publisher or DriftPublisher(settings)
    try:
        return pub.publish_records([record])[0]
    finally:
        if own:
            pub.close()
