"""The ``vigil`` command line: every command of the contract.

Commands whose issue has not landed yet say so and exit with status 2; they never print fake output.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from schemas.errors import ConfigurationError, VigilError
from streams.redact import mask_urls_in_logs
from streams.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="vigil",
    help="Vigil: proactive background agents on Kafka, with exactly-once side effects.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
services_app = typer.Typer(
    help="The embedded Postgres, Apache Kafka and Kafka Connect alone.", no_args_is_help=True
)
connectors_app = typer.Typer(
    help="Debezium connectors on Kafka Connect (VIGIL_CONNECT_URL, else the embedded worker).",
    no_args_is_help=True,
)
drift_app = typer.Typer(help="Publish drift events; run drift detectors.", no_args_is_help=True)
inspect_app = typer.Typer(help="Topics, consumer groups and decoded messages.", no_args_is_help=True)
schedule_app = typer.Typer(help="Cron, interval and one-shot schedules.", no_args_is_help=True)
watch_app = typer.Typer(help="Future conditions on a topic, with a deadline.", no_args_is_help=True)
heartbeat_app = typer.Typer(help="Expected heartbeats and absence alerts.", no_args_is_help=True)
review_app = typer.Typer(help="The human review queue.", no_args_is_help=True)
db_app = typer.Typer(help="Vigil's Postgres schema.", no_args_is_help=True)
for sub, name in (
    (services_app, "services"),
    (connectors_app, "connectors"),
    (drift_app, "drift"),
    (inspect_app, "inspect"),
    (schedule_app, "schedule"),
    (watch_app, "watch"),
    (heartbeat_app, "heartbeat"),
    (review_app, "review"),
    (db_app, "db"),
):
    app.add_typer(sub, name=name)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def settings() -> Settings:
    return load_settings()


def not_landed(command: str, issue: str) -> NoReturn:
    """Say plainly that ``command`` is not built yet, and exit non-zero."""
    err_console.print(f"[yellow]vigil {command}[/] has not landed yet ({issue}); nothing was done.")
    raise typer.Exit(2)


# -- whole pipeline -----------------------------------------------------------------------


@app.command()
def up(
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Seed a demo schema (orders, payments, metrics) and play the scripted story: CDC, "
            "drift with an approval, a schedule and a wakeup, a stopped heartbeat, a replay; then a "
            "summary, and exit.",
        ),
    ] = False,
    short: Annotated[
        bool,
        typer.Option(
            "--short",
            help="With --demo: every step, less of each (fewer orders and windows, a 2-second "
            "schedule, a 1-second heartbeat); what the tests run.",
        ),
    ] = False,
    agents_module: Annotated[
        list[str] | None, typer.Option("-A", "--app", help="Module with user agents (repeatable).")
    ] = None,
    no_live: Annotated[
        bool, typer.Option("--no-live", help="A one-line summary every 10 s instead of the live view.")
    ] = False,
) -> None:
    """Run the whole pipeline in the foreground (embedded services as needed)."""
    from ops.pipeline import pipeline_up

    pipeline_up(
        settings(), console, demo=demo, agent_modules=agents_module or [], short=short, live=not no_live
    )


@app.command()
def worker(
    agents_module: Annotated[
        list[str] | None, typer.Option("-A", "--app", help="Module with user agents (repeatable).")
    ] = None,
) -> None:
    """A Faust worker with the built-in agents and the user's."""
    from ops.worker import run_worker

    run_worker(settings(), agents_module or [])


@app.command()
def relay() -> None:
    """The outbox relay alone, in its own process (what `vigil up` runs next to the worker).

    Publishes committed vigil.outbox rows to vigil.outbox.<aggregatetype>, beats the heartbeat
    relay:<app_id> (`vigil status`), and on SIGINT or SIGTERM finishes its round, flushes and exits 0.
    Refuses to start when Debezium's outbox router relays the outbox (see VIGIL_CONNECTORS).
    """
    from ops.relay import run_relay

    run_relay(settings())


@app.command()
def status(as_json: JsonFlag = False) -> None:
    """Agents, recent runs, failures, review queue, overdue heartbeats, outbox backlog, connectors."""
    from ops.status import show

    raise typer.Exit(0 if show(settings(), console, as_json=as_json) else 1)


