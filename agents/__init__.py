"""Floor 3: the agent API, the per-event unit of work, built-in agents and sinks."""
