"""The values of a batch's ``vigil.processed-events`` records, encoded once per batch, not per event.

Every processed event gets a ``ProcessedEvent`` record. Encoding each through the codec (fastavro)
cost about 10 µs an event in the worker's profile, most of it spent on fields every record of a
batch shares (agent, commit time, installation, source topic). Here those are encoded once and each
record is put together from bytes: Avro's binary encoding is a plain concatenation of its fields
(strings and longs as zigzag varints, an enum as its index).

The first record of every batch is also encoded by the codec and must come out byte for byte the
same, which gives the frame's header (single-object or Confluent) too. If it does not (the schema
changed and this module did not), every record of the batch is encoded by the codec instead.

Pure: imports no Kafka client.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from schemas.codec import Codec

log = logging.getLogger(__name__)

SCHEMA = "ProcessedEvent"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Processed(NamedTuple):
    """What differs between the records of one batch (a tuple: one is made per event)."""

    event_id: str
    run_id: str
    status: str
    topic: str
    partition: int
    offset: int


def _varint(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


#: The one-byte encodings (0 to 63): string lengths, partitions, statuses are almost always these.
_SMALL = tuple(_varint(n) for n in range(64))


def _long(n: int) -> bytes:
    """An Avro int or long: zigzag, then a little-endian base-128 varint."""
    if 0 <= n < 64:
        return _SMALL[n]
    if 0 < n < 1 << 27:  # offsets, mostly: 2 to 4 bytes, unrolled (the loop costs ~3x as much)
        z = n << 1
        if z < 1 << 14:
            return bytes((z & 0x7F | 0x80, z >> 7))
        if z < 1 << 21:
            return bytes((z & 0x7F | 0x80, z >> 7 & 0x7F | 0x80, z >> 14))
        return bytes((z & 0x7F | 0x80, z >> 7 & 0x7F | 0x80, z >> 14 & 0x7F | 0x80, z >> 21))
    return _varint(n)


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    n = len(data)
    return (_SMALL[n] if n < 64 else _varint(n)) + data


def ledger_key(agent: str, event_id: str) -> bytes:
    """The key of ``event_id``'s record for ``agent`` in ``vigil.processed-events`` (``<agent>/<event id>``,
    UTF-8): the topic is compacted by it, and the worker's table of processed events holds its digest."""
    return f"{agent}/{event_id}".encode("utf-8", "surrogatepass")


def installation_tail(installation: str) -> bytes:
    """The last bytes of every ``ProcessedEvent`` value committed in ``installation``'s database:
    its last field, the installation id, as an Avro string. A reader tells its own database's
    records by them without decoding the value (a record of an older schema, or of another
    database, does not end so and is not trusted: Postgres answers for it)."""
    return _string(installation)


def _micros(at: datetime) -> int:
    """``timestamp-micros`` as fastavro computes it (exact, no float)."""
    delta = at - _EPOCH if at.tzinfo is not None else at - _EPOCH.replace(tzinfo=None)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _statuses(codec: Codec) -> dict[str, bytes]:
    """Each status symbol's encoded index, in the schema's own order."""
    for schema_field in codec.schemas.get(SCHEMA).raw["fields"]:
        if schema_field["name"] == "status":
            return {symbol: _long(i) for i, symbol in enumerate(schema_field["type"]["symbols"])}
    return {}


def _record(agent: str, installation: str, at: datetime, row: Processed) -> dict[str, Any]:
    return {
        "agent": agent,
        "event_id": row.event_id,
        "run_id": row.run_id,
        "status": row.status,
        "processed_at": at,
        "source_topic": row.topic,
        "source_partition": row.partition,
        "source_offset": row.offset,
        "installation": installation,
    }


def encode_processed(
    codec: Codec, agent: str, installation: str, at: datetime, rows: Sequence[Processed]
) -> list[bytes]:
    """The framed ``ProcessedEvent`` values of ``rows``, as ``codec.encode`` would make each."""
    if not rows:
        return []
    first = codec.encode(SCHEMA, _record(agent, installation, at, rows[0]))
    shared_agent = _string(agent)
    shared_tail = _string(installation)
    shared_at = _long(_micros(at))
    statuses = _statuses(codec)
    #: The source topic and partition's bytes, made once per batch for each.
    positions: dict[tuple[str, int], bytes] = {}

    def body(row: Processed) -> bytes:
        position = positions.get((row.topic, row.partition))
        if position is None:
            position = positions[(row.topic, row.partition)] = _string(row.topic) + _long(row.partition)
        return b"".join(
            (
                shared_agent,
                _string(row.event_id),
                _string(row.run_id),
                statuses[row.status],
                shared_at,
                position,
                _long(row.offset),
                shared_tail,
            )
        )

    try:
        first_body = body(rows[0])
    except KeyError:  # a status the schema does not know: the codec says why
        first_body = b"\x00" * (len(first) + 1)
    if len(first_body) > len(first) or not first.endswith(first_body):
        log.warning("ledger records: %s changed; encoding each record with the codec", SCHEMA)
        return [first, *(codec.encode(SCHEMA, _record(agent, installation, at, r)) for r in rows[1:])]
    header = first[: len(first) - len(first_body)]
    return [first, *(header + body(row) for row in rows[1:])]
