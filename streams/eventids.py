"""Stable event ids of change events, from their source position. Pure.

A CDC event's id comes from (connector, LSN, table, key); a snapshot row's from (connector,
``snapshot`` and a digest of the row's content, table, key). The embedded bridge puts it in ``vigil-event-id``; a change event that
arrives without that header (written by Kafka Connect) gets the same shape of id from its payload,
with Debezium's logical server name (``source.name``, the topic prefix) in the connector's place.
Either way the id survives redelivery, so the unit of work deduplicates it.
"""

from __future__ import annotations

import hashlib
import json


def key_digest(key: str | None) -> str:
    """A short, stable digest of a record key's serialized form."""
    return hashlib.sha256((key or "").encode()).hexdigest()[:16]


def is_snapshot(flag: object) -> bool:
    """Debezium's ``source.snapshot``: ``"false"`` while streaming; true/first/last/incremental… in a snapshot."""
    if isinstance(flag, bool):
        return flag
    return flag is not None and str(flag).lower() != "false"


def content_digest(row: object) -> str:
    """A short, stable digest of a row's content (its JSON with sorted keys)."""
    text = json.dumps(row, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cdc_event_id(
    connector: str,
    schema: str,
    table: str,
    key: str | None,
    *,
    lsn: int | None,
    snapshot: bool,
    content: object = None,
) -> str:
    """The id of a change event. A snapshot row has no LSN of its own: its id is made of the row's key
    and a digest of its ``content``, so a re-snapshot of an unchanged row deduplicates against the
    first snapshot, and a row that changed in between does not."""
    if snapshot or lsn is None:
        position = "snapshot" if content is None else f"snapshot-{content_digest(content)}"
    else:
        position = str(lsn)
    return f"cdc:{connector}:{position}:{schema}.{table}:{key_digest(key)}"


def offset_event_id(topic: str, partition: int, offset: int, topic_id: str | None = None) -> str:
    """The id of a message that carries none: its position. With the broker's topic id, a topic that
    was deleted and created again does not give its new messages the ids of old ones."""
    name = topic if topic_id is None else f"{topic}@{topic_id}"
    return f"{name}/{partition}/{offset}"
