"""The live view of ``vigil up``: each part's state, events per topic, agent runs, lag and open alerts.

A :class:`Snapshot` is what one refresh saw. :func:`render` turns it into a rich renderable for the
terminal (redrawn about every second by :func:`run`), :func:`summary_line` into the one plain line
printed every ~10 s when stdout is not a terminal or ``--no-live`` is given; both are pure.
:class:`Collector` does the I/O: end offsets from one long-lived admin client (events per second are
the growth of a topic's end offsets between two refreshes), runs of the last minute from
``vigil.runs``, and, every few seconds, what ``vigil status`` reports (agents' lag, connectors,
open alerts) with the stack's health and the worker's ``/healthz``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import psycopg
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec
from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ops.services import stack
from ops.services.connect import GROUP_ID as CONNECT_GROUP_ID
from ops.status import alert_text, collect, recent_runs
from ops.supervisor import Child, Supervisor
from streams.kafka import client_config
from streams.redact import mask_urls_in
from streams.settings import Settings

log = logging.getLogger(__name__)

#: Topics shown in the view at most; the quietest others are counted in one line.
TOPICS_SHOWN = 12
ALERTS_SHOWN = 8
KAFKA_TIMEOUT_S = 5.0
HEALTHZ_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Part:
    """One part of the running pipeline. ``ok``: True fine, False broken, None in between."""

    name: str
    state: str
    ok: bool | None
    detail: str = ""


@dataclass(frozen=True)
class TopicFlow:
    topic: str
    #: The sum of the topic's end offsets: events ever written to it.
    events: int
    #: Events per second since the previous refresh; None the first time the topic is seen.
    rate: float | None


@dataclass(frozen=True)
class AgentActivity:
    agent: str
    ok_last_minute: int
    failed_last_minute: int
    #: Consumer lag summed over the agent's topics, as its worker last measured it; None unknown.
    lag: int | None


@dataclass(frozen=True)
class Snapshot:
    at: datetime
    uptime_s: float
    services: tuple[Part, ...] = ()
    connectors: tuple[Part, ...] = ()
    children: tuple[Part, ...] = ()
    topics: tuple[TopicFlow, ...] = ()
    agents: tuple[AgentActivity, ...] = ()
    alerts: tuple[str, ...] = ()
    #: (what, URL) of the dashboard, /metrics and the ingest, when a worker serves them.
    urls: tuple[tuple[str, str], ...] = ()
    #: What could not be collected this time.
    problems: tuple[str, ...] = ()


# -- pure: deciding what to show ------------------------------------------------------------


def http_urls(settings: Settings) -> tuple[tuple[str, str], ...]:
    """Where the worker serves the dashboard, ``/metrics`` and the ingest."""
    host = settings.http_host or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # listening everywhere: loopback reaches it
    base = f"http://[{host}]:{settings.http_port}" if ":" in host else f"http://{host}:{settings.http_port}"
    ingest = f"POST {base}/ingest/drift|alertmanager|grafana, {base}/heartbeat/NAME"
    if settings.ingest_token is None:
        ingest += " (disabled until VIGIL_INGEST_TOKEN is set)"
    return (
        ("dashboard", f"{base}/"),
        ("metrics", f"{base}/metrics"),
        ("health", f"{base}/healthz"),
        ("ingest", ingest),
    )


def is_shown_topic(name: str) -> bool:
    """Vigil's and the user's topics; not Kafka's, Kafka Connect's or Faust's internal ones."""
    return not (name.startswith("__") or "-__" in name or name.startswith(f"{CONNECT_GROUP_ID}-"))


def flows(
    previous: Mapping[str, int] | None, current: Mapping[str, int], seconds: float
) -> tuple[TopicFlow, ...]:
    """Events per second of each topic from its end offsets at two refreshes ``seconds`` apart,
    busiest first, then by events held, then by name."""
    out = []
    for topic, events in current.items():
        before = None if previous is None else previous.get(topic)
        rate = None if before is None or seconds <= 0 else max(0, events - before) / seconds
        out.append(TopicFlow(topic, events, rate))
    return tuple(sorted(out, key=lambda f: (-(f.rate or 0.0), -f.events, f.topic)))


def child_part(name: str, state: str, pid: int | None, returncode: int | None, restarts: int) -> Part:
    ok = {"running": True, "restarting": None}.get(state, False)
    detail = [f"pid {pid}"] if pid is not None else []
    if state in ("restarting", "exited") and returncode is not None:
        detail.append(f"exit code {returncode}")
    if restarts:
        detail.append(f"{restarts} restart(s)")
    return Part(name, state, ok, ", ".join(detail))


