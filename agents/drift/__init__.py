"""The built-in drift agents: the two-tier router, the investigate agent, the remediate agent.

``vigil worker`` loads them (unless ``VIGIL_BUILTIN_AGENTS=false``) and hands them the drift policy
with :func:`configure`; tests may call :func:`configure` directly.
"""

from __future__ import annotations

from agents.drift.state import configure, policy

MODULES = ("agents.drift.router", "agents.drift.investigate", "agents.drift.remediate")

__all__ = ["MODULES", "configure", "policy"]