@app.command()
def replay(
    topic: str,
    from_time: Annotated[
        str | None, typer.Option("--from", help="Start time: ISO 8601 (UTC if no zone) or relative (-2h).")
    ] = None,
    to_time: Annotated[str | None, typer.Option("--to", help="End time (exclusive), same forms.")] = None,
    from_offset: Annotated[
        str | None, typer.Option("--from-offset", help="First offset: N, or P:N,P:N per partition.")
    ] = None,
    to_offset: Annotated[
        str | None, typer.Option("--to-offset", help="Last offset (inclusive): N, or P:N,P:N.")
    ] = None,
    key: Annotated[str | None, typer.Option("--key", help="Only messages with this key.")] = None,
    partition: Annotated[
        list[int] | None, typer.Option("--partition", help="Only this partition (repeatable).")
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", help="Only messages with header k=v (repeatable).")
    ] = None,
    to_topic: Annotated[
        str | None, typer.Option("--to-topic", help="Copy to this sandbox topic (created if missing).")
    ] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Run the events through this agent.")] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Run the handler in a rolled-back transaction; print its output."),
    ] = False,
    rerun: Annotated[
        bool, typer.Option("--rerun", help="Run again under new ids: side effects happen again.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before --rerun.")] = False,
    rate: Annotated[float | None, typer.Option("--rate", help="At most N messages a second.")] = None,
    agents_module: Annotated[
        list[str] | None, typer.Option("-A", "--app", help="Module with user agents (repeatable).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Replay a time or offset range of TOPIC to a sandbox topic, or through one agent (dry run,
    deduplicated, or --rerun). `vigil replay vigil.dlq --agent NAME` re-drives NAME's dead letters."""
    from ops.replay import ReplayRequest, print_result
    from ops.replay import replay as run_replay
    from ops.services import stack

    request = ReplayRequest(
        topic=topic,
        from_time=from_time,
        to_time=to_time,
        from_offset=from_offset,
        to_offset=to_offset,
        key=key,
        partitions=tuple(partition or ()),
        headers=tuple(header or ()),
        to_topic=to_topic,
        agent=agent,
        dry_run=dry_run,
        rerun=rerun,
        rate=rate,
        agent_modules=tuple(agents_module or ()),
    )
    request.check()
    shown = err_console if as_json else console

    def confirm(plan: object) -> bool:
        return yes or typer.confirm("Run these events again, side effects included?", err=True)

    result = run_replay(stack.attach(settings()), shown, request, confirm=confirm, show_progress=not as_json)
    if as_json:
        from ops.output import print_json

        print_json(result.as_json())
    else:
        print_result(console, request, result)
    if result.cancelled:
        raise typer.Exit(1)


@app.command()
def doctor(as_json: JsonFlag = False) -> None:
    """Check the database, Kafka and Kafka Connect Vigil points at; name any limitation."""
    from ops import commands

    ok = commands.doctor(settings(), console, as_json=as_json)
    raise typer.Exit(0 if ok else 1)


# -- services ---------------------------------------------------------------------------


@services_app.command("up")
def services_up(as_json: JsonFlag = False) -> None:
    """Start the embedded Postgres, Kafka and Kafka Connect (idempotent); print URLs and start time."""
    from ops import commands

    commands.services_up(settings(), console, as_json=as_json)


@services_app.command("down")
def services_down() -> None:
    """Stop the embedded services Vigil started (data is kept)."""
    from ops import commands

    commands.services_down(settings(), console)


@services_app.command("status")
def services_status(as_json: JsonFlag = False) -> None:
    """URLs and health of the database, Kafka and Kafka Connect."""
    from ops import commands

    healthy = commands.services_status(settings(), console, as_json=as_json)
    raise typer.Exit(0 if healthy else 1)


@services_app.command("url")
def services_url(
    show_password: Annotated[
        bool,
        typer.Option("--show-password", help="Print the working URL, password included (for scripts)."),
    ] = False,
) -> None:
    """The database URL Vigil uses; its password is masked unless --show-password."""
    from ops import commands

    url = commands.services_url(settings(), show_password=show_password)
    if url is None:
        err_console.print("no database yet: start it with `vigil services up`, or set VIGIL_DATABASE_URL")
        raise typer.Exit(1)
    # Plain print: rich would wrap a long URL and read markup in it.
    print(url)


# -- database ---------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply Vigil's migrations to the database (schema ``vigil``)."""
    from ops import commands

    commands.db_upgrade(settings(), console)


@db_app.command("new-identity")
def db_new_identity() -> None:
    """Give the database a new installation id (after restoring it from a backup): the ledger topic's
    records of events processed after the backup no longer make workers skip those events."""
    from ops import commands

    commands.db_new_identity(settings(), console)


# -- inspection -------------------------------------------------------------------------


@inspect_app.command("topics")
def inspect_topics(as_json: JsonFlag = False) -> None:
    """Topics: partitions, offsets per partition, message counts, configs (cleanup.policy, retention)."""
    from ops.inspect import show_topics
    from ops.services import stack

    show_topics(stack.attach(settings()), console, as_json=as_json)


@inspect_app.command("groups")
def inspect_groups(
    group: Annotated[str | None, typer.Argument(help="Only this group.")] = None, as_json: JsonFlag = False
) -> None:
    """Consumer groups: members, assigned partitions, committed offsets and lag per partition."""
    from ops.inspect import show_groups
    from ops.services import stack

    show_groups(stack.attach(settings()), console, group, as_json=as_json)


@inspect_app.command("get")
def inspect_get(topic: str, partition: int, offset: int) -> None:
    """One message, decoded, with its headers (JSON)."""
    from ops.inspect import show_message
    from ops.services import stack

    show_message(stack.attach(settings()), topic, partition, offset)


@inspect_app.command("tail")
def inspect_tail(
    topic: str,
    follow: Annotated[bool, typer.Option("--follow")] = False,
    key: Annotated[str | None, typer.Option("--key")] = None,
    limit: Annotated[int | None, typer.Option("--limit")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Decoded messages of TOPIC from the beginning (or the last N per partition); exits when caught up."""
    from ops.services import stack
    from ops.tail import tail

    tail(stack.attach(settings()), console, topic, follow=follow, key=key, limit=limit, as_json=as_json)


# -- contract commands whose issues have not landed ------------------------------------


@connectors_app.command("list")
def connectors_list() -> None:
    """The connector configs Vigil would run."""
    from ops import connectors_cli

    connectors_cli.list_connectors(settings(), console)


@connectors_app.command("apply")
def connectors_apply(
    files: Annotated[list[str] | None, typer.Argument(help="Connector JSON files.")] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Restart each connector and all its tasks afterwards.")
    ] = False,
) -> None:
    """Create or update connectors on Kafka Connect; restart failed tasks."""
    from ops import connectors_cli

    connectors_cli.apply(settings(), console, files, restart=restart)


@connectors_app.command("run")
def connectors_run(
    files: Annotated[list[str] | None, typer.Argument(help="Connector JSON files.")] = None,
) -> None:
    """Apply connectors to Kafka Connect (starting the embedded worker if needed), follow their status."""
    from ops import connectors_cli

    connectors_cli.run(settings(), console, files)


@connectors_app.command("remove")
def connectors_remove(
    files: Annotated[list[str] | None, typer.Argument(help="Connector JSON files.")] = None,
) -> None:
    """Delete connectors from Kafka Connect and drop their replication slots."""
    from ops import connectors_cli

    connectors_cli.remove(settings(), console, files)


@connectors_app.command("status")
def connectors_status(as_json: JsonFlag = False) -> None:
    """Connector health: running, last event, slot lag."""
    from ops import connectors_cli

    healthy = connectors_cli.status(settings(), console, as_json=as_json)
    raise typer.Exit(0 if healthy else 1)


@drift_app.command("publish")
def drift_publish(
    source: Annotated[str, typer.Option("--source", help="Where the metric comes from.")],
    metric: Annotated[str, typer.Option("--metric", help="The metric's name.")],
    value: Annotated[float, typer.Option("--value", help="The observed value.")],
    severity: Annotated[str | None, typer.Option("--severity", help="warning (default) or critical.")] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="A label name=value (repeatable).")
    ] = None,
    resolved: Annotated[bool, typer.Option("--resolved", help="The drift is over.")] = False,
) -> None:
    """Publish one drift event to drift.events; print its id once Kafka acknowledged it."""
    from ops.drift_cli import publish

    event_id = publish(
        settings(),
        source=source,
        metric=metric,
        value=value,
        severity=severity,
        labels=label or [],
        resolved=resolved,
    )
    print(event_id)


@drift_app.command("detect")
def drift_detect(
    source: Annotated[str, typer.Option("--source", help="The source named in the events.")],
    metric: Annotated[str, typer.Option("--metric", help="The metric's name (picks the policy rule).")],
    stdin: Annotated[
        bool, typer.Option("--stdin", help='Read JSON lines from stdin: a number or {"value", "at"}.')
    ] = False,
    topic: Annotated[
        str | None,
        typer.Option("--topic", help="A Debezium topic, cdc.<schema>.<table>: score --field of each change."),
    ] = None,
    field: Annotated[
        str | None, typer.Option("--field", help="With --topic: the column of the after-image to score.")
    ] = None,
    group: Annotated[
        str | None,
        typer.Option(
            "--group", help="With --topic: consumer group (default vigil-drift-detect.<topic>.<field>)."
        ),
    ] = None,
    query: Annotated[
        str | None,
        typer.Option("--query", help='Poll Postgres: "SELECT observed_at, value FROM …" (time, then value).'),
    ] = None,
    every: Annotated[float, typer.Option("--every", help="With --query: seconds between polls.")] = 10.0,
    max_samples: Annotated[
        int | None, typer.Option("--max-samples", help="Stop after scoring this many samples.")
    ] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="name=value (repeatable).")] = None,
    window: Annotated[int | None, typer.Option("--window", help="Observations per window.")] = None,
    baseline_size: Annotated[int | None, typer.Option("--baseline-size")] = None,
    step: Annotated[int | None, typer.Option("--step", help="Observations between scores.")] = None,
) -> None:
    """Run the policy's detector over a metric stream and publish each detection to drift.events."""
    from ops.drift_cli import DetectorTarget, run_detect

    run_detect(
        settings(),
        stdin_lines=sys.stdin if stdin else None,
        topic=topic,
        field=field,
        group=group,
        query=query,
        every=every,
        max_samples=max_samples,
        target=DetectorTarget(source, metric, label or [], window, baseline_size, step),
        out=lambda line: print(line, flush=True),
    )


@schedule_app.command("add")
def schedule_add(
    name: str,
    agent: Annotated[str, typer.Option("--agent", help="The agent that receives the ticks.")],
    cron: Annotated[
        str | None, typer.Option("--cron", help="Cron line: 5 fields, or 6 with seconds last.")
    ] = None,
    tz: Annotated[
        str, typer.Option("--tz", help="Time zone of --cron and of an --at without offset.")
    ] = "UTC",
    every: Annotated[str | None, typer.Option("--every", help="Interval: 30s, 5m, 1h30m.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="One time: ISO 8601, or +DURATION.")] = None,
    payload: Annotated[str | None, typer.Option("--payload", help="JSON given with every tick.")] = None,
    overlap: Annotated[
        str, typer.Option("--overlap", help="skip | buffer_one | allow: a slot due while a run is in flight.")
    ] = "skip",
    misfire: Annotated[
        str,
        typer.Option("--misfire", help="run_once | skip | catch_up: slots missed while no scheduler ran."),
    ] = "run_once",
    catch_up_window: Annotated[
        str, typer.Option("--catch-up-window", help="How far back catch_up fires missed slots.")
    ] = "1h",
) -> None:
    """Add a cron, --every or --at schedule whose ticks reach --agent."""
    from ops import schedules

    schedules.add(
        settings(),
        console,
        name,
        cron=cron,
        every=every,
        at=at,
        tz=tz,
        agent=agent,
        payload=payload,
        overlap=overlap,
        misfire=misfire,
        catch_up_window=catch_up_window,
    )


@schedule_app.command("list")
def schedule_list(
    as_json: JsonFlag = False,
    wakeups: Annotated[bool, typer.Option("--wakeups", help="Agents' wakeups too.")] = False,
) -> None:
    """Schedules with their next fire times, fired and skipped slots."""
    from ops import schedules

    schedules.list_schedules(settings(), console, as_json=as_json, wakeups=wakeups)


@schedule_app.command("remove")
def schedule_remove(name: str) -> None:
    """Remove a schedule (its slot records and heartbeat too)."""
    from ops import schedules

    schedules.remove(settings(), console, name)


@schedule_app.command("pause")
def schedule_pause(name: str) -> None:
    """Pause a schedule: no ticks until it is resumed."""
    from ops import schedules

    schedules.set_paused(settings(), console, name, paused=True)


@schedule_app.command("resume")
def schedule_resume(name: str) -> None:
    """Resume a schedule from now (the slots of the pause are not fired)."""
    from ops import schedules

    schedules.set_paused(settings(), console, name, paused=False)


@watch_app.command("add")
def watch_add(
    name: str,
    topic: Annotated[str, typer.Option("--topic", help="The topic whose events may match.")],
    match: Annotated[str, typer.Option("--match", help='Predicate, e.g. after.status == "done".')],
    by: Annotated[str, typer.Option("--by", help="Deadline: a wall time (03:00), ISO 8601 or +DURATION.")],
    then_agent: Annotated[str, typer.Option("--then-agent", help="The agent a match is handed to.")],
    tz: Annotated[str, typer.Option("--tz", help="Time zone of --by.")] = "UTC",
) -> None:
    """Arm a watch: the first matching event goes to --then-agent; none by the deadline raises a
    critical alert."""
    from ops import watches

    watches.add(settings(), console, name, topic=topic, match=match, by=by, tz=tz, agent=then_agent)


@watch_app.command("list")
def watch_list(as_json: JsonFlag = False) -> None:
    """Watches and their states (armed, matched, handed_off, expired)."""
    from ops import watches

    watches.list_watches(settings(), console, as_json=as_json)


@watch_app.command("remove")
def watch_remove(name: str) -> None:
    """Remove a watch."""
    from ops import watches

    watches.remove(settings(), console, name)


@heartbeat_app.command("expect")
def heartbeat_expect(
    name: str,
    every: Annotated[str, typer.Option("--every", help="Period between beats: 30s, 5m, 1h, 1d.")],
    grace: Annotated[str, typer.Option("--grace", help="How late a beat may be before the alert.")],
) -> None:
    """Declare an expected heartbeat NAME: a beat every --every, one critical alert --grace after a miss."""
    from ops.heartbeat_cli import expect

    expect(settings(), console, name, every=every, grace=grace)


@heartbeat_app.command("beat")
def heartbeat_beat(name: str) -> None:
    """Beat the declared heartbeat NAME (also: POST /heartbeat/NAME)."""
    from ops.heartbeat_cli import beat

    beat(settings(), console, name)


@heartbeat_app.command("list")
def heartbeat_list(as_json: JsonFlag = False) -> None:
    """List heartbeats, overdue ones first; exit 1 when one is overdue."""
    from ops.heartbeat_cli import list_all

    raise typer.Exit(0 if list_all(settings(), console, as_json=as_json) else 1)


@heartbeat_app.command("remove")
def heartbeat_remove(name: str) -> None:
    """Remove the heartbeat NAME (a decommissioned job or agent) and resolve its open absence alert."""
    from ops.heartbeat_cli import remove

    remove(settings(), console, name)


@review_app.command("list")
def review_list(
    show_all: Annotated[bool, typer.Option("--all", help="Decided items too.")] = False,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Review items: output an agent's validator rejected."""
    from ops.review import list_items

    list_items(settings(), console, show_all=show_all, limit=limit, as_json=as_json)


@review_app.command("approve")
def review_approve(
    item_id: str, by: Annotated[str | None, typer.Option("--by", help="Who decides.")] = None
) -> None:
    """Approve a review item: its proposed outbox rows are written (once)."""
    from ops.review import decide

    decide(settings(), console, item_id, approve=True, who=by)


@review_app.command("reject")
def review_reject(
    item_id: str, by: Annotated[str | None, typer.Option("--by", help="Who decides.")] = None
) -> None:
    """Reject a review item: nothing is written."""
    from ops.review import decide

    decide(settings(), console, item_id, approve=False, who=by)


def main() -> None:
    log_format = "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.WARNING, format=log_format)
    mask_urls_in_logs(log_format)
    try:
        app()
    except ConfigurationError as exc:
        err_console.print(f"[red]configuration:[/] {exc}")
        sys.exit(3)
    except VigilError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        sys.exit(1)
