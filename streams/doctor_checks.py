"""``vigil doctor``'s checks, pure: facts gathered from Postgres and Kafka in, problems out, each
naming its fix. No I/O (``ops/commands.py`` gathers the facts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

#: An inactive slot retaining more than this is a problem (not only a status warning).
RETAINED_WAL_LIMIT_BYTES = 1 << 30
#: Clock skew between this client and the broker that breaks time-based lookups and latencies.
MAX_CLOCK_SKEW_S = 5.0


@dataclass(frozen=True)
class Problem:
    part: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.part}: {self.message}; fix: {self.fix}"


@dataclass(frozen=True)
class Slot:
    name: str
    active: bool
    retained_wal_bytes: int | None


@dataclass(frozen=True)
class PostgresFacts:
    wal_level: str
    max_replication_slots: int
    max_wal_senders: int
    slots: Sequence[Slot] = ()
    #: ``max_slot_wal_keep_size`` in MB; -1: unlimited (Postgres's default).
    max_slot_wal_keep_size_mb: int = -1


@dataclass(frozen=True)
class KafkaFacts:
    #: ``cleanup.policy`` of ``vigil.processed-events`` (None: the topic is missing).
    processed_cleanup_policy: str | None
    #: ``retention.ms`` of the topics agents read (-1: forever).
    retention_ms: Mapping[str, int] = field(default_factory=dict)
    #: Whether an offsets-for-times lookup gave a usable answer (None: not tried).
    offsets_for_times_ok: bool | None = None
    #: Broker clock minus this client's clock, in seconds (None: not measured).
    clock_skew_s: float | None = None


def check_postgres(facts: PostgresFacts, *, slots_needed: int = 2) -> list[Problem]:
    problems: list[Problem] = []
    if facts.wal_level != "logical":
        problems.append(
            Problem(
                "postgres",
                f"wal_level is {facts.wal_level}: Debezium cannot decode changes",
                "set wal_level = logical in postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart",
            )
        )
    free = facts.max_replication_slots - len(facts.slots)
    if free < slots_needed:
        problems.append(
            Problem(
                "postgres",
                f"{free} free replication slot(s) of {facts.max_replication_slots}; the connectors need {slots_needed}",
                "raise max_replication_slots (and max_wal_senders) and restart, or drop unused slots",
            )
        )
    if facts.max_wal_senders < slots_needed:
        problems.append(
            Problem(
                "postgres",
                f"max_wal_senders is {facts.max_wal_senders}",
                f"set max_wal_senders to at least {slots_needed} and restart",
            )
        )
    for slot in facts.slots:
        retained = slot.retained_wal_bytes or 0
        if not slot.active and retained > RETAINED_WAL_LIMIT_BYTES:
            problems.append(
                Problem(
                    "postgres",
                    f"inactive replication slot {slot.name} retains {retained / 1e9:.1f} GB of WAL",
                    f"drop it if its connector is gone: SELECT pg_drop_replication_slot('{slot.name}') "
                    "(or `vigil connectors remove`), else restart the connector",
                )
            )
    if facts.max_slot_wal_keep_size_mb < 0 and facts.slots:
        problems.append(
            Problem(
                "postgres",
                "max_slot_wal_keep_size is unlimited: a stalled slot can fill the disk with WAL",
                "set max_slot_wal_keep_size (e.g. 1GB or more than a day of WAL) and reload",
            )
        )
    return problems


def check_kafka(facts: KafkaFacts, *, dedup_window_s: float) -> list[Problem]:
    problems: list[Problem] = []
    if facts.processed_cleanup_policy is None:
        problems.append(
            Problem(
                "kafka",
                "topic vigil.processed-events is missing",
                "run `vigil worker` once (it creates topics)",
            )
        )
    elif "compact" not in facts.processed_cleanup_policy:
        problems.append(
            Problem(
                "kafka",
                f"vigil.processed-events has cleanup.policy={facts.processed_cleanup_policy}, not compact",
                "kafka-configs --alter --entity-type topics --entity-name vigil.processed-events "
                "--add-config cleanup.policy=compact",
            )
        )
    for topic, retention in sorted(facts.retention_ms.items()):
        if 0 <= retention < dedup_window_s * 1000:
            problems.append(
                Problem(
                    "kafka",
                    f"{topic} keeps messages {retention / 86_400_000:.1f} days, less than the dedup window "
                    f"({dedup_window_s / 86400:.1f} days): a replay past its retention cannot be deduplicated "
                    "and a redelivery inside the window can be lost",
                    f"raise retention.ms of {topic}, or lower VIGIL_PROCESSED_RETENTION_DAYS",
                )
            )
    if facts.offsets_for_times_ok is False:
        problems.append(
            Problem(
                "kafka",
                "offsets-for-times lookups do not work: `vigil replay --from/--to` cannot find a time range",
                "use a broker that implements ListOffsets by timestamp (Apache Kafka), or replay by offsets",
            )
        )
    if facts.clock_skew_s is not None and abs(facts.clock_skew_s) > MAX_CLOCK_SKEW_S:
        problems.append(
            Problem(
                "kafka",
                f"the broker's clock and this machine's differ by {facts.clock_skew_s:+.1f}s",
                "run NTP (chrony, systemd-timesyncd) on both machines",
            )
        )
    return problems
