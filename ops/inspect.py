"""``vigil inspect topics|groups|get``: what is on the broker, who reads it and how far behind, one message.

Reading only: offsets are read with a consumer that is assigned, never subscribed, and never commits
(a group's committed offsets are read with ``list_consumer_group_offsets``, not by joining it).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from rich.console import Console
from rich.markup import escape

from ops.output import print_json, print_table
from ops.tail import tailed
from schemas.codec import Codec
from schemas.errors import ConfigurationError, ServiceError
from streams.kafka import make_admin, make_consumer
from streams.settings import Settings

TIMEOUT = 10.0
#: Topic configs shown by ``inspect topics``.
SHOWN_CONFIGS = ("cleanup.policy", "retention.ms", "retention.bytes", "min.insync.replicas")


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    #: Per partition: (earliest offset, end offset).
    offsets: dict[int, tuple[int, int]]
    configs: dict[str, str]

    @property
    def messages(self) -> int:
        """Messages the topic holds now (offsets between the watermarks; compaction may leave gaps)."""
        return sum(high - low for low, high in self.offsets.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "topic": self.name,
            "partitions": self.partitions,
            "messages": self.messages,
            "offsets": {str(p): {"earliest": lo, "end": hi} for p, (lo, hi) in sorted(self.offsets.items())},
            "configs": self.configs,
        }


def topic_infos(settings: Settings, *, internal: bool = False) -> list[TopicInfo]:
    admin = make_admin(settings)
    metadata = admin.list_topics(timeout=TIMEOUT)
    names = sorted(n for n in metadata.topics if internal or not n.startswith("__"))
    configs = _configs(admin, names)
    consumer = make_consumer(
        settings, f"vigil-inspect-{uuid.uuid4().hex[:12]}", **{"enable.auto.commit": False}
    )
    try:
        infos = []
        for name in names:
            parts = sorted(metadata.topics[name].partitions)
            offsets = {
                p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout=TIMEOUT, cached=False)
                for p in parts
            }
            infos.append(TopicInfo(name, len(parts), offsets, configs.get(name, {})))
        return infos
    finally:
        consumer.close()


def _configs(admin: AdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    if not names:
        return found
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, n) for n in names])
    for resource, future in futures.items():
        try:
            entries = future.result(timeout=TIMEOUT)
        except KafkaException:
            continue
        found[resource.name] = {k: str(v.value) for k, v in entries.items() if k in SHOWN_CONFIGS}
    return found


def show_topics(settings: Settings, console: Console, *, as_json: bool) -> None:
    infos = topic_infos(settings)
    if as_json:
        print_json([info.as_json() for info in infos])
        return
    rows = [
        [
            escape(i.name),
            str(i.partitions),
            str(i.messages),
            " ".join(f"{p}:{lo}-{hi}" for p, (lo, hi) in sorted(i.offsets.items())),
            escape(" ".join(f"{k}={v}" for k, v in sorted(i.configs.items()))),
        ]
        for i in infos
    ]
    print_table(
        console,
        f"Topics on {settings.kafka_bootstrap}",
        ["topic", "partitions", "messages", "offsets (partition:earliest-end)", "configs"],
        rows,
    )


@dataclass(frozen=True)
class GroupInfo:
    group: str
    state: str
    members: list[dict[str, Any]]
    #: (topic, partition) -> (committed offset or None, end offset, lag)
    lag: dict[tuple[str, int], tuple[int | None, int, int]]

    def as_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "state": self.state,
            "members": self.members,
            "partitions": [
                {"topic": t, "partition": p, "committed": c, "end": e, "lag": lag}
                for (t, p), (c, e, lag) in sorted(self.lag.items())
            ],
            "lag": sum(lag for _, _, lag in self.lag.values()),
        }


def group_infos(settings: Settings, only: str | None = None) -> list[GroupInfo]:
    admin = make_admin(settings)
    if only is not None:
        ids = [only]
    else:
        listed = admin.list_consumer_groups(request_timeout=TIMEOUT).result()
        ids = sorted(g.group_id for g in listed.valid)
    if not ids:
        return []
    described = admin.describe_consumer_groups(ids, request_timeout=TIMEOUT)
    consumer = make_consumer(
        settings, f"vigil-inspect-{uuid.uuid4().hex[:12]}", **{"enable.auto.commit": False}
    )
    infos = []
    try:
        for group_id in ids:
            try:
                desc = described[group_id].result()
            except KafkaException as exc:
                raise ServiceError(f"describing group {group_id}: {exc}") from exc
            members = [
                {
                    "member": m.member_id,
                    "client": m.client_id,
                    "host": m.host,
                    "partitions": [
                        f"{tp.topic}/{tp.partition}" for tp in (m.assignment.topic_partitions or [])
                    ]
                    if m.assignment
                    else [],
                }
                for m in desc.members
            ]
            offsets = admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group_id)], request_timeout=TIMEOUT
            )[group_id].result()
            lag: dict[tuple[str, int], tuple[int | None, int, int]] = {}
            for tp in offsets.topic_partitions or []:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), timeout=TIMEOUT, cached=False
                )
                committed = tp.offset if tp.offset >= 0 else None
                lag[(tp.topic, tp.partition)] = (committed, high, max(0, high - max(committed or low, low)))
            infos.append(GroupInfo(group_id, str(desc.state.name).lower(), members, lag))
    finally:
        consumer.close()
    return infos


def show_groups(settings: Settings, console: Console, group: str | None, *, as_json: bool) -> None:
    infos = group_infos(settings, group)
    if as_json:
        print_json([info.as_json() for info in infos])
        return
    rows = []
    for info in infos:
        assigned = {part: m["client"] for m in info.members for part in m["partitions"]}
        if not info.lag:
            rows.append([escape(info.group), info.state, str(len(info.members)), "-", "-", "-", "-"])
        for (topic, p), (committed, end, lag) in sorted(info.lag.items()):
            rows.append(
                [
                    escape(info.group),
                    info.state,
                    str(len(info.members)),
                    escape(f"{topic}/{p}"),
                    "-" if committed is None else str(committed),
                    f"{end} (lag {lag})",
                    escape(assigned.get(f"{topic}/{p}", "-")),
                ]
            )
    print_table(
        console,
        "Consumer groups",
        ["group", "state", "members", "partition", "committed", "end", "assigned to"],
        rows,
    )


def get_message(settings: Settings, topic: str, partition: int, offset: int) -> dict[str, Any]:
    """The message at ``topic``/``partition``/``offset``, decoded, with its headers."""
    codec = Codec.from_registry_url(settings.schema_registry_url)
    consumer = make_consumer(
        settings, f"vigil-inspect-{uuid.uuid4().hex[:12]}", **{"enable.auto.commit": False}
    )
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=TIMEOUT, cached=False
        )
        if not low <= offset < high:
            raise ConfigurationError(
                f"{topic}/{partition} holds offsets {low} to {high - 1}; there is no offset {offset} "
                "(`vigil inspect topics` shows each partition's range)"
            )
        consumer.assign([TopicPartition(topic, partition, offset)])
        msg = consumer.poll(TIMEOUT)
        if msg is None or msg.error() is not None:
            raise ServiceError(f"reading {topic}/{partition}@{offset}: {msg.error() if msg else 'no answer'}")
        if msg.offset() != offset:
            raise ConfigurationError(
                f"offset {offset} of {topic}/{partition} holds no message (compacted away, or a "
                f"transaction marker); the next one is {msg.offset()}"
            )
        return tailed(msg, codec).as_json()
    finally:
        consumer.close()


def show_message(settings: Settings, topic: str, partition: int, offset: int) -> None:
    print(
        json.dumps(get_message(settings, topic, partition, offset), indent=2, ensure_ascii=False, default=str)
    )
