"""``ops.migrations.HEAD`` is the head Alembic reads from the scripts (a new migration moves both)."""

from __future__ import annotations

import pytest

from ops import migrations

pytestmark = pytest.mark.timeout(30)


def test_head_is_alembics_head() -> None:
    assert migrations.head_revision() == migrations.HEAD
