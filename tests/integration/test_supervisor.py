"""The supervisor with real child processes: it forwards the stop signal, waits, and kills only a
child that does not stop in time (and says so)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from ops.supervisor import Supervisor

pytestmark = pytest.mark.integration

# Writes which signal stopped it to the file in argv[1], then exits 0; "ignore" ignores SIGTERM.
CHILD = """
import signal, sys, time
out, mode = sys.argv[1], sys.argv[2]
def stop(signum, frame):
    open(out, "w").write(signal.Signals(signum).name)
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "ignore" else stop)
open(out + ".ready", "w").close()
while True:
    time.sleep(0.05)
"""


def _wait_ready(path: Path) -> None:
    deadline = time.monotonic() + 20
    while not Path(f"{path}.ready").exists():
        assert time.monotonic() < deadline, f"{path} never started"
        time.sleep(0.05)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_stop_signal_is_forwarded_and_each_child_waited_for(tmp_path: Path, signum: int) -> None:
    supervisor = Supervisor(tmp_path / "logs")
    outs = [tmp_path / "a.out", tmp_path / "b.out"]
    for out in outs:
        supervisor.add(out.stem, [sys.executable, "-c", CHILD, str(out), "stop"], dict(os.environ))
    supervisor.start()
    for out in outs:
        _wait_ready(out)
    assert [c.state for c in supervisor.children] == ["running", "running"]
    stopped = supervisor.stop(signum, timeout=20)
    assert [(s.name, s.returncode, s.killed) for s in stopped] == [("a", 0, False), ("b", 0, False)]
    assert [out.read_text() for out in outs] == [signal.Signals(signum).name] * 2
    assert [c.state for c in supervisor.children] == ["exited", "exited"]
    assert "stopped with exit code 0" in stopped[0].message


@pytest.mark.timeout(60)
def test_a_child_that_does_not_stop_in_time_is_killed_and_reported(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "logs")
    out = tmp_path / "stubborn.out"
    supervisor.add("stubborn", [sys.executable, "-c", CHILD, str(out), "ignore"], dict(os.environ))
    supervisor.start()
    _wait_ready(out)
    [stopped] = supervisor.stop(signal.SIGTERM, timeout=1.0)
    assert stopped.killed and stopped.returncode == -signal.SIGKILL
    assert "did not stop in time: killed" in stopped.message
    assert not supervisor.children[0].running
