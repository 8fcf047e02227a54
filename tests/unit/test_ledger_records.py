"""A batch's ledger records, put together from bytes, are what the codec makes of each: no broker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import Codec
from streams import ledger_records
from streams.ledger_records import SCHEMA, Processed, encode_processed, installation_tail

ROWS = [
    Processed("e-1", "5f0c2b1e-0000-4000-8000-000000000001", "succeeded", "orders", 0, 0),
    Processed("é/ünïcode \u2028", "", "review", "cdc.public.orders", 2, 2**40),
    Processed("x" * 300, "r", "dead_lettered", "orders", 2**31 - 1, 2**63 - 1),
    Processed("e-4", "r4", "succeeded", "t" * 200, 1, 127),
]


def _each_by_the_codec(codec: Codec, at: datetime, rows: list[Processed]) -> list[bytes]:
    return [
        codec.encode(
            SCHEMA,
            {
                "agent": "agent-1",
                "event_id": r.event_id,
                "run_id": r.run_id,
                "status": r.status,
                "processed_at": at,
                "source_topic": r.topic,
                "source_partition": r.partition,
                "source_offset": r.offset,
                "installation": "inst",
            },
        )
        for r in rows
    ]


@pytest.mark.parametrize("registry", [None, "mock://ledger-records"])
@pytest.mark.parametrize(
    "at", [datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC), datetime(1969, 12, 31, 23, 59, tzinfo=UTC)]
)
def test_a_batch_is_encoded_as_the_codec_encodes_each_record(registry: str | None, at: datetime) -> None:
    codec = Codec.from_registry_url(registry)
    for rows in (ROWS, ROWS[1:], ROWS[:1]):
        assert encode_processed(codec, "agent-1", "inst", at, rows) == _each_by_the_codec(codec, at, rows)
    assert encode_processed(codec, "agent-1", "inst", at, []) == []
    decoded = codec.decode(encode_processed(codec, "agent-1", "inst", at, ROWS)[2]).record
    assert (decoded["event_id"], decoded["status"], decoded["source_offset"]) == (
        "x" * 300,
        "dead_lettered",
        2**63 - 1,
    )


@pytest.mark.parametrize("registry", [None, "mock://ledger-records-tail"])
def test_every_value_ends_with_its_databases_tail_and_no_other(registry: str | None) -> None:
    """The ledger reader trusts a record by these bytes alone: a schema that moved the field from
    the end would make the reader trust nothing (safe, but slow), and this test says so first."""
    codec = Codec.from_registry_url(registry)
    at = datetime(2026, 11, 30, tzinfo=UTC)
    ours = "0f8e4b7c-1d2a-4e5f-9a8b-7c6d5e4f3a2b"
    for value in [*encode_processed(codec, "agent-1", ours, at, ROWS), *_each_by_the_codec(codec, at, ROWS)]:
        if ours in value.decode("latin-1"):
            assert value.endswith(installation_tail(ours))
    for other in ("", "inst", "0f8e4b7c-1d2a-4e5f-9a8b-7c6d5e4f3a2c", ours[1:]):
        for value in encode_processed(codec, "agent-1", other, at, ROWS):
            assert not value.endswith(installation_tail(ours))


@given(
    st.one_of(
        st.integers(-(2**63), 2**63 - 1),
        st.integers(0, 2**28),
        st.sampled_from([63, 64, 2**13, 2**20, 2**26, 2**27]),
    )
)
def test_long_is_the_zigzag_varint_of_any_long(n: int) -> None:
    assert ledger_records._long(n) == ledger_records._varint(n)
