"""The Faust app, configured from the one settings object."""

from __future__ import annotations

import ssl
from typing import Any

import faust

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


def make_app(settings: Settings, app_id: str) -> faust.App:
    """A Faust app for Vigil's agents: no web server, in-memory tables, the settings' Kafka."""
    brokers = [f"kafka://{host.strip()}" for host in settings.require_bootstrap().split(",") if host.strip()]
    timeout_s = session_timeout_ms(settings) / 1000
    return faust.App(
        app_id,
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
