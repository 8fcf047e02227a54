"""What the stack-level CLI commands do: services, migrations, topics, doctor, ``up``."""

from __future__ import annotations

import shutil
import time

import psycopg
from confluent_kafka import KafkaException
from rich.console import Console

from agents.db import installation_id, new_installation_id
from ops import migrations
from ops.doctor import kafka_facts, postgres_facts
from ops.output import print_json, print_table
from ops.services import stack
from ops.services.connect import connect_health
from ops.services.postgres import check_database
from schemas.errors import VigilError
from streams.doctor_checks import check_kafka, check_postgres
from streams.kafka import check_broker, make_admin
from streams.redact import mask_url, mask_urls_in
from streams.settings import Settings


def _health_rows(settings: Settings) -> tuple[list[list[str]], bool]:
    rows, all_ok = [], True
    for health in stack.status(settings):
        all_ok &= health.healthy
        rows.append(
            [
                health.name,
                "embedded" if health.embedded else "external",
                mask_url(health.url) if health.url else "-",
                "[green]healthy[/]" if health.healthy else "[red]down[/]",
                mask_urls_in(health.detail),
            ]
        )
    return rows, all_ok


def _masked_health(health: stack.ServiceHealth) -> dict[str, object]:
    data = health.as_dict()
    data["url"] = mask_url(health.url) if health.url else None
    data["detail"] = mask_urls_in(health.detail)
    return data


def _service_json(settings: Settings) -> dict[str, object]:
    """The services report. ``database_url`` is masked: the password is never printed here.

    Scripts that need the working URL ask for it explicitly (``vigil services url
    --show-password``) or read ``database_password_file`` (embedded Postgres only).
    """
    healths = {h.name: h for h in stack.status(settings)}
    resolved = stack.attach(settings)
    password_file = (
        stack.embedded_postgres(settings).password_file if settings.uses_embedded_postgres else None
    )
    return {
        "database_url": mask_url(resolved.database_url) if resolved.database_url else None,
        "database_password_file": str(password_file) if password_file is not None else None,
        "kafka_bootstrap": resolved.kafka_bootstrap,
        "connect_url": resolved.connect_url,
        "postgres": _masked_health(healths["postgres"]),
        "kafka": _masked_health(healths["kafka"]),
        "connect": _masked_health(healths["connect"]),
        "schema_registry_url": mask_url(resolved.schema_registry_url)
        if resolved.schema_registry_url
        else None,
        **(
            {"schema_registry": _masked_health(healths["schema registry"])}
            if "schema registry" in healths
            else {}
        ),
    }


def services_url(settings: Settings, *, show_password: bool) -> str | None:
    """The database URL Vigil uses (masked unless ``show_password``), or None if there is none yet."""
    url = stack.attach(settings).database_url
    if url is None:
        return None
    return url if show_password else mask_url(url)


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


def db_new_identity(settings: Settings, console: Console) -> None:
    resolved = stack.attach(settings) if settings.uses_embedded_postgres else settings
    url = resolved.require_database_url()
    old = installation_id(url)
    new = new_installation_id(url)
    console.print(
        f"installation id {old} -> {new}: ledger records written before now are ignored; "
        "events not in processed_events will be processed"
    )


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
            facts = postgres_facts(resolved.database_url)
            problems = check_postgres(facts)
            # One wal_level finding, ok or not; when not, it names the fix like every other problem.
            wal_fix = next((p.fix for p in problems if "wal_level" in p.message), None)
            detail = f"wal_level={wal_level} (CDC needs logical)"
            add(
                "postgres", wal_level == "logical", detail if wal_fix is None else f"{detail}; fix: {wal_fix}"
            )
            for problem in problems:
                if "wal_level" not in problem.message:
                    add(problem.part, False, f"{problem.message}; fix: {problem.fix}")
            free = facts.max_replication_slots - len(facts.slots)
            add("postgres", True, f"{free} of {facts.max_replication_slots} replication slots free")
        except VigilError as exc:
            add("postgres", False, str(exc))
        except psycopg.Error as exc:
            add("postgres", False, mask_urls_in(str(exc)))
    if resolved.kafka_bootstrap is None or broker_down:
        add("kafka", False, "embedded Kafka is not running: `vigil services up`")
    else:
        try:
            add("kafka", True, f"{check_broker(resolved)} broker(s) at {resolved.kafka_bootstrap}")
            window_s = settings.processed_retention_days * 86400
            for problem in check_kafka(kafka_facts(resolved), dedup_window_s=window_s):
                add(problem.part, False, f"{problem.message}; fix: {problem.fix}")
        except VigilError as exc:
            add("kafka", False, str(exc))
        except KafkaException as exc:
            add("kafka", False, f"could not read the broker's configuration: {exc}")
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
