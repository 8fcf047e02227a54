"""A batch's rows as the text of one ``COPY … FROM STDIN``, and the run ids and times they hold.

Postgres's ``COPY`` text format: one line per row, columns separated by tabs, ``\\N`` for NULL,
and backslash, newline, carriage return and tab inside a value written as ``\\\\``, ``\\n``,
``\\r``, ``\\t``. Formatting a whole batch here, one string, costs a fraction of psycopg's
``write_row`` per row (an awaited call, a dumper per value). The values of the unit of work almost
never hold a character to escape, so that is checked once over the batch's text, by counting.

The ids a batch claims go to Postgres as one ``text[]`` literal (:func:`text_array`), for the same
reason: psycopg dumps a list element by element, each checked by a regular expression.

The run ids and times of a batch are made as text directly: version-4 UUIDs from one
``os.urandom`` call per batch (not one per event), and times from ``time.time_ns()`` (not a
``datetime`` per event, formatted again for ``COPY``).

Pure: imports no database client.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

#: The escapes of ``COPY``'s text format (NUL has none: Postgres text cannot hold it).
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
NULL = "\\N"


def copy_text(rows: Sequence[Sequence[str | None]], columns: int) -> str | None:
    """The ``COPY`` text of ``rows`` (each of ``columns`` values, None for NULL), or None when a
    value holds NUL, which the caller lets psycopg refuse as it always did."""
    nulls = 0
    lines: list[str] = []
    for row in rows:
        if None in row:
            nulls += row.count(None)
            lines.append("\t".join([NULL if v is None else v for v in row]))
        else:
            lines.append("\t".join(row))  # type: ignore[arg-type]
    lines.append("")
    text = "\n".join(lines)
    # A value with a special character adds one to a count: backslashes are only the NULLs' own,
    # tabs only the separators, newlines only the line ends.
    if (
        text.count("\\") == nulls
        and text.count("\t") == len(rows) * (columns - 1)
        and text.count("\n") == len(rows)
        and "\r" not in text
        and "\x00" not in text
    ):
        return text
    if "\x00" in text:
        return None
    lines = ["\t".join([NULL if v is None else v.translate(_ESCAPES) for v in row]) for row in rows]
    lines.append("")
    return "\n".join(lines)


def text_array(values: Sequence[str]) -> str:
    """The ``text[]`` input of ``values``: every element double-quoted, so commas, braces, blanks
    and ``NULL`` stay text; ``"`` and ``\\`` inside one are escaped (checked once over the batch)."""
    if not values:
        return "{}"
    joined = '","'.join(values)
    if "\\" in joined or joined.count('"') != 2 * (len(values) - 1):
        joined = '","'.join([v.replace("\\", "\\\\").replace('"', '\\"') for v in values])
    return '{"' + joined + '"}'


#: The last second formatted: (its seconds since the epoch, its text up to the decimal point). One
#: tuple, so that a reader never sees one second with another's text.
_second: tuple[int, str] = (-(10**15), "")


def timestamp_text(ns: int) -> str:
    """``timestamptz`` input for ``ns`` nanoseconds since the epoch (UTC, to the microsecond,
    truncated), e.g. ``2026-11-30 18:10:05.123456+00``."""
    global _second
    micros = ns // 1000
    seconds = micros // 1_000_000
    start, text = _second
    if seconds != start:  # a batch's times share their second or few: each one's text is made once
        text = time.strftime("%Y-%m-%d %H:%M:%S.", time.gmtime(seconds))
        _second = (seconds, text)
    return "%s%06d+00" % (text, micros - seconds * 1_000_000)  # noqa: UP031 (faster than an f-string here)


def random_uuids(n: int) -> list[str]:
    """``n`` random version-4 UUIDs (as ``uuid.uuid4()`` makes them: 122 random bits, the version
    and the RFC 4122 variant set), in their canonical text form, from one ``os.urandom`` call."""
    raw = bytearray(os.urandom(16 * n))
    out: list[str] = []
    for i in range(0, 16 * n, 16):
        raw[i + 6] = (raw[i + 6] & 0x0F) | 0x40  # version 4
        raw[i + 8] = (raw[i + 8] & 0x3F) | 0x80  # variant: RFC 4122
        h = raw[i : i + 16].hex()
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out
