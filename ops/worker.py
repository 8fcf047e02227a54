"""``vigil worker``: the stack, the migrations, the topics, then the Faust worker with the agents."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence

import faust
import mode.loop

from agents import drift
from agents.api import AgentSpec, load_modules
from agents.stop_watch import StopWatch
from agents.worker import WorkerRuntime, build_app
from ops import http, migrations
from ops.services import stack
from ops.status import debezium_relays_outbox
from schemas.errors import ConfigurationError
from streams.catalog import CATALOG, TopicSpec
from streams.drift_policy import load_policy
from streams.logs import apply_log_levels
from streams.settings import Settings
from streams.topics import ensure_topics

log = logging.getLogger(__name__)


def prepare(settings: Settings, modules: Sequence[str]) -> tuple[Settings, list[AgentSpec]]:
    """Start or attach the stack, migrate, load the agents and create every topic they need."""
    resolved = stack.up(settings)
    migrations.upgrade(resolved.require_database_url())
    if settings.builtin_agents:
        drift.configure(load_policy(settings.drift_policy))
    builtin = list(drift.MODULES) if settings.builtin_agents else []
    specs = load_modules([*builtin, *settings.agent_modules, *modules])
    if not specs:
        raise ConfigurationError("no agents to run: pass -A your.module or set VIGIL_AGENTS")
    subscribed = sorted({t for spec in specs for t in spec.topics} - {s.name for s in CATALOG})
    ensure_topics(resolved, [*CATALOG, *(TopicSpec(t, "subscribed by an agent") for t in subscribed)])
    return resolved, specs


def prunes_outbox_by_age(settings: Settings) -> bool:
    """Whether the worker prunes outbox rows by age, sent or not: only when Debezium's outbox router
    publishes them (it never marks a row sent). With ``VIGIL_OUTBOX_RELAY=false`` next to a ``vigil
    relay`` process (what ``vigil up`` runs) an unsent row is kept until the relay publishes it,
    however long the relay was down."""
    return not settings.outbox_relay and debezium_relays_outbox(settings)


def run_worker(settings: Settings, modules: Sequence[str]) -> None:
    """Run the worker in the foreground until SIGTERM or Ctrl-C."""
    # uvloop, before anything makes a loop: Faust's per-message path is mostly event-loop work
    # (tasks, futures, callbacks), which uvloop does in C.
    mode.loop.use("uvloop")
    resolved, specs = prepare(settings, modules)
    apply_log_levels(resolved.log_level)
    runtime = WorkerRuntime.create(resolved)
    runtime.start_ledger()
    runtime.outbox_pruned_by_age = prunes_outbox_by_age(resolved)
    app = build_app(resolved, specs, runtime)
    app.task(http.task(resolved, runtime))
    log.warning("vigil worker %s: agents %s", resolved.app_id, ", ".join(s.name for s in specs))
    worker = _Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.log_level = resolved.log_level
    worker.execute_from_commandline()


#: Seconds the event loop runs on after a stop, once the app stopped and the tasks left were
#: cancelled, before it is closed: a few turns of the loop for those tasks to finish cancelling.
LOOP_SETTLE_S = 0.1


class _Worker(faust.Worker):
    """Faust's worker, with Vigil's log levels put back as soon as Faust has set logging up, without
    a second's sleep at every stop, and with a stop that takes long logged with what holds it
    (:mod:`agents.stop_watch`).

    Faust leaves a handler that drops what is below WARNING, so Vigil's own information would be
    lost until the runtime starts: the ledger reader and the agents' feeds start before that (the
    reader before Faust itself), and their first lines ("ledger caught up", a feed's assignment)
    were."""

    log_level = "INFO"
    _stop_watch: StopWatch | None = None

    def _watch_the_stop(self, reason: str) -> None:
        if self._stop_watch is None:
            self._stop_watch = StopWatch(self.loop)
        self._stop_watch.arm(reason)

    def _schedule_shutdown(self, sig: signal.Signals) -> None:
        self._watch_the_stop(f"on {sig.name}")
        super()._schedule_shutdown(sig)

    def stop_and_shutdown(self) -> None:
        self._watch_the_stop("the app stopped")
        super().stop_and_shutdown()

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        apply_log_levels(self.log_level)

    async def _sentinel_task(self) -> None:
        # mode's Worker runs the loop on for a whole second here after everything has stopped
        # (its sentinel task), so every stop of a worker took a second longer than its work.
        await asyncio.sleep(LOOP_SETTLE_S)
