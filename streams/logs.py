"""Log levels: Vigil's own loggers at ``VIGIL_LOG_LEVEL``, the libraries' at warnings.

Faust's worker configures logging when it starts (a root handler whose level is the worker's
log level, warnings here): :func:`apply_log_levels` is called again after that, so Vigil's own
information (a ledger caught up, an event failed) is not filtered out by the handler.
"""

from __future__ import annotations

import logging

#: The top-level packages whose loggers ``VIGIL_LOG_LEVEL`` applies to.
VIGIL_PACKAGES = ("schemas", "streams", "agents", "connectors", "ops")


def apply_log_levels(level: str) -> None:
    """Libraries log warnings and worse; Vigil's packages log from ``level`` up."""
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    for handler in root.handlers:
        handler.setLevel(logging.NOTSET)  # the loggers decide, not the handler
    for package in VIGIL_PACKAGES:
        logging.getLogger(package).setLevel(level.upper())
