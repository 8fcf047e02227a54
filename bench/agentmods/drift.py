"""The agent of ``bench_drift``: Vigil's own ``drift-router`` handler on the bench's topics.

The handler is :func:`agents.drift.router.drift_router` itself (``@agent`` returns it unchanged),
registered on ``VIGIL_BENCH_TOPIC`` under ``VIGIL_BENCH_AGENT``; the built-in registration on
``drift.events`` is dropped, so the worker routes only the bench's events, and the tier topics are
pointed at the bench's own (``VIGIL_BENCH_WARNING_TOPIC``, ``VIGIL_BENCH_CRITICAL_TOPIC``) so the
run sends nothing to the shared ``drift.warning`` / ``drift.critical``. Run with
``VIGIL_BUILTIN_AGENTS=false`` (the investigate and remediate agents are not part of the bench).
"""

from __future__ import annotations

import os

from agents.api import agent, unregister
from agents.drift import router

TOPIC = os.environ.get("VIGIL_BENCH_TOPIC", "bench.drift")
NAME = os.environ.get("VIGIL_BENCH_AGENT", "bench-drift-router")

unregister(router.NAME)
# The router looks its tier topics up per event, so pointing them elsewhere needs no other change.
router.TOPICS.update(
    warning=os.environ.get("VIGIL_BENCH_WARNING_TOPIC", "bench.drift.warning"),
    critical=os.environ.get("VIGIL_BENCH_CRITICAL_TOPIC", "bench.drift.critical"),
)
agent(TOPIC, name=NAME)(router.drift_router)
