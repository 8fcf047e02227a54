"""``python -m bench.markdown [bench/results/latest.json]``: a run's table as Markdown, for the README.

Prints the header line (command, date, machine), the targets with their verdicts and every
measurement, from the JSON that ``python -m bench`` wrote. :func:`markdown` is pure.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def _ratio(ratio: float | None, ratio_to: str | None) -> str:
    return f"{ratio:.2f}x {ratio_to}" if ratio is not None and ratio_to else ""


def _bound(bound: float | None, unit: str, higher: bool) -> str:
    if bound is None:
        return "—"
    sign = "≥" if higher else "≤"
    return f"{sign} {bound:g}{'x' if unit == 'x' else ' ' + unit}"


def _table(header: Sequence[str], lines: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in line) + " |" for line in lines]
    return out


def markdown(data: Mapping[str, Any]) -> str:
    machine = data.get("machine", {})
    load = machine.get("load_avg", ["?"])[0]
    load_end = (machine.get("load_avg_at_end") or ["?"])[0]
    names = " ".join(data.get("benchmarks", []))
    head = (
        f"`python -m bench --scale {data.get('scale', 1):g}` ({names}), {data.get('when', '?')}, "
        f"{data.get('seconds', '?')} s; {machine.get('cpus', '?')} x {machine.get('cpu_model', '?')}, "
        f"Python {machine.get('python', '?')}; load average {load} at the start, {load_end} at the end."
    )
    targets = [
        (
            t["measure"],
            f"{_num(t['value'])} {t['value_unit']}" if t["value"] is not None else "—",
            _ratio(t["ratio"], t["ratio_to"]),
            _bound(t["floor"], t["unit"], t["higher_is_better"]),
            _bound(t["aim"], t["unit"], t["higher_is_better"]),
            f"**{t['verdict']}**",
            t["before"],
        )
        for t in data.get("targets", [])
    ]
    rows = [
        (
            r["bench"],
            r["variant"],
            r["metric"],
            f"{_num(r['value'])} {r['unit']}",
            _ratio(r["ratio"], r["ratio_to"]),
            r["notes"],
        )
        for r in data.get("results", [])
    ]
    lines = [head, ""]
    lines += _table(
        ("target (issue #14)", "value", "ratio (same run)", "floor", "aim", "verdict", "issue's now"), targets
    )
    lines += [""]
    lines += _table(("bench", "variant", "measure", "value", "ratio (same run)", "notes"), rows)
    failed = data.get("failed") or {}
    if failed:
        lines += [
            "",
            *(f"- `{name}` failed: {_cell(error.splitlines()[0])}" for name, error in failed.items()),
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else RESULTS_DIR / "latest.json"
    sys.stdout.write(markdown(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
