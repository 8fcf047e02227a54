"""Creates the catalog's topics on a broker, idempotently."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.cimpl import NewTopic

from schemas.errors import ServiceError
from streams.catalog import CATALOG, TopicSpec
from streams.kafka import make_admin
from streams.settings import Settings

log = logging.getLogger(__name__)


def ensure_topics(
    settings: Settings, specs: Iterable[TopicSpec] = CATALOG, timeout: float = 15.0
) -> list[str]:
    """Create the topics that do not exist yet; return the names created. Existing ones are left as they are."""
    admin = make_admin(settings)
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [spec for spec in specs if spec.name not in existing]
    if not wanted:
        return []
    new_topics = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions or settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            config=dict(spec.configs),
        )
        for spec in wanted
    ]
    created: list[str] = []
    for name, future in admin.create_topics(new_topics, request_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            error = exc.args[0]
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise ServiceError(f"could not create topic {name}: {error}", code=str(error)) from exc
    if created:
        log.info("created topics: %s", ", ".join(created))
    return created
