"""Which failures are the infrastructure's (retry the whole batch, later) and which are the handler's.

Pure: classification by exception type only.
"""

from __future__ import annotations

from schemas.errors import RetryableError

# Names rather than imports keep this module free of database clients.
_INFRA_NAMES = {
    # SQLAlchemy
    "OperationalError",
    "InterfaceError",
    "DisconnectionError",
    "TimeoutError",
    # psycopg
    "ConnectionTimeout",
    "DeadlockDetected",
    "SerializationFailure",
    "AdminShutdown",
    "CannotConnectNow",
    "ConnectionException",
}


def is_infrastructure_error(exc: BaseException) -> bool:
    """True when ``exc`` (or what it wraps) means the database or broker is unavailable, not a bad event."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RetryableError | ConnectionError | OSError):
            return True
        if any(cls.__name__ in _INFRA_NAMES for cls in type(current).__mro__):
            return True
        if getattr(current, "connection_invalidated", False):
            return True
        current = current.__cause__ or current.__context__
    return False
