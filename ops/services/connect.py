"""The embedded Kafka Connect worker, distributed mode, under ``$VIGIL_HOME/connect``.

One worker of the group ``vigil-connect`` keeps connector configs, source offsets and statuses in
Kafka topics (replication 1), serves the REST API on a loopback port chosen once and kept, and
loads the Debezium Postgres connector from the cached plugin folder (ServiceLoader discovery, no
classpath scan). Connectors are applied to it over REST exactly as to a production Connect, so the
same ``connectors/*.json`` serve both. ``start`` returns once ``GET /connector-plugins`` lists the
Postgres connector.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from ops.services.java import DEBEZIUM_PLUGIN, find_java, resolve
from ops.services.jvm import JvmService, write_properties
from schemas.errors import ServiceError

POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"
GROUP_ID = "vigil-connect"


#: Kafka Connect's source-task producer batch size, bytes (docker-compose.yml sets the same).
PRODUCER_BATCH_SIZE = "524288"


@dataclass(frozen=True)
class ConnectStatus:
    running: bool
    pid: int | None
    port: int | None

    @property
    def url(self) -> str | None:
        return f"http://127.0.0.1:{self.port}" if self.port is not None else None


def connect_health(url: str, timeout: float = 3.0) -> str:
    """Connect's version if it answers and offers the Postgres connector; else ServiceError."""
    try:
        with httpx.Client(base_url=url, timeout=timeout) as client:
            root = client.get("/")
            root.raise_for_status()
            plugins = client.get("/connector-plugins")
            plugins.raise_for_status()
    except httpx.HTTPError as exc:
        raise ServiceError(f"Kafka Connect at {url} did not answer: {exc}") from exc
    classes = {str(p.get("class")) for p in plugins.json()}
    if POSTGRES_CONNECTOR not in classes:
        raise ServiceError(
            f"Kafka Connect at {url} runs but has no Debezium Postgres connector (plugins: "
            f"{', '.join(sorted(classes)) or 'none'}); install the plugin on its plugin.path"
        )
    return str(root.json().get("version", "?"))


class EmbeddedConnect(JvmService):
    name = "connect"
    main_class = "org.apache.kafka.connect.cli.ConnectDistributed"
    log4j_extra = """\
# Every config of every client is logged at INFO at each start; warnings still show.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
"""

    def status(self) -> ConnectStatus:
        pid = self.pid()
        return ConnectStatus(running=pid is not None, pid=pid, port=self.port("port"))

    def healthy(self, timeout: float = 2.0) -> bool:
        return self.answers(self.status().url, lambda url: connect_health(url, timeout=timeout))

    def properties(self, bootstrap: str, port: int, plugin_path: str) -> dict[str, str]:
        return {
            "bootstrap.servers": bootstrap,
            "group.id": GROUP_ID,
            "config.storage.topic": f"{GROUP_ID}-configs",
            "offset.storage.topic": f"{GROUP_ID}-offsets",
            "status.storage.topic": f"{GROUP_ID}-status",
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "listeners": f"http://127.0.0.1:{port}",
            "rest.advertised.host.name": "127.0.0.1",
            "rest.advertised.port": str(port),
            "plugin.path": plugin_path,
            # Debezium 3.6 ships ServiceLoader manifests: no slow reflective scan of every jar.
            "plugin.discovery": "service_load",
            # Source offsets (Debezium's LSN) are committed every second: after a crash at most
            # about a second of changes is delivered again (with the same event ids).
            "offset.flush.interval.ms": "1000",
            # One worker: a restarted worker gets its connectors back at once instead of after
            # the default 5 minutes kept for a lost member of a larger cluster.
            "scheduled.rebalance.max.delay.ms": "0",
            # Connect's producer sends one request at a time per broker (max.in.flight 1, for
            # order), each with at most one batch per partition: at the default 16 KB, about 35
            # change events per round trip. bench cdc, one 50,000-row bulk insert into Kafka:
            # 11,434 rows/s at 16 KB, 28,806 at 512 KB (the engine alone: 36,534 and 33,477).
            "producer.batch.size": PRODUCER_BATCH_SIZE,
        }

    def start(self, bootstrap: str, timeout: float = 90.0) -> ConnectStatus:
        """Start the worker unless it runs; return once its REST API offers the Postgres connector."""
        if self.already_running(self.healthy, timeout):
            return self.status()
        find_java()  # before anything else: its error names the package to install
        java = resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        port = self.kept_port("port")
        write_properties(
            self.config,
            self.properties(bootstrap, port, str(java.plugins)),
            f"The embedded Kafka Connect worker ({DEBEZIUM_PLUGIN}); written by Vigil at each start.",
        )
        self.launch(java, [str(self.config)], self.healthy, timeout, address=f"http://127.0.0.1:{port}")
        return self.status()
