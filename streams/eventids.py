"""Stable event ids of change events, from their source position. Pure.

A CDC event's id comes from (connector, LSN, table, key); a snapshot row's from (connector,
``snapshot``, table, key). The embedded bridge puts it in ``vigil-event-id``; a change event that
arrives without that header (written by Kafka Connect) gets the same shape of id from its payload,
with Debezium's logical server name (``source.name``, the topic prefix) in the connector's place.
Either way the id survives redelivery, so the unit of work deduplicates it.
"""

from __future__ import annotations

import hashlib


def key_digest(key: str | None) -> str:
    """A short, stable digest of a record key's serialized form."""
    return hashlib.sha256((key or "").encode()).hexdigest()[:16]


def is_snapshot(flag: object) -> bool:
    """Debezium's ``source.snapshot``: ``"false"`` while streaming; true/first/last/incremental… in a snapshot."""
    if isinstance(flag, bool):
        return flag
    return flag is not None and str(flag).lower() != "false"


def cdc_event_id(
    connector: str, schema: str, table: str, key: str | None, *, lsn: int | None, snapshot: bool
) -> str:
    position = "snapshot" if snapshot or lsn is None else str(lsn)
    return f"cdc:{connector}:{position}:{schema}.{table}:{key_digest(key)}"
