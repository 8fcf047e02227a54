"""What a sink is: a named thing that performs one outbox event's external effect.

A sink makes one attempt per call. The runner (:mod:`agents.sinks.runner`) does the bookkeeping in
``vigil.deliveries``, the retries with backoff and the dead-lettering, the same for every sink.
``deliver`` raises :class:`DeliveryRetryableError` (or any :class:`RetryableError`) for a failure
that may pass, :class:`DeliveryRejectedError` (a :class:`PoisonError`) for one that will not.
"""

from __future__ import annotations

from typing import Protocol

from agents.outbox_mapping import OutboxEvent
from schemas.errors import PoisonError, RetryableError


class DeliveryRetryableError(RetryableError):
    """The receiver did not take it this time; ``retry_after`` is its hint in seconds, if any."""

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class DeliveryRejectedError(PoisonError):
    """The receiver refused it for good (e.g. HTTP 400): retrying would not help; dead-letter it."""


class Sink(Protocol):
    """Performs the external effect of one outbox event, idempotently by ``event.id``."""

    @property
    def name(self) -> str:
        """Stable name; with the outbox id it keys ``vigil.deliveries``. Renaming re-delivers."""
        ...

    def deliver(self, event: OutboxEvent, attempt: int) -> None:
        """One attempt. ``attempt`` > 1 means an earlier one may have happened without being recorded."""
        ...

    def close(self) -> None: ...
