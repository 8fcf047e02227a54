"""Re-drive one dead letter from the dashboard: the same path as ``vigil replay vigil.dlq --agent NAME``
(:func:`ops.replay.replay`), narrowed to that letter's partition and offset, for the agent its
``vigil-agent`` header names.
"""

from __future__ import annotations

import io

from rich.console import Console

from ops.inspect import get_message
from ops.replay import ReplayRequest, ReplayResult, replay
from schemas.errors import ConfigurationError
from streams import headers as names
from streams.catalog import DLQ
from streams.settings import Settings


def letter_agent(settings: Settings, partition: int, offset: int) -> str:
    """The agent that gave up on the letter at ``partition``/``offset`` of ``vigil.dlq``."""
    letter = get_message(settings, DLQ, partition, offset)
    agent = letter["headers"].get(names.AGENT)
    if not isinstance(agent, str) or not agent:
        raise ConfigurationError(
            f"the dead letter at {DLQ}/{partition}/{offset} names no agent (poison, say): re-drive it with "
            f"`vigil replay {DLQ} --agent NAME --from-offset {partition}:{offset} --to-offset {partition}:{offset}`"
        )
    return agent


def redrive_letter(settings: Settings, partition: int, offset: int) -> ReplayResult:
    """Run the letter at ``partition``/``offset`` through its agent's unit of work (processed once)."""
    agent = letter_agent(settings, partition, offset)
    position = f"{partition}:{offset}"
    request = ReplayRequest(topic=DLQ, agent=agent, from_offset=position, to_offset=position)
    return replay(settings, Console(file=io.StringIO()), request, show_progress=False)
