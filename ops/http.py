"""The HTTP ingest on ``VIGIL_HTTP_PORT`` (served by ``vigil worker``, hence by ``vigil up``).

``POST /ingest/drift``, ``/ingest/alertmanager``, ``/ingest/grafana``: authenticated (bearer token
or HMAC, constant-time, :func:`streams.drift_ingest.authenticate`), size-limited (413 past
``VIGIL_INGEST_MAX_BYTES``), validated (400/422 with the reason), answered 202 only after Kafka
acknowledged every event (503 when it cannot: the sender retries, and the ids make the retry
harmless). ``POST /heartbeat/NAME`` beats a declared heartbeat (same token; 404 for a name never
declared). ``GET /metrics`` is the worker's Prometheus exposition. ``GET /healthz`` checks each part
(database, broker, the in-worker outbox relay if this worker relays — a ``vigil relay`` process is
watched by its heartbeat instead, not here —, each agent's consumer) and answers 200 when all are ready, 503
naming the ones that are not. ``GET /`` is the dashboard (:mod:`ops.dashboard`); its writes,
``POST /review/ID/approve|reject`` and ``POST /dlq/PARTITION/OFFSET/redrive``, need the same token
(form field ``token`` or a bearer header) and redirect back with a note. The token is never logged: requests are logged by
path and status only.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import logging
from typing import Any

import psycopg
from aiohttp import web
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from agents import heartbeats
from agents.db import as_engine
from agents.metrics import CONTENT_TYPE
from agents.worker import WorkerRuntime, agent_alive
from ops.dashboard import Browse, note_location, render
from ops.redrive import redrive_letter
from ops.review import decide
from schemas.errors import ConfigurationError, IngestRejected, RetryableError, ServiceError
from streams.drift_ingest import authenticate, parse_body
from streams.drift_publish import DriftPublisher
from streams.settings import Settings

log = logging.getLogger(__name__)

KINDS = ("drift", "alertmanager", "grafana")


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


PROBE_TIMEOUT_S = 2.0


def _database_ready(url: str) -> str | None:
    """None when Postgres answers a query within the probe's timeout, else why not."""
    try:
        with psycopg.connect(url, connect_timeout=int(PROBE_TIMEOUT_S)) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"unreachable: {type(exc).__name__}"
    return None


def _broker_ready(runtime: WorkerRuntime) -> str | None:
    try:
        runtime.outputs.producer.list_topics(timeout=PROBE_TIMEOUT_S)
    except Exception as exc:  # librdkafka raises KafkaException on a timeout: the broker is not ready
        return f"unreachable: {exc}"
    return None


async def health_report(settings: Settings, runtime: WorkerRuntime) -> dict[str, Any]:
    """Each part's state (``ok`` or the reason it is not); ``status`` is ``ok`` when all are."""
    parts: dict[str, str] = {}
    database, broker = await asyncio.gather(
        asyncio.to_thread(_database_ready, settings.require_database_url()),
        asyncio.to_thread(_broker_ready, runtime),
    )
    parts["database"] = database or "ok"
    parts["broker"] = broker or "ok"
    relay = runtime.relay_health()
    if relay is not None:
        parts["relay"] = "ok" if relay.healthy else f"unhealthy: {relay.reason}"
    now = asyncio.get_running_loop().time()
    for name in runtime.lag:
        alive = agent_alive(runtime, name, now=now)
        parts[f"agent:{name}"] = "ok" if alive else f"stuck: lag {sum(runtime.lag[name].values())}"
    healthy = all(v == "ok" for v in parts.values())
    return {"status": "ok" if healthy else "unhealthy", "parts": parts}


