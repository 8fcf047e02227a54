"""``vigil replay TOPIC``: read a time or offset range of a topic and copy it to a sandbox topic, or run
it through one agent (dry run, deduplicated, or rerun). ``vigil replay vigil.dlq --agent NAME``
re-drives that agent's dead letters.

The range is read with ``assign()`` under a throwaway group id that never commits: a replay never
moves a live consumer group's offsets. The decisions (range, filters, ids, dead-letter unpacking)
are :mod:`streams.replay_plan`'s; the agent runs are :mod:`agents.replay_run`'s.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agents import drift
from agents.api import AgentSpec, load_modules
from agents.db import async_engine, installation_id
from agents.outputs import KafkaOutputs
from agents.replay_run import AgentReplay, AgentReport
from agents.unit_of_work import Item, Preview, UnitOfWork
from ops.output import print_table
from ops.tail import jsonable
from schemas.codec import Codec
from schemas.errors import ConfigurationError, PoisonError, ServiceError
from streams import headers as names
from streams.catalog import DLQ, TopicSpec
from streams.drift_policy import load_policy
from streams.kafka import describe_topic_ids, make_admin, make_consumer, make_producer
from streams.replay_plan import (
    Filters,
    Plan,
    letter_is_for,
    letter_of,
    new_replay_id,
    only_partitions,
    parse_header_filters,
    parse_offsets,
    parse_time,
    plan_by_offsets,
    plan_by_time,
    sandbox_headers,
    to_ms,
)
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.views import MessageParts, addressed_elsewhere, parts_of_record, record_headers, view_of

METADATA_TIMEOUT = 10.0
#: No message and no end-of-partition for this long while reading a range: the broker is not answering.
STALL_SECONDS = 30.0
BATCH = 200


@dataclass(frozen=True)
class ReplayRequest:
    """The options of one ``vigil replay`` run."""

    topic: str
    from_time: str | None = None
    to_time: str | None = None
    from_offset: str | None = None
    to_offset: str | None = None
    key: str | None = None
    partitions: tuple[int, ...] = ()
    headers: tuple[str, ...] = ()
    to_topic: str | None = None
    agent: str | None = None
    dry_run: bool = False
    rerun: bool = False
    rate: float | None = None
    agent_modules: tuple[str, ...] = ()

    def check(self) -> None:
        if (self.to_topic is None) == (self.agent is None):
            raise ConfigurationError("give one of --to-topic SANDBOX or --agent NAME")
        if (self.dry_run or self.rerun) and self.agent is None:
            raise ConfigurationError("--dry-run and --rerun go with --agent NAME")
        if (self.from_time or self.to_time) and (self.from_offset or self.to_offset):
            raise ConfigurationError("choose the range by time (--from/--to) or by offsets, not both")
        if self.to_topic is not None and self.to_topic == self.topic:
            raise ConfigurationError("--to-topic must be a sandbox topic, not the topic replayed")
        if self.rate is not None and self.rate <= 0:
            raise ConfigurationError("--rate must be more than 0 (messages per second)")


@dataclass
class ReplayResult:
    replay_id: str
    plan: Plan
    read: int = 0
    matched: int = 0
    copied: int = 0
    undecodable: int = 0
    not_for_agent: int = 0
    agent: AgentReport | None = None
    cancelled: bool = False
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "replay_id": self.replay_id,
            "topic": self.plan.topic,
            "plan": [
                {"partition": r.partition, "start": r.start, "end": r.end, "count": r.count}
                for r in self.plan.ranges
            ],
            "read": self.read,
            "matched": self.matched,
            "copied": self.copied,
            "undecodable": self.undecodable,
            "cancelled": self.cancelled,
        }
        if self.agent is not None:
            report = self.agent
            data.update(
                succeeded=report.succeeded,
                skipped=report.skipped,
                rejected=report.rejected,
                dead_lettered=report.dead_lettered,
                released=report.released,
                events=[preview_json(p) for p in report.previews],
            )
        return data


def preview_json(preview: Preview) -> dict[str, Any]:
    output = preview.output
    return {
        "event_id": preview.event_id,
        "status": preview.status,
        "reason": preview.reason,
        "outbox": [
            {
                "id": str(row.id),
                "aggregatetype": row.aggregatetype,
                "aggregateid": row.aggregateid,
                "type": row.type,
                "payload": jsonable(json.loads(row.payload_json or "null")),
            }
            for row in (output.outbox if output else [])
        ],
        "sends": [
            {"topic": s.topic, "key": jsonable(s.key), "event_id": s.event_id, "bytes": len(s.value)}
            for s in (output.sends if output else [])
        ],
        "wakeups": [
            {"id": w.id, "at": w.at.isoformat(), "payload": w.payload}
            for w in (output.wakeups if output else [])
        ],
        "trace": jsonable(output.trace) if output else [],
        "writes": list(preview.writes),
    }


# -- the range --------------------------------------------------------------------------------


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    info = consumer.list_topics(topic, timeout=METADATA_TIMEOUT).topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        raise ConfigurationError(f"topic {topic!r} does not exist; `vigil inspect topics` lists the topics")
    return sorted(info.partitions)


def make_plan(consumer: Consumer, request: ReplayRequest, *, now: datetime) -> tuple[Plan, Filters]:
    """Ask the broker for watermarks (and ``offsets_for_times``); let the pure planner decide."""
    topic = request.topic
    partitions = _partitions(consumer, topic)
    watermarks = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=METADATA_TIMEOUT, cached=False)
        for p in partitions
    }
    from_ms = to_ms(parse_time(request.from_time, now=now)) if request.from_time else None
    to_ms_ = to_ms(parse_time(request.to_time, now=now)) if request.to_time else None
    if from_ms is not None and to_ms_ is not None and to_ms_ <= from_ms:
        raise ConfigurationError("--to must be after --from")
    if from_ms is not None or to_ms_ is not None:
        starts = _offsets_for_time(consumer, topic, partitions, from_ms) if from_ms is not None else {}
        ends = _offsets_for_time(consumer, topic, partitions, to_ms_) if to_ms_ is not None else {}
        plan = plan_by_time(topic, watermarks, starts, ends)
    else:
        firsts = parse_offsets(request.from_offset, partitions)
        lasts = parse_offsets(request.to_offset, partitions)
        plan = plan_by_offsets(topic, watermarks, firsts, lasts)
        named = [text for text in (request.from_offset, request.to_offset) if text and ":" in text]
        if named and not request.partitions:  # P:N names the partitions to replay
            plan = only_partitions(plan, sorted(set(firsts) | set(lasts)))
    filters = Filters(
        key=request.key.encode() if request.key is not None else None,
        headers=parse_header_filters(request.headers),
        from_ms=from_ms,
        to_ms=to_ms_,
    )
    return only_partitions(plan, request.partitions), filters


def _offsets_for_time(
    consumer: Consumer, topic: str, partitions: Sequence[int], at_ms: int
) -> dict[int, int]:
    found = consumer.offsets_for_times(
        [TopicPartition(topic, p, at_ms) for p in partitions], timeout=METADATA_TIMEOUT
    )
    for tp in found:
        if tp.error is not None:
            raise ServiceError(f"offsets_for_times on {topic}/{tp.partition}: {tp.error}")
    return {tp.partition: tp.offset for tp in found}


def read_range(
    consumer: Consumer, plan: Plan, *, on_read: Callable[[], None] | None = None
) -> Iterator[Message]:
    """Every message of the plan's ranges, in order per partition. The consumer is only assigned."""
    ranges = {r.partition: r for r in plan.reading()}
    if not ranges:
        return
    consumer.assign([TopicPartition(plan.topic, p, r.start) for p, r in ranges.items()])
    done: set[int] = set()
    last = time.monotonic()
    while len(done) < len(ranges):
        msg = consumer.poll(0.5)
        if msg is None:
            if time.monotonic() - last > STALL_SECONDS:
                raise ServiceError(
                    f"reading {plan.topic}: nothing for {STALL_SECONDS:.0f}s before the end of the range; "
                    "is the broker up? (`vigil services status`)"
                )
            continue
        last = time.monotonic()
        error = msg.error()
        partition = msg.partition()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF and partition is not None:
                done.add(partition)
                continue
            raise ServiceError(f"reading {plan.topic}: {error.str()}", code=str(error.code()))
        offset = msg.offset()
        if partition is None or offset is None or partition in done:
            continue
        if offset >= ranges[partition].end:
            done.add(partition)
            consumer.pause([TopicPartition(plan.topic, partition)])
            continue
        if on_read is not None:
            on_read()
        yield msg
        if offset + 1 >= ranges[partition].end:
            done.add(partition)
            consumer.pause([TopicPartition(plan.topic, partition)])


