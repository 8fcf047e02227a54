"""Schedules and wakeups through real ``vigil worker`` processes, Postgres and the broker: ticks reach
only the named agent, one run per slot with two schedulers, overlap and wakeup guarantees."""

from __future__ import annotations

import collections
import itertools
import json
import os
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from streams.settings import Settings
from tests.integration.workers import VIGIL, scalar, start_worker, stop, wait_for_count, wait_until

pytestmark = pytest.mark.integration

TICKER = "tests.integration.agentmods.ticker"


def vigil(stack: Settings, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        {"VIGIL_DATABASE_URL": db, "VIGIL_KAFKA_BOOTSTRAP": stack.require_bootstrap(), "COLUMNS": "250"}
    )
    done = subprocess.run([VIGIL, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def ticker_tables(db: str) -> None:
    from tests.integration.agentmods.ticker import TABLES

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(TABLES)


def start_ticker(
    stack: Settings, db: str, unique: str, tmp_path: Path, n: int = 0, **env: str
) -> tuple[subprocess.Popen[bytes], Path]:
    ticker_tables(db)
    log = tmp_path / f"worker{n}.log"
    proc = start_worker(
        stack,
        db,
        topic="vigil.ticks",
        app_id=f"{unique}-app",
        agent_name=unique,
        log_path=log,
        module=TICKER,
        extra_env={"VIGIL_SCHEDULER_POLL_S": "0.2", **env},
    )
    return proc, log


def runs(db: str, schedule: str) -> list[dict[str, Any]]:
    with psycopg.connect(db, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT * FROM public.tick_runs WHERE schedule = %s ORDER BY slot_time", (schedule,)
        ).fetchall()


@pytest.mark.timeout(240)
def test_a_schedule_ticks_only_its_agent_once_per_slot(
    stack: Settings, fresh_database: str, unique: str, tmp_path: Path
) -> None:
    proc, log = start_ticker(stack, fresh_database, unique, tmp_path)
    try:
        vigil(
            stack,
            fresh_database,
            "schedule",
            "add",
            "every-second",
            "--every",
            "1s",
            "--agent",
            unique,
            "--payload",
            '{"hello": "world"}',
        )
        wait_until(lambda: len(runs(fresh_database, "every-second")) >= 3, 120, "three ticks run", proc, log)
        listed = json.loads(vigil(stack, fresh_database, "schedule", "list", "--json").stdout)
        assert [s["id"] for s in listed] == ["every-second"]
        assert listed[0]["next_fire_at"] is not None and listed[0]["agent"] == unique
        with psycopg.connect(fresh_database, row_factory=dict_row) as conn:
            beat = conn.execute(
                "SELECT * FROM vigil.heartbeats WHERE name = 'schedule:every-second'"
            ).fetchone()
        assert beat is not None and beat["last_beat_at"] is not None and beat["every_seconds"] == 1.0, beat
        assert beat["next_expected_at"] > beat["last_beat_at"]
        vigil(stack, fresh_database, "schedule", "pause", "every-second")
        vigil(stack, fresh_database, "schedule", "remove", "every-second")
    finally:
        stop(proc)
    done = runs(fresh_database, "every-second")
    assert {r["agent"] for r in done} == {unique}, "a tick reached an agent it does not name"
    slots = [r["slot_time"] for r in done]
    assert len(slots) == len(set(slots))
    assert all(r["payload"] == {"hello": "world"} and r["kind"] == "schedule" for r in done)
    assert scalar(fresh_database, "SELECT count(*) FROM vigil.schedules") == 0


def ticks_on_topic(stack: Settings, schedule: str, expected: int, timeout: float = 30.0) -> list[str]:
    """Event ids of every tick of ``schedule`` on ``vigil.ticks`` (read from the start)."""
    from schemas.codec import Codec
    from streams.kafka import make_consumer

    codec = Codec()
    consumer = make_consumer(stack, f"tick-reader-{schedule}-{time.monotonic_ns()}")
    consumer.subscribe(["vigil.ticks"])
    found: list[str] = []
    deadline = time.monotonic() + timeout
    idle_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                # Caught up: nothing new for a while after the expected number was seen.
                if len(found) >= expected and time.monotonic() - idle_since > 3:
                    break
                continue
            idle_since = time.monotonic()
            record = codec.decode(msg.value()).record
            if record["schedule_id"] == schedule:
                found.append(record["id"])
    finally:
        consumer.close()
    return found


def slots(db: str, schedule: str) -> list[dict[str, Any]]:
    with psycopg.connect(db, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT * FROM vigil.schedule_slots WHERE schedule = %s ORDER BY slot_time", (schedule,)
        ).fetchall()


@pytest.mark.timeout(450)
def test_two_schedulers_and_a_one_second_cron_for_30s_give_exactly_one_tick_per_slot(
    stack: Settings, fresh_database: str, unique: str, tmp_path: Path
) -> None:
    # A generous grace: a scheduler stalled by the shared machine must not count slots as missed.
    env = {"VIGIL_SCHEDULER_GRACE_S": "5"}
    workers = [start_ticker(stack, fresh_database, unique, tmp_path, n, **env) for n in range(2)]
    name = f"{unique}-cron"  # vigil.ticks is shared by every test of the session: a name of its own
    try:
        vigil(
            stack,
            fresh_database,
            "schedule",
            "add",
            name,
            "--cron",
            "* * * * * *",
            "--agent",
            unique,
            "--overlap",
            "allow",
            # Slots due before either worker's scheduler ran (a slow start on a loaded machine) are
            # fired late, not skipped as missed: every slot from the schedule's creation must run.
            "--misfire",
            "catch_up",
        )
        proc, log = workers[0]
        wait_until(lambda: len(slots(fresh_database, name)) >= 30, 150, "30 slots decided", proc, log)
        vigil(stack, fresh_database, "schedule", "pause", name)
        fired = [s for s in slots(fresh_database, name) if s["status"] == "fired"]
        wait_for_count(
            lambda: len(runs(fresh_database, name)),
            len(fired),
            "every fired tick run",
            proc,
            log,
            timeout=200,
        )
    finally:
        for proc, _log in workers:
            stop(proc)
    decided = slots(fresh_database, name)
    times = [s["slot_time"] for s in decided]
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(times)), (
        "a slot was never decided"
    )
    assert {s["status"] for s in decided} == {"fired"}, decided
    done = runs(fresh_database, name)
    assert sorted(r["slot_time"] for r in done) == times, "a slot ran twice or never"
    ids = ticks_on_topic(stack, name, len(times))
    assert len(ids) == len(set(ids)) == len(times), f"{len(ids)} ticks for {len(times)} slots"
    by_scheduler = collections.Counter(s["decided_by"] for s in decided)
    print(f"slots decided, by scheduler: {dict(by_scheduler)}")
    assert len(by_scheduler) == 2, f"one scheduler did all the work: {by_scheduler}"


@pytest.mark.timeout(300)
def test_a_slow_job_under_skip_never_runs_twice_at_once_and_skipped_slots_are_recorded(
    stack: Settings, fresh_database: str, unique: str, tmp_path: Path
) -> None:
    proc, log = start_ticker(stack, fresh_database, unique, tmp_path, VIGIL_SCHEDULER_GRACE_S="5")
    name = "slow"
    try:
        vigil(
            stack,
            fresh_database,
            "schedule",
            "add",
            name,
            "--cron",
            "* * * * * *",
            "--agent",
            unique,
            "--payload",
            '{"sleep_ms": 2500}',
        )
        wait_until(lambda: len(runs(fresh_database, name)) >= 4, 150, "four slow runs", proc, log)
        vigil(stack, fresh_database, "schedule", "pause", name)
    finally:
        stop(proc)
    done = runs(fresh_database, name)
    for before, after in itertools.pairwise(sorted(done, key=lambda r: r["started_at"])):
        assert after["started_at"] >= before["finished_at"], "two runs of one schedule overlapped"
    decided = slots(fresh_database, name)
    skipped = [s for s in decided if s["status"] == "skipped_overlap"]
    fired = [s["slot_time"] for s in decided if s["status"] == "fired"]
    assert len(skipped) >= 2 * (len(done) - 1), (len(skipped), len(done))
    assert sorted(r["slot_time"] for r in done) == fired[: len(done)]


@pytest.mark.timeout(240)
def test_misfire_policies_after_the_scheduler_was_down_for_ten_slots(
    stack: Settings, fresh_database: str, unique: str
) -> None:
    import threading

    from agents.scheduler import Scheduler
    from schemas.codec import Codec
    from streams.kafka import make_producer

    settings = stack.model_copy(update={"scheduler_grace_s": 1.0, "scheduler_poll_s": 0.1})
    for policy in ("run_once", "skip", "catch_up"):
        vigil(
            stack,
            fresh_database,
            "schedule",
            "add",
            f"{unique}-{policy}",
            "--every",
            "1s",
            "--agent",
            "nobody",
            "--overlap",
            "allow",
            "--misfire",
            policy,
        )
    scheduler = Scheduler(settings, fresh_database, make_producer(settings), Codec())
    stop_flag = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop_flag,))
    thread.start()
    try:
        wait_until(
            lambda: all(
                len(slots(fresh_database, f"{unique}-{p}")) >= 2 for p in ("run_once", "skip", "catch_up")
            ),
            30,
            "two slots of each schedule",
        )
    finally:
        stop_flag.set()
        thread.join(10)
    before = {p: len(slots(fresh_database, f"{unique}-{p}")) for p in ("run_once", "skip", "catch_up")}
    time.sleep(10.5)  # the outage itself: ten slots pass with no scheduler running
    restarted = Scheduler(settings, fresh_database, make_producer(settings), Codec())
    try:
        after_restart = restarted.run_round()
    finally:
        restarted.close()
    grace = timedelta(seconds=1)
    for policy in ("run_once", "skip", "catch_up"):
        name = f"{unique}-{policy}"
        decision = after_restart.decisions[name]
        now = after_restart.decided_at[name]
        missed_fired = [s for s in decision.fire if now - s > grace]
        missed_skipped = [s for s, why in decision.skipped if why == "missed"]
        assert len(missed_fired) + len(missed_skipped) >= 8, (policy, decision)
        expected = {"run_once": 1, "skip": 0, "catch_up": len(missed_fired) + len(missed_skipped)}[policy]
        assert len(missed_fired) == expected, (policy, decision)
        if policy == "run_once":
            assert missed_fired[0] > max(missed_skipped), "run_once fires the latest missed slot"
        recorded = slots(fresh_database, name)[before[policy] :]
        assert sorted(s["slot_time"] for s in recorded if s["status"] == "fired") == sorted(decision.fire)
        assert sorted(s["slot_time"] for s in recorded if s["status"] == "skipped_missed") == missed_skipped
        fired_total = sum(1 for s in slots(fresh_database, name) if s["status"] == "fired")
        ticks = ticks_on_topic(stack, name, fired_total)
        assert len(ticks) == len(set(ticks)) == fired_total


