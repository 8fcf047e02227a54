"""``vigil inspect tail TOPIC``: print a topic's messages, decoded, from the beginning or the last N.

Values are decoded by trying, in order: Avro single-object encoding (Vigil's records, every kept
version), the Confluent wire format (when a schema registry is configured; Debezium's Avro too),
JSON (Debezium's default; its ``{"schema", "payload"}`` envelope is unwrapped to the payload),
UTF-8 text, and otherwise the bytes in base64.

A partition counts as read to the end when no message has arrived for an idle period after
assignment and its position has reached the (re-queried) high watermark. Transaction markers take
offsets no consumer sees, so a position can stay behind the watermark with nothing to arrive: a
longer idle period ends the read as well. With ``--limit N`` the read starts N before the
watermark (with ``--key``, at the beginning) and keeps the last N messages per partition in a
buffer.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TextIO

from confluent_kafka import OFFSET_END, Consumer, KafkaError, Message, TopicPartition
from rich.console import Console
from rich.text import Text

from schemas.codec import Codec
from schemas.errors import ConfigurationError, DecodeError, RetryableError, ServiceError
from streams.kafka import make_consumer
from streams.settings import Settings

#: No message for this long (and positions at the watermark) means caught up.
IDLE_SECONDS = 1.0
#: No message for this long means caught up even if positions stay behind the watermark.
STALL_SECONDS = 5.0
METADATA_TIMEOUT = 10.0


@dataclass(frozen=True)
class DecodedValue:
    """A message value made displayable: how it was read and a JSON-safe value."""

    format: str
    value: object


@dataclass(frozen=True)
class TailedMessage:
    topic: str
    partition: int
    offset: int
    timestamp: dt.datetime | None
    key: object
    headers: list[tuple[str, object]]
    value: DecodedValue

    def as_json(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": None if self.timestamp is None else self.timestamp.isoformat(),
            "key": self.key,
            "headers": dict(self.headers),
            "value": self.value.value,
            "format": self.value.format,
        }


def jsonable(value: Any) -> Any:
    """A decoded Avro value with datetimes, bytes, decimals and UUIDs turned into JSON types."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return display_bytes(value)
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    return value


def display_bytes(data: bytes) -> object:
    """UTF-8 text as a string; anything else as ``{"base64": ...}``."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _base64(data)


def _base64(data: bytes) -> dict[str, str]:
    return {"base64": base64.b64encode(data).decode("ascii")}


def _debezium_payload(value: object) -> object | None:
    """The payload of Debezium's JsonConverter envelope (``schemas.enable=true``), else None."""
    if isinstance(value, dict) and set(value) == {"schema", "payload"}:
        payload: object = value["payload"]
        return payload
    return None


def decode_value(data: bytes | None, codec: Codec) -> DecodedValue:
    """Decode one message value for display; never raises for bad bytes."""
    if data is None:
        return DecodedValue("null", None)
    if data[:2] == b"\xc3\x01" or (data[:1] == b"\x00" and codec.registry is not None):
        try:
            decoded = codec.decode(data)
        except DecodeError as exc:
            return DecodedValue(f"undecodable ({exc.reason})", _base64(data))
        except RetryableError as exc:  # the registry is down: show the bytes, keep tailing
            return DecodedValue(f"not decoded ({exc})", _base64(data))
        return DecodedValue(f"avro:{decoded.name}", jsonable(decoded.record))
    try:
        parsed = json.loads(data)
    except ValueError:
        pass
    else:
        payload = _debezium_payload(parsed)
        if payload is not None:
            return DecodedValue("debezium-json", payload)
        return DecodedValue("json", parsed)
    if data[:1] == b"\x00" and len(data) >= 5:
        schema_id = int.from_bytes(data[1:5], "big")
        return DecodedValue(
            f"confluent-avro (schema id {schema_id}; set VIGIL_SCHEMA_REGISTRY_URL to decode)",
            _base64(data),
        )
    shown = display_bytes(data)
    return DecodedValue("text" if isinstance(shown, str) else "bytes", shown)


def tailed(msg: Message, codec: Codec) -> TailedMessage:
    """A consumed message, decoded for display."""
    kind, millis = msg.timestamp()
    timestamp = None if kind == 0 or millis < 0 else dt.datetime.fromtimestamp(millis / 1000, dt.UTC)
    raw_key = msg.key()
    headers = msg.headers() or []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return TailedMessage(
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        timestamp=timestamp,
        key=None if raw_key is None else display_bytes(_bytes(raw_key)),
        headers=[(name, None if v is None else display_bytes(_bytes(v))) for name, v in pairs],
        value=decode_value(None if msg.value() is None else _bytes(msg.value()), codec),
    )


