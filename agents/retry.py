"""Which failures are the infrastructure's (retry the whole batch, later) and which are the handler's.

Pure: classification by exception type only. An infrastructure error means Postgres or Kafka is
unreachable or asked us to try again (connection lost, server shutting down, deadlock,
serialization failure); the batch is retried as it is, without limit. Everything else, a query
cancelled by ``statement_timeout`` included, is the handler's: its event is retried a few times,
then dead-lettered, so one bad event can never stall a partition forever.
"""

from __future__ import annotations

from collections.abc import Iterator

from schemas.errors import RetryableError

# psycopg classes by exact name: their subclasses (QueryCanceled is an OperationalError) are not
# infrastructure errors. Names rather than imports keep this module free of database clients.
_PSYCOPG_INFRA = {
    "OperationalError",  # what psycopg raises when the connection fails or is lost
    "ConnectionTimeout",
    "ConnectionException",
    "ConnectionFailure",
    "SqlclientUnableToEstablishSqlconnection",
    "AdminShutdown",
    "CrashShutdown",
    "CannotConnectNow",
    "DeadlockDetected",
    "SerializationFailure",
}
_SQLALCHEMY_INFRA = {"DisconnectionError", "TimeoutError"}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, what a SQLAlchemy wrapper wraps (``orig``), and its causes."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for inner in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(inner, BaseException):
                todo.append(inner)


def is_infrastructure_error(exc: BaseException) -> bool:
    """True when ``exc`` means the database or broker is unavailable, not that the event is bad."""
    for current in _chain(exc):
        if isinstance(current, RetryableError | ConnectionError | TimeoutError):
            return True
        if getattr(current, "connection_invalidated", False):
            return True
        cls = type(current)
        if cls.__module__.startswith("psycopg") and cls.__name__ in _PSYCOPG_INFRA:
            return True
        if cls.__module__.startswith("sqlalchemy") and cls.__name__ in _SQLALCHEMY_INFRA:
            return True
    return False