class Pacer:
    """At most ``rate`` messages a second (None: as fast as it goes)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.started = time.monotonic()
        self.sent = 0

    def wait(self) -> None:
        if self.rate is None:
            return
        self.sent += 1
        ahead = self.started + self.sent / self.rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)  # pacing a command-line copy, not waiting for a state


# -- the command --------------------------------------------------------------------------------


def print_plan(console: Console, plan: Plan, replay_id: str, target: str) -> None:
    rows = [
        [str(r.partition), str(r.start), str(r.end - 1) if r.count else "-", str(r.count)]
        for r in plan.ranges
    ]
    print_table(
        console,
        f"replay {replay_id}: {plan.topic} → {target} ({plan.total} message(s) in range)",
        ["partition", "first offset", "last offset", "messages"],
        rows,
    )


def replay(
    settings: Settings,
    console: Console,
    request: ReplayRequest,
    *,
    confirm: Callable[[Plan], bool] | None = None,
    now: datetime | None = None,
    show_progress: bool = True,
) -> ReplayResult:
    """Plan, print the plan, then copy or run. ``confirm`` is asked before a ``--rerun``."""
    request.check()
    replay_id = new_replay_id()
    consumer = make_consumer(
        settings,
        f"vigil-replay-{replay_id}",  # throwaway, and never committed to: assign() only
        **{"enable.auto.commit": False, "enable.partition.eof": True},
    )
    try:
        plan, filters = make_plan(consumer, request, now=now or datetime.now(UTC))
        target = request.to_topic or f"agent {request.agent}" + (
            " (dry run)" if request.dry_run else " (rerun)" if request.rerun else ""
        )
        print_plan(console, plan, replay_id, target)
        result = ReplayResult(replay_id, plan)
        if request.rerun and not request.dry_run and confirm is not None and not confirm(plan):
            result.cancelled = True
            return result
        progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not show_progress,
            transient=True,
        )
        with progress:
            task = progress.add_task(f"replaying {plan.topic}", total=plan.total)

            def advance() -> None:
                result.read += 1
                progress.advance(task)

            messages = read_range(consumer, plan, on_read=advance)
            if request.to_topic is not None:
                sources = len(_partitions(consumer, plan.topic))
                _to_topic(
                    settings, request.to_topic, sources, plan, messages, filters, result, Pacer(request.rate)
                )
            else:
                asyncio.run(_through_agent(settings, request, messages, filters, result, Pacer(request.rate)))
        return result
    finally:
        consumer.close()


def ensure_sandbox(settings: Settings, sandbox: str, source_partitions: int) -> None:
    """Create ``sandbox`` with the source's partition count; an existing one must have enough partitions."""
    ensure_topics(settings, [TopicSpec(sandbox, "replay sandbox", source_partitions)])
    info = make_admin(settings).list_topics(sandbox, timeout=METADATA_TIMEOUT).topics.get(sandbox)
    have = len(info.partitions) if info is not None else 0
    if have < source_partitions:
        raise ConfigurationError(
            f"sandbox topic {sandbox} has {have} partition(s), the source {source_partitions}: "
            "messages keep their partitions, so use a new sandbox name (or add partitions to it)"
        )


