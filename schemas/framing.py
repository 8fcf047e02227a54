"""The two byte framings of an Avro message, and the CRC-64-AVRO fingerprint. Pure: bytes in, bytes out.

- Avro single-object encoding (used when no schema registry is configured): ``C3 01``, the
  writer schema's 8-byte little-endian CRC-64-AVRO fingerprint, then the Avro binary body.
- Confluent wire format (used with a registry): magic byte ``0``, the 4-byte big-endian schema id,
  then the body.

The first byte tells them apart (``0xC3`` vs ``0x00``), so a reader accepts both.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.errors import DecodeError

SINGLE_OBJECT_MARKER = b"\xc3\x01"
SINGLE_OBJECT_HEADER_SIZE = len(SINGLE_OBJECT_MARKER) + 8
CONFLUENT_MAGIC = b"\x00"
CONFLUENT_HEADER_SIZE = len(CONFLUENT_MAGIC) + 4

_CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The Rabin fingerprint the Avro specification calls CRC-64-AVRO, as an unsigned 64-bit int."""
    fp = _CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


def schema_fingerprint(canonical_form: str) -> int:
    """Fingerprint of a schema, given its Parsing Canonical Form."""
    return crc64_avro(canonical_form.encode("utf-8"))


@dataclass(frozen=True)
class SingleObjectFrame:
    fingerprint: int
    body: bytes


@dataclass(frozen=True)
class ConfluentFrame:
    schema_id: int
    body: bytes


Frame = SingleObjectFrame | ConfluentFrame


def frame_single_object(fingerprint: int, body: bytes) -> bytes:
    return SINGLE_OBJECT_MARKER + fingerprint.to_bytes(8, "little") + body


def frame_confluent(schema_id: int, body: bytes) -> bytes:
    if not 0 <= schema_id < 2**32:
        raise ValueError(f"schema id {schema_id} does not fit the 4-byte Confluent header")
    return CONFLUENT_MAGIC + schema_id.to_bytes(4, "big") + body


def parse_frame(data: bytes) -> Frame:
    """Split ``data`` into its framing header and body; :class:`DecodeError` when it has neither framing."""
    if data[:2] == SINGLE_OBJECT_MARKER:
        if len(data) < SINGLE_OBJECT_HEADER_SIZE:
            raise DecodeError(
                f"truncated single-object header ({len(data)} bytes, need {SINGLE_OBJECT_HEADER_SIZE})"
            )
        fingerprint = int.from_bytes(data[2:SINGLE_OBJECT_HEADER_SIZE], "little")
        return SingleObjectFrame(fingerprint, data[SINGLE_OBJECT_HEADER_SIZE:])
    if data[:1] == CONFLUENT_MAGIC:
        if len(data) < CONFLUENT_HEADER_SIZE:
            raise DecodeError(
                f"truncated Confluent wire header ({len(data)} bytes, need {CONFLUENT_HEADER_SIZE})"
            )
        return ConfluentFrame(
            int.from_bytes(data[1:CONFLUENT_HEADER_SIZE], "big"), data[CONFLUENT_HEADER_SIZE:]
        )
    if not data:
        raise DecodeError("empty message")
    raise DecodeError(
        f"not Avro: starts with {data[:2].hex()!r}, expected c301 (single-object) or 00 (Confluent wire format)"
    )
