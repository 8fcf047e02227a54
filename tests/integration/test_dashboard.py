"""The dashboard at ``GET /`` over the real database and broker: a known run with its trace, the review
queue and approving an item through the page's form (which needs the ingest token), open alerts under
their tier, and the topic browser finding a decoded (Avro) message by its key."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Callable
from typing import Any

import aiohttp
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

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_dashboard_shows_runs_and_decides_reviews(
    stack: Settings, fresh_database: str, make_topic: Callable[..., str], unique: str
) -> None:
    settings = stack.model_copy(
        update={"database_url": fresh_database, "builtin_agents": False, "ingest_token": SecretStr("s3cret")}
    )
    topic = make_topic("events")

    async def handler(event: Any, ctx: Context) -> None:
        ctx.step("looked-up <script>alert(1)</script>", n=event.value["n"])
        ctx.emit("dash", key=str(event.value["n"]), payload={"n": event.value["n"]})

    def validate(event: Any, output: Output) -> bool | str:
        return "needs a human" if event.value["n"] == 1 else True

    agent(topic, name=unique, validate=validate)(handler)
    try:
        producer = make_producer(settings)
        for n in (0, 1):
            producer.produce(topic, value=json.dumps({"n": n}).encode())
        assert producer.flush(30) == 0
        replay(
            settings,
            Console(file=io.StringIO()),
            ReplayRequest(topic=topic, agent=unique),
            show_progress=False,
        )

        browsed = make_topic("browse")
        codec = Codec.from_registry_url(settings.schema_registry_url)
        for n in range(5):
            record = {**EXAMPLES["DriftEvent"], "id": f"evt-browse-{n}"}
            producer.produce(browsed, key=f"k{n}".encode(), value=codec.encode("DriftEvent", record))
        producer.produce(browsed, key=b"k3", value=b"plain text, newer")
        assert producer.flush(30) == 0
        _open_alerts(fresh_database, unique)

        asyncio.run(_browse(settings, fresh_database, unique, browsed))
    finally:
        unregister(unique)


def _open_alerts(url: str, unique: str) -> None:
    """One open drift incident per tier and one of Vigil's own (critical) alerts."""
    with psycopg.connect(url) as conn:
        for tier in ("warning", "critical"):
            conn.execute(
                "INSERT INTO vigil.drift_incidents (fingerprint, source, metric, labels, status, tier, "
                "opened_at, last_event_id) VALUES (%s, %s, %s, '{}', 'open', %s, now(), 'e')",
                (f"fp-{tier}", f"src-{unique}", f"metric-{tier}", tier),
            )
        conn.execute(
            "INSERT INTO vigil.alerts (key, kind, subject, status, since, event_id) "
            "VALUES ('k', 'absence', %s, 'open', now(), 'e')",
            (f"beat-{unique}",),
        )


def _tier(page: str, tier: str) -> str:
    found = re.search(rf'<div class="tier" id="alerts-{tier}">(.*?)</div>', page, re.S)
    assert found is not None, f"no {tier} tier on the page"
    return found.group(1)


async def _browse(settings: Settings, fresh_database: str, unique: str, browsed: str) -> None:
    runner = web.AppRunner(make_web_app(settings, DriftPublisher(settings)))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/") as response:
                assert response.status == 200
                page = await response.text()
            assert "looked-up &lt;script&gt;" in page and "<script>" not in page  # trace, escaped
            assert "needs a human" in page
            warning, critical = _tier(page, "warning"), _tier(page, "critical")
            assert f"src-{unique} metric-warning" in warning and "metric-critical" not in warning
            assert f"src-{unique} metric-critical" in critical and f"beat-{unique}" in critical

            query = {"topic": browsed, "key": "k2", "limit": "5"}
            async with session.get(f"http://127.0.0.1:{port}/", params=query) as response:
                assert response.status == 200
                page = await response.text()
            browser = page[page.index('id="topic-browser"') :]
            assert "avro:vigil.DriftEvent" in browser and "evt-browse-2" in browser
            assert "evt-browse-1" not in browser and "evt-browse-3" not in browser  # only key k2
            async with session.get(f"http://127.0.0.1:{port}/", params={**query, "key": "k3"}) as response:
                browser = (await response.text()).split('id="topic-browser"', 1)[1]
            assert "plain text, newer" in browser and "evt-browse-3" in browser  # both, newest first
            assert browser.index("plain text, newer") < browser.index("evt-browse-3")
            with psycopg.connect(fresh_database) as conn:
                (item,) = conn.execute("SELECT id FROM vigil.reviews").fetchone() or (None,)
            url = f"http://127.0.0.1:{port}/review/{item}/approve"
            async with session.post(url, data={"token": "wrong"}) as response:
                assert response.status == 401
            async with session.post(url, data={"token": "s3cret"}, allow_redirects=False) as response:
                assert response.status == 303
            with psycopg.connect(fresh_database) as conn:
                assert conn.execute("SELECT status FROM vigil.reviews").fetchone() == ("approved",)
    finally:
        await runner.cleanup()
