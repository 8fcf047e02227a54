"""The story ``vigil up --demo`` tells, step by step, against the running pipeline.

``pipeline_up`` starts the stack, the connectors, a worker (built-in drift agents and the demo's
agents of :mod:`agents.demo`) and a file sink, then hands over to :func:`run_story`:

1. order changes → Debezium → ``order-watch`` → outbox → file sink;
2. a metric that drifts slowly (``public.metrics``), scored by the policy's windowed detector and
   published to ``drift.events``: a warning (``drift-investigate`` files a report in the review
   queue), critical (``drift-remediate`` proposes an action that waits for an approval, which the
   demo gives), then the metric recovers (resolved);
3. a 5-second schedule ticking ``demo-ticker``, which sets itself one wakeup;
4. a heartbeat the demo stops on purpose: one absence alert, resolved when beats resume;
5. a replay of ``cdc.public.orders`` through ``order-watch`` (every event skipped: nothing happens
   twice) and a dry run of a deliberate rerun (what would happen, nothing written);
6. a summary counted from Postgres and Kafka (also written to ``$VIGIL_HOME/demo/summary.json``).

Each step is a small function: steps 1, 3, 4 and 5 here, step 2 in :mod:`ops.demo_drift`, the summary in
:mod:`ops.demo_summary`, what they share in :mod:`ops.demo_context`; the pure parts (sizes, the
metric, percentiles, the summary's rows) are in :mod:`streams.demo_script`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import KafkaException
from rich.console import Console
from sqlalchemy import text

import agents.demo as demo_agents
from agents import heartbeats
from agents.db import as_engine
from agents.demo import TICKER
from agents.feed import consumer_group
from agents.replay_run import AgentReport
from ops.demo_context import Story, payload_of, sink_lines
from ops.demo_drift import step_drift
from ops.demo_summary import ORDER_AGENT, ORDERS_TOPIC, step_summary
from ops.output import print_table
from ops.replay import ReplayRequest, replay
from ops.schedules import add as add_schedule
from ops.schedules import remove as remove_schedule
from ops.supervisor import Supervisor
from streams.demo_script import (
    Script,
    SummaryRow,
    empty_rows,
)
from streams.kafka import make_admin
from streams.lag import describe_group
from streams.settings import Settings
from streams.watch import ABSENCE, alert_fingerprint, alert_key


def run_story(
    settings: Settings,
    console: Console,
    supervisor: Supervisor,
    sink_file: Path,
    stop: threading.Event,
    *,
    short: bool = False,
) -> list[SummaryRow]:
    """Tell the whole story, then print and return the summary."""
    story = Story(settings, console, supervisor, stop, sink_file, Script.short() if short else Script())
    story.started_at = story.scalar("SELECT now()")
    began = time.monotonic()
    wait_until_agents_listen(story)
    steps = STEPS
    for number, (title, step) in enumerate(steps, 1):
        console.rule(f"[bold]{number}/{len(steps) + 1}[/] {title}")
        at = time.monotonic()
        step(story)
        story.say(f"[dim]step {number} took {time.monotonic() - at:.1f} s[/]")
    console.rule(f"[bold]{len(steps) + 1}/{len(steps) + 1}[/] summary")
    rows = step_summary(story)
    story.say(f"[dim]the story took {time.monotonic() - began:.1f} s[/]")
    say_where_to_look(story, rows)
    return rows


def wait_until_agents_listen(story: Story) -> None:
    """Wait until the worker's consumer group holds the orders topic: from then on latency is the pipeline's."""
    group = consumer_group(story.settings, ORDER_AGENT)
    story.say(f"waiting for the worker's agents to join consumer group {group} …")

    admin = make_admin(story.settings, quiet=True)

    def assigned() -> bool:
        try:
            view = describe_group(admin, group)
        except KafkaException:
            return False
        return view.stable and ORDERS_TOPIC in view.topics

    story.wait_for("assignment of the agents' topics", assigned, every=1.0)


# -- step 1: orders ---------------------------------------------------------------------------


def make_order_changes(database_url: str, batch: str, script: Script) -> list[int]:
    """Insert ``script.orders`` orders with a payment each, fail some (refunding their payments),
    ship some, delete the last; return the ids."""
    with psycopg.connect(database_url) as conn:
        ids = [
            row[0]
            for row in conn.execute(
                "INSERT INTO public.orders (customer, amount, batch) "
                "SELECT 'customer-' || n, 10.0 * n, %s FROM generate_series(1, %s) AS n RETURNING id",
                (batch, script.orders),
            ).fetchall()
        ]
        conn.execute(
            "INSERT INTO public.payments (order_id, amount) SELECT id, amount FROM public.orders WHERE id = ANY(%s)",
            (ids,),
        )
        conn.commit()
        failed, shipped = ids[: script.failed], ids[script.failed : script.failed + script.shipped]
        conn.execute(
            "UPDATE public.payments SET status = 'refunded', updated_at = now() WHERE order_id = ANY(%s)",
            (failed,),
        )
        conn.execute(
            "UPDATE public.orders SET status = 'failed', updated_at = now() WHERE id = ANY(%s)", (failed,)
        )
        conn.execute(
            "UPDATE public.orders SET status = 'shipped', updated_at = now() WHERE id = ANY(%s)", (shipped,)
        )
        conn.execute("DELETE FROM public.orders WHERE id = %s", (ids[-1],))
        conn.commit()
    return ids


def step_orders(story: Story) -> None:
    script = story.script
    story.facts["orders_since"] = story.scalar("SELECT now()")
    make_order_changes(story.database_url, story.batch, script)
    story.say(
        f"batch {story.batch}: inserted {script.orders} orders (public.orders) and their payments "
        f"(public.payments); failed {script.failed} (payments refunded), shipped {script.shipped}, deleted 1"
    )
    story.say(
        "  Debezium (in Kafka Connect) → cdc.public.orders → order-watch → vigil.outbox → outbox router → sink"
    )

    def delivered() -> list[dict[str, Any]] | None:
        lines = sink_lines(story.sink_file, lambda e: payload_of(e).get("batch") == story.batch)
        return lines if len(lines) >= script.failed else None

    lines = story.wait_for(f"{script.failed} notifications in {story.sink_file}", delivered)
    print_table(
        story.console,
        f"notifications delivered to {story.sink_file}",
        ["outbox id", "topic", "text"],
        [[str(e.get("id")), str(e.get("topic")), str(payload_of(e).get("text"))] for e in lines],
    )


# -- step 3: a schedule and a wakeup -----------------------------------------------------------------


def step_schedule(story: Story) -> None:
    script = story.script
    name = f"demo-tick-{story.batch}"
    story.facts["schedule"] = name
    add_schedule(
        story.settings,
        story.console,
        name,
        cron=None,
        every=f"{script.schedule_every_s}s",
        at=None,
        tz="UTC",
        agent=TICKER,
        payload=json.dumps({"wake_in_s": script.wake_in_s}),
        overlap="skip",
        misfire="run_once",
        catch_up_window="1h",
    )
    story.say(
        f"  the scheduler in the worker fires it to vigil.ticks; {TICKER} runs each tick, and on the first "
        f"sets itself a wakeup {script.wake_in_s:g} s later (ctx.wake_in)"
    )
    seen: set[str] = set()
    ticks = woken = 0

    def progress() -> bool:
        nonlocal ticks, woken
        rows = story.query(
            "SELECT run_id::text, trace, finished_at FROM vigil.runs WHERE agent = %s AND started_at >= %s "
            "AND status = 'succeeded' ORDER BY finished_at",
            TICKER,
            story.started_at,
        )
        for run_id, trace, finished in rows:
            if run_id in seen or not trace:
                continue
            seen.add(run_id)
            first = trace[0]
            if first.get("step") == "tick" and first.get("schedule") == name:
                ticks += 1
                wakeup = next((t for t in trace if t.get("step") == "wakeup set"), None)
                story.say(
                    f"  {finished:%H:%M:%S.%f}"[:-3]
                    + f" tick of slot {first.get('slot')}"
                    + (f" → wakeup {wakeup.get('id')} set" if wakeup else "")
                )
            elif first.get("step") == "woken" and first.get("by") == name:
                woken += 1
                story.say(
                    f"  {finished:%H:%M:%S.%f}"[:-3] + f" woken by its wakeup (due {first.get('slot')})"
                )
        return ticks >= script.ticks and woken >= 1

    try:
        story.wait_for(f"{script.ticks} ticks and a wakeup of {TICKER}", progress, timeout=60.0)
    finally:
        remove_schedule(story.settings, story.console, name)


# -- step 4: a heartbeat stops -------------------------------------------------------------------


def step_heartbeat(story: Story) -> None:
    script = story.script
    name = f"demo-job-{story.batch}"
    story.facts["heartbeat"] = name
    key, fp = alert_key(ABSENCE, name), alert_fingerprint(ABSENCE, name)
    engine = as_engine(story.database_url)
    try:
        heartbeats.expect(engine, name, every_s=script.beat_every_s, grace_s=script.beat_grace_s)
        story.say(
            f"heartbeat {name} expected every {script.beat_every_s:g} s, alert {script.beat_grace_s:g} s after "
            "a miss (`vigil heartbeat expect`); the job beats:"
        )
        for _ in range(script.beats_before_stop):
            heartbeats.beat(engine, name)
            story.say(f"  {datetime.now(UTC):%H:%M:%S} beat")
            story.stop.wait(script.beat_every_s / 2)
        stopped = time.monotonic()
        story.say(f"  {datetime.now(UTC):%H:%M:%S} the job stops beating (on purpose)")
        story.wait_for(
            "absence alert",
            lambda: story.scalar("SELECT 1 FROM vigil.alerts WHERE key = %s AND status = 'open'", key),
            timeout=60.0,
            every=0.25,
        )
        story.say(
            f"  {datetime.now(UTC):%H:%M:%S} [bold]absence alert[/] after {time.monotonic() - stopped:.1f} s of "
            "silence: one critical event to drift.events → drift-router → drift.critical → drift-remediate "
            "(nothing configured: an `unremediated` alert on vigil.outbox.drift-alerts for the sink)"
        )
        story.wait_for(
            "the absence routed to the critical tier",
            lambda: story.scalar(
                "SELECT 1 FROM vigil.drift_decisions WHERE fingerprint = %s AND tier = 'critical'", fp
            ),
        )

        def beat_until_resolved() -> bool:
            heartbeats.beat(engine, name)
            return bool(
                story.scalar("SELECT 1 FROM vigil.alerts WHERE key = %s AND status = 'resolved'", key)
            )

        story.say(f"  {datetime.now(UTC):%H:%M:%S} the job beats again")
        story.wait_for(
            "resolved absence alert", beat_until_resolved, timeout=60.0, every=script.beat_every_s / 2
        )
        opened = story.scalar("SELECT count(*) FROM vigil.alerts WHERE key = %s", key)
        story.say(
            f"  {datetime.now(UTC):%H:%M:%S} alert resolved ({opened} alert in vigil.alerts for {name})"
        )
        story.wait_for(
            "closed absence incident",
            lambda: story.scalar(
                "SELECT 1 FROM vigil.drift_incidents WHERE fingerprint = %s AND status = 'closed'", fp
            ),
        )
    finally:
        with engine.begin() as conn:  # the demo's job is over: its heartbeat must not alert again
            conn.execute(
                text("UPDATE vigil.heartbeats SET status = 'paused' WHERE name = :name"), {"name": name}
            )
        engine.dispose()


# -- step 5: replay ------------------------------------------------------------------------------


def side_effect_counts(story: Story) -> tuple[int, int, int]:
    """(notifications in the outbox, runs, processed events) of ``order-watch``: what a replay must
    leave as it is."""
    row = story.query(
        "SELECT (SELECT count(*) FROM vigil.outbox WHERE aggregatetype = 'notifications'), "
        "(SELECT count(*) FROM vigil.runs WHERE agent = %s), "
        "(SELECT count(*) FROM vigil.processed_events WHERE agent = %s)",
        ORDER_AGENT,
        ORDER_AGENT,
    )[0]
    return int(row[0]), int(row[1]), int(row[2])


def step_replay(story: Story) -> None:
    since: datetime = story.facts["orders_since"]
    request = ReplayRequest(
        ORDERS_TOPIC,
        from_time=(since - timedelta(seconds=1)).isoformat(),
        agent=ORDER_AGENT,
        agent_modules=(demo_agents.__name__,),
    )
    before = side_effect_counts(story)
    result = replay(story.settings, story.console, request, show_progress=False)
    after = side_effect_counts(story)
    report = result.agent or AgentReport()
    story.facts["duplicates"] = report.skipped
    story.say(
        f"replayed {result.matched} change event(s) of this run through {ORDER_AGENT} (live dedup path): "
        f"{report.succeeded} processed again, [bold]{report.skipped} skipped as already processed[/]; "
        f"{ORDER_AGENT}'s outbox rows {before[0]} → {after[0]}, runs {before[1]} → {after[1]}, "
        f"processed events {before[2]} → {after[2]}"
    )
    if after != before or report.succeeded:
        raise SystemExit("demo stopped: the replay made new side effects; it must not")
    story.say("zero new side effects. A dry run of a deliberate rerun (new ids) shows what it would do:")
    dry = replay(
        story.settings, story.console, replace(request, dry_run=True, rerun=True), show_progress=False
    )
    previews = (dry.agent or AgentReport()).previews
    rows = []
    for preview in previews:
        output = preview.output
        inspect = next((t for t in (output.trace if output else []) if t.get("step") == "inspect"), {})
        rows.append(
            [
                str(inspect.get("order", "-")),
                str(inspect.get("op", "d")),
                str(inspect.get("status", "-")),
                preview.status,
                "; ".join(
                    f"{r.aggregatetype}: {_text(r.payload)}" for r in (output.outbox if output else [])
                ),
            ]
        )
    print_table(
        story.console,
        f"dry run {dry.replay_id}: {len(previews)} event(s), nothing written",
        ["order", "op", "status", "would be", "side effects it would emit"],
        rows,
    )
    if side_effect_counts(story) != after:
        raise SystemExit("demo stopped: the dry run wrote something; it must not")


def _text(payload: Any) -> str:
    return str(payload.get("text", payload)) if isinstance(payload, dict) else str(payload)


def say_where_to_look(story: Story, rows: list[SummaryRow]) -> None:
    port = story.settings.http_port
    story.say(
        "[green]demo complete[/]. The embedded services keep running (`vigil services down` stops them).\n"
        f"Look further: `vigil up` runs the same pipeline and serves the dashboard at http://127.0.0.1:{port}/ "
        "over the same data; `vigil status`, `vigil review list --all`, `vigil schedule list --wakeups`, "
        "`vigil heartbeat list`, `vigil inspect tail drift.critical`."
    )
    missing = empty_rows(rows)
    if missing:
        raise SystemExit(f"demo incomplete: rows that counted nothing: {', '.join(missing)}")


#: The story's steps before the summary, in order: (title, step).
STEPS: tuple[tuple[str, Callable[[Story], None]], ...] = (
    ("order changes through Debezium to an agent, the outbox and a sink", step_orders),
    ("a metric drifts: warning → report, critical → approved remediation, recovery → resolved", step_drift),
    ("a schedule ticks an agent, which sets itself a wakeup", step_schedule),
    ("a heartbeat stops: one absence alert, resolved when beats resume", step_heartbeat),
    ("a replay of the orders through order-watch: nothing twice; and a dry run", step_replay),
)
