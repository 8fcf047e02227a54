"""The dashboard at ``GET /`` over the real database: a known run with its trace, the review queue,
and approving an item through the page's form (which needs the ingest token)."""

from __future__ import annotations

import asyncio
import io
import json
import socket
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
from streams.drift_publish import DriftPublisher
from streams.kafka import make_producer
from streams.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

        asyncio.run(_browse(settings, fresh_database))
    finally:
        unregister(unique)


async def _browse(settings: Settings, fresh_database: str) -> None:
    runner = web.AppRunner(make_web_app(settings, DriftPublisher(settings)))
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/") as response:
                assert response.status == 200
                page = await response.text()
            assert "looked-up &lt;script&gt;" in page and "<script>" not in page  # trace, escaped
            assert "needs a human" in page
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