def with_relay_heartbeat(
    children: tuple[Part, ...], relays: Sequence[Mapping[str, object]], beat_name: str, backlog: int | None
) -> tuple[Part, ...]:
    """The ``relay`` child (``vigil relay``) with what its heartbeat says: published rows, the
    backlog, and the last error while it is unhealthy (a running process that cannot publish)."""
    entry = next((r for r in relays if r.get("name") == beat_name), None)
    out = []
    for part in children:
        if part.name != "relay" or entry is None:
            out.append(part)
            continue
        note = [f"{entry.get('published') or 0:,} published"]
        if backlog is not None:
            note.append(f"backlog {backlog:,}")
        ok = part.ok
        if entry.get("state") == "unhealthy" and part.ok:
            ok = False
            note.append(f"unhealthy: {entry.get('last_error') or 'no round succeeded lately'}")
        out.append(replace(part, ok=ok, detail=", ".join(d for d in (part.detail, *note) if d)))
    return tuple(out)


def agent_activity(
    agents: Sequence[Mapping[str, object]], runs: Mapping[str, tuple[int, int]]
) -> tuple[AgentActivity, ...]:
    """Agents known to ``vigil status`` (with their lag) and those that ran in the last minute."""
    lags: dict[str, int | None] = {}
    for agent in agents:
        lag = agent.get("lag")
        lags[str(agent["agent"])] = sum(lag.values()) if isinstance(lag, dict) and lag else None
    names = sorted(set(lags) | set(runs))
    return tuple(AgentActivity(n, *runs.get(n, (0, 0)), lags.get(n)) for n in names)


def duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _rate(rate: float | None) -> str:
    if rate is None:
        return "-"
    if rate == 0:
        return "0"
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.1f}"


# -- pure: rendering --------------------------------------------------------------------------


def _style(ok: bool | None) -> str:
    return "green" if ok else "yellow" if ok is None else "red"


