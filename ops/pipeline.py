"""``vigil up``: the whole pipeline in the foreground; ``--demo`` shows it working end to end.

The stack (embedded services as needed: Postgres, Kafka, Kafka Connect), the migrations and the
topics first; then the Debezium connectors are applied to Kafka Connect over its REST API; then,
each in its own process under a :class:`~ops.supervisor.Supervisor`: the worker with the agents and
the outbox relay, and for the demo a JSON-lines sink. Without ``--demo`` the live view
(:mod:`ops.live`) shows them until Ctrl-C or SIGTERM, which is forwarded to the children: each stops
gracefully (or is killed after a timeout, and ``vigil up`` says so); the connectors keep running in
Connect.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from pathlib import Path
from types import FrameType

import psycopg
from rich.console import Console
from rich.markup import escape

from ops import live as live_view
from ops import migrations
from ops.connectors_cli import apply as apply_connectors
from ops.connectors_cli import connector_files
from ops.output import print_table
from ops.services import stack
from ops.status import debezium_relays_outbox
from ops.supervisor import Supervisor, child_env, vigil_argv
from streams.catalog import CATALOG, outbox_topic
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
        relay = "false" if relayed_by_debezium and files else "true"
        user_chose = "outbox_relay" in resolved.model_fields_set  # VIGIL_OUTBOX_RELAY or vigil.toml wins
        supervisor.add("worker", argv, env if user_chose else {**env, "VIGIL_OUTBOX_RELAY": relay})
    if sink_file is not None:
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
                "--topic",
                outbox_topic("notifications"),
                "--group",
                f"{resolved.app_id}-demo-sink",
            ],
            env,
        )
    return supervisor


def pipeline_up(
    settings: Settings, console: Console, *, demo: bool, agent_modules: list[str], live: bool = True
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
            run_demo(resolved, console, supervisor, sink_file, stop)
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


def wait_for_slots(
    database_url: str, names: list[str], stop: threading.Event, timeout: float = 180.0
) -> bool:
    """Wait until the connectors created their replication slots: from then on no change is missed."""
    deadline = time.monotonic() + timeout
    while not stop.is_set() and time.monotonic() < deadline:
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT slot_name FROM pg_replication_slots WHERE slot_name = ANY(%s)", (names,)
            ).fetchall()
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


def make_demo_changes(database_url: str, batch: str) -> int:
    """Insert 12 orders, fail 3, ship 2, delete 1; return how many failed."""
    with psycopg.connect(database_url) as conn:
        ids = [
            row[0]
            for row in conn.execute(
                "INSERT INTO public.orders (customer, amount, batch) "
                "SELECT 'customer-' || n, 10.0 * n, %s FROM generate_series(1, 12) AS n RETURNING id",
                (batch,),
            ).fetchall()
        ]
        conn.commit()
        conn.execute(
            "UPDATE public.orders SET status = 'failed', updated_at = now() WHERE id = ANY(%s)", (ids[:3],)
        )
        conn.execute(
            "UPDATE public.orders SET status = 'shipped', updated_at = now() WHERE id = ANY(%s)", (ids[3:5],)
        )
        conn.execute("DELETE FROM public.orders WHERE id = %s", (ids[-1],))
        conn.commit()
    return 3


def _payload(entry: dict[str, object]) -> dict[str, object]:
    payload = entry.get("payload")
    return payload if isinstance(payload, dict) else {}


def _notifications(sink_file: Path, batch: str) -> list[dict[str, object]]:
    if not sink_file.exists():
        return []
    found = []
    for line in sink_file.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and _payload(entry).get("batch") == batch:
            found.append(entry)
    return found


def run_demo(
    resolved: Settings, console: Console, supervisor: Supervisor, sink_file: Path, stop: threading.Event
) -> None:
    database_url = resolved.require_database_url()
    batch = uuid.uuid4().hex[:8]
    expected = make_demo_changes(database_url, batch)
    console.print(
        f"demo batch {batch}: inserted 12 orders into public.orders, failed 3, shipped 2, deleted 1; "
        "waiting for Debezium → Kafka → order-watch → outbox → sink …"
    )
    deadline = time.monotonic() + 240
    last_report = 0.0
    while not stop.is_set() and time.monotonic() < deadline:
        for message in supervisor.poll():
            console.print(message)
        got = _notifications(sink_file, batch)
        if len(got) >= expected:
            break
        if time.monotonic() - last_report > 10:
            last_report = time.monotonic()
            console.print(f"  … {len(got)}/{expected} notifications delivered so far")
        stop.wait(1.0)
    show_demo_results(database_url, console, sink_file, batch)
    got = _notifications(sink_file, batch)
    if len(got) < expected:
        raise SystemExit(
            f"demo incomplete: {len(got)}/{expected} notifications after 240 s; see {supervisor.logdir}"
        )
    console.print(
        f"[green]demo complete[/]: {len(got)} failed orders → {len(got)} notifications in {sink_file}"
    )


def show_demo_results(database_url: str, console: Console, sink_file: Path, batch: str) -> None:
    with psycopg.connect(database_url) as conn:
        runs = conn.execute(
            "SELECT agent, status, count(*) FROM vigil.runs GROUP BY agent, status ORDER BY agent, status"
        ).fetchall()
        recent = conn.execute(
            "SELECT r.event_id, r.status, r.trace FROM vigil.runs r WHERE r.agent = 'order-watch' "
            'AND r.trace @> \'[{"step": "notify"}]\' ORDER BY r.finished_at DESC LIMIT 3'
        ).fetchall()
        outbox = conn.execute(
            "SELECT aggregatetype, count(*) FROM vigil.outbox GROUP BY aggregatetype ORDER BY 1"
        ).fetchall()
        deliveries = conn.execute(
            "SELECT sink, status, count(*) FROM vigil.deliveries GROUP BY sink, status ORDER BY 1, 2"
        ).fetchall()
    print_table(
        console, "Runs (vigil.runs)", ["agent", "status", "runs"], [[a, s, str(n)] for a, s, n in runs]
    )
    print_table(
        console,
        "Latest runs that notified",
        ["event id", "status", "trace"],
        [[e, s, json.dumps([step.get("step") for step in t])] for e, s, t in recent],
    )
    print_table(console, "Outbox (vigil.outbox)", ["aggregatetype", "rows"], [[a, str(n)] for a, n in outbox])
    print_table(
        console,
        "Deliveries (vigil.deliveries)",
        ["sink", "status", "count"],
        [[a, s, str(n)] for a, s, n in deliveries],
    )
    lines = _notifications(sink_file, batch)
    print_table(
        console,
        f"Notifications of batch {batch} ({sink_file})",
        ["outbox id", "text"],
        [[str(entry.get("id")), str(_payload(entry).get("text"))] for entry in lines],
    )
