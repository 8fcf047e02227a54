"""COPY text of a batch, run ids and times (agents.copy_text): pure, no database."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.copy_text import copy_text, random_uuids, text_array, timestamp_text

_UNESCAPE = {"\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t"}


def parse(text: str) -> list[list[str | None]]:
    """Read COPY text back as Postgres does (only the escapes copy_text writes)."""
    assert text.endswith("\n")
    rows: list[list[str | None]] = []
    for line in text[:-1].split("\n"):
        values: list[str | None] = []
        for field in line.split("\t"):
            if field == "\\N":
                values.append(None)
            else:
                values.append(re.sub(r"\\[\\nrt]", lambda m: _UNESCAPE[m.group(0)], field))
        rows.append(values)
    return rows


def test_plain_rows_are_joined_as_they_are() -> None:
    rows = [("a", "b", None), ("c", "d", "e")]
    assert copy_text(rows, 3) == "a\tb\t\\N\nc\td\te\n"


@pytest.mark.parametrize(
    "value",
    [
        "back\\slash",
        "new\nline",
        "carriage\rreturn",
        "a\ttab",
        "\\N",
        "\\",
        '{"k":"quote \\" and \\\\ in json"}',
        "ends with backslash\\",
        "",
        "é ünïcode ✓",
    ],
)
def test_special_values_come_back_as_they_were(value: str) -> None:
    rows = [("1", value, None), (value, "2", value)]
    text = copy_text(rows, 3)
    assert text is not None
    assert parse(text) == [list(r) for r in rows]


def test_a_value_with_nul_is_left_to_psycopg() -> None:
    assert copy_text([("a", "b\x00c")], 2) is None


def test_no_rows() -> None:
    assert copy_text([], 3) == ""


def test_timestamp_text_matches_datetime() -> None:
    for ns in (0, 1_764_525_005_123_456_789, 1_764_525_059_999_999_999, 1_764_525_060_000_000_000):
        at = datetime.fromtimestamp(ns // 1000 / 1e6, UTC).replace(microsecond=ns // 1000 % 1_000_000)
        expected = at.strftime("%Y-%m-%d %H:%M:%S.%f") + "+00"
        assert timestamp_text(ns) == expected
    # a second formatted before is not reused for another second
    assert timestamp_text(60_000_000_000) == "1970-01-01 00:01:00.000000+00"
    assert timestamp_text(59_999_999_999) == "1970-01-01 00:00:59.999999+00"
    assert timestamp_text(59_000_000_000) == "1970-01-01 00:00:59.000000+00"


@given(st.integers(min_value=0, max_value=4_000_000_000_000_000_000))
def test_timestamp_text_is_datetimes_text_for_any_time(ns: int) -> None:
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)
    assert timestamp_text(ns) == at.strftime("%Y-%m-%d %H:%M:%S.%f") + "+00"


def test_random_uuids_are_version_4() -> None:
    ids = random_uuids(1000)
    assert len(set(ids)) == 1000
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
    assert random_uuids(0) == []


def parse_array(literal: str) -> list[str]:
    """Read a one-dimensional ``text[]`` literal of quoted elements back as Postgres does."""
    assert literal[0] == "{" and literal[-1] == "}"
    values: list[str] = []
    body, i = literal[1:-1], 0
    while i < len(body):
        assert body[i] == '"', literal
        i += 1
        value: list[str] = []
        while body[i] != '"':
            if body[i] == "\\":
                i += 1
            value.append(body[i])
            i += 1
        values.append("".join(value))
        i += 1
        if i < len(body):
            assert body[i] == ",", literal
            i += 1
    return values


def test_text_array_quotes_every_element() -> None:
    assert text_array(["a", "b c", "NULL", "x,y", "{z}"]) == '{"a","b c","NULL","x,y","{z}"}'
    assert text_array([]) == "{}"


@pytest.mark.parametrize("value", ['say "hi"', "back\\slash", '\\"', '"', "\\", "", "é ✓"])
def test_text_array_escapes_quotes_and_backslashes(value: str) -> None:
    values = ["plain", value, "after"]
    assert parse_array(text_array(values)) == values


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\x00")), min_size=1))
def test_text_array_reads_back_as_the_values(values: list[str]) -> None:
    assert parse_array(text_array(values)) == values
