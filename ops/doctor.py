"""Facts for ``vigil doctor``: read from the Postgres and the Kafka Vigil points at, then judged by
the pure checks in :mod:`streams.doctor_checks`."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from confluent_kafka import TopicPartition
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._resource import ResourceType

from connectors.database import SLOTS_SQL
from streams.catalog import CATALOG, PROCESSED_EVENTS
from streams.doctor_checks import KafkaFacts, PostgresFacts, Slot
from streams.kafka import make_admin, make_consumer
from streams.settings import Settings


def postgres_facts(url: str) -> PostgresFacts:
    with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:

        def setting(name: str) -> str:
            row = conn.execute(f"SHOW {name}").fetchone()  # names are constants of this module
            return str(row[0]) if row else ""

        keep = setting("max_slot_wal_keep_size")
        slots = [
            Slot(str(r[0]), bool(r[3]), None if r[4] is None else int(r[4])) for r in conn.execute(SLOTS_SQL)
        ]
        return PostgresFacts(
            wal_level=setting("wal_level"),
            max_replication_slots=int(setting("max_replication_slots")),
            max_wal_senders=int(setting("max_wal_senders")),
            slots=slots,
            max_slot_wal_keep_size_mb=_megabytes(keep),
        )


def _megabytes(value: str) -> int:
    """``-1``, ``1GB``, ``512MB``, ``1024kB`` as megabytes (-1: unlimited)."""
    value = value.strip()
    if value.startswith("-"):
        return -1
    units = {"kB": 1 / 1024, "MB": 1, "GB": 1024, "TB": 1024 * 1024}
    for unit, factor in units.items():
        if value.endswith(unit):
            return int(float(value[: -len(unit)]) * factor)
    return int(value)


def kafka_facts(settings: Settings) -> KafkaFacts:
    admin = make_admin(settings)
    names = [spec.name for spec in CATALOG]
    existing = set(admin.list_topics(timeout=10).topics)
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names if name in existing]
    configs: dict[str, dict[str, Any]] = {}
    for resource, future in admin.describe_configs(resources).items() if resources else []:
        entries = future.result(timeout=10)
        configs[resource.name] = {key: entry.value for key, entry in entries.items()}
    policy = configs.get(PROCESSED_EVENTS, {}).get("cleanup.policy") if PROCESSED_EVENTS in existing else None
    retention = {
        name: int(config.get("retention.ms") or -1)
        for name, config in configs.items()
        if name != PROCESSED_EVENTS and "compact" not in str(config.get("cleanup.policy", ""))
    }
    return KafkaFacts(
        processed_cleanup_policy=policy,
        retention_ms=retention,
        offsets_for_times_ok=_offsets_for_times_ok(settings, PROCESSED_EVENTS) if policy else None,
    )


def _offsets_for_times_ok(settings: Settings, topic: str) -> bool | None:
    """Ask for the first offset after an hour from now: a working broker answers "none" (-1) on a
    partition with messages; one that ignores the time answers an offset."""
    consumer = make_consumer(settings, f"vigil-doctor-{time.time_ns()}", **{"enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        future_ms = int((time.time() + 3600) * 1000)
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                found = consumer.offsets_for_times([TopicPartition(topic, partition, future_ms)], timeout=10)
                return found[0].error is None and found[0].offset < 0
        return None  # no messages: nothing to judge by
    finally:
        consumer.close()
