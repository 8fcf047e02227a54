"""File sink: appends one JSON line per delivered outbox event.

What it guarantees, with one writing process per file:

- A line is written (and fsynced) before ``vigil.deliveries`` records the delivery, so a recorded
  delivery is on disk.
- A crash between the write and the record leaves the delivery unrecorded, and it is attempted
  again. When the sink opens the file it indexes the ids of its last ``dedup_scan_bytes``; a
  delivery whose id is already there is not written again. The line of an unrecorded delivery is
  always among the last ones written before the crash, so the tail is where it is.
- A crash in the middle of a write leaves a torn last line; it is cut off when the sink opens the
  file, and the delivery it belonged to (unrecorded) is written again in full.

So each id appears once. Several processes appending to one file void the tail argument (another
writer's lines may follow); give each its own file. Every line carries ``id``, so a reader can
always drop duplicates itself.
"""

from __future__ import annotations

import os
from pathlib import Path

from agents.outbox_mapping import OutboxEvent
from agents.sinks.base import DeliveryRetryableError
from agents.sinks.requests import file_line, line_id

_CHUNK = 64 * 1024


class FileSink:
    def __init__(
        self, name: str, path: str | Path, *, fsync: bool = True, dedup_scan_bytes: int = 4 * 1024 * 1024
    ) -> None:
        self._name = name
        self.path = Path(path)
        self.fsync = fsync
        self.dedup_scan_bytes = dedup_scan_bytes
        self._fd: int | None = None
        self._tail_ids: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return self._name

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                _cut_torn_tail(fd)
                self._tail_ids = _tail_ids(fd, self.dedup_scan_bytes)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
        return self._fd

    def deliver(self, event: OutboxEvent, attempt: int) -> None:
        try:
            fd = self._open()
            if event.id in self._tail_ids:
                return  # written before a crash that kept it from being recorded
            data = file_line(event)
            while data:
                written = os.write(fd, data)
                data = data[written:]
            if self.fsync:
                os.fsync(fd)
        except OSError as exc:
            raise DeliveryRetryableError(f"{self._name}: cannot append to {self.path}: {exc}") from exc

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _tail_ids(fd: int, scan_bytes: int) -> frozenset[str]:
    """Ids of the lines in the last ``scan_bytes`` of the file (a line cut by the window is skipped)."""
    size = os.fstat(fd).st_size
    start = max(0, size - scan_bytes)
    lines = os.pread(fd, size - start, start).split(b"\n")
    if start > 0:
        lines = lines[1:]
    return frozenset(i for i in map(line_id, lines) if i is not None)


def _cut_torn_tail(fd: int) -> None:
    """Truncate the file after its last newline (drops a line torn by a crash mid-write)."""
    size = os.fstat(fd).st_size
    end = size
    while end > 0:
        start = max(0, end - _CHUNK)
        chunk = os.pread(fd, end - start, start)
        if end == size and chunk.endswith(b"\n"):
            return
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            os.ftruncate(fd, start + newline + 1)
            return
        end = start
    if size:
        os.ftruncate(fd, 0)
