"""The one settings object: every ``VIGIL_*`` variable of the contract, typed and documented.

Read from the environment (prefix ``VIGIL_``) and, below it in priority, from an optional
``vigil.toml`` in the working directory (or the file named by ``VIGIL_CONFIG``). Built once by
:func:`load_settings`; everything else receives it as an argument. Nothing else reads the
environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from schemas.errors import ConfigurationError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]

DEFAULT_SESSION_TIMEOUT_MS = 45000


class Settings(BaseSettings):
    """Vigil's configuration. Field names map to ``VIGIL_<NAME>`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="VIGIL_",
        extra="ignore",
        frozen=True,
        toml_file="vigil.toml",
    )

    home: Path = Field(Path(".vigil"), description="State directory (embedded services, logs).")
    database_url: str | None = Field(
        None,
        description="Postgres URL with logical replication for CDC; unset: embedded Postgres is started.",
    )
    kafka_bootstrap: str | None = Field(
        None, description="Kafka bootstrap servers; unset: the embedded Apache Kafka is started."
    )
    schema_registry_url: str | None = Field(
        None,
        description="Confluent-compatible schema registry; unset: Avro single-object encoding.",
    )
    embedded_schema_registry: bool = Field(
        False,
        description="Start the embedded Apicurio Registry with the stack when VIGIL_SCHEMA_REGISTRY_URL is unset.",
    )
    connect_url: str | None = Field(
        None,
        description="Kafka Connect REST URL; unset: the embedded Kafka Connect worker is started and used.",
    )
    ingest_token: SecretStr | None = Field(
        None, description="Secret for the HTTP ingest (bearer token or HMAC); unset: ingest refuses."
    )

    kafka_security_protocol: SecurityProtocol = Field("PLAINTEXT", description="security.protocol")
    kafka_sasl_mechanism: str | None = Field(None, description="sasl.mechanism, e.g. PLAIN, SCRAM-SHA-512")
    kafka_sasl_username: str | None = Field(None, description="sasl.username")
    kafka_sasl_password: SecretStr | None = Field(None, description="sasl.password")
    kafka_ssl_ca_location: str | None = Field(None, description="ssl.ca.location")
    kafka_ssl_certificate_location: str | None = Field(None, description="ssl.certificate.location")
    kafka_ssl_key_location: str | None = Field(None, description="ssl.key.location")
    kafka_ssl_key_password: SecretStr | None = Field(None, description="ssl.key.password")
    kafka_session_timeout_ms: int | None = Field(
        None,
        description="Consumer session timeout; unset: Kafka's default, 45000.",
    )

    connectors: str | None = Field(
        None, description="Directory or comma-separated files of Debezium connector JSON."
    )
    agents: str = Field("", description="Comma-separated modules with user agents (same as -A).")
    http_port: int = Field(6066, ge=1, le=65535, description="Port of ingest, dashboard and /metrics.")
    drift_policy: Path | None = Field(None, description="TOML drift policy; unset: packaged defaults.")

    app_id: str = Field(
        "vigil",
        description="Faust app id: the consumer group of the agents (workers with one id share work).",
    )
    batch_size: int = Field(500, ge=1, description="Events an agent processes per transaction, at most.")
    topic_partitions: int = Field(3, ge=1, description="Partitions of topics Vigil creates.")
    topic_replication_factor: int = Field(
        1, ge=-1, description="Replication factor of topics Vigil creates (-1: broker default)."
    )
    log_level: str = Field("INFO", description="Log level of Vigil's own loggers.")
    processed_retention_days: float = Field(
        7.0, gt=0, description="Days processed-event records are kept for deduplication before pruning."
    )
    outbox_relay: bool = Field(
        True,
        description="Relay committed outbox rows from the worker; turn off when Debezium's outbox connector does it.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("VIGIL_CONFIG", "vigil.toml"))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
        )

    @property
    def agent_modules(self) -> list[str]:
        return [m.strip() for m in self.agents.split(",") if m.strip()]

    @property
    def uses_embedded_broker(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def uses_embedded_registry(self) -> bool:
        return self.embedded_schema_registry and self.schema_registry_url is None

    @property
    def uses_embedded_connect(self) -> bool:
        return self.connect_url is None

    @property
    def uses_embedded_postgres(self) -> bool:
        return self.database_url is None

    def require_bootstrap(self) -> str:
        if self.kafka_bootstrap is None:
            raise ConfigurationError(
                "no Kafka bootstrap servers: set VIGIL_KAFKA_BOOTSTRAP or start the embedded Kafka "
                "with `vigil services up`"
            )
        return self.kafka_bootstrap

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise ConfigurationError(
                "no database: set VIGIL_DATABASE_URL or start the embedded Postgres with `vigil services up`"
            )
        return self.database_url


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL (psycopg 3 driver) for a libpq-style ``postgresql://`` URL; others unchanged."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment and ``vigil.toml``; ``overrides`` win."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigurationError(f"invalid Vigil settings: {exc}") from exc
