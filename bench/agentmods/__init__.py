"""Agent modules the benchmarks run with ``vigil worker -A bench.agentmods.<name>``."""
