"""The suite's table of long test files names files that exist (a renamed file would silently lose
its place at the front of the run)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import LONG_FILES


def test_every_long_file_exists() -> None:
    integration = Path(__file__).parents[1] / "integration"
    assert [name for name in LONG_FILES if not (integration / name).is_file()] == []


def test_the_table_is_longest_first() -> None:
    seconds = list(LONG_FILES.values())
    assert seconds == sorted(seconds, reverse=True)