@pytest.mark.timeout(240)
def test_a_wakeup_fires_once_at_its_time_only_if_its_run_committed(
    stack: Settings, fresh_database: str, unique: str, tmp_path: Path
) -> None:
    proc, log = start_ticker(stack, fresh_database, unique, tmp_path)
    try:
        vigil(
            stack,
            fresh_database,
            "schedule",
            "add",
            "commits",
            "--at",
            "+1s",
            "--agent",
            unique,
            "--payload",
            '{"wake_in_s": 3}',
        )
        vigil(
            stack,
            fresh_database,
            "schedule",
            "add",
            "fails",
            "--at",
            "+1s",
            "--agent",
            unique,
            "--payload",
            '{"wake_in_s": 3, "fail": true}',
        )
        wait_until(
            lambda: scalar(fresh_database, "SELECT count(*) FROM vigil.runs WHERE status = 'failed'") == 1,
            120,
            "the failing run to be dead-lettered",
            proc,
            log,
        )
        wait_until(
            lambda: (
                scalar(fresh_database, "SELECT count(*) FROM public.tick_runs WHERE kind = 'wakeup'") >= 1
            ),
            120,
            "the wakeup to run",
            proc,
            log,
        )
        # The failed run's wakeup would be due at the same time as the committed one's; give it the
        # scheduler's grace and a few rounds to show it does not exist.
        wait_until(
            lambda: (
                scalar(
                    fresh_database,
                    "SELECT count(*) FROM vigil.schedule_slots WHERE event_id LIKE 'wakeup:%%'",
                )
                >= 1
            ),
            30,
            "the wakeup's slot",
            proc,
            log,
        )
        time.sleep(3)  # a window in which a second (wrong) wakeup would show up
    finally:
        stop(proc)
    with psycopg.connect(fresh_database, row_factory=dict_row) as conn:
        wakeups = conn.execute("SELECT * FROM vigil.schedules WHERE kind = 'wakeup'").fetchall()
        woken = conn.execute("SELECT * FROM public.tick_runs WHERE kind = 'wakeup'").fetchall()
        fired = conn.execute("SELECT * FROM vigil.schedule_slots WHERE event_id LIKE 'wakeup:%%'").fetchall()
    assert len(wakeups) == 1 and wakeups[0]["agent"] == unique, wakeups
    assert len(woken) == 1 and woken[0]["payload"] == {"woken": True, "by": "commits"}, woken
    assert len(fired) == 1
    lateness = fired[0]["decided_at"] - woken[0]["slot_time"]
    assert timedelta(0) <= lateness <= timedelta(seconds=1), lateness
    print(
        f"wakeup fired {lateness.total_seconds():.3f}s after its time; ran {woken[0]['started_at'] - woken[0]['slot_time']} after"
    )


