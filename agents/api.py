"""The agent API: ``@agent(topics, name=…)`` registers an async handler ``(event, ctx)``.

Registration only records an :class:`AgentSpec`; the worker turns specs into Faust agents. The
decorated function is returned unchanged, so it can be called directly in tests.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from agents.context import Context, Output

Handler = Callable[[Any, "Context"], Awaitable[None]]
#: A validator sees the event and what the handler wants to emit; ``True``/``None`` accepts,
#: ``False`` or a string (the reason) rejects and sends the output to the review queue.
Validator = Callable[[Any, "Output"], bool | str | None]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class AgentSpec:
    """Everything the worker needs to run one agent."""

    name: str
    topics: tuple[str, ...]
    handler: Handler
    validate: Validator | None = None
    concurrency: int = 1
    retries: int = 3
    #: Events per transaction at most, and how long a batch waits for more; None: the worker's
    #: ``VIGIL_BATCH_SIZE`` and ``VIGIL_BATCH_WINDOW_MS``.
    batch_size: int | None = None
    batch_window_ms: float | None = None
    #: Failed (dead-lettered) runs in a row that raise a critical alert; None: the worker's default.
    alert_after_failures: int | None = None


_REGISTRY: dict[str, AgentSpec] = {}


def agent(
    topics: str | Sequence[str],
    *,
    name: str | None = None,
    validate: Validator | None = None,
    concurrency: int = 1,
    retries: int = 3,
    batch_size: int | None = None,
    batch_window_ms: float | None = None,
    alert_after_failures: int | None = None,
) -> Callable[[Handler], Handler]:
    """Register ``handler`` as an agent subscribed to ``topics``.

    ``retries`` is how many times a raising handler is tried in all before its event is
    dead-lettered; ``concurrency`` is the number of Faust actors (ordering is per actor);
    ``alert_after_failures`` runs dead-lettered in a row raise one critical alert (default
    ``VIGIL_ALERT_AFTER_FAILURES``, 3), resolved by the next success. ``batch_size`` events at most
    share a transaction. An idle agent gets what has arrived at once; while it works on a batch, the
    next one may fill for up to ``batch_window_ms`` (defaults ``VIGIL_BATCH_SIZE`` and
    ``VIGIL_BATCH_WINDOW_MS``): a longer window lets batches grow under load.
    """
    topic_list = (topics,) if isinstance(topics, str) else tuple(topics)
    if not topic_list:
        raise ConfigurationError("@agent needs at least one topic")
    if retries < 1 or concurrency < 1 or (batch_size or 1) < 1 or (alert_after_failures or 1) < 1:
        raise ConfigurationError(
            "@agent: retries, concurrency, batch_size and alert_after_failures must be at least 1"
        )
    if batch_window_ms is not None and not 0 < batch_window_ms <= 10_000:
        raise ConfigurationError("@agent: batch_window_ms must be more than 0 and at most 10000")

    def register(handler: Handler) -> Handler:
        agent_name = name or f"{handler.__module__}.{handler.__qualname__}"
        if not _NAME.match(agent_name):
            raise ConfigurationError(
                f"agent name {agent_name!r} must be 1-100 letters, digits, '_', '.', '-' (it is part of a Kafka key)"
            )
        existing = _REGISTRY.get(agent_name)
        if existing is not None and existing.handler is not handler:
            raise ConfigurationError(f"two agents are named {agent_name!r}: give one a different name=")
        _REGISTRY[agent_name] = AgentSpec(
            name=agent_name,
            topics=topic_list,
            handler=handler,
            validate=validate,
            concurrency=concurrency,
            retries=retries,
            batch_size=batch_size,
            batch_window_ms=batch_window_ms,
            alert_after_failures=alert_after_failures,
        )
        return handler

    return register


def registered() -> list[AgentSpec]:
    return list(_REGISTRY.values())


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def load_modules(modules: Sequence[str]) -> list[AgentSpec]:
    """Import the user's agent modules (``-A`` / ``VIGIL_AGENTS``); return every registered agent."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(
                f"cannot import agent module {module!r}: {exc}; is it on PYTHONPATH?"
            ) from exc
    return registered()
