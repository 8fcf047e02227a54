"""What the stack-level CLI commands do: services, migrations, topics, doctor, ``up``."""

from __future__ import annotations

import shutil
import time

from rich.console import Console

from ops import migrations
from ops.output import print_json, print_table
from ops.services import stack
from ops.services.connect import connect_health
from ops.services.postgres import check_database
from schemas.errors import VigilError
from streams.kafka import check_broker, make_admin
from streams.settings import Settings


def _health_rows(settings: Settings) -> tuple[list[list[str]], bool]:
    rows, all_ok = [], True
    for health in stack.status(settings):
        all_ok &= health.healthy
        rows.append(
            [
                health.name,
                "embedded" if health.embedded else "external",
                health.url or "-",
                "[green]healthy[/]" if health.healthy else "[red]down[/]",
                health.detail,
            ]
        )
    return rows, all_ok


def _service_json(settings: Settings) -> dict[str, object]:
    healths = {h.name: h for h in stack.status(settings)}
    resolved = stack.attach(settings)
    return {
        "database_url": resolved.database_url,
        "kafka_bootstrap": resolved.kafka_bootstrap,
        "connect_url": resolved.connect_url,
        "postgres": healths["postgres"].as_dict(),
        "kafka": healths["kafka"].as_dict(),
        "connect": healths["connect"].as_dict(),
        "schema_registry_url": resolved.schema_registry_url,
        **({"schema_registry": healths["schema registry"].as_dict()} if "schema registry" in healths else {}),
    }


def services_up(settings: Settings, console: Console, *, as_json: bool) -> Settings:
    times: dict[str, float] = {}
    started = time.monotonic()
    resolved = stack.up(settings, connect=True, times=times)
    elapsed = time.monotonic() - started
    if as_json:
        print_json({**_service_json(settings), "ready_seconds": round(elapsed, 2)})
    else:
        rows, _ = _health_rows(settings)
        print_table(console, "Vigil services", ["service", "kind", "url", "health", "detail"], rows)
        each = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in times.items())
        console.print(f"stack ready in {elapsed:.1f}s ({each})")
    return resolved


def services_down(settings: Settings, console: Console) -> None:
    stopped = stack.down(settings)
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing Vigil started is running")


def services_status(settings: Settings, console: Console, *, as_json: bool) -> bool:
    if as_json:
        data = _service_json(settings)
        print_json(data)
        names = ("postgres", "kafka", "connect", "schema_registry")
        return all(bool(data[name]["healthy"]) for name in names if name in data)  # type: ignore[index]
    rows, ok = _health_rows(settings)
    print_table(console, "Vigil services", ["service", "kind", "url", "health", "detail"], rows)
    return ok


def db_upgrade(settings: Settings, console: Console) -> None:
    resolved = stack.attach(settings) if settings.uses_embedded_postgres else settings
    revision = migrations.upgrade(resolved.require_database_url())
    console.print(f"database schema vigil at revision {revision}")


def inspect_topics(settings: Settings, console: Console, *, as_json: bool) -> None:
    resolved = stack.attach(settings)
    metadata = make_admin(resolved).list_topics(timeout=10)
    topics = sorted(metadata.topics.items())
    if as_json:
        print_json([{"topic": name, "partitions": len(meta.partitions)} for name, meta in topics])
        return
    print_table(
        console,
        f"Topics on {resolved.kafka_bootstrap}",
        ["topic", "partitions"],
        [[name, str(len(meta.partitions))] for name, meta in topics],
    )


def doctor(settings: Settings, console: Console, *, as_json: bool) -> bool:
    """Check what Vigil points at; print findings; return whether everything needed works."""
    resolved = stack.attach(settings)
    findings: list[dict[str, str]] = []

    def add(part: str, ok: bool, detail: str) -> None:
        findings.append({"part": part, "status": "ok" if ok else "problem", "detail": detail})

    pg_down = settings.uses_embedded_postgres and not stack.embedded_postgres(settings).status().running
    broker_down = settings.uses_embedded_broker and not stack.embedded_kafka(settings).status().running
    if resolved.database_url is None or pg_down:
        add("postgres", False, "embedded Postgres is not running: `vigil services up`")
    else:
        try:
            wal_level = check_database(resolved.database_url)
            add("postgres", wal_level == "logical", f"wal_level={wal_level} (CDC needs logical)")
        except VigilError as exc:
            add("postgres", False, str(exc))
    if resolved.kafka_bootstrap is None or broker_down:
        add("kafka", False, "embedded Kafka is not running: `vigil services up`")
    else:
        try:
            add("kafka", True, f"{check_broker(resolved)} broker(s) at {resolved.kafka_bootstrap}")
        except VigilError as exc:
            add("kafka", False, str(exc))
    if resolved.connect_url is None:
        add("connect", False, "embedded Kafka Connect is not running: `vigil services up`")
    else:
        try:
            add(
                "connect",
                True,
                f"Kafka Connect {connect_health(resolved.connect_url)} at {resolved.connect_url}",
            )
        except VigilError as exc:
            add("connect", False, str(exc))
    if settings.uses_embedded_broker or settings.uses_embedded_connect:
        java = shutil.which("java")
        add(
            "java",
            java is not None,
            f"{java} runs the embedded Kafka and Kafka Connect"
            if java
            else "no `java` on PATH: the embedded Kafka needs `apt-get install openjdk-17-jre-headless`",
        )
    if resolved.schema_registry_url is None:
        add("schema registry", True, "not configured: Avro single-object encoding with local schemas")
    ok = all(f["status"] == "ok" for f in findings)
    if as_json:
        print_json({"ok": ok, "findings": findings})
    else:
        rows = [[f["part"], f["status"], f["detail"]] for f in findings]
        print_table(console, "vigil doctor", ["part", "status", "detail"], rows)
    return ok
