"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright): the page
shows a known run with its trace and a known alert; clicking *approve* (with the ingest token typed
into the form's field) changes the review's state in Postgres; the topic browser shows a decoded
message found by its key. Screenshots go to ``tests/artifacts/``."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp import web
from pydantic import SecretStr
from rich.console import Console

from agents.api import agent, unregister
from agents.context import Context, Output
from ops.http import make_web_app
from ops.replay import ReplayRequest, replay
from ops.services.procs import free_port
from schemas.codec import Codec
from schemas.examples import EXAMPLES
from streams.drift_publish import DriftPublisher
from streams.kafka import make_producer
from streams.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TOKEN = "s3cret-browser"


@contextmanager
def _serve_in_thread(settings: Settings) -> Iterator[str]:
    """The worker's web app on 127.0.0.1 in its own event loop and thread; yields its base URL."""
    loop = asyncio.new_event_loop()
    port = free_port()
    runner = web.AppRunner(make_web_app(settings, DriftPublisher(settings)))

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _review_status(url: str, item: object) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT status FROM vigil.reviews WHERE id = %s", (item,)).fetchone()
    return None if row is None else str(row[0])


def test_dashboard_in_chromium(
    stack: Settings, fresh_database: str, make_topic: Callable[..., str], unique: str
) -> None:
    playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is a dev extra")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no {CHROMIUM}: ops/setup.sh installs Debian's chromium")
    settings = stack.model_copy(
        update={"database_url": fresh_database, "builtin_agents": False, "ingest_token": SecretStr(TOKEN)}
    )
    topic, browsed = make_topic("events"), make_topic("browse")

    async def handler(event: Any, ctx: Context) -> None:
        ctx.step(f"checked order {event.value['n']}", n=event.value["n"])
        ctx.emit("dash", key=str(event.value["n"]), payload={"n": event.value["n"]})

    def validate(event: Any, output: Output) -> bool | str:
        return "a human must look" if event.value["n"] == 1 else True

    agent(topic, name=unique, validate=validate)(handler)
    try:
        producer = make_producer(settings)
        for n in (0, 1):
            producer.produce(topic, value=json.dumps({"n": n}).encode())
        codec = Codec.from_registry_url(settings.schema_registry_url)
        for n in range(3):
            record = {**EXAMPLES["DriftEvent"], "id": f"evt-chromium-{n}"}
            producer.produce(browsed, key=f"key-{n}".encode(), value=codec.encode("DriftEvent", record))
        assert producer.flush(30) == 0
        replay(
            settings,
            Console(file=io.StringIO()),
            ReplayRequest(topic=topic, agent=unique),
            show_progress=False,
        )
        with psycopg.connect(fresh_database) as conn:
            conn.execute(
                "INSERT INTO vigil.alerts (key, kind, subject, status, since, event_id) "
                "VALUES ('k', 'absence', %s, 'open', now(), 'e')",
                (f"nightly-{unique}",),
            )
            (item,) = conn.execute("SELECT id FROM vigil.reviews").fetchone() or (None,)
        assert item is not None

        ARTIFACTS.mkdir(exist_ok=True)
        with _serve_in_thread(settings) as base, playwright_sync.sync_playwright() as pw:
            try:
                browser = pw.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
                )
            except playwright_sync.Error as exc:
                pytest.skip(f"chromium cannot start here: {exc}")
            try:
                _drive(browser.new_page(), base, fresh_database, item, unique, browsed)
            finally:
                browser.close()
    finally:
        unregister(unique)


def _drive(page: Any, base: str, url: str, item: object, unique: str, browsed: str) -> None:
    page.set_default_timeout(20_000)
    page.goto(base + "/")
    assert "checked order 0" in page.locator("#runs").inner_text()  # the run's trace
    assert f"nightly-{unique}" in page.locator("#alerts-critical").inner_text()
    assert "a human must look" in page.locator("#reviews").inner_text()
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    page.fill(f"form[action='/review/{item}/approve'] input[name=token]", TOKEN)
    page.click(f"#approve-{item}")
    page.wait_for_selector("#note")
    assert "approved" in page.locator("#note").inner_text()
    deadline = time.monotonic() + 20
    while _review_status(url, item) != "approved":
        assert time.monotonic() < deadline, f"review {item} is {_review_status(url, item)}, not approved"
        time.sleep(0.1)
    page.screenshot(path=str(ARTIFACTS / "dashboard-approved.png"), full_page=True)

    page.fill("#browse input[name=topic]", browsed)
    page.fill("#browse input[name=key]", "key-1")
    page.click("#browse button")
    page.wait_for_selector("#topic-browser table")
    shown = page.locator("#topic-browser").inner_text()
    assert "avro:vigil.DriftEvent" in shown and "evt-chromium-1" in shown
    assert "evt-chromium-0" not in shown and "evt-chromium-2" not in shown
    page.screenshot(path=str(ARTIFACTS / "dashboard-topic-browser.png"), full_page=True)
