"""The topic catalog: every topic of the contract with its partitions and configs.

Pure data; :mod:`streams.topics` creates them on a broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DRIFT_EVENTS = "drift.events"
DRIFT_WARNING = "drift.warning"
DRIFT_CRITICAL = "drift.critical"
PROCESSED_EVENTS = "vigil.processed-events"
TICKS = "vigil.ticks"
DLQ = "vigil.dlq"
OUTBOX_PREFIX = "vigil.outbox."
CDC_PREFIX = "cdc."

SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """A topic Vigil owns: its name, partition count (None: the default) and configs."""

    name: str
    doc: str
    partitions: int | None = None
    configs: dict[str, str] = field(default_factory=dict)


CATALOG: tuple[TopicSpec, ...] = (
    TopicSpec(DRIFT_EVENTS, "every drift event, before routing"),
    TopicSpec(DRIFT_WARNING, "drift routed to the warning tier (investigation)"),
    TopicSpec(DRIFT_CRITICAL, "drift routed to the critical tier (remediation)"),
    TopicSpec(
        PROCESSED_EVENTS,
        "ledger of processed events, key <agent>/<event_id>; fast dedup path",
        configs={"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
    ),
    TopicSpec(TICKS, "schedule and wakeup ticks", configs={"retention.ms": str(SEVEN_DAYS_MS)}),
    TopicSpec(
        DLQ,
        "dead letters: original bytes, headers naming error and source position",
        configs={"retention.ms": str(THIRTY_DAYS_MS)},
    ),
)


def catalog_names() -> list[str]:
    return [spec.name for spec in CATALOG]


def outbox_topic(aggregatetype: str) -> str:
    """The topic an outbox row of ``aggregatetype`` is relayed to."""
    return f"{OUTBOX_PREFIX}{aggregatetype}"


def cdc_topic(schema: str, table: str) -> str:
    return f"{CDC_PREFIX}{schema}.{table}"