def _bytes(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value if isinstance(value, bytes) else value.encode("utf-8")


def human_line(message: TailedMessage) -> Text:
    text = Text()
    text.append(f"{message.topic}[{message.partition}]@{message.offset}", style="bold")
    if message.timestamp is not None:
        text.append(f" {message.timestamp.isoformat(timespec='milliseconds')}", style="dim")
    text.append(f" key={json.dumps(message.key, ensure_ascii=False)}", style="cyan")
    if message.headers:
        text.append(f" headers={json.dumps(dict(message.headers), ensure_ascii=False)}", style="dim")
    text.append(f" {message.value.format}: ", style="magenta")
    text.append(json.dumps(message.value.value, ensure_ascii=False, default=str))
    return text


class _Printer:
    def __init__(
        self,
        console: Console,
        as_json: bool,
        out: TextIO | None,
        on_message: Callable[[TailedMessage], None] | None = None,
    ) -> None:
        self.console = console
        self.as_json = as_json
        self.out = out
        self.on_message = on_message
        self.count = 0

    def __call__(self, message: TailedMessage) -> None:
        self.count += 1
        if self.on_message is not None:
            self.on_message(message)
        elif self.as_json:
            out = self.out or sys.stdout
            out.write(json.dumps(message.as_json(), ensure_ascii=False, default=str) + "\n")
            out.flush()
        else:
            self.console.print(human_line(message), soft_wrap=True)


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=METADATA_TIMEOUT)
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        raise ConfigurationError(f"topic {topic!r} does not exist; `vigil inspect topics` lists the topics")
    return sorted(info.partitions)


def _watermarks(consumer: Consumer, topic: str, partitions: Sequence[int]) -> dict[int, tuple[int, int]]:
    marks = {}
    for p in partitions:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, p), timeout=METADATA_TIMEOUT, cached=False
        )
        marks[p] = (low, high)
    return marks


def start_offsets(
    watermarks: Mapping[int, tuple[int, int]], limit: int | None, *, filtering: bool
) -> dict[int, int]:
    """Where to start each partition: the beginning, or N before the reported end.

    With a key filter the last N *matching* messages may lie anywhere, so reading starts at the beginning.
    """
    if limit is None or filtering:
        return {p: low for p, (low, _) in watermarks.items()}
    return {p: max(low, high - limit) for p, (low, high) in watermarks.items()}


def caught_up(positions: Mapping[int, int], watermarks: Mapping[int, tuple[int, int]]) -> bool:
    """Whether every partition's position has reached its reported high watermark."""
    return all(positions.get(p, low) >= high for p, (low, high) in watermarks.items())


def tail(
    settings: Settings,
    console: Console,
    topic: str,
    *,
    follow: bool,
    key: str | None,
    limit: int | None,
    as_json: bool,
    idle_seconds: float = IDLE_SECONDS,
    stall_seconds: float = STALL_SECONDS,
    should_stop: Callable[[], bool] | None = None,
    out: TextIO | None = None,
    on_message: Callable[[TailedMessage], None] | None = None,
) -> int:
    """Print ``topic``'s messages decoded; return how many were printed.

    Exits when caught up (see the module doc) unless ``follow``; ``should_stop`` lets an embedding
    caller end a follow. JSON lines go to ``out`` (default stdout), one object per message;
    ``on_message``, when given, receives each message instead (the dashboard's topic browser).
    """
    if limit is not None and limit < 0:
        raise ConfigurationError("--limit must be zero or more")
    codec = Codec.from_registry_url(settings.schema_registry_url)
    printer = _Printer(console, as_json, out, on_message)
    wanted_key = None if key is None else key.encode("utf-8")
    consumer = make_consumer(
        settings,
        f"vigil-tail-{uuid.uuid4().hex[:12]}",
        **{"enable.auto.commit": False, "enable.partition.eof": False},
    )
    try:
        partitions = _partitions(consumer, topic)
        watermarks = _watermarks(consumer, topic, partitions)
        starts = start_offsets(watermarks, limit, filtering=wanted_key is not None)
        if limit == 0 and not follow:
            return 0
        consumer.assign(
            [TopicPartition(topic, p, OFFSET_END if limit == 0 else starts[p]) for p in partitions]
        )
        buffers: dict[int, deque[TailedMessage]] | None = (
            {p: deque(maxlen=limit) for p in partitions} if limit else None
        )
        positions: dict[int, int] = dict(starts)
        done_reading = False
        last_activity = time.monotonic()
        while not (should_stop is not None and should_stop()):
            msg = consumer.poll(0.2)
            now = time.monotonic()
            if msg is None:
                if done_reading or now - last_activity < idle_seconds:
                    continue
                watermarks = _watermarks(consumer, topic, partitions)
                if caught_up(positions, watermarks) or now - last_activity >= stall_seconds:
                    done_reading = True
                    if buffers is not None:
                        for p in partitions:
                            for message in buffers[p]:
                                printer(message)
                        buffers = None
                    if not follow:
                        break
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise ServiceError(f"reading {topic}: {error.str()}", code=str(error.code()))
            last_activity = now
            partition, offset = msg.partition(), msg.offset()
            if partition is not None and offset is not None:
                positions[partition] = offset + 1
            if wanted_key is not None and msg.key() != wanted_key:
                continue
            message = tailed(msg, codec)
            if buffers is not None:
                buffers[message.partition].append(message)
            else:
                printer(message)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    if not as_json and on_message is None:
        console.print(f"[dim]{printer.count} message(s) from {topic}[/]")
    return printer.count
