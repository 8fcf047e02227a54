"""The embedded Apache Kafka: one KRaft node (broker and controller) under ``$VIGIL_HOME/kafka``.

Its storage is formatted once (``kafka.tools.StorageTool format --standalone``, a process of its
own since it calls ``exit``) with a cluster id kept in ``kafka.json`` beside the two loopback ports
(client and controller), chosen once and kept. Settings are those of one node: every replication
factor and min.isr 1, no initial rebalance delay, a cleaner that wakes often so that compacted
topics really compact in tests. ``start`` returns only after a real metadata request succeeded.
Data survives ``stop``/``start`` and a ``kill -9`` (Kafka recovers its logs at the next start).
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from dataclasses import dataclass

from ops.services.java import find_java, resolve
from ops.services.jvm import JvmService, write_properties
from schemas.errors import ServiceError
from streams.kafka import check_broker
from streams.settings import load_settings


@dataclass(frozen=True)
class KafkaStatus:
    running: bool
    pid: int | None
    port: int | None

    @property
    def bootstrap(self) -> str | None:
        return f"127.0.0.1:{self.port}" if self.port is not None else None


class EmbeddedKafka(JvmService):
    name = "kafka"
    main_class = "kafka.Kafka"
    log4j_extra = """\
# The controller and log cleaner are chatty at INFO; their warnings still show.
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""

    @property
    def data(self) -> str:
        return str(self.root / "data")

    def status(self) -> KafkaStatus:
        pid = self.pid()
        return KafkaStatus(running=pid is not None, pid=pid, port=self.port("port"))

    def healthy(self, timeout: float = 2.0) -> bool:
        return self.answers(
            self.status().bootstrap, lambda b: check_broker(load_settings(kafka_bootstrap=b), timeout=timeout)
        )

    def properties(self, port: int, controller_port: int) -> dict[str, str]:
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": self.data,
            # One node: nothing can be replicated further.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            # The default 3 s delays every new consumer group (Kafka Connect's and each test's).
            "group.initial.rebalance.delay.ms": "0",
            # Compacted topics (vigil.processed-events) are cleaned within seconds, not 15 s.
            "log.cleaner.backoff.ms": "1000",
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
        }

    def _format(self, java_classpath: str, cluster_id: str) -> None:
        argv = [
            find_java(),
            "-Xmx256m",
            "-cp",
            java_classpath,
            "kafka.tools.StorageTool",
            "format",
            # The = form: a cluster id may start with "-" (base64url), which would read as an option.
            f"--cluster-id={cluster_id}",
            "-c",
            str(self.config),
            "--standalone",
            "--ignore-formatted",
        ]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(f"formatting the embedded Kafka's storage in {self.data} timed out") from exc
        if done.returncode != 0:
            raise ServiceError(
                f"formatting the embedded Kafka's storage in {self.data} failed (exit {done.returncode}): "
                f"{(done.stdout + done.stderr).strip()[-2000:]}"
            )

    def start(self, timeout: float = 120.0) -> KafkaStatus:
        """Start the broker unless it runs; return once it answers a metadata request.

        After a kill -9 the broker first recovers its logs: 20-30 s on a quiet 2-core machine, over a
        minute on a busy one; the timeout leaves room for that."""
        if self.already_running(self.healthy, timeout):
            return self.status()
        find_java()  # before anything else: its error names the package to install
        java = resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        port = self.kept_port("port")
        controller_port = self.kept_port("controller_port")
        write_properties(
            self.config,
            self.properties(port, controller_port),
            "The embedded Kafka (one KRaft node); written by Vigil at each start.",
        )
        cluster_id = self.state().get("cluster_id")
        if not isinstance(cluster_id, str):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            self.save(cluster_id=cluster_id)
        if not (self.root / "data" / "meta.properties").is_file():
            self._format(java.classpath, cluster_id)
        self.launch(java, [str(self.config)], self.healthy, timeout, address=f"127.0.0.1:{port}")
        return self.status()
