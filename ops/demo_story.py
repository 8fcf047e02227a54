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

Each step is a small function; the pure parts (sizes, the metric, percentiles, the summary's rows)
are in :mod:`streams.demo_script`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient
from rich.console import Console
from rich.markup import escape
from sqlalchemy import text

import agents.demo as demo_agents
from agents import heartbeats
from agents.db import as_engine
from agents.demo import TICKER
from agents.replay_run import AgentReport
from ops.inspect import group_infos
from ops.output import print_table
from ops.replay import ReplayRequest, make_plan, read_range, replay
from ops.review import decide
from ops.schedules import add as add_schedule
from ops.schedules import remove as remove_schedule
from ops.supervisor import Supervisor
from schemas.errors import ConfigurationError, VigilError
from streams.catalog import DRIFT_CRITICAL, DRIFT_EVENTS, DRIFT_WARNING, OUTBOX_PREFIX, TICKS, outbox_topic
from streams.demo_script import (
    METRIC_LABELS,
    METRIC_NAME,
    METRIC_SOURCE,
    POLICY_TOML,
    REMEDIATION_TOPIC,
    Script,
    SummaryRow,
    empty_rows,
    metric_series,
    percentile,
    summary_rows,
)
from streams.drift_detect import Detection, WindowedDetector
from streams.drift_events import BaselineStats, drift_record, fingerprint
from streams.drift_policy import parse_policy
from streams.drift_publish import DriftPublisher
from streams.kafka import client_config, make_admin, make_consumer
from streams.settings import Settings
from streams.watch import ABSENCE, alert_fingerprint, alert_key

ORDERS_TOPIC = "cdc.public.orders"
PAYMENTS_TOPIC = "cdc.public.payments"
METRICS_TOPIC = "cdc.public.metrics"
ORDER_AGENT = "order-watch"
#: Longest wait of any one step before the demo gives up (naming the logs).
STEP_TIMEOUT_S = 120.0

T = TypeVar("T")


@dataclass
class Story:
    """What the steps share: the running pipeline, the script, and what earlier steps found."""

    settings: Settings
    console: Console
    supervisor: Supervisor
    stop: threading.Event
    sink_file: Path
    script: Script
    batch: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    #: The database's clock when the story began: everything counted in the summary is newer.
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return self.settings.require_database_url()

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, *params: object) -> Any:
        rows = self.query(sql, *params)
        return rows[0][0] if rows else None

    def say(self, text: str) -> None:
        self.console.print(text)

    def wait_for(
        self, what: str, check: Callable[[], T | None], *, timeout: float = STEP_TIMEOUT_S, every: float = 0.5
    ) -> T:
        """Poll ``check`` until it returns something (not None or False); stop the demo after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.stop.is_set():
            for message in self.supervisor.poll():
                self.say(f"[yellow]{escape(message)}[/]")
            found = check()
            if found:
                return found
            if time.monotonic() > deadline:
                break
            self.stop.wait(every)
        if self.stop.is_set():
            raise SystemExit("demo interrupted")
        raise SystemExit(
            f"demo stopped: no {what} after {timeout:.0f} s; see the logs in {self.supervisor.logdir}"
        )


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
    group = story.settings.app_id
    story.say(f"waiting for the worker's agents to join consumer group {group} …")

    def assigned() -> bool:
        # An admin client of its own, quiet below warnings: librdkafka would print an informational
        # line about its background queue in the middle of the story.
        admin = AdminClient({**client_config(story.settings), "log_level": 4})
        try:
            desc = admin.describe_consumer_groups([group], request_timeout=5)[group].result()
        except KafkaException:
            return False
        return desc.state == ConsumerGroupState.STABLE and any(
            tp.topic == ORDERS_TOPIC
            for member in desc.members
            if member.assignment
            for tp in member.assignment.topic_partitions or []
        )

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


def sink_lines(sink_file: Path, match: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """The file sink's lines that ``match``."""
    if not sink_file.exists():
        return []
    found = []
    for line in sink_file.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and match(entry):
            found.append(entry)
    return found


