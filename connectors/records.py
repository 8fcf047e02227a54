"""From a Debezium record to the Kafka message Vigil sends, with its event id. Pure: no I/O clients.

An event id is stable across redelivery and restarts because it is derived from the record's
source position, never from when or how often it was delivered:

- a streamed change: ``cdc:<connector>:<lsn>:<schema>.<table>:<key digest>``;
- a snapshot row (whose LSN is the snapshot's, shared by all rows):
  ``cdc:<connector>:snapshot:<schema>.<table>:<key digest>``;
- the tombstone after a delete: the delete's id with ``:tombstone``;
- an outbox event (Outbox Event Router): the outbox row's ``id``, which the router puts in the
  ``id`` header, so a consumer's dedup key is the id the agent wrote;
- anything else (Debezium heartbeats): a digest of destination, key and value.

The trace id of a change starts here, derived from the event id (so a redelivery carries the same
trace), unless the record already carries ``vigil-trace-id`` (an outbox row written by an agent).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streams import headers
from streams.catalog import OUTBOX_PREFIX
from streams.eventids import cdc_event_id, is_snapshot, key_digest

EVENT_ID_HEADER = headers.EVENT_ID
TRACE_ID_HEADER = headers.TRACE_ID
#: The header in which the Outbox Event Router puts the outbox row's id.
OUTBOX_ID_HEADER = "id"
_MAX_PENDING_DELETES = 10_000


def trace_id_for(event_id: str) -> str:
    """A W3C-sized (32 hex) trace id derived from the event id."""
    return hashlib.sha256(f"trace:{event_id}".encode()).hexdigest()[:32]


def envelope(value: Any) -> Mapping[str, Any] | None:
    """The change envelope of a decoded value, with or without the JSON converter's schema wrapper."""
    if isinstance(value, Mapping) and "payload" in value and "schema" in value:
        value = value["payload"]
    if isinstance(value, Mapping) and isinstance(value.get("source"), Mapping):
        return value
    return None


def decode_header_value(raw: str | None) -> str | None:
    """A header value as Kafka Connect's SimpleHeaderConverter would write it (strings unquoted)."""
    if raw is None:
        return None
    try:
        decoded = json.loads(raw)
    except ValueError:
        return raw
    if decoded is None:
        return None
    return decoded if isinstance(decoded, str) else raw


@dataclass(frozen=True)
class RawRecord:
    """A record as the embedded engine hands it over: JSON strings and converted headers."""

    destination: str
    key: str | None
    value: str | None
    headers: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class OutgoingMessage:
    """What is produced to Kafka for one record."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]
    event_id: str
    #: When the change happened at the source (``source.ts_ms``), if known.
    source_ts_ms: int | None = None


class EventIds:
    """Assigns event ids to one connector's records in order (a tombstone follows its delete)."""

    def __init__(self, connector: str, *, string_keys: bool = False) -> None:
        self.connector = connector
        # Kafka Connect's StringConverter for keys: a JSON string key is written unquoted.
        self.string_keys = string_keys
        self._pending_deletes: dict[tuple[str, str | None], str] = {}

    def message(self, record: RawRecord) -> OutgoingMessage:
        headers = [(name, decode_header_value(raw)) for name, raw in record.headers]
        present = {name: value for name, value in headers if value is not None}
        event_id, source_ts = self._event_id(record, present)
        trace_id = present.get(TRACE_ID_HEADER) or trace_id_for(event_id)
        out: list[tuple[str, str | bytes | None]] = [
            (name, value.encode())
            for name, value in headers
            if value is not None and name not in (EVENT_ID_HEADER, TRACE_ID_HEADER)
        ]
        out.append((EVENT_ID_HEADER, present.get(EVENT_ID_HEADER, event_id).encode()))
        out.append((TRACE_ID_HEADER, trace_id.encode()))
        return OutgoingMessage(
            topic=record.destination,
            key=self._key_bytes(record.key),
            value=record.value.encode() if record.value is not None else None,
            headers=out,
            event_id=present.get(EVENT_ID_HEADER, event_id),
            source_ts_ms=source_ts,
        )

    def _key_bytes(self, key: str | None) -> bytes | None:
        if key is None:
            return None
        if self.string_keys and key.startswith('"'):
            decoded = _loads(key)
            if isinstance(decoded, str):
                return decoded.encode()
        return key.encode()

    def messages(self, records: Iterable[RawRecord]) -> list[OutgoingMessage]:
        return [self.message(r) for r in records]

    def _event_id(self, record: RawRecord, headers: Mapping[str, str]) -> tuple[str, int | None]:
        if record.destination.startswith(OUTBOX_PREFIX) and OUTBOX_ID_HEADER in headers:
            return headers[OUTBOX_ID_HEADER], None
        if record.value is None:
            pending = self._pending_deletes.pop((record.destination, record.key), None)
            if pending is not None:
                return f"{pending}:tombstone", None
            return f"cdc:{self.connector}:tombstone:{record.destination}:{key_digest(record.key)}", None
        change = _change_fields(record.value)
        if change is None:
            digest = hashlib.sha256(
                f"{record.destination}\0{record.key}\0{record.value}".encode()
            ).hexdigest()
            return f"cdc:{self.connector}:{record.destination}:{digest[:16]}", None
        source, op = change
        lsn = source.get("lsn")
        event_id = cdc_event_id(
            self.connector,
            str(source.get("schema", "")),
            str(source.get("table", "")),
            record.key,
            lsn=int(lsn) if isinstance(lsn, int | str) and str(lsn).isdigit() else None,
            snapshot=is_snapshot(source.get("snapshot")),
        )
        if op == "d":
            if len(self._pending_deletes) >= _MAX_PENDING_DELETES:
                self._pending_deletes.clear()
            self._pending_deletes[(record.destination, record.key)] = event_id
        ts = source.get("ts_ms")
        return event_id, ts if isinstance(ts, int) else None


_decoder = json.JSONDecoder()
_SOURCE = '"source":{'
_OP = re.compile(r'"op":"(\w)"')


def _change_fields(value: str) -> tuple[Mapping[str, Any], str | None] | None:
    """``source`` and ``op`` of a change envelope, without decoding the row images.

    The envelope's ``source`` follows ``before`` and ``after``, and a row value cannot contain the
    unescaped text ``"source":{``, so its last occurrence is the envelope's. Anything else (a
    schema-wrapped value, an unexpected layout) is decoded in full.
    """
    at = value.rfind(_SOURCE)
    if at >= 0:
        try:
            source, end = _decoder.raw_decode(value, at + len(_SOURCE) - 1)
        except ValueError:
            source = None
        if isinstance(source, dict):
            match = _OP.search(value, end)
            return source, match.group(1) if match else None
    change = envelope(_loads(value))
    if change is None:
        return None
    op = change.get("op")
    return change["source"], op if isinstance(op, str) else None


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
