"""Fixtures of the integration tests."""

import pytest

from tests.integration.http_receiver import receiver

__all__ = ["delivery", "receiver"]

#: Each test taking the ``delivery`` fixture runs once per way events reach agents.
DELIVERIES = ("faust", "batch")


@pytest.fixture(params=DELIVERIES)
def delivery(request: pytest.FixtureRequest) -> str:
    return str(request.param)
