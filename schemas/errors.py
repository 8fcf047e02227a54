"""The root of Vigil's exception tree.

Every error Vigil raises on purpose derives from :class:`VigilError`. The type decides what
happens next: a :class:`RetryableError` is retried with backoff, a :class:`PoisonError` sends
the message to the dead-letter topic, a :class:`ConfigurationError` stops with a message that
names the fix. Library errors are wrapped, keeping their code in ``code``.
"""

from __future__ import annotations


class VigilError(Exception):
    """Base of every error Vigil raises on purpose."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message if self.code is None else f"{self.message} [{self.code}]"


class ConfigurationError(VigilError):
    """Something the user must change: a setting, a missing package, a wrong address."""


class ServiceError(VigilError):
    """An embedded or external service could not be started, reached or stopped."""


class RetryableError(VigilError):
    """A transient failure: the operation may succeed if tried again later."""


class PoisonError(VigilError):
    """A message that can never be processed; it belongs in the dead-letter topic."""


class NotLandedError(VigilError):
    """A contract command whose implementation has not landed yet."""


class DecodeError(PoisonError):
    """Bytes that are not a record Vigil can read; ``reason`` says why (for the dead letter)."""

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(f"cannot decode message: {reason}", code=code)
        self.reason = reason


class EncodeError(VigilError):
    """A record that does not match its schema (a bug in the producing code, not poison)."""


class OutputError(VigilError):
    """Output a handler asked for that can never be written (a payload JSON cannot hold, a topic
    name Kafka refuses, a message over the size limit): the event's failure, never the worker's."""


class HandlerContractError(VigilError):
    """A handler did something the unit of work owns (committing or rolling back its transaction)."""


class IngestRejected(VigilError):
    """An HTTP ingest request refused: ``status`` is the HTTP status to answer, the message the reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