def _to_topic(
    settings: Settings,
    sandbox: str,
    source_partitions: int,
    plan: Plan,
    messages: Iterator[Message],
    filters: Filters,
    result: ReplayResult,
    pacer: Pacer,
) -> None:
    ensure_sandbox(settings, sandbox, source_partitions)
    producer = make_producer(settings)
    failures: list[str] = []

    def delivered(error: KafkaError | None, _msg: Message) -> None:
        if error is not None:
            failures.append(error.str())

    for msg in messages:
        parts = parts_of_record(msg)
        if not filters.matches(parts.key, parts.headers, parts.timestamp_ms):
            continue
        result.matched += 1
        pacer.wait()
        copied: list[tuple[str, str | bytes | None]] = list(
            sandbox_headers(record_headers(msg), result.replay_id)
        )
        kwargs: dict[str, Any] = {}
        if parts.timestamp_ms is not None:
            kwargs["timestamp"] = parts.timestamp_ms
        while True:
            try:
                producer.produce(
                    sandbox,
                    key=parts.key,
                    value=parts.value,
                    partition=parts.partition,
                    headers=copied,
                    on_delivery=delivered,
                    **kwargs,
                )
                break
            except BufferError:  # the producer's queue is full: let it drain
                producer.poll(0.5)
        producer.poll(0)
        result.copied += 1
    if producer.flush(60) > 0:
        raise ServiceError(f"replay to {sandbox}: messages not delivered within 60s; is the broker up?")
    if failures:
        raise ServiceError(f"replay to {sandbox}: {len(failures)} message(s) refused, first: {failures[0]}")


