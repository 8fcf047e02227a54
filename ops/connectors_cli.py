"""``vigil connectors list|apply|run|status``: Debezium connectors on Kafka Connect, or embedded.

The connector files are the ones named on the command line, else ``VIGIL_CONNECTORS`` (a
directory or comma-separated files), else the packaged ``connectors/*.json``.
"""

from __future__ import annotations

import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

from rich.console import Console

import connectors
from connectors.config import ConnectorSpec, connector_paths, load_connectors, parse_database_url
from connectors.connect_client import ConnectClient, ConnectorStatus
from connectors.database import SlotInfo, ensure_heartbeat_table, replication_slots
from connectors.engine import EmbeddedRunner
from connectors.state import read_state, state_dir
from ops import migrations
from ops.output import print_json, print_table
from ops.services import stack
from ops.services.procs import pid_alive
from schemas.errors import ConfigurationError, ServiceError, VigilError
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


def apply(settings: Settings, console: Console, files: list[str] | None = None) -> None:
    """Create or update every connector on Kafka Connect; restart failed tasks."""
    if settings.connect_url is None:
        raise ConfigurationError(
            "VIGIL_CONNECT_URL is not set: point it at Kafka Connect's REST API "
            "(e.g. http://localhost:8083), or run the connectors embedded with `vigil connectors run`"
        )
    specs = load_specs(settings, files)
    _prepare_heartbeat_tables(settings, specs, console)
    rows = []
    with ConnectClient(settings.connect_url) as client:
        for spec in specs:
            result = client.apply(spec)
            state = result.status.state if result.status else "PENDING"
            restarted = ", ".join(str(t) for t in result.restarted_tasks) or "-"
            rows.append([spec.name, "created" if result.created else "updated", state, restarted])
    print_table(
        console,
        f"Kafka Connect at {mask_url(settings.connect_url)}",
        ["connector", "action", "state", "restarted tasks"],
        rows,
    )


def _prepare_heartbeat_tables(settings: Settings, specs: list[ConnectorSpec], console: Console) -> None:
    """Create the heartbeat tables where Vigil's database is known; Connect needs them to exist."""
    database_url = stack.attach(settings).database_url
    tables = sorted({s.heartbeat_table for s in specs if s.heartbeat_table})
    if not tables:
        return
    if database_url is None:
        console.print(f"[yellow]note:[/] make sure the heartbeat table(s) {', '.join(tables)} exist")
        return
    for table in tables:
        try:
            ensure_heartbeat_table(database_url, table)
        except VigilError as exc:
            console.print(f"[yellow]note:[/] could not create heartbeat table {table}: {exc}")


def run(settings: Settings, console: Console, files: list[str] | None = None) -> None:
    """Run the connectors in the embedded engine until SIGTERM or Ctrl-C."""
    specs = load_specs(settings, files)
    resolved = stack.up(settings)
    database_url = resolved.require_database_url()
    resolved.require_bootstrap()
    migrations.upgrade(database_url)  # the outbox table and the offset store's schema
    for spec in specs:
        if spec.heartbeat_table:
            ensure_heartbeat_table(database_url, spec.heartbeat_table)
    runner = EmbeddedRunner(resolved, specs, parse_database_url(database_url))

    def stop(signum: int, _frame: FrameType | None) -> None:
        console.print(f"stopping connectors ({signal.Signals(signum).name})")
        runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    console.print(
        f"running {', '.join(s.name for s in specs)} → Kafka {resolved.kafka_bootstrap} "
        f"(Debezium log: {state_dir(resolved.home) / 'debezium.log'})"
    )
    if not runner.run():
        failed = "; ".join(f"{s.connector}: {s.error}" for s in runner.failures())
        raise ServiceError(f"connector failed: {failed}; see {state_dir(resolved.home) / 'debezium.log'}")
    console.print("connectors stopped")


@dataclass(frozen=True)
class ConnectorHealth:
    """One connector's health, for ``vigil connectors status`` and ``vigil status``."""

    name: str
    mode: str  # "embedded" or "connect"
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
    remote = _connect_statuses(settings, specs) if settings.connect_url else {}
    out = []
    for spec in specs:
        slot = slots.get(spec.slot_name)
        detail = slot_error or ("" if slot else "no replication slot yet")
        if settings.connect_url:
            status_or_error = remote[spec.name]
            if isinstance(status_or_error, str):
                running, state, detail = False, "unknown", status_or_error
            else:
                running, state = status_or_error.running, status_or_error.state
                failed = status_or_error.failed_tasks
                if failed:
                    detail = f"failed tasks: {', '.join(str(t.id) for t in failed)}"
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
            continue
        saved = read_state(settings.home, spec.name)
        alive = (
            saved is not None
            and saved.state in ("running", "restarting", "starting")
            and pid_alive(saved.pid)
        )
        if saved is None:
            state = "never run"
        elif alive:
            state = saved.state
        else:
            state = saved.state if saved.state in ("stopped", "failed") else "dead"
        if saved is not None and saved.error and not detail:
            detail = f"last error: {saved.error}"
        out.append(
            ConnectorHealth(
                spec.name,
                "embedded",
                alive,
                state,
                saved.last_event_at if saved else None,
                saved.events if saved else None,
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


def _ago(ts: float | None) -> str:
    if ts is None:
        return "-"
    return f"{time.strftime('%H:%M:%S', time.localtime(ts))} ({max(0.0, time.time() - ts):.0f}s ago)"


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
            ["connector", "mode", "state", "last event", "events", "slot", "slot lag", "detail"],
            [
                [
                    h.name,
                    h.mode,
                    ("[green]" if h.running else "[red]") + h.state + "[/]",
                    _ago(h.last_event_at),
                    "-" if h.events is None else f"{h.events:,}",
                    h.slot
                    + ("" if h.slot_active is None else (" (active)" if h.slot_active else " (inactive)")),
                    "-" if h.slot_lag_bytes is None else f"{h.slot_lag_bytes:,} B",
                    h.detail,
                ]
                for h in healths
            ],
        )
    return all(h.running for h in healths)
