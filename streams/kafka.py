"""Kafka client configuration and construction from the one settings object.

Every confluent-kafka client Vigil makes gets its bootstrap servers and security settings
from :func:`client_config`, so a SASL/TLS cluster needs the ``VIGIL_KAFKA_*`` variables set once.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from schemas.errors import ServiceError
from streams.settings import DEFAULT_SESSION_TIMEOUT_MS, Settings

_quiet_logger = logging.getLogger("vigil.rdkafka.probe")
_quiet_logger.addHandler(logging.NullHandler())
_quiet_logger.propagate = False


def client_config(settings: Settings) -> dict[str, Any]:
    """The librdkafka properties shared by every client: bootstrap and security."""
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.require_bootstrap(),
        "security.protocol": settings.kafka_security_protocol,
    }
    optional = {
        "sasl.mechanism": settings.kafka_sasl_mechanism,
        "sasl.username": settings.kafka_sasl_username,
        "ssl.ca.location": settings.kafka_ssl_ca_location,
        "ssl.certificate.location": settings.kafka_ssl_certificate_location,
        "ssl.key.location": settings.kafka_ssl_key_location,
    }
    conf.update({k: v for k, v in optional.items() if v is not None})
    if settings.kafka_sasl_password is not None:
        conf["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_key_password is not None:
        conf["ssl.key.password"] = settings.kafka_ssl_key_password.get_secret_value()
    return conf


def session_timeout_ms(settings: Settings) -> int:
    return settings.kafka_session_timeout_ms or DEFAULT_SESSION_TIMEOUT_MS


def make_admin(settings: Settings, *, quiet: bool = False) -> AdminClient:
    """An admin client; ``quiet``: librdkafka logs warnings and worse only (at its default level it
    prints an informational line about its background queue, in the middle of the demo's story)."""
    conf = client_config(settings)
    if quiet:
        conf["log_level"] = 4
    return AdminClient(conf)


def make_producer(settings: Settings, **extra: Any) -> Producer:
    """An idempotent producer (acks=all, no reordering on retry) unless ``extra`` says otherwise."""
    conf = client_config(settings)
    conf.update({"enable.idempotence": True, "acks": "all", "linger.ms": 5})
    conf.update(extra)
    return Producer(conf)


def make_consumer(settings: Settings, group_id: str, **extra: Any) -> Consumer:
    """A consumer that commits only what the caller stores (no auto offset store)."""
    conf = client_config(settings)
    conf.update(
        {
            "group.id": group_id,
            "session.timeout.ms": session_timeout_ms(settings),
            "heartbeat.interval.ms": max(500, session_timeout_ms(settings) // 6),
            "auto.offset.reset": "earliest",
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
        }
    )
    conf.update(extra)
    return Consumer(conf)


def check_broker(settings: Settings, timeout: float = 5.0) -> int:
    """Send a real metadata request; return the number of brokers, or raise :class:`ServiceError`."""
    conf = client_config(settings)
    # A failed probe is reported through the exception; librdkafka's own connect errors would
    # otherwise reach stderr later, from its background thread.
    conf["logger"] = _quiet_logger
    admin = AdminClient(conf)
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise ServiceError(
            f"Kafka at {settings.kafka_bootstrap} did not answer a metadata request: {exc}",
            code=str(exc.args[0].code()) if exc.args else None,
        ) from exc
    return len(metadata.brokers)


def describe_topic_ids(admin: AdminClient, topics: list[str], timeout: float = 10.0) -> dict[str, str | None]:
    """The broker's id of each topic (base64, as Kafka prints it); None where the broker gives none."""
    from confluent_kafka import TopicCollection

    found: dict[str, str | None] = dict.fromkeys(topics)
    if not topics:
        return found
    for topic, future in admin.describe_topics(TopicCollection(topics), request_timeout=timeout).items():
        try:
            topic_id = future.result().topic_id
        except KafkaException:
            continue
        text = str(topic_id) if topic_id is not None else ""
        found[topic] = text if text and text != "AAAAAAAAAAAAAAAAAAAAAA" else None  # the zero id: none
    return found
