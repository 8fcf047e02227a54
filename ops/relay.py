"""``vigil relay``: the outbox relay alone, in its own process (what ``vigil up`` runs next to the worker).

The relay inside the worker (``VIGIL_OUTBOX_RELAY=true``) shares the worker's interpreter, and its
rounds (reading rows, building and producing messages, marking them sent) took about 29% of a
worker's throughput on a quiet 2-core machine (``python -m bench agents``). In a process of its own
it costs the worker nothing but a CPU core's share, and it keeps the same supervision: the heartbeat
``relay:<app_id>`` with its counters and last error (``vigil status`` lists it, with the process),
failing rounds logged and retried with backoff. SIGINT or SIGTERM stops it cleanly: the round under
way finishes (its rows are published and marked sent, or rolled back and left unsent), the heartbeat
is marked ``paused``, the producer is flushed, and the process exits 0.

It refuses to start when Debezium's Outbox Event Router is configured to relay ``vigil.outbox``
(a connector file of ``VIGIL_CONNECTORS``, or the packaged ``connectors/outbox.json`` when that is
unset): two relays would publish every row twice (sinks would still deliver each id once, but every
consumer would read each event twice). The message names the setting to change.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from agents.named_thread import NamedThread
from agents.relay import OutboxRelay
from ops import migrations
from ops.connectors_cli import connector_files
from ops.services import stack
from ops.status import OUTBOX_ROUTER
from schemas.errors import ConfigurationError
from streams.kafka import make_producer
from streams.logs import apply_log_levels
from streams.settings import Settings

log = logging.getLogger(__name__)

#: How often the main thread wakes to see whether the relay thread ended (signals arrive meanwhile).
JOIN_EVERY_S = 0.5


def outbox_router_files(settings: Settings) -> list[Path]:
    """The connector files that configure Debezium's Outbox Event Router (it relays the outbox)."""
    return [path for path in connector_files(settings, None) if OUTBOX_ROUTER in path.read_text()]


def refuse_if_debezium_relays(settings: Settings) -> None:
    """Raise :class:`ConfigurationError` naming the setting when Debezium relays the outbox."""
    files = outbox_router_files(settings)
    if not files:
        return
    source = "VIGIL_CONNECTORS" if settings.connectors else "the packaged connectors (VIGIL_CONNECTORS unset)"
    raise ConfigurationError(
        f"Debezium's outbox router relays vigil.outbox ({', '.join(str(f) for f in files)}, from "
        f"{source}): a second relay would publish every outbox row twice. To have `vigil relay` "
        "publish instead, set VIGIL_CONNECTORS to connector files without the outbox router "
        "(e.g. connectors/demo.json)."
    )


def make_relay(settings: Settings) -> OutboxRelay:
    """The relay of ``vigil relay``: the worker's settings, beating ``relay:<app_id>``."""
    return OutboxRelay(
        settings,
        settings.require_database_url(),
        make_producer(settings),
        beat_name=f"relay:{settings.app_id}",
        unhealthy_after_s=settings.relay_unhealthy_after_s,
        runs_in="vigil relay",
    )


def run_relay(settings: Settings, *, idle_sleep: float = 0.5) -> int:
    """Relay until SIGINT or SIGTERM; return the rows published. The stack is attached (or the
    embedded services started, as for ``vigil worker``) and the database migrated first."""
    refuse_if_debezium_relays(settings)
    resolved = stack.up(settings)
    migrations.upgrade(resolved.require_database_url())
    apply_log_levels(resolved.log_level)
    relay = make_relay(resolved)
    stop = threading.Event()
    published: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            log.warning("vigil relay: %s, finishing the round and stopping", signal.Signals(signum).name)
        stop.set()

    def work() -> None:
        try:
            published.append(relay.run(stop, idle_sleep=idle_sleep))
        except BaseException:  # run() survives any Exception; anything else must not go unseen
            log.critical("the outbox relay died: outbox rows are not published", exc_info=True)
            stop.set()
            raise

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # The relay runs in a thread so that the main thread, which receives the signals, only ever
    # waits in join(): setting the stop event from a handler can then never interrupt the relay.
    thread = NamedThread(target=work, name="vigil-outbox-relay")
    log.warning(
        "vigil relay %s: publishing vigil.outbox (heartbeat relay:%s)", resolved.app_id, resolved.app_id
    )
    thread.start()
    while thread.is_alive():
        thread.join(JOIN_EVERY_S)
    relay.close()
    if not published:
        raise SystemExit("vigil relay: the relay thread died (see the log above)")
    log.warning("vigil relay stopped: %d outbox rows published", published[0])
    return published[0]
