"""``vigil connectors list|apply|run|status|remove``: Debezium connectors on Kafka Connect.

Kafka Connect is ``VIGIL_CONNECT_URL``, else Vigil's embedded worker (started as needed).

The connector files are the ones named on the command line, else ``VIGIL_CONNECTORS`` (a
directory or comma-separated files), else the packaged ``connectors/*.json``.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

from rich.console import Console

import connectors
from connectors.config import (
    ConnectorSpec,
    connect_config,
    connector_paths,
    load_connectors,
    parse_database_url,
)
from connectors.connect_client import ApplyResult, ConnectClient, ConnectorStatus
from connectors.database import SlotInfo, drop_replication_slot, ensure_heartbeat_table, replication_slots
from ops import migrations
from ops.output import print_json, print_table
from ops.services import stack
from schemas.errors import ConfigurationError, RetryableError, VigilError
from streams.redact import mask_url
from streams.settings import Settings


def packaged_paths() -> list[Path]:
    return sorted(Path(connectors.__file__).parent.glob("*.json"))


def connector_files(settings: Settings, files: list[str] | None) -> list[Path]:
    if files:
        return connector_paths(",".join(files))
    if settings.connectors:
        return connector_paths(settings.connectors)
    return packaged_paths()


def load_specs(settings: Settings, files: list[str] | None) -> list[ConnectorSpec]:
    return load_connectors(connector_files(settings, files))


def list_connectors(settings: Settings, console: Console, files: list[str] | None = None) -> None:
    specs = load_specs(settings, files)
    print_table(
        console,
        "Connectors",
        ["name", "file", "tables", "slot", "publication", "transforms"],
        [
            [s.name, s.source, ", ".join(s.tables), s.slot_name, s.publication_name, ", ".join(s.transforms)]
            for s in specs
        ],
    )


def target_stack(settings: Settings) -> Settings:
    """Settings naming the Connect to apply to: ``VIGIL_CONNECT_URL``, else the embedded worker.

    The embedded worker (and the embedded Postgres and Kafka under it) is started if needed; an
    external Connect starts nothing.
    """
    if settings.uses_embedded_connect:
        return stack.up(settings, connect=True)
    return stack.attach(settings)


def known_database(settings: Settings) -> str | None:
    """Vigil's database URL where it is known without starting anything."""
    if not settings.uses_embedded_postgres:
        return settings.database_url
    pg = stack.embedded_postgres(settings).status()
    return pg.url if pg.running else None


def for_connect(spec: ConnectorSpec, database_url: str | None) -> ConnectorSpec:
    """``spec`` as PUT to Connect: the database address from Vigil's URL where Vigil knows it."""
    database = parse_database_url(database_url) if database_url else None
    return ConnectorSpec(spec.name, connect_config(spec, database), spec.source)


def apply(
    settings: Settings, console: Console, files: list[str] | None = None, *, restart: bool = False
) -> list[ApplyResult]:
    """Create or update every connector on Kafka Connect; restart failed tasks (all, if ``restart``)."""
    specs = load_specs(settings, files)
    resolved = target_stack(settings)
    assert resolved.connect_url is not None
    database_url = known_database(resolved)
    _prepare_database(database_url, specs, console)
    results = []
    rows = []
    with ConnectClient(resolved.connect_url) as client:
        for spec in specs:
            result = _apply_one(client, for_connect(spec, database_url))
            if restart:
                client.restart(spec.name)
            results.append(result)
            state = result.status.state if result.status else "PENDING"
            restarted = "all" if restart else (", ".join(str(t) for t in result.restarted_tasks) or "-")
            rows.append([spec.name, "created" if result.created else "updated", state, restarted])
    print_table(
        console,
        f"Kafka Connect at {mask_url(resolved.connect_url)}",
        ["connector", "action", "state", "restarted tasks"],
        rows,
    )
    return results


def _apply_one(client: ConnectClient, spec: ConnectorSpec, timeout: float = 60.0) -> ApplyResult:
    # A worker that just started (or lost its group) answers 409 while it rebalances.
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.apply(spec)
        except RetryableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _prepare_database(database_url: str | None, specs: list[ConnectorSpec], console: Console) -> None:
    """Vigil's schema (the outbox table) and the heartbeat tables, where Vigil's database is known."""
    tables = sorted({s.heartbeat_table for s in specs if s.heartbeat_table})
    if database_url is None:
        if tables:
            console.print(f"[yellow]note:[/] make sure the heartbeat table(s) {', '.join(tables)} exist")
        return
    migrations.upgrade(database_url)
    for table in tables:
        try:
            ensure_heartbeat_table(database_url, table)
        except VigilError as exc:
            console.print(f"[yellow]note:[/] could not create heartbeat table {table}: {exc}")


