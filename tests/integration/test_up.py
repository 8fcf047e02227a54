"""``vigil up`` stopped by SIGINT in the middle of a load: everything stops, nothing is lost or doubled.

The test starts the embedded stack of a throwaway home itself (to create the recorder's business
tables and its topic first); ``vigil up`` attaches to it, applies the connectors, starts the worker
with the built-in agents and the recorder, and serves the dashboard and /metrics. Events are produced
before and while SIGINT arrives; a second ``vigil up`` finishes them and is stopped with SIGTERM.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from ops.services import stack as stack_mod
from ops.services.procs import free_port
from streams.catalog import TopicSpec
from streams.settings import Settings, load_settings
from streams.topics import ensure_topics
from tests.integration.workers import (
    ROOT,
    agent_group,
    assert_exactly_once,
    create_business_tables,
    handler_calls,
    produce_events,
    start_up,
    stop_up,
    wait_group_caught_up,
    wait_until,
)

pytestmark = pytest.mark.integration

AGENT = "up-recorder"
APP_ID = "vigil-up-test"
TOPIC = "up.orders"
TOKEN = "up-test-token"
BEFORE, DURING = 2000, 1000
TOTAL = BEFORE + DURING


def _processed(database_url: str) -> int:
    try:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM vigil.processed_events WHERE agent = %s", (AGENT,)
            ).fetchone()
    except psycopg.Error:  # vigil up has not migrated the database yet
        return 0
    return int(row[0]) if row else 0


def _logs(home: Path) -> str:
    out = (home / "up.out").read_text()[-3000:]
    worker = home / "logs" / "worker.log"
    return f"{out}\n--- worker.log\n{worker.read_text()[-3000:] if worker.exists() else ''}"


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status)


def _post(url: str, token: str, body: bytes) -> int:
    request = urllib.request.Request(url, body, {"Authorization": f"Bearer {token}"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _worker_pids(text: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"worker started \(pid (\d+)\)", text)]


@pytest.mark.timeout(600)
def test_sigint_mid_load_stops_everything_and_every_event_takes_effect_once(throwaway_home: Path) -> None:
    began = time.monotonic()
    phases: list[str] = []

    def phase(what: str) -> None:
        phases.append(f"{what} {time.monotonic() - began:.0f}s")

    settings = load_settings(home=throwaway_home)
    resolved: Settings = stack_mod.up(settings, connect=True)
    database_url = resolved.require_database_url()
    create_business_tables(database_url)
    ensure_topics(resolved, [TopicSpec(TOPIC, "orders for the vigil up test", 3)])
    events = [(f"evt-{n}", {"n": n, "touch_db": n % 2 == 0}) for n in range(TOTAL)]
    produce_events(resolved, TOPIC, events[:BEFORE])
    phase("stack")

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        {
            "VIGIL_HOME": str(throwaway_home),
            "VIGIL_HTTP_PORT": str(port),
            "VIGIL_APP_ID": APP_ID,
            "VIGIL_INGEST_TOKEN": TOKEN,
            "VIGIL_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "VIGIL_TEST_TOPIC": TOPIC,
            "VIGIL_TEST_AGENT": AGENT,
            # Slow each event a little (about 1,000 events/s at most), so SIGINT lands mid-load.
            "VIGIL_TEST_SLOW_MS": "1",
            "VIGIL_TEST_CALLS_FILE": str(throwaway_home / "calls.txt"),
            "PYTHONPATH": str(ROOT),
            "COLUMNS": "200",
        }
    )
    out = throwaway_home / "up.out"
    up = start_up(env, out, "-A", "tests.integration.agentmods.recorder")
    producer: threading.Thread | None = None
    try:
        wait_until(lambda: _processed(database_url) >= 300, 180, "300 processed events", up, out)
        phase("first vigil up processing")
        # vigil up serves the dashboard and /metrics through its worker.
        assert _get(f"http://127.0.0.1:{port}/") == 200
        assert _get(f"http://127.0.0.1:{port}/metrics") == 200
        assert _post(f"http://127.0.0.1:{port}/ingest/drift", TOKEN, b"{}") in (400, 422), "authenticated"
        # Under load: more events arrive while SIGINT stops everything.
        producer = threading.Thread(target=produce_events, args=(resolved, TOPIC, events[BEFORE:]))
        producer.start()
        up.send_signal(signal.SIGINT)
        assert up.wait(90) == 0, _logs(throwaway_home)
        phase("stopped by SIGINT")
    finally:
        stop_up(up)
        if producer is not None:
            producer.join(60)
    first = out.read_text()
    stopped_at = _processed(database_url)
    assert stopped_at < TOTAL, "SIGINT came after the load: nothing was in flight"
    [pid] = _worker_pids(first)
    assert not Path(f"/proc/{pid}").exists(), "the worker outlived vigil up"
    assert "stopping (SIGINT): forwarding it to the children" in first
    assert f"worker (pid {pid}) stopped with exit code 0" in first
    # The plain summary line (stdout is not a terminal), every 10 s.
    assert "| worker running |" in first
    assert "postgres ok, kafka ok, connect ok" in first and "| connectors 2/2 running |" in first
    assert "dashboard: http://127.0.0.1:" in first and f":{port}/metrics" in first

    # A second vigil up takes over where the first stopped, and stops on SIGTERM.
    up = start_up(env, out, "-A", "tests.integration.agentmods.recorder")
    try:
        try:
            wait_until(lambda: _processed(database_url) >= TOTAL, 180, f"{TOTAL} processed events", up, out)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_logs(throwaway_home)}") from None
        wait_group_caught_up(resolved, agent_group(APP_ID, AGENT), TOPIC)
        phase("second vigil up done")
        up.send_signal(signal.SIGTERM)
        assert up.wait(90) == 0, _logs(throwaway_home)
        phase("stopped by SIGTERM")
    finally:
        stop_up(up)
    second = out.read_text()[len(first) :]
    [pid] = _worker_pids(second)
    assert not Path(f"/proc/{pid}").exists()
    assert f"worker (pid {pid}) stopped with exit code 0" in second

    assert_exactly_once(database_url, AGENT, TOTAL)
    calls = handler_calls(throwaway_home / "calls.txt")
    assert set(calls) == {event_id for event_id, _ in events}
    redelivered = sum(1 for attempts in calls.values() if len(attempts) > 1)
    print(
        f"SIGINT after {stopped_at}/{TOTAL} events; {redelivered} event(s) reached the handler twice, "
        f"took effect once; at {', '.join(phases)}"
    )
