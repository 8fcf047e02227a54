"""The stack Vigil runs against: external services named by ``VIGIL_*``, or the embedded ones.

:func:`resolve` turns the user's settings into settings with a concrete database URL, Kafka
bootstrap and Kafka Connect URL, starting the embedded Postgres, Apache Kafka and Kafka Connect
where nothing external is configured (in that order: Connect keeps its state in Kafka).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from ops.services.connect import EmbeddedConnect, connect_health
from ops.services.kafka import EmbeddedKafka
from ops.services.postgres import EmbeddedPostgres, check_database
from ops.services.registry import EmbeddedRegistry, registry_health
from schemas.errors import VigilError
from streams.kafka import check_broker
from streams.settings import Settings


def embedded_postgres(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.home / "postgres")


def embedded_kafka(settings: Settings) -> EmbeddedKafka:
    return EmbeddedKafka(settings.home / "kafka")


def embedded_connect(settings: Settings) -> EmbeddedConnect:
    return EmbeddedConnect(settings.home / "connect")


def embedded_registry(settings: Settings) -> EmbeddedRegistry:
    return EmbeddedRegistry(settings.home / "registry")


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


def _with_embedded(
    settings: Settings,
    database_url: str | None,
    bootstrap: str | None,
    connect_url: str | None,
    registry_url: str | None = None,
) -> Settings:
    update: dict[str, object] = {}
    if registry_url is not None:
        update["schema_registry_url"] = registry_url
    if database_url is not None:
        update["database_url"] = database_url
    if bootstrap is not None:
        update["kafka_bootstrap"] = bootstrap
    if connect_url is not None:
        update["connect_url"] = connect_url
    return settings.model_copy(update=update)


def up(settings: Settings, *, connect: bool = False, times: dict[str, float] | None = None) -> Settings:
    """Start whatever embedded service is needed (idempotent); return settings pointing at the stack.

    The embedded Kafka Connect (and the embedded schema registry, when it is asked for) is started
    only with ``connect=True`` (``services up``, ``vigil up``, the connector commands): a worker or
    a sink needs no Connect, and uses the registry if it runs.
    ``times``, if given, receives each started service's start-to-ready seconds.
    """
    timings: dict[str, float] = {} if times is None else times
    database_url = bootstrap = connect_url = None
    if settings.uses_embedded_postgres:
        started = time.monotonic()
        database_url = embedded_postgres(settings).start().url
        timings["postgres"] = time.monotonic() - started
    if settings.uses_embedded_broker:
        started = time.monotonic()
        bootstrap = embedded_kafka(settings).start().bootstrap
        timings["kafka"] = time.monotonic() - started
    if connect and settings.uses_embedded_connect:
        started = time.monotonic()
        resolved_bootstrap = bootstrap or settings.require_bootstrap()
        connect_url = embedded_connect(settings).start(resolved_bootstrap).url
        timings["connect"] = time.monotonic() - started
    registry_url = None
    if settings.uses_embedded_registry:
        registry = embedded_registry(settings)
        if connect:
            started = time.monotonic()
            registry_url = registry.start().url
            timings["schema registry"] = time.monotonic() - started
        elif registry.status().running:
            registry_url = registry.status().url
    return _with_embedded(settings, database_url, bootstrap, connect_url, registry_url)


def attach(settings: Settings) -> Settings:
    """Settings pointing at the running stack, without starting anything."""
    database_url = embedded_postgres(settings).status().url if settings.uses_embedded_postgres else None
    bootstrap = embedded_kafka(settings).status().bootstrap if settings.uses_embedded_broker else None
    connect_url = embedded_connect(settings).status().url if settings.uses_embedded_connect else None
    registry_url = embedded_registry(settings).status().url if settings.uses_embedded_registry else None
    return _with_embedded(settings, database_url, bootstrap, connect_url, registry_url)


def down(settings: Settings) -> list[str]:
    """Stop only what Vigil started, Connect first; return the names of the services stopped."""
    stopped = []
    if settings.uses_embedded_registry and embedded_registry(settings).stop():
        stopped.append("schema registry")
    if settings.uses_embedded_connect and embedded_connect(settings).stop():
        stopped.append("connect")
    if settings.uses_embedded_broker and embedded_kafka(settings).stop():
        stopped.append("kafka")
    if settings.uses_embedded_postgres and embedded_postgres(settings).stop():
        stopped.append("postgres")
    return stopped


def status(settings: Settings) -> list[ServiceHealth]:
    """Health of the database, the broker, Kafka Connect and (if one is used) the schema registry."""
    healths = [_postgres_health(settings), _kafka_health(settings), _connect_health(settings)]
    if settings.uses_embedded_registry or settings.schema_registry_url is not None:
        healths.append(_registry_health(settings))
    return healths


def _health(
    name: str,
    embedded: tuple[str | None, bool] | None,
    external_url: str | None,
    probe: Callable[[str], str],
) -> ServiceHealth:
    """One service's health: ``embedded`` is (url, running) of Vigil's own process, None when the
    service is external; ``probe`` asks the service itself and says what it found."""
    if embedded is not None:
        url, running = embedded
        if not running:
            return ServiceHealth(name, True, url, False, False, "not running (vigil services up)")
    else:
        url, running = external_url, True
    assert url is not None
    try:
        detail = probe(url)
    except VigilError as exc:
        return ServiceHealth(name, embedded is not None, url, running, False, str(exc))
    return ServiceHealth(name, embedded is not None, url, running, True, detail)


def _registry_health(settings: Settings) -> ServiceHealth:
    own = embedded_registry(settings).status() if settings.uses_embedded_registry else None
    return _health(
        "schema registry",
        (own.url, own.running) if own is not None else None,
        settings.schema_registry_url,
        lambda url: f"{registry_health(url)} subject(s)",
    )


def _postgres_health(settings: Settings) -> ServiceHealth:
    own = embedded_postgres(settings).status() if settings.uses_embedded_postgres else None
    return _health(
        "postgres",
        (own.url, own.running) if own is not None else None,
        settings.database_url,
        lambda url: f"wal_level={check_database(url)}",
    )


def _kafka_health(settings: Settings) -> ServiceHealth:
    own = embedded_kafka(settings).status() if settings.uses_embedded_broker else None

    def probe(bootstrap: str) -> str:
        brokers = check_broker(settings.model_copy(update={"kafka_bootstrap": bootstrap}), timeout=3.0)
        return f"{brokers} broker(s)"

    return _health(
        "kafka", (own.bootstrap, own.running) if own is not None else None, settings.kafka_bootstrap, probe
    )


def _connect_health(settings: Settings) -> ServiceHealth:
    own = embedded_connect(settings).status() if settings.uses_embedded_connect else None
    return _health(
        "connect",
        (own.url, own.running) if own is not None else None,
        settings.connect_url,
        lambda url: f"Kafka Connect {connect_health(url)}, Debezium Postgres",
    )