def drift_alerts(stack: Settings, alert_id: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every ``drift.events`` record with id ``alert_id`` (read from the start, until caught up)."""
    from schemas.codec import Codec
    from streams.kafka import make_consumer

    codec = Codec()
    consumer = make_consumer(stack, f"drift-reader-{time.monotonic_ns()}")
    consumer.subscribe(["drift.events"])
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    idle_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                if found and time.monotonic() - idle_since > 3:
                    break
                continue
            idle_since = time.monotonic()
            record = codec.decode(msg.value()).record
            if record["id"] == alert_id:
                found.append(record)
    finally:
        consumer.close()
    return found


def watch_state(db: str, name: str) -> str:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT state FROM vigil.watches WHERE name = %s", (name,)).fetchone()
    return str(row[0]) if row else "absent"


@pytest.mark.timeout(240)
def test_a_matched_watch_hands_off_once_and_an_expired_one_raises_one_critical_alert(
    stack: Settings, fresh_database: str, unique: str, tmp_path: Path
) -> None:
    from streams.catalog import TopicSpec
    from streams.kafka import make_producer
    from streams.topics import ensure_topics

    topic = f"cdc.{unique}.backups"
    ensure_topics(stack, [TopicSpec(topic, "test CDC topic", 1)])
    proc, log = start_ticker(stack, fresh_database, unique, tmp_path)
    done, late = f"{unique}-done", f"{unique}-late"
    try:
        vigil(
            stack,
            fresh_database,
            "watch",
            "add",
            done,
            "--topic",
            topic,
            "--match",
            'after.status == "done" and source.table == "backups"',
            "--by",
            "+120s",
            "--then-agent",
            unique,
        )
        vigil(
            stack,
            fresh_database,
            "watch",
            "add",
            late,
            "--topic",
            topic,
            "--match",
            'after.status == "never"',
            "--by",
            "+8s",
            "--then-agent",
            unique,
        )
        producer = make_producer(stack)

        def change(lsn: int, status: str) -> None:
            # Debezium's JSON change event, as Kafka Connect writes it (no vigil-event-id header).
            value = {
                "op": "u",
                "before": None,
                "after": {"id": 1, "status": status},
                "source": {"name": "cdc", "schema": unique, "table": "backups", "lsn": lsn},
                "ts_ms": 1,
            }
            producer.produce(topic, key=json.dumps({"id": 1}).encode(), value=json.dumps(value).encode())

        change(100, "running")
        change(101, "done")
        change(102, "done")  # a second match: the watch was already matched
        change(101, "done")  # the first match again (redelivery)
        assert producer.flush(30) == 0
        wait_until(lambda: watch_state(fresh_database, done) == "handed_off", 90, "the hand-off", proc, log)
        wait_until(lambda: watch_state(fresh_database, late) == "expired", 60, "the expiry", proc, log)
        handed = lambda: runs(fresh_database, f"watch:{done}")  # noqa: E731
        wait_until(lambda: len(handed()) >= 1, 60, "the agent to run the hand-off", proc, log)
        listed = json.loads(vigil(stack, fresh_database, "watch", "list", "--json").stdout)
        assert {w["name"]: w["state"] for w in listed} == {done: "handed_off", late: "expired"}
        time.sleep(2)  # a window in which a second hand-off would show up
    finally:
        stop(proc)
    handed_off = runs(fresh_database, f"watch:{done}")
    assert len(handed_off) == 1, handed_off
    payload = handed_off[0]["payload"]
    assert payload["watch"] == done and payload["event"]["after"] == {"id": 1, "status": "done"}
    alerts = drift_alerts(stack, f"watch:{late}:expired")
    assert len(alerts) == 1, alerts
    assert alerts[0]["severity"] == "critical" and alerts[0]["source"] == "vigil"
    assert alerts[0]["labels"]["watch"] == late
