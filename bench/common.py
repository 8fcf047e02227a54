"""What every benchmark shares: the result shape, the stack it runs on, the table and the JSON.

A benchmark module ``bench/bench_<name>.py`` defines ``run(ctx: BenchContext) -> list[Measurement]``.
Peers measured in the same run are compared as ratios (``ratio_to``), never against a fixed number.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from streams.settings import Settings

if TYPE_CHECKING:
    from bench.targets import TargetResult

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

    def stop(self) -> None:
        """Stop the embedded stack, if this run started it (or found it running)."""
        if self._settings is not None:
            from ops.services import stack
            from streams.settings import load_settings

            stack.down(load_settings())  # as configured: the started stack's settings name its URLs


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


COLUMNS = ("bench", "variant", "measure", "value", "ratio (same run)", "floor", "aim", "verdict", "notes")


def _number(value: float) -> str:
    return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def _ratio(ratio: float | None, ratio_to: str | None) -> str:
    return f"{ratio:.2f}x {ratio_to}" if ratio is not None and ratio_to else ""


def table_lines(
    rows: Sequence[Measurement], results: Sequence[TargetResult]
) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """The lines of the one table, as strings in :data:`COLUMNS` order: the targets first (each with
    its verdict), then every measurement."""
    from bench.targets import bound_text

    targets = []
    for res in results:
        t = res.target
        value = f"{_number(res.value)} {res.value_unit}" if res.value is not None else "—"
        notes = f"issue's now: {t.before}" + (f"; {t.alternative}" if t.alternative else "")
        targets.append(
            (
                t.bench,
                t.variant,
                t.measure,
                value,
                _ratio(res.ratio, res.ratio_to),
                bound_text(t.floor, t),
                bound_text(t.aim, t),
                res.verdict,
                notes,
            )
        )
    measurements = [
        (
            r.bench,
            r.variant,
            r.metric,
            f"{_number(r.value)} {r.unit}",
            _ratio(r.ratio, r.ratio_to),
            "",
            "",
            r.target or "",
            r.notes,
        )
        for r in rows
    ]
    return targets, measurements


def render(rows: Sequence[Measurement], results: Sequence[TargetResult], console: Console) -> None:
    """One table: the issue's targets with their verdicts, then all measurements."""
    table = Table(title="Vigil benchmarks: targets (issue #14), then every measurement")
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    targets, measurements = table_lines(rows, results)
    for line in targets:
        style = "red" if line[7] == "MISSED" else "green" if line[7].startswith("met") else None
        table.add_row(*line, style=style)
    table.add_section()
    for line in measurements:
        table.add_row(*line)
    console.print(table)


def machine() -> dict[str, object]:
    """What the numbers were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def payload(
    rows: Sequence[Measurement],
    results: Sequence[TargetResult],
    *,
    when: float,
    machine: dict[str, object],
    **extra: object,
) -> dict[str, object]:
    """The JSON of a run: when, the machine, the targets' verdicts and every measurement."""
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)),
        "machine": machine,
        **extra,
        "targets": [r.as_dict() for r in results],
        "results": [asdict(r) for r in rows],
    }


def write_json(name: str, data: dict[str, object]) -> Path:
    """Write ``bench/results/<name>.json``."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    return path
