"""Floor 3: the agent API, the per-event unit of work, built-in agents and sinks.

``from agents import agent, Context`` is the public API for writing agents.
"""

from agents.api import agent
from agents.context import Context

__all__ = ["Context", "agent"]
