"""Vigil's threads carry their names into the OS, where ``/proc`` (and ``bench agents``) reads them."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from agents.named_thread import NamedThread, os_thread_name

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


def _os_name_of(thread: threading.Thread) -> str:
    return Path(f"/proc/self/task/{thread.native_id}/comm").read_text().strip()


def test_a_named_thread_shows_its_name_in_proc_cut_to_15_bytes() -> None:
    seen: list[str] = []
    done = threading.Event()

    def work() -> None:
        seen.append(_os_name_of(threading.current_thread()))
        done.set()

    thread = NamedThread(target=work, name="vigil-feed-bench-route", daemon=True)
    thread.start()
    assert done.wait(5)
    thread.join(5)
    assert seen == ["vigil-feed-benc"]


def test_a_plain_thread_keeps_the_process_name() -> None:
    seen: list[str] = []
    thread = threading.Thread(target=lambda: seen.append(_os_name_of(threading.current_thread())), name="x-y")
    thread.start()
    thread.join(5)
    assert seen and seen[0] != "x-y"


def test_the_os_name_drops_a_character_cut_in_two() -> None:
    assert os_thread_name("vigil-feed-agent") == b"vigil-feed-agen"
    assert os_thread_name("vigil-feed-ééé") == "vigil-feed-éé".encode()  # 11 + 2 + 2 bytes
    assert os_thread_name("vigil-feed-xééé") == "vigil-feed-xé".encode()  # 12 + 2: the next é is cut
    assert len(os_thread_name("é" * 20)) == 14
