"""The watch predicate language: a small, safe expression over an event. Pure, no I/O.

``after.status == "done" and not (after.retries > 3)`` — comparisons (``== != < <= > >= in``,
``not in``), ``and``/``or``/``not``, parentheses, literals (strings, numbers, ``true``/``false``/
``null`` or ``True``/``False``/``None``, lists of literals) and dotted field access into the event.

It is parsed with Python's ``ast`` and then checked against a whitelist of node types; anything
else (calls, subscripts, lambdas, comprehensions, attribute names with underscores first…) is
refused when the watch is added. Evaluation walks the checked tree itself: nothing is ever
compiled or passed to ``eval``, and field access reads only dict keys of the event's data, never
Python attributes, so no expression can reach an object's internals.

A field that does not exist reads as ``null``; a comparison of values that cannot be ordered
(a number with a string) is false rather than an error: a watch on an event that lacks a field
simply does not match it.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.errors import ConfigurationError

MAX_LENGTH = 1000
MAX_DEPTH = 32

_NAMED_CONSTANTS = {"true": True, "false": False, "null": None}
_COMPARE = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)


@dataclass(frozen=True)
class Predicate:
    """A checked expression; :meth:`matches` evaluates it over an event's fields."""

    source: str
    tree: ast.expr

    def matches(self, fields: Mapping[str, Any]) -> bool:
        return _truth(_eval(self.tree, fields))


def parse(source: str) -> Predicate:
    """Parse and check ``source``; raise :class:`ConfigurationError` naming what is not allowed."""
    if len(source) > MAX_LENGTH:
        raise ConfigurationError(f"--match is {len(source)} characters; at most {MAX_LENGTH} are allowed")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ConfigurationError(
            f'cannot read --match {source!r}: write comparisons like after.status == "done" '
            "joined with and/or/not"
        ) from exc
    _check(tree.body, 0)
    return Predicate(source, tree.body)


def _refuse(node: ast.AST, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"--match: {why} (at {type(node).__name__}); allowed: comparisons, and/or/not, literals, "
        "lists of literals and dotted field names such as after.status"
    )


def _check(node: ast.AST, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _refuse(node, f"nested deeper than {MAX_DEPTH}")
    if isinstance(node, ast.BoolOp):
        if not isinstance(node.op, ast.And | ast.Or):
            raise _refuse(node, "unknown boolean operator")
        for value in node.values:
            _check(value, depth + 1)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.Not | ast.USub):
            raise _refuse(node, "only `not` and a minus sign are allowed before a value")
        if isinstance(node.op, ast.USub) and not _is_number(node.operand):
            raise _refuse(node, "a minus sign only before a number")
        _check(node.operand, depth + 1)
    elif isinstance(node, ast.Compare):
        if not all(isinstance(op, _COMPARE) for op in node.ops):
            raise _refuse(node, "only == != < <= > >= in and not in compare")
        for part in (node.left, *node.comparators):
            _check(part, depth + 1)
    elif isinstance(node, ast.Constant):
        if not (node.value is None or isinstance(node.value, bool | int | float | str)):
            raise _refuse(node, "only strings, numbers, true, false and null are literals")
    elif isinstance(node, ast.List | ast.Tuple):
        for element in node.elts:
            if not isinstance(element, ast.Constant | ast.UnaryOp):
                raise _refuse(element, "a list holds literals only")
            _check(element, depth + 1)
    elif isinstance(node, ast.Name):
        _check_name(node, node.id)
    elif isinstance(node, ast.Attribute):
        _check_name(node, node.attr)
        if not isinstance(node.value, ast.Name | ast.Attribute):
            raise _refuse(node, "a field path starts with a name")
        _check(node.value, depth + 1)
    else:
        raise _refuse(node, "not part of the language")


def _check_name(node: ast.AST, name: str) -> None:
    if name.startswith("_"):
        raise _refuse(node, f"field names may not start with '_' ({name!r})")


def _is_number(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    )


_MISSING = object()


def _field(node: ast.expr, fields: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        if node.id in _NAMED_CONSTANTS and node.id not in fields:
            return _NAMED_CONSTANTS[node.id]
        return fields.get(node.id)
    assert isinstance(node, ast.Attribute)
    base = _field(node.value, fields)
    # Only mapping keys are read: never getattr, so no path reaches Python internals.
    return base.get(node.attr) if isinstance(base, Mapping) else None


def _eval(node: ast.expr, fields: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name | ast.Attribute):
        return _field(node, fields)
    if isinstance(node, ast.List | ast.Tuple):
        return [_eval(e, fields) for e in node.elts]
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, fields)
        return (not _truth(value)) if isinstance(node.op, ast.Not) else -value
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(_truth(_eval(v, fields)) for v in node.values)
        return any(_truth(_eval(v, fields)) for v in node.values)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, fields)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval(comparator, fields)
            if not _compare(op, left, right):
                return False
            left = right
        return True
    raise ConfigurationError(f"--match: {type(node).__name__} is not part of the language")


def _compare(op: ast.cmpop, left: Any, right: Any) -> bool:
    try:
        if isinstance(op, ast.Eq):
            return bool(left == right)
        if isinstance(op, ast.NotEq):
            return bool(left != right)
        if isinstance(op, ast.In | ast.NotIn):
            if not isinstance(right, list | str | Mapping):
                return isinstance(op, ast.NotIn)
            found = left in right if not isinstance(right, str) or isinstance(left, str) else False
            return found if isinstance(op, ast.In) else not found
        if left is None or right is None:
            return False
        if isinstance(op, ast.Lt):
            return bool(left < right)
        if isinstance(op, ast.LtE):
            return bool(left <= right)
        if isinstance(op, ast.Gt):
            return bool(left > right)
        return bool(left >= right)
    except TypeError:  # values that cannot be ordered: no match, not an error
        return False


def _truth(value: Any) -> bool:
    return (
        bool(value) if isinstance(value, bool | int | float | str | list | dict) or value is None else False
    )


def event_fields(view: Any) -> dict[str, Any]:
    """The names a predicate can read from an agent's event view: a change event's ``op``,
    ``before``, ``after``, ``key``, ``source``; a record's fields; a raw message's ``key`` and
    ``value``; and always ``topic`` and ``event_id``."""
    fields: dict[str, Any] = {
        "topic": getattr(view, "topic", None),
        "event_id": getattr(view, "event_id", None),
    }
    record = getattr(view, "record", None)
    if isinstance(record, Mapping):
        fields.update(record)
        fields["type"] = getattr(view, "type", None)
        return fields
    for name in ("op", "before", "after", "key", "source", "ts_ms", "value"):
        if hasattr(view, name):
            value = getattr(view, name)
            fields[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return fields
