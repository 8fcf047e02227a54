"""The optional embedded schema registry: Apicurio Registry under ``$VIGIL_HOME/registry``.

Started by ``vigil services up`` only when ``VIGIL_EMBEDDED_SCHEMA_REGISTRY=true`` and no
``VIGIL_SCHEMA_REGISTRY_URL`` is set. It serves the Confluent-compatible API at
``/apis/ccompat/v7`` (what Vigil's codec and the Confluent clients speak) on a loopback port chosen
once and kept, and stores its schemas in an H2 file database beside it, so registered schema ids
survive ``down``/``up`` (Apicurio's default store is in memory: ids would change on restart and
records already written could no longer be decoded).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from ops.services.java import JavaParts, find_java, resolve_registry
from ops.services.jvm import JvmService
from schemas.errors import ServiceError

CCOMPAT_PATH = "/apis/ccompat/v7"


@dataclass(frozen=True)
class RegistryStatus:
    running: bool
    pid: int | None
    port: int | None

    @property
    def url(self) -> str | None:
        return f"http://127.0.0.1:{self.port}{CCOMPAT_PATH}" if self.port is not None else None


def registry_health(url: str, timeout: float = 3.0) -> int:
    """The number of subjects if the Confluent-compatible API answers; else ServiceError."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/subjects", timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise ServiceError(f"the schema registry at {url} did not answer: {exc}") from exc
    return len(response.json())


class EmbeddedRegistry(JvmService):
    name = "registry"
    # The runner jar's manifest names the rest of its classpath (lib/*.jar beside it).
    main_class = "io.quarkus.runner.GeneratedMain"
    heap = "384m"
    performance_options = ()  # Quarkus' defaults

    def status(self) -> RegistryStatus:
        pid = self.pid()
        return RegistryStatus(running=pid is not None, pid=pid, port=self.port("port"))

    def healthy(self, timeout: float = 2.0) -> bool:
        return self.answers(self.status().url, lambda url: registry_health(url, timeout=timeout))

    def properties(self, port: int) -> dict[str, str]:
        return {
            "quarkus.http.host": "127.0.0.1",
            "quarkus.http.port": str(port),
            "apicurio.storage.kind": "sql",
            "apicurio.storage.sql.kind": "h2",
            "apicurio.datasource.url": f"jdbc:h2:file:{self.root / 'data' / 'registry'}",
            "apicurio.datasource.username": "sa",
            "apicurio.datasource.password": "sa",
            "quarkus.log.file.enabled": "true",
            "quarkus.log.file.path": str(self.logfile),
            "quarkus.log.console.enabled": "false",
        }

    def classpath(self, parts: JavaParts) -> str:
        return str(parts.registry_jar)

    def start(self, timeout: float = 120.0) -> RegistryStatus:
        """Start the registry unless it runs; return once its Confluent-compatible API answers."""
        if self.already_running(self.healthy, timeout):
            return self.status()
        find_java()
        parts = resolve_registry()
        self.root.mkdir(parents=True, exist_ok=True)
        port = self.kept_port("port")
        # Quarkus reads system properties; the config file exists so that `pid()` can tell this
        # JVM apart (its path is on the command line) and so that a person can see the settings.
        props = self.properties(port)
        self.config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        self.launch(
            parts,
            [],
            self.healthy,
            timeout,
            address=f"http://127.0.0.1:{port}",
            jvm_args=[f"-D{k}={v}" for k, v in props.items()] + [f"-Dvigil.config={self.config}"],
            classpath=self.classpath(parts),
        )
        return self.status()
