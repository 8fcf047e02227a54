"""Absence: a declared heartbeat (every second) beaten twice a second over HTTP and once with the
CLI, then stopped, raises exactly one critical alert within its grace, with two workers
monitoring; beats resuming resolve it once. The alert is a DriftEvent on drift.events, routed to the critical tier."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ops.services.procs import free_port
from streams.settings import Settings
from streams.watch import ABSENCE
from tests.integration.drift_helpers import vigil
from tests.integration.watch_helpers import (
    TOKEN,
    alert_status,
    published_alerts,
    routed,
    start_watch_worker,
)
from tests.integration.workers import stop, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GRACE_S = 3.0


class Beater:
    """Beats every half second on a thread until stopped; `beaten` is set after the first beat."""

    def __init__(self, beat: Callable[[], bool]) -> None:
        self.beaten = threading.Event()
        self._done = threading.Event()
        self._beat = beat
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            try:
                if self._beat():
                    self.beaten.set()
            except httpx.HTTPError:
                pass  # a missed beat; the next one is half a second away
            self._done.wait(0.5)

    def stop(self) -> None:
        self._done.set()
        self._thread.join(10)


def test_a_stopped_heartbeat_raises_one_alert_with_two_workers_and_resolves_once(
    stack: Settings, fresh_database: str, tmp_path: Path, unique: str
) -> None:
    name = f"{unique}-nightly"
    ports = [free_port(), free_port()]
    workers = [
        start_watch_worker(stack, fresh_database, tmp_path / f"w{i}", unique, port=port)
        for i, port in enumerate(ports)
    ]
    logs = [tmp_path / f"w{i}" / "worker.log" for i in range(2)]
    url = f"http://127.0.0.1:{ports[0]}/heartbeat/{name}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:

        def serving(port: int) -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code in (200, 503)
            except httpx.HTTPError:
                return False

        for port, worker, log in zip(ports, workers, logs, strict=True):
            wait_until(lambda: serving(port), 120, "the worker's HTTP server", worker, log)  # noqa: B023

        def beat_over_http() -> bool:
            return httpx.post(url, headers=auth, timeout=5).status_code == 200

        declared = vigil(stack, fresh_database, "heartbeat", "expect", name, "--every", "1s", "--grace", "3s")
        assert declared.returncode == 0, declared.stderr
        # Beaten every half second from here on, in the background: a CLI call below can take
        # seconds to start on a loaded machine, and a gap that long would be a real absence.
        beating = Beater(beat_over_http)
        try:
            wait_until(beating.beaten.is_set, 10, "the first beat")
            assert httpx.post(url, timeout=5).status_code == 401  # same token as the ingest
            unknown = httpx.post(
                f"http://127.0.0.1:{ports[0]}/heartbeat/{unique}-never", headers=auth, timeout=5
            )
            assert unknown.status_code == 404 and "vigil heartbeat expect" in unknown.json()["error"]
            beaten = vigil(stack, fresh_database, "heartbeat", "beat", name)
            assert beaten.returncode == 0, beaten.stderr
            time.sleep(5.0)  # five periods of beats: no alert
            assert alert_status(fresh_database, ABSENCE, name) is None
        finally:
            beating.stop()

        stopped_at = time.monotonic()
        wait_until(
            lambda: alert_status(fresh_database, ABSENCE, name) == "open",
            1.0 + GRACE_S + 10,
            "the absence alert",
            workers[1],
            logs[1],
        )
        assert time.monotonic() - stopped_at <= 1.0 + GRACE_S + 5, "the alert came too late"
        listed = vigil(stack, fresh_database, "heartbeat", "list", "--json")
        assert listed.returncode == 1 and '"state": "overdue"' in listed.stdout
        wait_until(lambda: routed(fresh_database, ABSENCE, name, "critical") == 1, 60, "the alert routed")
        assert published_alerts(stack, fresh_database, ABSENCE, name) == ["critical"]

        # Beats resume, and go on in the background until the end (a pause would be a new incident).
        beating = Beater(beat_over_http)
        try:
            wait_until(beating.beaten.is_set, 10, "beats to resume")
            wait_until(
                lambda: alert_status(fresh_database, ABSENCE, name) == "resolved", 20, "the resolution"
            )
            wait_until(
                lambda: routed(fresh_database, ABSENCE, name, "resolved") == 1, 60, "the resolution routed"
            )
            wait_until(
                lambda: published_alerts(stack, fresh_database, ABSENCE, name) == ["critical", "resolved"],
                30,
                "the resolved event on drift.events",
            )
            assert routed(fresh_database, ABSENCE, name, "critical") == 1
            assert alert_status(fresh_database, ABSENCE, name) == "resolved"
        finally:
            beating.stop()
    finally:
        for worker in workers:
            stop(worker)
