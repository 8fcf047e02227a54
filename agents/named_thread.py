"""Vigil's threads, named in the operating system as in Python.

Python 3.11 keeps a thread's name to itself: ``top -H``, ``ps -L`` and ``/proc/<pid>/task/*/comm``
show every Python thread as the process. librdkafka names its own (``rdk:main``,
``rdk:broker1``), and a :class:`NamedThread` does the same, so a worker's CPU can be told apart
thread by thread from outside (``bench agents`` does, from ``/proc``). Linux keeps 15 bytes of a
name: the start of it.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
from typing import Any

log = logging.getLogger(__name__)

#: ``prctl(PR_SET_NAME, name)``: names the calling thread.
_PR_SET_NAME = 15
#: Bytes of a thread's name that Linux keeps (16 with the terminating NUL).
OS_NAME_BYTES = 15


def _prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def os_thread_name(name: str) -> bytes:
    """What the OS keeps of ``name``: its first 15 bytes of UTF-8 (a character cut in two dropped)."""
    return name.encode()[:OS_NAME_BYTES].decode(errors="ignore").encode()


def name_os_thread(name: str) -> None:
    """Name the calling thread ``name`` in the OS (nothing where that cannot be done)."""
    if _PRCTL is not None and _PRCTL(_PR_SET_NAME, ctypes.c_char_p(os_thread_name(name)), 0, 0, 0) != 0:
        log.debug("thread %s: not named in the OS (errno %d)", name, ctypes.get_errno())


class NamedThread(threading.Thread):
    """A ``threading.Thread`` that names itself in the OS, with its Python name, as it starts."""

    def run(self) -> None:
        name_os_thread(self.name)
        super().run()