def make_web_app(
    settings: Settings,
    publisher: DriftPublisher,
    engine: Engine | None = None,
    runtime: WorkerRuntime | None = None,
) -> web.Application:
    token = settings.ingest_token.get_secret_value() if settings.ingest_token else None
    limit = settings.ingest_max_bytes
    # aiohttp also refuses a body over client_max_size while reading it (a chunked body has no
    # Content-Length to check first).
    app = web.Application(client_max_size=limit)

    async def ingest(request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind not in KINDS:
            return _error(404, f"no ingest named {kind!r}: use {', '.join(KINDS)}")
        if request.content_length is not None and request.content_length > limit:
            return _error(413, f"body of {request.content_length} bytes is over the limit of {limit}")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"body is over the limit of {limit} bytes")
        try:
            authenticate(dict(request.headers), body, token)
            records = parse_body(kind, body)
        except IngestRejected as exc:
            log.info("ingest %s: refused with %d: %s", kind, exc.status, exc.message)
            return _error(exc.status, exc.message)
        try:
            ids = await asyncio.to_thread(publisher.publish_records, records, timeout=10.0)
        except (RetryableError, ServiceError) as exc:
            log.warning("ingest %s: Kafka did not acknowledge %d event(s): %s", kind, len(records), exc)
            return _error(503, f"Kafka did not acknowledge the events, retry later: {exc}")
        log.info("ingest %s: %d event(s) published", kind, len(ids))
        return web.json_response({"ids": ids}, status=202)

    async def heartbeat(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.read()
        try:
            authenticate(dict(request.headers), body, token)
        except IngestRejected as exc:
            return _error(exc.status, exc.message)
        if engine is None:
            return _error(503, "this server has no database: set VIGIL_DATABASE_URL")
        try:
            row = await asyncio.to_thread(heartbeats.beat, engine, name)
        except ConfigurationError as exc:
            return _error(404, str(exc))
        except SQLAlchemyError as exc:
            log.warning("heartbeat %s: database unavailable: %s", name, type(exc).__name__)
            return _error(503, "the database is unavailable, retry later")
        return web.json_response(
            {"name": name, "next_expected_at": row["next_expected_at"].isoformat()}, status=200
        )

    async def healthz(request: web.Request) -> web.Response:
        ingest = "enabled" if token else "disabled (no token)"
        if runtime is None:
            return web.json_response({"status": "ok", "ingest": ingest})
        report = await health_report(settings, runtime)
        return web.json_response(
            {**report, "ingest": ingest}, status=200 if report["status"] == "ok" else 503
        )

    def write_allowed(request: web.Request, form: Any) -> bool:
        """A dashboard write needs the ingest token: the form's ``token`` field or a bearer header."""
        given = str(form.get("token", ""))
        bearer = request.headers.get("Authorization", "")
        if not given and bearer.startswith("Bearer "):
            given = bearer[len("Bearer ") :]
        return token is not None and hmac.compare_digest(given.encode(), token.encode())

    async def dashboard(request: web.Request) -> web.Response:
        if settings.database_url is None:
            return _error(503, "no dashboard: this server has no database (set VIGIL_DATABASE_URL)")
        query = request.query
        browse = None
        if query.get("topic"):
            try:
                limit = int(query.get("limit") or 20)
            except ValueError:
                return _error(400, "limit must be a whole number")
            browse = Browse(query["topic"], query.get("key") or None, limit)
        try:
            page = await asyncio.to_thread(render, settings, browse, query.get("note"))
        except (psycopg.Error, SQLAlchemyError) as exc:
            log.warning("dashboard: database unavailable: %s", type(exc).__name__)
            return _error(503, "the database is unavailable, retry later")
        return web.Response(text=page, content_type="text/html")

    async def review(request: web.Request) -> web.Response:
        """Approve or reject a review item from the dashboard: the form carries the ingest token."""
        decision = request.match_info["decision"]
        if decision not in ("approve", "reject"):
            return _error(404, "use /review/ID/approve or /review/ID/reject")
        form = await request.post()
        if not write_allowed(request, form):
            return _error(401, "a write needs the ingest token (VIGIL_INGEST_TOKEN)")
        try:
            await asyncio.to_thread(
                decide,
                settings,
                Console(file=io.StringIO()),
                request.match_info["item"],
                approve=decision == "approve",
                who="dashboard",
            )
        except ConfigurationError as exc:
            return _error(409, str(exc))
        raise web.HTTPSeeOther(note_location(f"review {request.match_info['item']}: {decision}d"))

    async def redrive(request: web.Request) -> web.Response:
        """Re-drive one dead letter through the agent its ``vigil-agent`` header names."""
        form = await request.post()
        if not write_allowed(request, form):
            return _error(401, "a write needs the ingest token (VIGIL_INGEST_TOKEN)")
        try:
            partition, offset = int(request.match_info["partition"]), int(request.match_info["offset"])
        except ValueError:
            return _error(404, "use /dlq/PARTITION/OFFSET/redrive")
        try:
            result = await asyncio.to_thread(redrive_letter, settings, partition, offset)
        except ConfigurationError as exc:
            return _error(409, str(exc))
        except (RetryableError, ServiceError) as exc:
            return _error(503, f"re-drive failed, retry later: {exc}")
        report = result.agent
        done = (
            "nothing matched"
            if report is None
            else f"{report.succeeded} succeeded, {report.skipped} already processed, "
            f"{report.rejected} rejected, {report.dead_lettered} dead-lettered again"
        )
        raise web.HTTPSeeOther(note_location(f"dead letter {partition}/{offset} re-driven: {done}"))

    async def metrics(request: web.Request) -> web.Response:
        if runtime is None:
            return _error(404, "no metrics: this server runs without a worker")
        body = runtime.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    app.router.add_post("/ingest/{kind}", ingest)
    app.router.add_post("/heartbeat/{name}", heartbeat)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", dashboard)
    app.router.add_post("/review/{item}/{decision}", review)
    app.router.add_post("/dlq/{partition}/{offset}/redrive", redrive)
    return app


async def serve(
    settings: Settings, publisher: DriftPublisher | None = None, runtime: WorkerRuntime | None = None
) -> None:
    """Serve until cancelled. A busy port is logged and leaves the worker's agents running."""
    own = publisher or DriftPublisher(settings)
    engine = as_engine(settings.database_url) if settings.database_url else None
    runner = web.AppRunner(make_web_app(settings, own, engine, runtime), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(
            runner, "127.0.0.1" if settings.http_host is None else settings.http_host, settings.http_port
        )
        try:
            await site.start()
        except OSError as exc:
            log.error("HTTP ingest not started: port %d: %s (set VIGIL_HTTP_PORT)", settings.http_port, exc)
            return
        log.warning("HTTP ingest on port %d", settings.http_port)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await asyncio.to_thread(own.close)
        if engine is not None:
            engine.dispose()


def task(settings: Settings, runtime: WorkerRuntime | None = None) -> Any:
    """A Faust app task that serves the ingest, /metrics and /healthz inside the worker's event loop."""

    async def vigil_http() -> None:
        await serve(settings, runtime=runtime)

    return vigil_http