def _payload(entry: dict[str, Any]) -> dict[str, Any]:
    payload = entry.get("payload")
    return payload if isinstance(payload, dict) else {}


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
        lines = sink_lines(story.sink_file, lambda e: _payload(e).get("batch") == story.batch)
        return lines if len(lines) >= script.failed else None

    lines = story.wait_for(f"{script.failed} notifications in {story.sink_file}", delivered)
    print_table(
        story.console,
        f"notifications delivered to {story.sink_file}",
        ["outbox id", "topic", "text"],
        [[str(e.get("id")), str(e.get("topic")), str(_payload(e).get("text"))] for e in lines],
    )


# -- step 2: drift ------------------------------------------------------------------------------


@dataclass
class MetricFeed:
    """The drifting metric: rows written to ``public.metrics``, read back and scored by the policy's
    windowed detector; each detection published to ``drift.events``."""

    story: Story
    labels: dict[str, str]
    detector: WindowedDetector
    publisher: DriftPublisher
    last_id: int = 0

    def write(self, values: Sequence[float]) -> None:
        with psycopg.connect(self.story.database_url) as conn:
            conn.execute(
                "INSERT INTO public.metrics (name, value) SELECT %s, unnest(%s::double precision[])",
                (METRIC_NAME, list(values)),
            )

    def detect(self) -> list[Detection]:
        """Score the rows written since the last call; publish and return what the detector found."""
        rows = self.story.query(
            "SELECT id, value, extract(epoch FROM observed_at) FROM public.metrics "
            "WHERE name = %s AND id > %s ORDER BY id",
            METRIC_NAME,
            self.last_id,
        )
        found = []
        for row_id, value, at in rows:
            self.last_id = row_id
            detection = self.detector.observe(float(value), float(at))
            if detection is None:
                continue
            record = drift_record(
                source=METRIC_SOURCE,
                metric=METRIC_NAME,
                value=detection.value,
                severity=detection.severity,
                labels=self.labels,
                observed_at=datetime.fromtimestamp(detection.observed_at, UTC),
                statistic=detection.statistic,
                score=detection.score,
                baseline=BaselineStats(**detection.baseline.__dict__),
            )
            (event_id,) = self.publisher.publish_records([record])
            self.story.say(
                f"  detector: [bold]{detection.severity}[/] {detection.statistic}={detection.score:.2f} "
                f"(window mean {detection.value:.1f}) → drift.events {escape(event_id)}"
            )
            found.append(detection)
        return found


