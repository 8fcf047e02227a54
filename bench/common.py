"""What every benchmark shares: the result shape, the stack it runs on, the table and the JSON.

A benchmark module ``bench/bench_<name>.py`` defines ``run(ctx: BenchContext) -> list[Measurement]``.
Peers measured in the same run are compared as ratios (``ratio_to``), never against a fixed number.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from streams.settings import Settings

RESULTS_DIR = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Measurement:
    """One row of a benchmark's table."""

    bench: str
    variant: str
    metric: str
    value: float
    unit: str
    ratio_to: str | None = None
    ratio: float | None = None
    target: str | None = None
    notes: str = ""


@dataclass
class BenchContext:
    """What a benchmark may use: the stack's settings (started lazily) and a scale factor."""

    scale: float = 1.0
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            from ops.services import stack
            from streams.settings import load_settings

            self._settings = stack.up(load_settings(), connect=True)
        return self._settings


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of ``values``: a value that occurred, never an
    interpolation. ``percentile(v, 1.0)`` is the maximum."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < q <= 1:
        raise ValueError(f"quantile {q} is not in (0, 1]")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def with_ratio(rows: list[Measurement], baseline_variant: str) -> list[Measurement]:
    """The rows with ``ratio`` set to value / the baseline variant's value (same metric)."""
    base = {r.metric: r.value for r in rows if r.variant == baseline_variant}
    out = []
    for r in rows:
        if r.variant != baseline_variant and r.metric in base and base[r.metric]:
            out.append(
                Measurement(**{**asdict(r), "ratio_to": baseline_variant, "ratio": r.value / base[r.metric]})
            )
        else:
            out.append(r)
    return out


def render(rows: list[Measurement], console: Console) -> None:
    table = Table(title="Vigil benchmarks")
    for column in ("bench", "variant", "metric", "value", "unit", "ratio", "target", "notes"):
        table.add_column(column, overflow="fold")
    for r in rows:
        ratio = f"{r.ratio:.2f}x {r.ratio_to}" if r.ratio is not None else ""
        table.add_row(r.bench, r.variant, r.metric, f"{r.value:,.1f}", r.unit, ratio, r.target or "", r.notes)
    console.print(table)


def write_json(rows: list[Measurement], name: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "results": [asdict(r) for r in rows],
    }
    path.write_text(json.dumps(payload, indent=2))
    return path
