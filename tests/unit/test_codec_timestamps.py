"""The fast timestamp-micros reader gives exactly fastavro's value. No I/O."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.timestamps import FAST_TIMESTAMP_MICROS, read_timestamp_micros, with_fast_timestamps

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MIN_MICROS = (dt.datetime(1, 1, 1, tzinfo=dt.UTC) - EPOCH) // dt.timedelta(microseconds=1)
MAX_MICROS = (dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC) - EPOCH) // dt.timedelta(
    microseconds=1
)


def exact(micros: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=micros)


@settings(max_examples=300)
@given(st.integers(MIN_MICROS, MAX_MICROS))
def test_fast_reader_is_exact_everywhere(micros: int) -> None:
    assert read_timestamp_micros(micros) == exact(micros)


@settings(max_examples=300)
@given(st.integers(-(2**52) + 1, 2**52 - 1))
def test_fast_reader_is_exact_on_the_float_path(micros: int) -> None:
    assert read_timestamp_micros(micros) == exact(micros)


@pytest.mark.parametrize(
    "micros",
    [
        0,
        1,
        -1,
        499_999,
        500_000,
        500_001,
        999_999,
        -500_000,
        2**52 - 1,
        -(2**52) + 1,
        2**52,
        -(2**52),
        1715938215123456,
    ],
)
def test_fast_reader_boundaries(micros: int) -> None:
    value = read_timestamp_micros(micros)
    assert value == exact(micros)
    assert value.tzinfo is dt.UTC


def test_only_timestamp_micros_is_renamed() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "a", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "b", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
        ],
    }
    fast = with_fast_timestamps(schema)
    assert fast["fields"][0]["type"]["logicalType"] == FAST_TIMESTAMP_MICROS
    assert fast["fields"][1]["type"][1]["logicalType"] == "timestamp-millis"
    assert schema["fields"][0]["type"]["logicalType"] == "timestamp-micros"  # not mutated