def run(settings: Settings, console: Console, files: list[str] | None = None) -> None:
    """Apply the connectors to Connect (the embedded worker if none is named), then follow their
    status until SIGTERM or Ctrl-C. The connectors keep running in Connect afterwards."""
    specs = load_specs(settings, files)
    resolved = target_stack(settings)
    apply(settings, console, files)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        console.print(f"stopping ({signal.Signals(signum).name}); the connectors keep running in Connect")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    console.print(f"following {', '.join(s.name for s in specs)} on {resolved.connect_url} (Ctrl-C stops)")
    last: dict[str, str] = {}
    while not stop.wait(2.0):
        for health in connector_health(settings, files):
            line = f"{health.state}" + (f" ({health.detail})" if health.detail else "")
            if last.get(health.name) != line:
                last[health.name] = line
                console.print(f"{health.name}: {line}")


def remove(settings: Settings, console: Console, files: list[str] | None = None) -> None:
    """Delete the connectors from Connect and drop their replication slots."""
    specs = load_specs(settings, files)
    resolved = stack.attach(settings)
    if resolved.connect_url is None:
        raise ConfigurationError(
            "Kafka Connect is not running: `vigil services up` (or set VIGIL_CONNECT_URL)"
        )
    database_url = known_database(resolved)
    with ConnectClient(resolved.connect_url) as client:
        for spec in specs:
            deleted = client.delete(spec.name)
            dropped = False
            if database_url is not None:
                dropped = drop_replication_slot(database_url, spec.slot_name)
            console.print(
                f"{spec.name}: {'deleted' if deleted else 'not on Connect'}; slot {spec.slot_name} "
                + ("dropped" if dropped else "not dropped" if database_url else "left (database unknown)")
            )


@dataclass(frozen=True)
class ConnectorHealth:
    """One connector's health, for ``vigil connectors status`` and ``vigil status``."""

    name: str
    mode: str  # always "connect": every connector runs in Kafka Connect
    running: bool
    state: str
    last_event_at: float | None
    events: int | None
    slot: str
    slot_active: bool | None
    slot_lag_bytes: int | None
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def connector_health(settings: Settings, files: list[str] | None = None) -> list[ConnectorHealth]:
    specs = load_specs(settings, files)
    resolved = stack.attach(settings)
    slots: dict[str, SlotInfo] = {}
    slot_error = ""
    if resolved.database_url is not None:
        try:
            slots = replication_slots(resolved.database_url, [s.slot_name for s in specs])
        except VigilError as exc:
            slot_error = str(exc)
    else:
        slot_error = "no database (vigil services up)"
    if resolved.connect_url is None:
        remote: dict[str, ConnectorStatus | str] = {
            s.name: "Kafka Connect is not running (vigil services up)" for s in specs
        }
    else:
        remote = _connect_statuses(resolved, specs)
    out = []
    for spec in specs:
        slot = slots.get(spec.slot_name)
        detail = slot_error or ("" if slot else "no replication slot yet")
        status_or_error = remote[spec.name]
        if isinstance(status_or_error, str):
            running, state, detail = False, "unknown", status_or_error
        else:
            running, state = status_or_error.running, status_or_error.state
            failed = status_or_error.failed_tasks
            if failed:
                detail = f"failed tasks: {', '.join(str(t.id) for t in failed)} (vigil connectors apply)"
        out.append(
            ConnectorHealth(
                spec.name,
                "connect",
                running,
                state,
                None,
                None,
                spec.slot_name,
                slot.active if slot else None,
                slot.lag_bytes if slot else None,
                detail,
            )
        )
    return out


def _connect_statuses(settings: Settings, specs: list[ConnectorSpec]) -> dict[str, ConnectorStatus | str]:
    assert settings.connect_url is not None
    out: dict[str, ConnectorStatus | str] = {}
    with ConnectClient(settings.connect_url, timeout=10.0) as client:
        for spec in specs:
            try:
                out[spec.name] = client.status(spec.name)
            except VigilError as exc:
                out[spec.name] = (
                    "not on Kafka Connect (vigil connectors apply)" if exc.code == "404" else str(exc)
                )
    return out


def status(
    settings: Settings, console: Console, *, as_json: bool = False, files: list[str] | None = None
) -> bool:
    """Print each connector's health; return whether all of them run."""
    healths = connector_health(settings, files)
    if as_json:
        print_json([h.as_dict() for h in healths])
    else:
        print_table(
            console,
            "Connectors",
            ["connector", "mode", "state", "slot", "slot lag", "detail"],
            [
                [
                    h.name,
                    h.mode,
                    ("[green]" if h.running else "[red]") + h.state + "[/]",
                    h.slot
                    + ("" if h.slot_active is None else (" (active)" if h.slot_active else " (inactive)")),
                    "-" if h.slot_lag_bytes is None else f"{h.slot_lag_bytes:,} B",
                    h.detail,
                ]
                for h in healths
            ],
        )
    return all(h.running for h in healths)
