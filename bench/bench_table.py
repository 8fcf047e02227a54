"""The processed-events table alone: memory and lookup cost of the packed table vs the OrderedDict it replaced.

Each variant runs in a fresh Python process (so freed memory of one does not hide the other's):
a table of the worker's default capacity (1,000,000 keys) gets 100,000 x scale realistic keys
(``<agent>/<topic>@<topic id>/<partition>/<offset>``, ~80 characters), its RSS (``VmRSS``) is read,
then 900,000 x scale more, and RSS is read again. Then ``known()`` is timed by CPU time on keys it
holds (hits) and keys it does not (misses: what every new event costs). Variants:
- ``OrderedDict (before)``: the table as it was, an ``OrderedDict`` of key strings, oldest popped
  one at a time. The baseline of the ratios.
- ``packed digests``: :class:`streams.processed_table.ProcessedTable`.
No broker needed: ``python -m bench table``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from bench.common import BenchContext, Measurement, with_ratio
from streams.processed_table import ProcessedTable

BENCH = "table"
BASELINE = "OrderedDict (before)"
PACKED = "packed digests"
CAPACITY = 1_000_000
FIRST = 100_000
TOTAL = 1_000_000
LOOKUPS = 100_000
MB = 1024 * 1024
AGENT = "bench-memory"
TOPIC = "bench.memory.bm5c0ffee1@QW2ZpTDcT6mfj0tB3dXzsg"  # a Kafka topic id is 22 base64 characters


class OrderedDictTable:
    """The table before the packed one (``agents.ledger.ProcessedTable`` until issue #14's fix)."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, agent: str, event_ids: Iterable[str]) -> None:
        with self._lock:
            for event_id in event_ids:
                key = f"{agent}/{event_id}"
                self._keys[key] = None
                self._keys.move_to_end(key)
                while len(self._keys) > self.capacity:
                    self._keys.popitem(last=False)

    def known(self, agent: str, event_id: str) -> bool:
        return f"{agent}/{event_id}" in self._keys


def event_ids(first: int, last: int, topic: str = TOPIC) -> list[str]:
    return [f"{topic}/{n % 3}/{n // 3}" for n in range(first, last)]


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def child(variant: str, n1: int, n2: int) -> dict[str, float]:
    """Runs in the variant's own process: RSS before, after n1 and after n2 keys; add and known() costs."""
    base = rss()
    table = OrderedDictTable(CAPACITY) if variant == BASELINE else ProcessedTable(CAPACITY)
    empty = rss()
    added_s = 0.0
    rss1 = 0
    for first, last in ((0, n1), (n1, n2)):
        for start in range(first, last, 1000):  # the ledger reader adds batches of up to 1000
            batch = event_ids(start, min(start + 1000, last))
            t0 = time.process_time()
            table.add(AGENT, batch)
            added_s += time.process_time() - t0
        if last == n1:
            rss1 = rss()
    rss2 = rss()
    hits = event_ids(n2 - LOOKUPS, n2)
    misses = event_ids(0, LOOKUPS, topic=TOPIC + "-other")
    timings: dict[str, float] = {}
    for name, ids in (("hit", hits), ("miss", misses)):
        best = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            found = sum(table.known(AGENT, event_id) for event_id in ids)
            best = min(best, time.process_time() - t0)
        assert found == (len(ids) if name == "hit" else 0), (variant, name, found)
        timings[name] = best / len(ids) * 1e6
    return {
        "empty_mb": (empty - base) / MB,
        "rss1_mb": (rss1 - base) / MB,
        "rss2_mb": (rss2 - base) / MB,
        "keys": float(len(table)),
        "add_us": added_s / n2 * 1e6,
        "known_hit_us": timings["hit"],
        "known_miss_us": timings["miss"],
    }


def run(ctx: BenchContext) -> list[Measurement]:
    n1 = max(1000, int(FIRST * ctx.scale))
    n2 = max(10 * n1, int(TOTAL * ctx.scale))
    rows: list[Measurement] = []
    for variant in (BASELINE, PACKED):
        out = subprocess.run(
            [sys.executable, "-m", "bench.bench_table", variant, str(n1), str(n2)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out.splitlines()[-1])
        print(
            f"  {variant}: table {r['rss1_mb']:.1f} MB after {n1:,} keys, {r['rss2_mb']:.1f} MB after "
            f"{n2:,} ({r['keys']:,.0f} kept); known() {r['known_hit_us']:.2f} µs hit, "
            f"{r['known_miss_us']:.2f} µs miss",
            flush=True,
        )
        rows += [
            Measurement(BENCH, variant, "table RSS, empty", r["empty_mb"], "MB", notes="capacity 1,000,000"),
            Measurement(
                BENCH, variant, "table RSS, first keys", r["rss1_mb"], "MB", notes=f"after {n1:,} keys"
            ),
            Measurement(
                BENCH, variant, "table RSS, all keys", r["rss2_mb"], "MB", notes=f"after {n2:,} keys"
            ),
            Measurement(
                BENCH,
                variant,
                "table RSS growth",
                r["rss2_mb"] - r["rss1_mb"],
                "MB",
                notes=f"from {n1:,} to {n2:,} keys",
            ),
            Measurement(BENCH, variant, "add", r["add_us"], "µs/key", notes="CPU time, batches of 1000"),
            Measurement(BENCH, variant, "known() hit", r["known_hit_us"], "µs", notes="CPU time, best of 3"),
            Measurement(
                BENCH,
                variant,
                "known() miss",
                r["known_miss_us"],
                "µs",
                notes="CPU time, best of 3; a new event",
            ),
        ]
    return with_ratio(rows, BASELINE)


if __name__ == "__main__":
    print(json.dumps(child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