def _parts_table(snapshot: Snapshot) -> Table:
    table = Table(title="Parts", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("part", "state", "detail"):
        table.add_column(column)
    groups = (("", snapshot.services), ("connector ", snapshot.connectors), ("", snapshot.children))
    for prefix, parts in groups:
        for part in parts:
            table.add_row(
                Text(prefix + part.name), Text(part.state, style=_style(part.ok)), Text(part.detail)
            )
    return table


def _topics_table(snapshot: Snapshot) -> Table:
    table = Table(title="Events per topic", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("topic")
    table.add_column("events", justify="right")
    table.add_column("per second", justify="right")
    for flow in snapshot.topics[:TOPICS_SHOWN]:
        style = "bold" if flow.rate else ""
        table.add_row(Text(flow.topic), f"{flow.events:,}", Text(_rate(flow.rate), style=style))
    hidden = snapshot.topics[TOPICS_SHOWN:]
    if hidden:
        table.add_row(
            Text(f"… {len(hidden)} quieter topic(s)", style="dim"), f"{sum(f.events for f in hidden):,}", ""
        )
    return table


def _agents_table(snapshot: Snapshot) -> Table:
    table = Table(title="Agent runs, last minute", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("agent")
    table.add_column("ok", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("lag", justify="right")
    for agent in snapshot.agents:
        failed = Text(str(agent.failed_last_minute), style="red" if agent.failed_last_minute else "")
        lag = "-" if agent.lag is None else f"{agent.lag:,}"
        table.add_row(Text(agent.agent), str(agent.ok_last_minute), failed, lag)
    return table


def _alerts(snapshot: Snapshot) -> RenderableType:
    if not snapshot.alerts:
        return Text("Open alerts: none", style="green")
    table = Table(
        title=f"Open alerts ({len(snapshot.alerts)})",
        title_justify="left",
        title_style="bold red",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    table.add_column("alert")
    for alert in snapshot.alerts[:ALERTS_SHOWN]:
        table.add_row(Text(alert))
    if len(snapshot.alerts) > ALERTS_SHOWN:
        table.add_row(Text(f"… {len(snapshot.alerts) - ALERTS_SHOWN} more (vigil status)", style="dim"))
    return table


#: Below this width the four tables are stacked instead of paired side by side.
SIDE_BY_SIDE_WIDTH = 120


@dataclass(frozen=True)
class _Tables:
    """The four tables, paired side by side when the terminal is wide enough, else stacked."""

    snapshot: Snapshot

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        snapshot = self.snapshot
        tables = (_parts_table(snapshot), _topics_table(snapshot), _agents_table(snapshot), _alerts(snapshot))
        if options.max_width >= SIDE_BY_SIDE_WIDTH:
            grid = Table.grid(padding=(0, 2))
            grid.add_row(tables[0], tables[1])
            grid.add_row(tables[2], tables[3])
            yield grid
        else:
            yield from tables


def render(snapshot: Snapshot) -> RenderableType:
    """The live view of one snapshot."""
    header = Text.assemble(
        ("vigil up", "bold"),
        f" · running {duration(snapshot.uptime_s)} · {snapshot.at:%H:%M:%S} UTC · Ctrl-C stops everything",
    )
    lines: list[RenderableType] = [header, _Tables(snapshot)]
    for what, url in snapshot.urls:
        lines.append(Text.assemble((f"{what:<10}", "dim"), url))
    for problem in snapshot.problems:
        lines.append(Text(f"could not read: {problem}", style="yellow"))
    return Group(*lines)


def summary_line(snapshot: Snapshot) -> str:
    """One plain line about the snapshot, for logs."""
    services = ", ".join(f"{p.name} {p.state}" for p in snapshot.services) or "services unknown"
    running = sum(1 for c in snapshot.connectors if c.ok)
    children = ", ".join(f"{p.name} {p.state}" for p in snapshot.children) or "no children"
    busy = [f for f in snapshot.topics if f.rate]
    rate = sum(f.rate or 0.0 for f in snapshot.topics)
    ok = sum(a.ok_last_minute for a in snapshot.agents)
    failed = sum(a.failed_last_minute for a in snapshot.agents)
    lag = sum(a.lag or 0 for a in snapshot.agents)
    fields = [
        f"vigil up {duration(snapshot.uptime_s)}",
        services,
        f"connectors {running}/{len(snapshot.connectors)} running",
        children,
        f"{_rate(rate)} events/s on {len(busy)} topic(s)",
        f"runs last minute: {ok} ok, {failed} failed",
        f"lag {lag}",
        f"open alerts {len(snapshot.alerts)}",
    ]
    if snapshot.problems:
        fields.append("could not read: " + "; ".join(" ".join(p.split()) for p in snapshot.problems))
    return " | ".join(fields)


# -- I/O: collecting a snapshot ---------------------------------------------------------------


def end_offsets(admin: AdminClient, timeout: float = KAFKA_TIMEOUT_S) -> dict[str, int]:
    """The sum of the end offsets of every shown topic, in one metadata and one offsets request."""
    metadata = admin.list_topics(timeout=timeout)
    partitions = {
        TopicPartition(name, p): OffsetSpec.latest()  # type: ignore[no-untyped-call]
        for name, topic in metadata.topics.items()
        if is_shown_topic(name) and topic.error is None
        for p in topic.partitions
    }
    totals = {tp.topic: 0 for tp in partitions}
    if partitions:
        for tp, future in admin.list_offsets(partitions, request_timeout=timeout).items():
            totals[tp.topic] += max(0, future.result().offset)
    return totals


def healthz(url: str, timeout: float = HEALTHZ_TIMEOUT_S) -> Part:
    """The worker's ``/healthz``: ok, unhealthy (naming the parts that are not ok), or not answering."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return Part("http", "ok", True, url.rsplit("/", 1)[0])
    except urllib.error.HTTPError as exc:
        try:
            parts = json.loads(exc.read()).get("parts", {})
        except ValueError:
            parts = {}
        bad = ", ".join(f"{k}: {v}" for k, v in parts.items() if v != "ok")
        return Part("http", f"answers {exc.code}", False, bad)
    except (OSError, urllib.error.URLError) as exc:
        return Part("http", "not answering", None, str(getattr(exc, "reason", exc)))


def child_parts(children: Sequence[Child]) -> tuple[Part, ...]:
    parts = []
    for child in children:
        proc = child.proc
        code = None if proc is None else proc.poll()
        parts.append(
            child_part(child.name, child.state, None if proc is None else proc.pid, code, child.restarts)
        )
    return tuple(parts)


@dataclass
class Collector:
    """Takes snapshots of one running ``vigil up``; the slow parts are read every ``slow_every_s``."""

    settings: Settings
    resolved: Settings
    supervisor: Supervisor
    slow_every_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    _admin: AdminClient | None = None
    _offsets: dict[str, int] | None = None
    _offsets_at: float = 0.0
    _slow: Snapshot | None = None
    _slow_at: float = float("-inf")
    #: The agents as ``vigil status`` last reported them (with their lag).
    _agents: list[dict[str, object]] = field(default_factory=list)
    _topics: tuple[TopicFlow, ...] = ()
    #: The outbox relays' heartbeats and the backlog as ``vigil status`` last reported them.
    _relays: list[dict[str, object]] = field(default_factory=list)
    _backlog: int | None = None

    def __post_init__(self) -> None:
        self.started = self.started or self.clock()

    @property
    def serves_http(self) -> bool:
        return any(c.name == "worker" for c in self.supervisor.children)

    def snapshot(self) -> Snapshot:
        now = self.clock()
        problems: list[str] = []
        if now - self._slow_at >= self.slow_every_s or self._slow is None:
            self._slow_at = now
            try:
                self._slow = self._read_slow()
            except Exception as exc:  # the view must never take the pipeline down: say it, go on
                log.debug("live view: status not read", exc_info=True)
                problems.append(f"status: {_one_line(exc)}")
                self._slow = self._slow or Snapshot(at=datetime.now(UTC), uptime_s=0.0)
        self._read_topics(now, problems)
        runs: dict[str, tuple[int, int]] = {}
        try:
            runs = recent_runs(self.resolved.require_database_url())
        except psycopg.Error as exc:
            problems.append(f"runs: {_one_line(exc)}")
        slow = self._slow
        return replace(
            slow,
            at=datetime.now(UTC),
            uptime_s=now - self.started,
            children=with_relay_heartbeat(
                child_parts(self.supervisor.children),
                self._relays,
                f"relay:{self.resolved.app_id}",
                self._backlog,
            ),
            topics=self._topics,
            agents=agent_activity(self._agents, runs),
            problems=(*slow.problems, *problems),
        )

    def _read_topics(self, now: float, problems: list[str]) -> None:
        try:
            if self._admin is None:
                # Silent: librdkafka would write a lost broker's errors to stderr, across the view;
                # a failed request is shown in the view instead.
                self._admin = AdminClient({**client_config(self.resolved), "log_level": 0})
            offsets = end_offsets(self._admin)
        except KafkaException as exc:
            problems.append(f"kafka: {_one_line(exc)}")
            return
        self._topics = flows(self._offsets, offsets, now - self._offsets_at)
        self._offsets, self._offsets_at = offsets, now

    def _read_slow(self) -> Snapshot:
        """What ``vigil status`` reports, the services' health and the worker's /healthz."""
        report = collect(self.resolved)
        services = [
            Part(
                h.name, "ok" if h.healthy else ("down" if not h.running else "unhealthy"), h.healthy, h.detail
            )
            for h in stack.status(self.settings)
        ]
        urls = http_urls(self.resolved) if self.serves_http else ()
        if urls:
            services.append(healthz(dict(urls)["health"]))
        connectors = tuple(
            Part(
                str(c["name"]),
                str(c["state"]),
                bool(c["running"]),
                str(c["detail"]) or _slot_lag(c.get("slot_lag_bytes")),
            )
            for c in report.connectors
        )
        self._agents = report.agents
        self._relays, self._backlog = report.relays, report.outbox_backlog
        problems = tuple(p for p in report.problems if p.startswith(("database:", "connectors:")))
        return Snapshot(
            at=datetime.now(UTC),
            uptime_s=0.0,
            services=tuple(services),
            connectors=connectors,
            alerts=tuple(alert_text(a) for a in report.open_alerts),
            urls=urls,
            problems=problems,
        )

    def close(self) -> None:
        self._admin = None  # the admin client has no close(); dropping it stops its threads


def _one_line(exc: BaseException) -> str:
    """An error as one line, passwords masked."""
    return " ".join(mask_urls_in(str(exc)).split()) or type(exc).__name__


def _slot_lag(lag: object) -> str:
    return f"slot lag {lag:,} B" if isinstance(lag, int) else ""


# -- the loop ---------------------------------------------------------------------------------


def run(
    console: Console,
    collector: Collector,
    supervisor: Supervisor,
    stop: threading.Event,
    *,
    live: bool,
    refresh_s: float = 1.0,
    plain_every_s: float = 10.0,
) -> None:
    """Keep the children running and show the view until ``stop`` is set.

    ``live``: the rich live view, redrawn every ``refresh_s``; otherwise :func:`summary_line` every
    ``plain_every_s``. Messages about children (exited, restarted) are printed as they happen.
    """
    if live:
        with Live(console=console, auto_refresh=False, redirect_stdout=False, redirect_stderr=False) as view:
            while not stop.is_set():
                for message in supervisor.poll():
                    view.console.print(message)
                view.update(render(collector.snapshot()), refresh=True)
                stop.wait(refresh_s)
        return
    last = float("-inf")
    while not stop.is_set():
        for message in supervisor.poll():
            console.print(message)
        if time.monotonic() - last >= plain_every_s:
            last = time.monotonic()
            console.print(summary_line(collector.snapshot()), markup=False, highlight=False, soft_wrap=True)
        stop.wait(refresh_s)
