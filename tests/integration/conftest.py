"""Fixtures of the integration tests."""

from tests.integration.http_receiver import receiver

__all__ = ["receiver"]
