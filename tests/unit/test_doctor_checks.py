"""vigil doctor's pure checks: facts in, problems naming their fix out."""

from __future__ import annotations

from streams.doctor_checks import (
    KafkaFacts,
    PostgresFacts,
    Slot,
    check_kafka,
    check_postgres,
)

GOOD_PG = PostgresFacts(
    wal_level="logical",
    max_replication_slots=20,
    max_wal_senders=20,
    slots=(),
    max_slot_wal_keep_size_mb=1024,
)
GOOD_KAFKA = KafkaFacts(
    processed_cleanup_policy="compact",
    retention_ms={"drift.events": -1},
    offsets_for_times_ok=True,
    clock_skew_s=0.2,
)
WEEK_S = 7 * 86400.0


def test_a_good_setup_has_no_problems() -> None:
    assert check_postgres(GOOD_PG) == []
    assert check_kafka(GOOD_KAFKA, dedup_window_s=WEEK_S) == []


def test_wal_level_replica_is_named_with_its_fix() -> None:
    problems = check_postgres(
        PostgresFacts(wal_level="replica", max_replication_slots=10, max_wal_senders=10)
    )
    assert len(problems) == 1
    assert "wal_level is replica" in problems[0].message and "wal_level = logical" in problems[0].fix


def test_no_free_slots_and_inactive_slots_retaining_wal() -> None:
    slots = (Slot("a", True, 0), Slot("demo", False, 3 << 30))
    facts = PostgresFacts(wal_level="logical", max_replication_slots=2, max_wal_senders=10, slots=slots)
    messages = [str(p) for p in check_postgres(facts)]
    assert any("0 free replication slot" in m for m in messages)
    assert any(
        "inactive replication slot demo retains 3.2 GB" in m and "pg_drop_replication_slot" in m
        for m in messages
    )
    assert any("max_slot_wal_keep_size is unlimited" in m for m in messages)


def test_kafka_problems() -> None:
    facts = KafkaFacts(
        processed_cleanup_policy="delete",
        retention_ms={"cdc.public.orders": 86_400_000, "drift.events": 30 * 86_400_000},
        offsets_for_times_ok=False,
        clock_skew_s=-12.0,
    )
    messages = [str(p) for p in check_kafka(facts, dedup_window_s=WEEK_S)]
    assert len(messages) == 4
    assert "cleanup.policy=compact" in messages[0]
    assert any("cdc.public.orders keeps messages 1.0 days" in m for m in messages)
    assert any("offsets-for-times" in m for m in messages)
    assert any("-12.0s" in m and "NTP" in m for m in messages)
    missing = check_kafka(KafkaFacts(processed_cleanup_policy=None), dedup_window_s=WEEK_S)
    assert "missing" in missing[0].message
