"""Agent modules that integration tests load into real worker processes with ``-A``."""
