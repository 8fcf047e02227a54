"""``vigil up``: the whole pipeline in the foreground; ``--demo`` shows it working end to end.

The stack (embedded services as needed: Postgres, Kafka, Kafka Connect), the migrations and the
topics first; then the Debezium connectors are applied to Kafka Connect over its REST API; then,
each in its own process under a :class:`~ops.supervisor.Supervisor`: the worker with the agents,
the outbox relay (``vigil relay``, when no outbox connector relays and ``VIGIL_OUTBOX_RELAY`` was not
chosen explicitly), and for the demo a JSON-lines sink. Without ``--demo`` the live view
(:mod:`ops.live`) shows them until Ctrl-C or SIGTERM, which is forwarded to the children: each stops
gracefully (or is killed after a timeout, and ``vigil up`` says so); the connectors keep running in
Connect.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from types import FrameType

import psycopg
from rich.console import Console
from rich.markup import escape

from ops import live as live_view
from ops import migrations
from ops.connectors_cli import apply as apply_connectors
from ops.connectors_cli import connector_files
from ops.demo_story import run_story
from ops.services import stack
from ops.status import debezium_relays_outbox
from ops.supervisor import Supervisor, child_env, vigil_argv
from streams.catalog import CATALOG, outbox_topic
from streams.demo_script import POLICY_TOML, REMEDIATION_TOPIC
from streams.redact import mask_url
from streams.settings import Settings
from streams.topics import ensure_topics

DEMO_AGENT_MODULE = "agents.demo"
DEMO_SCHEMA = """
CREATE TABLE IF NOT EXISTS public.orders (
    id         serial PRIMARY KEY,
    customer   text NOT NULL,
    amount     double precision NOT NULL,
    status     text NOT NULL DEFAULT 'new',
    batch      text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE public.orders REPLICA IDENTITY FULL;
CREATE TABLE IF NOT EXISTS public.payments (
    id         serial PRIMARY KEY,
    order_id   integer NOT NULL,
    amount     double precision NOT NULL,
    status     text NOT NULL DEFAULT 'authorized',
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS public.metrics (
    id          serial PRIMARY KEY,
    name        text NOT NULL,
    value       double precision NOT NULL,
    observed_at timestamptz NOT NULL DEFAULT now()
);
"""


def ensure_demo_schema(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(DEMO_SCHEMA)


def build_supervisor(
    resolved: Settings, *, demo: bool, agent_modules: list[str], sink_file: Path | None
) -> Supervisor:
    files = connector_files(resolved, None)
    relayed_by_debezium = debezium_relays_outbox(resolved)
    supervisor = Supervisor(Path(resolved.home).absolute() / "logs")
    env = child_env(resolved)
    modules = [*agent_modules, *([DEMO_AGENT_MODULE] if demo else [])]
    if modules or resolved.agent_modules or resolved.builtin_agents:
        argv = vigil_argv("worker", *(arg for m in modules for arg in ("-A", m)))
        user_chose = "outbox_relay" in resolved.model_fields_set  # VIGIL_OUTBOX_RELAY or vigil.toml wins
        relay_process = not user_chose and not (relayed_by_debezium and files)
        # The relay runs in a process of its own unless the user asked for the in-worker one: in
        # the worker it took ≈29% of the worker's throughput (bench agents, 2 cores).
        worker_env = env if user_chose else {**env, "VIGIL_OUTBOX_RELAY": "false"}
        supervisor.add("worker", argv, {**worker_env, **(demo_worker_env(resolved) if demo else {})})
        if relay_process:
            supervisor.add("relay", vigil_argv("relay"), env)
    if sink_file is not None:
        topics = [outbox_topic(t) for t in DEMO_SINK_AGGREGATETYPES]
        supervisor.add(
            "sink-notifications",
            [
                *vigil_argv()[:2],
                "agents.sinks.run",
                "file",
                "--name",
                "demo-notifications",
                "--path",
                str(sink_file),
                *(arg for topic in topics for arg in ("--topic", topic)),
                "--group",
                f"{resolved.app_id}-demo-sink",
            ],
            env,
        )
    return supervisor


#: The outbox topics of the demo's side effects, all delivered by its file sink.
DEMO_SINK_AGGREGATETYPES = ("notifications", "drift-reports", REMEDIATION_TOPIC, "drift-alerts")


def demo_worker_env(resolved: Settings) -> dict[str, str]:
    """The demo worker's own settings: the demo's drift policy (always: the story relies on its
    approval-gated remediation), and absence checks every second unless the user chose otherwise."""
    policy = Path(resolved.home).absolute() / "demo" / "drift-policy.toml"
    policy.parent.mkdir(parents=True, exist_ok=True)
    policy.write_text(POLICY_TOML)
    extra = {"VIGIL_DRIFT_POLICY": str(policy)}
    if "watch_interval_s" not in resolved.model_fields_set:
        extra["VIGIL_WATCH_INTERVAL_S"] = "1"
    return extra


def pipeline_up(
    settings: Settings,
    console: Console,
    *,
    demo: bool,
    agent_modules: list[str],
    short: bool = False,
    live: bool = True,
) -> None:
    console.print("[bold]vigil up[/]: starting the stack" + (" (demo)" if demo else ""))
    resolved = stack.up(settings, connect=True)
    database_url = resolved.require_database_url()
    console.print(
        f"Postgres: {mask_url(database_url)}\nKafka:    {resolved.kafka_bootstrap}\n"
        f"Connect:  {mask_url(resolved.connect_url) if resolved.connect_url else 'none'}"
    )
    console.print(f"database schema vigil at revision {migrations.upgrade(database_url)}")
    created = ensure_topics(resolved, CATALOG)
    console.print(
        f"topics: {len(CATALOG)} in the catalog" + (f", created {', '.join(created)}" if created else "")
    )
    if not settings.connectors:
        ensure_demo_schema(database_url)  # the packaged connectors capture the demo tables
    sink_file = Path(resolved.home).absolute() / "demo" / "notifications.jsonl" if demo else None
    supervisor = build_supervisor(resolved, demo=demo, agent_modules=agent_modules, sink_file=sink_file)
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)  # printed after the view closed: the handler may interrupt a redraw
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    names = ", ".join(c.name for c in supervisor.children) or "nothing (no agents, no connectors)"
    console.print(f"starting {names}; logs in {supervisor.logdir}")
    try:
        start_in_order(supervisor, resolved, console, stop)
        if demo:
            assert sink_file is not None
            run_story(resolved, console, supervisor, sink_file, stop, short=short)
        else:
            if any(c.name == "worker" for c in supervisor.children):
                for what, url in live_view.http_urls(resolved):
                    console.print(f"{what + ':':<11}{url}", highlight=False, markup=False, soft_wrap=True)
            collector = live_view.Collector(settings, resolved, supervisor)
            try:
                live_view.run(console, collector, supervisor, stop, live=live and console.is_terminal)
            finally:
                collector.close()
    finally:
        signum = received[0] if received else signal.SIGTERM
        if received:
            console.print(f"stopping ({signal.Signals(signum).name}): forwarding it to the children …")
        stopped = supervisor.stop(signum)
        for child in stopped:
            console.print(("[red]" if child.killed else "") + escape(child.message))
        console.print("stopped; the embedded services keep running (`vigil services down` stops them)")
    if any(child.killed for child in stopped):
        raise SystemExit(1)


def slot_names(files: list[Path]) -> list[str]:
    names = []
    for path in files:
        config = json.loads(path.read_text()).get("config", {})
        if config.get("slot.name"):
            names.append(str(config["slot.name"]))
    return names


def lost_slots_problem(wal_status: dict[str, str | None], keep: str) -> str | None:
    """What to tell the user when Postgres invalidated a connector's replication slot, or None.

    ``wal_status`` maps slot names to ``pg_replication_slots.wal_status``. A ``lost`` slot fell
    more than ``max_slot_wal_keep_size`` (``keep``) of WAL behind, its connector stopped or paused
    meanwhile; the changes since are gone, and Debezium only retries it (for 30 minutes, calling it
    a slot "blocked by a concurrent transaction")."""
    lost = sorted(name for name, status in wal_status.items() if status == "lost")
    if not lost:
        return None
    drops = "; ".join(f"SELECT pg_drop_replication_slot('{name}')" for name in lost)
    them = "them" if len(lost) > 1 else "it"
    return (
        f"replication slot{'s' if len(lost) > 1 else ''} {', '.join(lost)} "
        f"{'were' if len(lost) > 1 else 'was'} invalidated by Postgres (wal_status lost): "
        f"{'they' if len(lost) > 1 else 'it'} fell more than max_slot_wal_keep_size ({keep}) of WAL "
        "behind while the connector was stopped or paused, and the changes since then are gone. "
        f"To go on: drop {them} ({drops}), then reset the connector's offsets in Kafka Connect "
        "(PUT /connectors/<name>/stop, DELETE /connectors/<name>/offsets, PUT /connectors/<name>/resume; "
        "Debezium refuses to start from an offset Postgres no longer has) and start again: it takes a new "
        "snapshot as its snapshot.mode says (`initial`: the tables are read again; the outbox "
        "connector's `no_data`: it streams from now on)"
    )


def wait_for_slots(
    database_url: str, names: list[str], stop: threading.Event, timeout: float = 180.0
) -> bool:
    """Wait until the connectors created their replication slots: from then on no change is missed.

    Stops with :func:`lost_slots_problem`'s explanation when one of them was invalidated."""
    deadline = time.monotonic() + timeout
    while not stop.is_set() and time.monotonic() < deadline:
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT slot_name, wal_status FROM pg_replication_slots WHERE slot_name = ANY(%s)", (names,)
            ).fetchall()
            keep_row = conn.execute("SHOW max_slot_wal_keep_size").fetchone()
        problem = lost_slots_problem({str(r[0]): r[1] for r in rows}, str(keep_row[0]) if keep_row else "?")
        if problem is not None:
            raise SystemExit(problem)
        if len(rows) == len(set(names)):
            return True
        stop.wait(0.5)
    return False


def start_in_order(
    supervisor: Supervisor, resolved: Settings, console: Console, stop: threading.Event
) -> None:
    """Connectors first (applied to Kafka Connect), and the rest once their slots exist.

    The outbox connector streams from its slot (it takes no snapshot of past rows): an outbox row
    an agent committed before the slot existed would never be published. Starting the worker only
    after the slots exist closes that window on a first start.
    """
    files = connector_files(resolved, None)
    if files:
        apply_connectors(resolved, console, [str(f) for f in files])
        names = slot_names(files)
        console.print(f"waiting for the connectors' replication slots ({', '.join(names)}) …")
        if not wait_for_slots(resolved.require_database_url(), names, stop) and not stop.is_set():
            raise SystemExit(
                "the connectors did not create their slots; see `vigil connectors status` and "
                f"{Path(resolved.home).absolute() / 'connect' / 'connect.log'}"
            )
    for child in supervisor.children:
        if child.proc is None and not stop.is_set():
            child.start()
            assert child.proc is not None
            console.print(f"{child.name} started (pid {child.proc.pid})")
