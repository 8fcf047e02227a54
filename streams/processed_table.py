"""The worker's bounded in-memory set of processed ``<agent>/<event_id>`` keys, packed small. Pure.

A fast path only: a key found here was committed in Postgres, so its event is skipped without a
database round trip; a key missing here costs one Postgres check. So the table must never report
a key that was not added (that would lose an event), and it may forget any key at any time.

Each key is stored as its 128-bit BLAKE2b digest, 16 bytes in a preallocated ``bytearray`` laid
out as an open-addressing hash table with linear probing: no Python object per key (an
``OrderedDict`` of ~80-character strings took ~180 bytes a key; this takes ~21 bytes a key of
capacity, allocated once). A key that was not added matches one of n stored digests with
probability n/2¹²⁸ per lookup (~3e-33 with a million keys: a trillion lookups, ~3e-21), as unlikely
as two random UUIDs colliding; that is the only way such a key can be reported.

Bounded by generations: two tables of ``ceil(capacity / 2)`` keys each. Keys go into the newer
one; when it is full, the older one is cleared and becomes the newer one. So the oldest keys are
still dropped first, but about half the capacity at a time, not one by one: the table holds
between half and all of ``capacity`` keys once it has filled up (fewer after discards). A key added again moves to the
newer generation (it is dropped last, as a re-added key was in the ``OrderedDict``).

Writers hold a lock. Lookups take none: under CPython's GIL a 16-byte slot is written and compared
in one operation, and every slot holds either nothing, a deletion mark, or the digest of a key that
was added, so a lookup racing a write or a generation swap can miss (a Postgres check) but never
match a key that was not added. (Free-threaded CPython builds would need the lock for lookups too.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from hashlib import blake2b

from streams.ledger_records import ledger_key

SLOT = 16  # bytes of a digest
EMPTY = bytes(SLOT)
DELETED = b"\xff" * SLOT
#: A digest that happens to equal a marker is stored as this instead (probability 2**-127).
_ALIAS = b"\x00" * (SLOT - 1) + b"\x01"
#: Keys per slot, at most: linear probing stays short (a miss reads ~8.5 slots on average in a full
#: generation, fewer while it fills: about one ``find`` window).
MAX_LOAD = 0.75
#: Bytes read by one ``find`` while probing (32 slots: a miss rarely needs a second window).
WINDOW = 32 * SLOT
#: Slots compared one by one before searching windows. ``bytearray.find`` of a 16-byte digest costs
#: ~2 µs whatever it finds (its skip table rarely lets it jump over empty slots); ``startswith`` at
#: one offset costs ~0.1 µs, and most probes end within a few slots (at the load limit a miss reads
#: ~8.5 on average, a hit ~2.5; fewer while a generation fills).
PROBES = 4
_CLEAR_CHUNK = bytes(64 * 1024)
#: Keys added by this worker whose ledger records its reader has not read back, kept at most (a
#: reader that falls this far behind reads the rest as it would any record).
ECHOES_MAX = 200_000


def digest(key: bytes | str) -> bytes:
    """The 16 bytes stored for ``key`` (never :data:`EMPTY` or :data:`DELETED`): a ledger key
    (:func:`streams.ledger_records.ledger_key`), as bytes or as text."""
    if isinstance(key, str):
        key = key.encode("utf-8", "surrogatepass")
    d = blake2b(key, digest_size=SLOT).digest()
    return _ALIAS if d in (EMPTY, DELETED) else d


class _Generation:
    """One open-addressing table of digests: ``slots`` slots of 16 bytes, at most ``limit`` used.

    Linear probing, read a window of slots at a time with ``bytearray.find`` (a C loop) rather than
    slot by slot in Python; a hit counts only at a slot boundary.
    """

    __slots__ = ("buf", "limit", "live", "used")

    def __init__(self, limit: int, slots: int) -> None:
        self.limit = limit
        self.buf = bytearray(slots * SLOT)
        self.live = 0  # digests stored
        self.used = 0  # digests and deletion marks: what lengthens probes

    def find(self, d: bytes, home: int) -> int:
        """The byte offset of ``d``'s slot, or -1, probing from slot ``home``. Safe without the lock
        (see the module's docstring)."""
        buf = self.buf
        o = home * SLOT
        size = len(buf)
        for _ in range(PROBES):
            if buf.startswith(d, o):
                return o
            if buf.startswith(EMPTY, o):
                return -1
            o += SLOT
            if o >= size:
                o = 0
        wrapped = False
        while True:  # ends: a generation always has empty slots (at most MAX_LOAD of them are used)
            end = o + WINDOW  # find() stops at the end of buf
            hit = buf.find(d, o, end)
            if hit >= 0 and (hit % SLOT == 0 or (hit := _aligned(buf, d, hit, end)) >= 0):
                return hit
            empty = buf.find(EMPTY, o, end)
            if empty >= 0 and (empty % SLOT == 0 or _aligned(buf, EMPTY, empty, end) >= 0):
                return -1
            if end >= len(buf):
                if wrapped:
                    return -1
                wrapped, end = True, 0
            o = end

    def locate(self, d: bytes, home: int) -> tuple[int, int]:
        """``(offset of d's slot, -1)`` if ``d`` is stored, else ``(-1, offset of the slot it would
        take)``: the first deleted slot before the first empty one, or that empty one."""
        buf = self.buf
        size = len(buf)
        marks = self.used > self.live  # deletion marks are rare: look for them only if there are any
        free = -1
        o = home * SLOT
        for _ in range(PROBES):
            if buf.startswith(d, o):
                return o, -1
            if buf.startswith(EMPTY, o):
                return -1, free if free >= 0 else o
            if marks and free < 0 and buf.startswith(DELETED, o):
                free = o
            o += SLOT
            if o >= size:
                o = 0
        for _ in range(size // WINDOW + 2):
            end = o + WINDOW
            hit = buf.find(d, o, end)
            if hit >= 0 and (hit % SLOT == 0 or (hit := _aligned(buf, d, hit, end)) >= 0):
                return hit, -1
            empty = _aligned(buf, EMPTY, buf.find(EMPTY, o, end), end)
            if marks and free < 0:
                before = end if empty < 0 else empty  # a key never goes past an empty slot
                free = _aligned(buf, DELETED, buf.find(DELETED, o, before), before)
            if empty >= 0:
                return -1, free if free >= 0 else empty
            o = end if end < size else 0
        raise AssertionError("a generation below its load limit has an empty slot")

    def store(self, offset: int, d: bytes) -> None:
        """Write ``d`` into the free slot at ``offset`` (from :meth:`locate`)."""
        if self.buf.startswith(EMPTY, offset):
            self.used += 1
        self.buf[offset : offset + SLOT] = d
        self.live += 1

    def insert(self, d: bytes, home: int) -> None:
        hit, free = self.locate(d, home)
        if hit < 0:
            self.store(free, d)

    def delete(self, offset: int) -> None:
        # A mark, not an empty slot: keys stored after this one in the probe sequence stay reachable.
        self.buf[offset : offset + SLOT] = DELETED
        self.live -= 1

    def clear(self) -> None:
        buf, chunk = self.buf, len(_CLEAR_CHUNK)
        for o in range(0, len(buf), chunk):
            n = min(chunk, len(buf) - o)
            buf[o : o + n] = _CLEAR_CHUNK[:n]
        self.live = self.used = 0


def _aligned(buf: bytearray, needle: bytes, pos: int, end: int) -> int:
    """The first slot from ``pos`` (where ``find`` matched, maybe across two slots) to ``end`` that
    equals ``needle``, or -1. A match across slots happens for a digest that ends in zero bytes
    before an empty slot (one time in 256): search again from the next slot boundary."""
    while pos > 0 and pos % SLOT:
        pos = buf.find(needle, pos - pos % SLOT + SLOT, end)
    return pos


class ProcessedTable:
    """A bounded set of ``<agent>/<event_id>`` keys, oldest dropped first (half the capacity at a time)."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, not {capacity}")
        self.capacity = capacity
        limit = -(-capacity // 2)
        self._slots = max(limit + 1, int(limit / MAX_LOAD) + 1)
        #: Newest first. Replaced whole (never mutated) so a lookup reads one consistent tuple.
        self._gens: tuple[_Generation, ...] = (
            (_Generation(limit, self._slots), _Generation(limit, self._slots)) if capacity else ()
        )
        self._lock = threading.Lock()
        #: Set by a ledger reader while it follows ``vigil.processed-events``: :meth:`add` then keeps
        #: its keys in ``_echoes`` until the reader reads their records back (:meth:`is_echo`).
        self.expect_echoes = False
        self._echoes: set[bytes] = set()

    def __len__(self) -> int:
        return sum(g.live for g in self._gens)

    def nbytes(self) -> int:
        """Bytes of the slot arrays (allocated once, at construction)."""
        return sum(len(g.buf) for g in self._gens)

    def add(self, agent: str, event_ids: Iterable[str]) -> None:
        """Add the keys of events this worker just committed (and publishes the records of)."""
        keys = [ledger_key(agent, event_id) for event_id in event_ids]
        self.add_committed(keys, [digest(key) for key in keys])

    def add_committed(self, keys: Sequence[bytes], digests: Sequence[bytes]) -> None:
        """:meth:`add` for ledger keys (:func:`~streams.ledger_records.ledger_key`) whose digests
        were made already (the worker makes each event's once, to look it up before its batch)."""
        if not self._gens:
            return
        if self.expect_echoes:
            if len(self._echoes) >= ECHOES_MAX:  # the reader fell behind or stopped reading
                self._echoes.clear()
            self._echoes.update(keys)
        with self._lock:
            for d in digests:
                self._add(d)

    def is_echo(self, key: bytes) -> bool:
        """Whether the ledger key ``key`` came through :meth:`add` and its record was not read back
        yet: that record (this worker's own) would add nothing. Answers True once per :meth:`add`.

        Only a shortcut of the reader: a key forgotten here (``ECHOES_MAX``) is added again, which
        changes nothing, and a key skipped here was added already (if a generation swap dropped it
        since, that costs one Postgres check, as any key the table lost)."""
        echoes = self._echoes
        if key in echoes:
            echoes.discard(key)
            return True
        return False

    def stop_expecting_echoes(self) -> None:
        self.expect_echoes = False
        self._echoes.clear()

    def add_keys(self, keys: Iterable[bytes | str]) -> None:
        if not self._gens:
            return
        with self._lock:
            for key in keys:
                self._add(digest(key))

    def _home(self, d: bytes) -> int:
        return int.from_bytes(d, "little") % self._slots

    def _add(self, d: bytes) -> None:
        home = self._home(d)
        o = home * SLOT
        newer, older = self._gens
        # Most digests find their home slot empty (a generation is at most MAX_LOAD full): then they
        # are not stored there, and that slot is theirs; the probing methods are for the others.
        if newer.buf.startswith(EMPTY, o):
            free = o
        else:
            hit, free = newer.locate(d, home)
            if hit >= 0:
                return
        # An older generation without live digests holds none to move (deletion marks at most).
        if older.live and not older.buf.startswith(EMPTY, o):
            offset = older.find(d, home)
            if offset >= 0:  # added again: moves to the newer generation, as move_to_end did
                older.delete(offset)
        if newer.used >= newer.limit:  # full: the older generation's keys are dropped, it is reused
            self._drop(older)
            newer, older = older, newer
            self._gens = (newer, older)
            free = home * SLOT  # the newer generation is empty
        if newer.live + older.live >= self.capacity:  # an odd capacity: drop the older keys early
            self._drop(older)
        newer.store(free, d)

    def _drop(self, older: _Generation) -> None:
        # Lookups stop reading the older generation before it is cleared (one still reading it
        # sees added digests and empty slots only: a miss at worst).
        self._gens = self._gens[:1]
        older.clear()
        self._gens = (self._gens[0], older)

    def discard_keys(self, keys: Iterable[bytes | str]) -> None:
        """Forget keys (their tombstones arrived: the rows were pruned, the events may run again)."""
        with self._lock:
            for key in keys:
                d = digest(key)
                home = self._home(d)
                for gen in self._gens:
                    offset = gen.find(d, home)
                    if offset >= 0:
                        gen.delete(offset)

    def known(self, agent: str, event_id: str) -> bool:
        return self.known_digest(digest(ledger_key(agent, event_id)))

    def known_digest(self, d: bytes) -> bool:
        """:meth:`known` for a key's :func:`digest`."""
        home = int.from_bytes(d, "little") % self._slots
        o = home * SLOT
        for gen in self._gens:
            buf = gen.buf
            # The home slot first, inline (one lookup per event): it holds ``d``, or is empty (then
            # ``d`` is not in this generation: a probe never passes an empty slot), most of the time.
            if buf.startswith(d, o):
                return True
            if not buf.startswith(EMPTY, o) and gen.find(d, home) >= 0:
                return True
        return False
