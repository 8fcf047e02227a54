"""The pure part of ``vigil replay``: ranges, filters, the plan, and what a replayed message becomes.

No Kafka or database client here: :mod:`ops.replay` asks the broker for watermarks and
``offsets_for_times`` answers and hands them to these functions, which decide.

Ranges: a time range is ``[from, to)`` by message timestamp (``offsets_for_times`` finds the offsets;
messages are checked against the times again while reading, because a partition's timestamps need
not be in order). An offset range is inclusive at both ends, per partition.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from schemas.errors import ConfigurationError
from streams import headers as names
from streams.views import MessageParts

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, *, now: datetime) -> datetime:
    """An ISO-8601 time (no zone: UTC), or a relative one before ``now`` such as ``-2h``, ``-30m``, ``-1d``."""
    match = _RELATIVE.match(text.strip())
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ConfigurationError(
            f"time {text!r}: give ISO 8601 (2026-05-01T12:00:00Z) or a relative time like -2h, -30m, -1d"
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def to_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def parse_offsets(text: str | None, partitions: Sequence[int]) -> dict[int, int]:
    """``N`` (every partition) or ``P:N,P:N`` (those partitions) as {partition: offset}."""
    if text is None:
        return {}
    text = text.strip()
    if ":" not in text:
        try:
            return dict.fromkeys(partitions, int(text))
        except ValueError as exc:
            raise ConfigurationError(f"offset {text!r}: give N, or P:N,P:N per partition") from exc
    found: dict[int, int] = {}
    for part in text.split(","):
        p, _, n = part.partition(":")
        try:
            found[int(p)] = int(n)
        except ValueError as exc:
            raise ConfigurationError(f"offset {part!r}: give P:N (partition:offset)") from exc
    unknown = sorted(set(found) - set(partitions))
    if unknown:
        raise ConfigurationError(
            f"partition {unknown[0]} is not a partition of the topic ({list(partitions)})"
        )
    return found


def parse_header_filters(pairs: Sequence[str]) -> dict[str, bytes]:
    """``--header k=v`` options as {name: value bytes}."""
    found: dict[str, bytes] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigurationError(f"--header {pair!r}: give name=value")
        found[name] = value.encode("utf-8")
    return found


@dataclass(frozen=True)
class Filters:
    """Which messages of the range are replayed."""

    key: bytes | None = None
    headers: Mapping[str, bytes] = field(default_factory=dict)
    from_ms: int | None = None
    to_ms: int | None = None

    def matches(self, key: bytes | None, headers: Mapping[str, bytes], timestamp_ms: int | None) -> bool:
        if self.key is not None and key != self.key:
            return False
        if any(headers.get(name) != value for name, value in self.headers.items()):
            return False
        if timestamp_ms is not None:
            if self.from_ms is not None and timestamp_ms < self.from_ms:
                return False
            if self.to_ms is not None and timestamp_ms >= self.to_ms:
                return False
        return True


@dataclass(frozen=True)
class PartitionRange:
    """Offsets ``[start, end)`` of one partition to read."""

    partition: int
    start: int
    end: int

    @property
    def count(self) -> int:
        return max(0, self.end - self.start)


@dataclass(frozen=True)
class Plan:
    topic: str
    ranges: tuple[PartitionRange, ...]

    @property
    def total(self) -> int:
        """Messages in the ranges (an upper bound of what is replayed: filters may drop some)."""
        return sum(r.count for r in self.ranges)

    def reading(self) -> tuple[PartitionRange, ...]:
        return tuple(r for r in self.ranges if r.count > 0)


def plan_by_time(
    topic: str,
    watermarks: Mapping[int, tuple[int, int]],
    starts: Mapping[int, int],
    ends: Mapping[int, int],
) -> Plan:
    """The plan from ``offsets_for_times`` answers (-1: no message at or after that time, i.e. the end)."""
    ranges = []
    for p, (low, high) in sorted(watermarks.items()):
        start = starts.get(p, low)
        end = ends.get(p, high)
        start = high if start < 0 else max(start, low)
        end = high if end < 0 else min(end, high)
        ranges.append(PartitionRange(p, start, max(start, end)))
    return Plan(topic, tuple(ranges))


def plan_by_offsets(
    topic: str,
    watermarks: Mapping[int, tuple[int, int]],
    from_offsets: Mapping[int, int],
    to_offsets: Mapping[int, int],
) -> Plan:
    """The plan of an inclusive offset range per partition, clipped to what the partition holds."""
    ranges = []
    for p, (low, high) in sorted(watermarks.items()):
        start = max(from_offsets.get(p, low), low)
        last = to_offsets.get(p)
        end = high if last is None else min(last + 1, high)
        ranges.append(PartitionRange(p, start, max(start, end)))
    return Plan(topic, tuple(ranges))


def only_partitions(plan: Plan, partitions: Sequence[int]) -> Plan:
    if not partitions:
        return plan
    unknown = sorted(set(partitions) - {r.partition for r in plan.ranges})
    if unknown:
        raise ConfigurationError(
            f"--partition {unknown[0]}: {plan.topic} has partitions 0-{len(plan.ranges) - 1}"
        )
    return Plan(plan.topic, tuple(r for r in plan.ranges if r.partition in partitions))


def new_replay_id() -> str:
    return uuid.uuid4().hex[:16]


def sandbox_headers(headers: Sequence[tuple[str, bytes]], replay_id: str) -> list[tuple[str, bytes]]:
    """The original headers in order, plus ``vigil-replay-id`` (an older replay id is replaced)."""
    return [*((n, v) for n, v in headers if n != names.REPLAY_ID), (names.REPLAY_ID, replay_id.encode())]


def rerun_event_id(event_id: str, replay_id: str) -> str:
    """The id an event runs under in ``--rerun``: new for each replay run, the same within one."""
    return f"{event_id}#replay-{replay_id}"


# -- dead letters ------------------------------------------------------------------------------

#: Headers a dead letter adds to the original's (removed when it is re-driven).
_LETTER_ONLY = frozenset(
    {
        names.ERROR,
        names.ERROR_TYPE,
        names.SOURCE_TOPIC,
        names.SOURCE_PARTITION,
        names.SOURCE_OFFSET,
        names.AGENT,
        names.ATTEMPTS,
        names.VALUE_OMITTED,
    }
)


@dataclass(frozen=True)
class Letter:
    """A dead letter read back: who gave up, and the original message it carries."""

    agent: str | None
    original: MessageParts
    value_omitted: bool


def letter_of(letter: MessageParts) -> Letter | None:
    """The original message inside a dead letter, at its original topic, partition and offset, with its
    original headers: so its event id is the one it failed under. None: not a dead letter."""
    h = letter.headers
    try:
        topic = h[names.SOURCE_TOPIC].decode()
        partition = int(h[names.SOURCE_PARTITION])
        offset = int(h[names.SOURCE_OFFSET])
    except (KeyError, ValueError, UnicodeDecodeError):
        return None
    position = f"{topic}/{partition}/{offset}".encode()
    original = {n: v for n, v in h.items() if n not in _LETTER_ONLY}
    # dead_letter() adds an event id (the position) and a trace id to a message that had none: drop
    # them, so the view derives the original's id (a change event's from its source position).
    if original.get(names.EVENT_ID) == position:
        original.pop(names.EVENT_ID)
    trace = original.get(names.TRACE_ID)
    if trace is not None and trace in (position, original.get(names.EVENT_ID)):
        original.pop(names.TRACE_ID)
    agent = h.get(names.AGENT)
    return Letter(
        agent=agent.decode(errors="replace") if agent is not None else None,
        original=MessageParts(
            topic=topic,
            partition=partition,
            offset=offset,
            key=letter.key,
            value=letter.value,
            headers=original,
            timestamp_ms=letter.timestamp_ms,
        ),
        value_omitted=names.VALUE_OMITTED in h,
    )


def letter_is_for(letter: Letter, agent: str, topics: Sequence[str]) -> bool:
    """Whether ``agent`` should re-drive ``letter``: it gave up on it, or (a letter naming no agent,
    e.g. poison) it came from one of the agent's topics."""
    if letter.agent is not None:
        return letter.agent == agent
    return letter.original.topic in topics