def step_drift(story: Story) -> None:
    script = story.script
    labels = {**METRIC_LABELS, "run": story.batch}
    fp = fingerprint(METRIC_SOURCE, METRIC_NAME, labels)
    story.facts["drift_fingerprint"] = fp
    rule = parse_policy(POLICY_TOML).rule_for(METRIC_SOURCE, METRIC_NAME)
    series = metric_series(script)
    feed = MetricFeed(story, labels, WindowedDetector(rule), DriftPublisher(story.settings))
    feed.last_id = story.scalar("SELECT coalesce(max(id), 0) FROM public.metrics")
    try:
        feed.write(series.baseline)
        feed.detect()
        story.say(
            f"public.metrics: {len(series.baseline)} values of {METRIC_NAME} {labels} as the baseline; "
            f"the detector scores windows of {rule.window} ({rule.statistic}: warning ≥ "
            f"{rule.limits().warning:g}, critical ≥ {rule.limits().critical:g})"
        )
        for number, window in enumerate(series.rising, 1):
            story.stop.wait(script.window_pause_s)
            feed.write(window)
            story.say(f"  window {number}: mean {sum(window) / len(window):.1f}")
            feed.detect()
        report = story.wait_for(
            "report from drift-investigate",
            lambda: story.scalar(
                "SELECT reason FROM vigil.reviews WHERE agent = 'drift-investigate' AND reason LIKE %s",
                f"%{fp}%",
            ),
        )
        story.say(
            f"drift-investigate filed a report in the review queue: {escape(str(report).split(' {')[0])}"
        )
        pending = story.wait_for(
            "remediation waiting for approval from drift-remediate",
            lambda: story.scalar(
                "SELECT id::text FROM vigil.reviews WHERE agent = 'drift-remediate' AND status = 'pending' "
                "AND event_id LIKE %s",
                f"{METRIC_SOURCE}/{fp}/%",
            ),
        )
        reason = story.scalar("SELECT reason FROM vigil.reviews WHERE id::text = %s", pending)
        story.say(
            f"drift-remediate proposes its action, held for approval: {escape(str(reason))} (review {pending})"
        )
        decide(story.settings, story.console, pending, approve=True, who="vigil-demo")
        action = story.wait_for(
            "approved remediation delivered to the sink",
            lambda: sink_lines(
                story.sink_file,
                lambda e: (
                    e.get("topic") == outbox_topic(REMEDIATION_TOPIC) and _payload(e).get("fingerprint") == fp
                ),
            ),
        )
        payload = _payload(action[0])
        story.say(
            f"the sink received [bold]{payload.get('action')}[/] {json.dumps(payload.get('params'))} "
            f"on {outbox_topic(REMEDIATION_TOPIC)}"
        )
        for number, window in enumerate(series.recovery, 1):
            story.stop.wait(script.window_pause_s)
            feed.write(window)
            story.say(f"  recovery window {number}: mean {sum(window) / len(window):.1f}")
            feed.detect()
        story.wait_for(
            "closed drift incident",
            lambda: story.scalar(
                "SELECT 1 FROM vigil.drift_incidents WHERE fingerprint = %s AND status = 'closed'", fp
            ),
        )
        story.say(f"the router closed incident {fp}: the metric is back to normal")
    finally:
        feed.publisher.close()


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


# -- step 6: the summary -------------------------------------------------------------------------


def kafka_counts(
    settings: Settings, topic: str, since: datetime, keys: dict[str, bytes] | None = None
) -> dict[str, int]:
    """Messages of ``topic`` written since ``since``: ``{"all": n}``, plus one count per named key."""
    consumer = make_consumer(
        settings,
        f"vigil-demo-count-{uuid.uuid4().hex[:12]}",  # throwaway; assign() only, never committed
        **{"enable.auto.commit": False, "enable.partition.eof": True},
    )
    try:
        try:
            plan, _ = make_plan(
                consumer, ReplayRequest(topic, from_time=since.isoformat(), agent="-"), now=since
            )
        except ConfigurationError:  # no such topic yet: nothing was written to it
            return {"all": 0, **dict.fromkeys(keys or {}, 0)}
        counts = {"all": plan.total, **dict.fromkeys(keys or {}, 0)}
        if keys:
            wanted = {key: name for name, key in keys.items()}
            for msg in read_range(consumer, plan):
                name = wanted.get(msg.key() or b"")
                if name is not None:
                    counts[name] += 1
        return counts
    finally:
        consumer.close()


def outbox_topics(settings: Settings) -> list[str]:
    topics = make_admin(settings).list_topics(timeout=10).topics
    return sorted(t for t in topics if t.startswith(OUTBOX_PREFIX))


def wait_until_quiet(story: Story) -> None:
    """Before counting: every outbox row of the story delivered, and no agent behind on its topics."""
    since = story.started_at

    def quiet() -> bool:
        written = story.scalar("SELECT count(*) FROM vigil.outbox WHERE created_at >= %s", since)
        delivered = story.scalar(
            "SELECT count(*) FROM vigil.deliveries WHERE status = 'delivered' AND created_at >= %s", since
        )
        if delivered < written:
            return False
        try:
            infos = group_infos(story.settings, story.settings.app_id)
        except (KafkaException, VigilError):
            return False
        return all(lag == 0 for info in infos for _, _, lag in info.lag.values())

    story.wait_for("quiet pipeline (outbox delivered, no consumer lag)", quiet, timeout=60.0)


