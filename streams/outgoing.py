"""A message to produce, as a value: what :mod:`streams.produce` sends and pure code (the outbox
mapping) builds without importing a Kafka client."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Outgoing:
    """One message to produce; ``tag`` says whose it is (returned with a refusal)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] = ()
    tag: Hashable = None
