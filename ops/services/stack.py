"""The stack Vigil runs against: external services named by ``VIGIL_*``, or the embedded ones.

:func:`resolve` turns the user's settings into settings with a concrete database URL and Kafka
bootstrap, starting the embedded Postgres and broker where nothing external is configured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ops.services.broker import EmbeddedBroker
from ops.services.postgres import EmbeddedPostgres, check_database
from schemas.errors import VigilError
from streams.kafka import check_broker
from streams.settings import EMBEDDED_SESSION_TIMEOUT_MS, Settings


def embedded_postgres(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.home / "postgres")


def embedded_broker(settings: Settings) -> EmbeddedBroker:
    return EmbeddedBroker(settings.home / "broker")


@dataclass(frozen=True)
class ServiceHealth:
    name: str
    embedded: bool
    url: str | None
    running: bool
    healthy: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _with_embedded_defaults(settings: Settings, database_url: str | None, bootstrap: str | None) -> Settings:
    update: dict[str, object] = {}
    if database_url is not None:
        update["database_url"] = database_url
    if bootstrap is not None:
        update["kafka_bootstrap"] = bootstrap
        if settings.kafka_session_timeout_ms is None:
            update["kafka_session_timeout_ms"] = EMBEDDED_SESSION_TIMEOUT_MS
    return settings.model_copy(update=update)


def up(settings: Settings) -> Settings:
    """Start whatever embedded service is needed (idempotent); return settings pointing at the stack."""
    database_url = None
    bootstrap = None
    if settings.uses_embedded_postgres:
        database_url = embedded_postgres(settings).start().url
    if settings.uses_embedded_broker:
        bootstrap = embedded_broker(settings).start().bootstrap
    return _with_embedded_defaults(settings, database_url, bootstrap)


def attach(settings: Settings) -> Settings:
    """Settings pointing at the running stack, without starting anything."""
    database_url = embedded_postgres(settings).status().url if settings.uses_embedded_postgres else None
    bootstrap = embedded_broker(settings).status().bootstrap if settings.uses_embedded_broker else None
    return _with_embedded_defaults(settings, database_url, bootstrap)


def down(settings: Settings) -> list[str]:
    """Stop only what Vigil started; return the names of the services stopped."""
    stopped = []
    if settings.uses_embedded_broker and embedded_broker(settings).stop():
        stopped.append("broker")
    if settings.uses_embedded_postgres and embedded_postgres(settings).stop():
        stopped.append("postgres")
    return stopped


def status(settings: Settings) -> list[ServiceHealth]:
    """Health of the database and the broker, embedded or external."""
    return [_postgres_health(settings), _broker_health(settings)]


def _postgres_health(settings: Settings) -> ServiceHealth:
    embedded = settings.uses_embedded_postgres
    if embedded:
        pg = embedded_postgres(settings).status()
        url, running = pg.url, pg.running
        if not running:
            return ServiceHealth("postgres", True, url, False, False, "not running (vigil services up)")
    else:
        url, running = settings.database_url, True
    assert url is not None
    try:
        wal_level = check_database(url)
    except VigilError as exc:
        return ServiceHealth("postgres", embedded, url, running, False, str(exc))
    return ServiceHealth("postgres", embedded, url, running, True, f"wal_level={wal_level}")


def _broker_health(settings: Settings) -> ServiceHealth:
    embedded = settings.uses_embedded_broker
    if embedded:
        broker = embedded_broker(settings).status()
        bootstrap, running = broker.bootstrap, broker.running
        if not running:
            return ServiceHealth("kafka", True, bootstrap, False, False, "not running (vigil services up)")
    else:
        bootstrap, running = settings.kafka_bootstrap, True
    assert bootstrap is not None
    try:
        brokers = check_broker(settings.model_copy(update={"kafka_bootstrap": bootstrap}), timeout=3.0)
    except VigilError as exc:
        return ServiceHealth("kafka", embedded, bootstrap, running, False, str(exc))
    return ServiceHealth("kafka", embedded, bootstrap, running, True, f"{brokers} broker(s)")