def latencies_ms(story: Story) -> list[float]:
    """CDC latency of each order change of the story: its commit (Debezium's ``source.ts_ms``) to the
    end of its ``order-watch`` run."""
    rows = story.query(
        "SELECT extract(epoch FROM finished_at) * 1000 - (trace->0->>'committed_ms')::double precision "
        "FROM vigil.runs WHERE agent = %s AND started_at >= %s AND status = 'succeeded' "
        "AND trace->0->>'committed_ms' IS NOT NULL",
        ORDER_AGENT,
        story.started_at,
    )
    return [float(r[0]) for r in rows]


def collect_counts(story: Story) -> dict[str, float | None]:
    since = story.started_at
    settings = story.settings
    counts: dict[str, float | None] = {}
    counts["cdc_orders"] = kafka_counts(settings, ORDERS_TOPIC, since)["all"]
    counts["cdc_payments"] = kafka_counts(settings, PAYMENTS_TOPIC, since)["all"]
    counts["cdc_metrics"] = kafka_counts(settings, METRICS_TOPIC, since)["all"]
    drift_fp = story.facts.get("drift_fingerprint")
    if drift_fp is not None:
        counts["drift_detector"] = kafka_counts(settings, DRIFT_EVENTS, since, {"fp": drift_fp.encode()})[
            "fp"
        ]
    name = story.facts.get("heartbeat")
    if name is not None:
        absence = {"fp": alert_fingerprint(ABSENCE, name).encode()}
        counts["drift_absence"] = kafka_counts(settings, DRIFT_EVENTS, since, absence)["fp"]
    counts["ticks"] = kafka_counts(settings, TICKS, since)["all"]
    counts["alerts_warning"] = kafka_counts(settings, DRIFT_WARNING, since)["all"]
    counts["alerts_critical"] = kafka_counts(settings, DRIFT_CRITICAL, since)["all"]
    counts["resolved"] = story.scalar(
        "SELECT count(*) FROM vigil.drift_incidents WHERE status = 'closed' AND updated_at >= %s", since
    )
    counts["published"] = sum(kafka_counts(settings, t, since)["all"] for t in outbox_topics(settings))
    counts["runs"] = story.scalar("SELECT count(*) FROM vigil.runs WHERE started_at >= %s", since)
    counts["outbox"] = story.scalar("SELECT count(*) FROM vigil.outbox WHERE created_at >= %s", since)
    counts["delivered"] = story.scalar(
        "SELECT count(*) FROM vigil.deliveries WHERE status = 'delivered' AND created_at >= %s", since
    )
    counts["reviews"] = story.scalar("SELECT count(*) FROM vigil.reviews WHERE created_at >= %s", since)
    counts["approved"] = story.scalar(
        "SELECT count(*) FROM vigil.reviews WHERE created_at >= %s AND status = 'approved'", since
    )
    counts["duplicates"] = story.facts.get("duplicates")
    latencies = latencies_ms(story)
    counts["latency_p50"] = percentile(latencies, 50)
    counts["latency_p99"] = percentile(latencies, 99)
    return counts


def step_summary(story: Story) -> list[SummaryRow]:
    wait_until_quiet(story)
    rows = summary_rows(collect_counts(story))
    print_table(
        story.console,
        f"vigil up --demo: what happened (batch {story.batch}, since {story.started_at:%H:%M:%S})",
        ["", "count", "counted in"],
        [[row.what, row.shown(), row.where] for row in rows],
    )
    per_agent = story.query(
        "SELECT agent, status, count(*) FROM vigil.runs WHERE started_at >= %s GROUP BY 1, 2 ORDER BY 1, 2",
        story.started_at,
    )
    print_table(
        story.console, "runs by agent", ["agent", "status", "runs"], [[a, s, str(n)] for a, s, n in per_agent]
    )
    summary = {
        "batch": story.batch,
        "started_at": story.started_at.isoformat(),
        "short": story.script == Script.short(),
        "rows": {row.key: row.value for row in rows},
        "facts": {k: v for k, v in story.facts.items() if isinstance(v, str | int | float | bool)},
    }
    out = Path(story.settings.home).absolute() / "demo" / "summary.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    story.say(f"summary written to {out}")
    return rows


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
