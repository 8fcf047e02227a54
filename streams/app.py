"""The Faust app, configured from the one settings object."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams.kafka import session_timeout_ms
from streams.settings import Settings


def _credentials(settings: Settings) -> Any:
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.kafka_ssl_ca_location)
        if settings.kafka_ssl_certificate_location:
            password = (
                settings.kafka_ssl_key_password.get_secret_value()
                if settings.kafka_ssl_key_password
                else None
            )
            context.load_cert_chain(
                settings.kafka_ssl_certificate_location, settings.kafka_ssl_key_location, password
            )
    if protocol.startswith("SASL"):
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username or "",
            password=password,
            mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    return faust.SSLCredentials(context)


#: ``fetch_max_wait_ms`` of each app's aiokafka consumer, by app id (see :func:`_create_worker_consumer`).
_FETCH_MAX_WAIT_MS: dict[str, int] = {}
_faust_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer


def _create_worker_consumer(self: AIOKafkaConsumerThread, transport: Any) -> Any:
    """Faust's consumer, with Vigil's ``fetch_max_wait_ms`` instead of Faust's fixed 1,500 ms.

    aiokafka keeps one fetch request in flight per broker, for the partitions whose fetched records
    were all consumed. While an agent works through a batch of a busy partition, the next request
    covers only the idle ones (Faust's assignor topic, quiet topics) and the broker holds it until
    ``fetch_max_wait_ms``; records arriving meanwhile wait for it. With 1,500 ms a worker could run
    ~1.5 s behind a steady CDC stream for as long as the stream lasted (``bench latency``).
    """
    consumer = _faust_create_worker_consumer(self, transport)
    wait_ms = _FETCH_MAX_WAIT_MS.get(self.app.conf.id)
    if wait_ms is not None:
        consumer._fetch_max_wait_ms = wait_ms  # read when the consumer starts its fetcher
    return consumer


AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]


def use_fetch_wait(app_id: str, wait_ms: int | None) -> None:
    """Make the aiokafka consumer of app ``app_id`` fetch with ``wait_ms`` (None: Faust's own wait)."""
    if wait_ms is None:
        _FETCH_MAX_WAIT_MS.pop(app_id, None)
    else:
        _FETCH_MAX_WAIT_MS[app_id] = wait_ms


def faust_datadir(settings: Settings, app_id: str) -> Path:
    """Where Faust keeps app ``app_id``'s data: it makes the directory at start even with in-memory
    tables, and its default is relative to the working directory. Its parent must exist."""
    return settings.home / "faust" / f"{app_id}-data"


def make_app(settings: Settings, app_id: str) -> faust.App:
    """A Faust app for Vigil's agents: no web server, in-memory tables, the settings' Kafka."""
    # With batch delivery Faust's consumer reads no agent's topic: an idle fetch every 20 ms would
    # only cost CPU (≈ 7% of a busy worker's samples), so it keeps Faust's own wait.
    use_fetch_wait(app_id, settings.fetch_wait_ms(faust=True) if settings.delivery == "faust" else None)
    brokers = [f"kafka://{host.strip()}" for host in settings.require_bootstrap().split(",") if host.strip()]
    timeout_s = session_timeout_ms(settings) / 1000
    return faust.App(
        app_id,
        datadir=str(faust_datadir(settings, app_id)),
        broker=brokers,
        broker_credentials=_credentials(settings),
        broker_session_timeout=timeout_s,
        broker_heartbeat_interval=max(0.5, timeout_s / 6),
        broker_commit_interval=0.5,
        store="memory://",
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=max(1, settings.topic_replication_factor),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        stream_wait_empty=False,
    )
