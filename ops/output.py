"""Printing for the CLI: tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_table(console: Console, title: str, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for column in columns:
        # URLs and ids are copied from here: never cut them.
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)