def _agent_spec(settings: Settings, name: str, modules: Sequence[str]) -> AgentSpec:
    if settings.builtin_agents:
        drift.configure(load_policy(settings.drift_policy))
    builtin = list(drift.MODULES) if settings.builtin_agents else []
    specs = {s.name: s for s in load_modules([*builtin, *settings.agent_modules, *modules])}
    if name not in specs:
        known = ", ".join(sorted(specs)) or "none"
        raise ConfigurationError(
            f"no agent named {name!r} (agents loaded: {known}); pass its module with -A or VIGIL_AGENTS"
        )
    return specs[name]


async def _through_agent(
    settings: Settings,
    request: ReplayRequest,
    messages: Iterator[Message],
    filters: Filters,
    result: ReplayResult,
    pacer: Pacer,
) -> None:
    assert request.agent is not None
    spec = _agent_spec(settings, request.agent, request.agent_modules)
    url = settings.require_database_url()
    engine = async_engine(url)
    codec = Codec.from_registry_url(settings.schema_registry_url)
    outputs = KafkaOutputs(
        make_producer(settings, **{"linger.ms": 2}), codec, installation=installation_id(url)
    )
    redrive = request.topic == DLQ
    runner = AgentReplay(
        UnitOfWork(spec, engine, outputs),
        outputs,
        replay_id=result.replay_id,
        dry_run=request.dry_run,
        rerun=request.rerun,
        redrive=redrive,
    )
    result.agent = runner.report
    topic_ids: dict[str, str | None] = {}
    admin = make_admin(settings)

    def topic_id(topic: str) -> str | None:
        if topic not in topic_ids:
            try:
                topic_ids.update(describe_topic_ids(admin, [topic]))
            except KafkaException:
                topic_ids[topic] = None
        return topic_ids.get(topic)

    batch: list[Item] = []
    try:
        for msg in messages:
            parts = parts_of_record(msg)
            if not filters.matches(parts.key, parts.headers, parts.timestamp_ms):
                continue
            if redrive:
                letter = letter_of(parts)
                if letter is None or not letter_is_for(letter, spec.name, spec.topics):
                    result.not_for_agent += 1
                    continue
                if letter.value_omitted:
                    result.notes.append(
                        f"{parts.offset}: the letter has no value (too large for the DLQ): not re-driven"
                    )
                    continue
                parts = letter.original
            parts = MessageParts(**{**parts.__dict__, "topic_id": topic_id(parts.topic)})
            try:
                view = view_of(parts, codec)
            except PoisonError as exc:
                result.undecodable += 1
                result.notes.append(f"{parts.topic}/{parts.partition}/{parts.offset}: undecodable: {exc}")
                continue
            if view is None or addressed_elsewhere(view, spec.name):
                continue
            result.matched += 1
            pacer.wait()
            batch.append(Item(parts, view))
            if len(batch) >= BATCH:
                await runner.run(batch)
                batch = []
        await runner.run(batch)
    finally:
        await asyncio.to_thread(outputs.producer.flush, 10)
        await engine.dispose()


def print_result(console: Console, request: ReplayRequest, result: ReplayResult) -> None:
    if result.cancelled:
        console.print("nothing was replayed (not confirmed)")
        return
    for note in result.notes[:20]:
        console.print(f"[yellow]note:[/] {escape(note)}")
    if request.to_topic is not None:
        console.print(
            f"replay {result.replay_id}: copied {result.copied} of {result.read} message(s) read "
            f"to {request.to_topic} (header {names.REPLAY_ID}={result.replay_id})"
        )
        return
    report = result.agent or AgentReport()
    if request.dry_run:
        rows = []
        for p in report.previews:
            out = p.output
            rows.append(
                [
                    escape(p.event_id),
                    p.status,
                    escape(
                        "\n".join(f"{r.aggregatetype}/{r.aggregateid}: {r.payload_json}" for r in out.outbox)
                    )
                    if out
                    else "",
                    escape("\n".join(f"{s.topic} ({len(s.value)} B)" for s in out.sends)) if out else "",
                    str(len(p.writes)),
                    escape(p.reason or ""),
                ]
            )
        print_table(
            console,
            f"dry run {result.replay_id}: nothing was written",
            ["event", "would be", "outbox rows", "sends", "SQL writes", "note"],
            rows,
        )
    verb = "would have" if request.dry_run else "have"
    console.print(
        f"replay {result.replay_id} through {request.agent}: {report.succeeded} {verb} succeeded, "
        f"{report.skipped} skipped (already processed), {report.rejected} to review, "
        f"{report.dead_lettered} failed"
        + (f", {report.released} dead letter(s) released" if report.released else "")
    )
