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
Delivery = Literal["faust", "batch"]

DEFAULT_SESSION_TIMEOUT_MS = 45000


#: Default fetch waits (``VIGIL_FETCH_MAX_WAIT_MS`` unset) of a batch-delivery feed (librdkafka's own
#: default) and of Faust's aiokafka consumer. An idle feed's fetches come back every wait: at 20 ms
#: the six feeds of an idle worker cost the broker ≈ 8% of a core, at 500 ms nothing measurable.
FEED_FETCH_WAIT_MS = 500
FAUST_FETCH_WAIT_MS = 20


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
        repr=False,  # it carries the password; print it through streams.redact.mask_url
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

    sink_url: SecretStr | None = Field(
        None,
        description="URL of `python -m agents.sinks.run webhook|slack` when no --url/--url-env/--url-file is given.",
    )
    slack_webhook_url: SecretStr | None = Field(
        None, description="Slack incoming-webhook URL (its path is the token); the slack sink's default."
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
    group_instance_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9._-]+$",
        description=(
            "Static group membership (Kafka's group.instance.id) for this worker's feeds: an id that "
            "stays the same across its restarts and that no other running worker has (a StatefulSet "
            "pod's name). Restarted with it, a worker takes its partitions back at once instead of "
            "after the session timeout; stopped for good, its partitions wait for the session timeout."
        ),
    )

    connectors: str | None = Field(
        None, description="Directory or comma-separated files of Debezium connector JSON."
    )
    agents: str = Field("", description="Comma-separated modules with user agents (same as -A).")
    http_port: int = Field(6066, ge=1, le=65535, description="Port of ingest, dashboard and /metrics.")
    http_host: str | None = Field(
        None, description="Address the HTTP ingest listens on; unset: 127.0.0.1 (loopback only)."
    )
    drift_policy: Path | None = Field(None, description="TOML drift policy; unset: packaged defaults.")
    builtin_agents: bool = Field(
        True, description="Run the built-in drift agents (router, investigate, remediate) in `vigil worker`."
    )
    ingest_max_bytes: int = Field(
        1_000_000, ge=1, description="Largest HTTP ingest request body accepted (413 past it)."
    )

    app_id: str = Field(
        "vigil",
        description=(
            "Faust app id; the agents' consumer groups are `<app id>.<agent>` (batch delivery) or "
            "`<app id>` (Faust's): workers with one id share work."
        ),
    )
    batch_size: int = Field(500, ge=1, description="Events an agent processes per transaction, at most.")
    fetch_max_wait_ms: int | None = Field(
        None,
        ge=1,
        le=30_000,
        description=(
            "Longest time the broker holds an agent consumer's fetch when there is no data. Default: "
            f"{FEED_FETCH_WAIT_MS} with batch delivery (the broker answers a held fetch as soon as data "
            f"arrives), {FAUST_FETCH_WAIT_MS} for Faust's consumer (aiokafka fetches a busy partition "
            "again only after a held fetch returns; Faust's own value is 1500)."
        ),
    )
    delivery: Delivery = Field(
        "batch",
        description=(
            "How events reach agents: `faust` (Faust's consumer, message by message) or `batch` (each "
            "agent's own consumer, group `<app id>.<agent>`, hands its Faust agent a batch at a time)."
        ),
    )
    agent_consumers: int = Field(
        2,
        ge=1,
        le=16,
        description=(
            "Consumers each agent reads its topics with (batch delivery), in its one group: each "
            "takes some of the partitions and runs its own batches, so that one batch's handlers run "
            "while another's waits for Postgres. A partition's events stay in order."
        ),
    )
    batch_window_ms: float = Field(
        10.0,
        gt=0,
        le=10_000,
        description=(
            "Milliseconds an agent's next batch may wait to fill while the agent still works on the "
            "one before (batch delivery); an idle agent gets what has arrived at once."
        ),
    )
    commit_interval_ms: float = Field(
        1000.0,
        ge=0,
        le=60_000,
        description=(
            "Least milliseconds between two Kafka offset commits of an agent's consumer (batch "
            "delivery); 0: after every batch. Exactly-once never depends on them (Postgres does): a "
            "crash re-reads at most this long's events, which are skipped as processed."
        ),
    )
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
    outbox_retention_days: float = Field(
        7.0,
        gt=0,
        description="Days a published outbox row is kept (only sent rows are pruned while the worker relays).",
    )
    runs_retention_days: float = Field(
        30.0,
        gt=0,
        description="Days vigil.runs records are kept, and what fired them: decided schedule slots, "
        "fired wakeups, finished watches.",
    )
    deliveries_retention_days: float = Field(
        30.0,
        gt=0,
        description="Days a finished vigil.deliveries record is kept: longer than an outbox event can be "
        "redelivered to a sink (the outbox topics' retention, 7 days by default).",
    )
    reviews_retention_days: float = Field(
        30.0, gt=0, description="Days a decided review item is kept (pending ones are never pruned)."
    )
    processed_table_size: int = Field(
        1_000_000, ge=0, description="Keys of the worker's in-memory processed-events table (0: none)."
    )
    ledger_wait_s: float = Field(
        30.0,
        ge=0,
        description=(
            "Seconds an agent waits at start for the worker to read vigil.processed-events (its fast "
            "dedup path), as Kafka Streams restores state before processing; then it starts anyway and "
            "Postgres checks what the ledger has not told yet (0: do not wait)."
        ),
    )
    relay_unhealthy_after_s: float = Field(
        60.0,
        gt=0,
        description="Seconds the outbox relay may fail (or not finish a round) before the worker is unhealthy.",
    )
    watch_interval_s: float = Field(
        2.0, gt=0, description="Seconds between the worker's absence and repeated-failure checks."
    )
    agent_beat_every_s: float = Field(
        10.0, gt=0, description="Seconds between beats of an agent's heartbeat (agent:<name>)."
    )
    agent_beat_grace_s: float = Field(
        30.0, ge=0, description="Grace after a missed agent beat before the agent counts as absent."
    )
    alert_after_failures: int = Field(
        3, ge=1, description="Dead-lettered runs in a row of one agent that raise a critical alert."
    )

    scheduler: bool = Field(
        True, description="Run the scheduler (schedules, wakeups, watches) in the worker; several may run."
    )
    scheduler_poll_s: float = Field(0.25, gt=0, description="Seconds between the scheduler's rounds.")
    scheduler_grace_s: float = Field(
        2.0,
        ge=0,
        description="A slot later than this when a scheduler sees it was missed (no scheduler ran): "
        "its schedule's misfire policy applies.",
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

    def fetch_wait_ms(self, *, faust: bool) -> int:
        """The fetch wait of an agent consumer: a batch-delivery feed's, or Faust's (``faust``)."""
        if self.fetch_max_wait_ms is not None:
            return self.fetch_max_wait_ms
        return FAUST_FETCH_WAIT_MS if faust else FEED_FETCH_WAIT_MS

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
