"""The ``vigil`` command line: every command of the contract.

Commands whose issue has not landed yet say so and exit with status 2; they never print fake output.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from ops import commands
from schemas.errors import ConfigurationError, VigilError
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
heartbeat_app = typer.Typer(help="Expected heartbeats and absence alerts.", no_args_is_help=True)
review_app = typer.Typer(help="The human review queue.", no_args_is_help=True)
db_app = typer.Typer(help="Vigil's Postgres schema.", no_args_is_help=True)
for sub, name in (
    (services_app, "services"),
    (connectors_app, "connectors"),
    (drift_app, "drift"),
    (inspect_app, "inspect"),
    (schedule_app, "schedule"),
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
    demo: Annotated[bool, typer.Option("--demo", help="Seed a demo schema, make changes and drift.")] = False,
    agents_module: Annotated[
        list[str] | None, typer.Option("-A", "--app", help="Module with user agents (repeatable).")
    ] = None,
) -> None:
    """Run the whole pipeline in the foreground (embedded services as needed)."""
    from ops.pipeline import pipeline_up

    pipeline_up(settings(), console, demo=demo, agent_modules=agents_module or [])


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
def status(as_json: JsonFlag = False) -> None:
    """Agents, recent runs, failures, review queue, overdue heartbeats, outbox backlog, connectors."""
    from ops.status import show

    raise typer.Exit(0 if show(settings(), console, as_json=as_json) else 1)


@app.command()
def replay(topic: str) -> None:
    """Replay a time or offset range of TOPIC to a sandbox topic or through one agent (dry run)."""
    not_landed("replay", "no issue has built it yet")


@app.command()
def doctor(as_json: JsonFlag = False) -> None:
    """Check the database, Kafka and Kafka Connect Vigil points at; name any limitation."""
    ok = commands.doctor(settings(), console, as_json=as_json)
    raise typer.Exit(0 if ok else 1)


# -- services ---------------------------------------------------------------------------


@services_app.command("up")
def services_up(as_json: JsonFlag = False) -> None:
    """Start the embedded Postgres, Kafka and Kafka Connect (idempotent); print URLs and start time."""
    commands.services_up(settings(), console, as_json=as_json)


@services_app.command("down")
def services_down() -> None:
    """Stop the embedded services Vigil started (data is kept)."""
    commands.services_down(settings(), console)


@services_app.command("status")
def services_status(as_json: JsonFlag = False) -> None:
    """URLs and health of the database, Kafka and Kafka Connect."""
    healthy = commands.services_status(settings(), console, as_json=as_json)
    raise typer.Exit(0 if healthy else 1)


# -- database ---------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply Vigil's migrations to the database (schema ``vigil``)."""
    commands.db_upgrade(settings(), console)


# -- inspection -------------------------------------------------------------------------


@inspect_app.command("topics")
def inspect_topics(as_json: JsonFlag = False) -> None:
    """Topics with their partition counts."""
    commands.inspect_topics(settings(), console, as_json=as_json)


@inspect_app.command("groups")
def inspect_groups(as_json: JsonFlag = False) -> None:
    """Consumer groups and their lag."""
    not_landed("inspect groups", "no issue has built it yet")


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
def drift_publish() -> None:
    """Publish one drift event."""
    not_landed("drift publish", "no issue has built it yet")


@drift_app.command("detect")
def drift_detect() -> None:
    """Run drift detectors over a metric source."""
    not_landed("drift detect", "no issue has built it yet")


@schedule_app.command("add")
def schedule_add() -> None:
    """Add a cron, --every or --at schedule."""
    not_landed("schedule add", "no issue has built it yet")


@schedule_app.command("list")
def schedule_list() -> None:
    """List schedules."""
    not_landed("schedule list", "no issue has built it yet")


@schedule_app.command("remove")
def schedule_remove() -> None:
    """Remove a schedule."""
    not_landed("schedule remove", "no issue has built it yet")


@schedule_app.command("pause")
def schedule_pause() -> None:
    """Pause a schedule."""
    not_landed("schedule pause", "no issue has built it yet")


@schedule_app.command("resume")
def schedule_resume() -> None:
    """Resume a schedule."""
    not_landed("schedule resume", "no issue has built it yet")


@heartbeat_app.command("expect")
def heartbeat_expect() -> None:
    """Declare an expected heartbeat (--every, --grace)."""
    not_landed("heartbeat expect", "no issue has built it yet")


@heartbeat_app.command("beat")
def heartbeat_beat() -> None:
    """Beat a heartbeat."""
    not_landed("heartbeat beat", "no issue has built it yet")


@heartbeat_app.command("list")
def heartbeat_list() -> None:
    """List heartbeats and whether they are overdue."""
    not_landed("heartbeat list", "no issue has built it yet")


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
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except ConfigurationError as exc:
        err_console.print(f"[red]configuration:[/] {exc}")
        sys.exit(3)
    except VigilError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        sys.exit(1)
