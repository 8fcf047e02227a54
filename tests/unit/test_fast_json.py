"""orjson on the hot path gives what json gives: the same values read, the same text written. No I/O."""

from __future__ import annotations

import json
import math

from hypothesis import example, given
from hypothesis import strategies as st

from agents.outbox_mapping import _json_default, dumps_payload
from schemas.errors import OutputError
from streams.views import _parse_json

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers(-5, 5), inner, max_size=4)
    ),
    max_leaves=12,
)


def _json_text(value: object) -> str | None:
    try:
        return json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, default=_json_default, allow_nan=False
        )
    except (TypeError, ValueError):
        return None


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@given(documents)
@example(1e-9)  # a bare small float: json writes 1e-09, orjson 1e-9
def test_payload_text_is_the_json_module_s(value: object) -> None:
    expected = _json_text(value)
    if expected is None:
        try:
            dumps_payload(value)
        except OutputError:
            return
        raise AssertionError("json refuses it, so must dumps_payload")
    assert dumps_payload(value) == expected


@given(documents, st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]), st.booleans())
@example(2**64 - 1, "utf-8", False)  # the largest integer orjson reads as one
@example(2**64, "utf-8", False)
@example(10**19 - 1, "utf-8", False)  # 19 digits: the fast path
@example(-(2**63), "utf-8", False)
@example(-(2**63) - 1, "utf-8", False)
@example(-(10**19) + 1, "utf-8", False)
def test_values_read_are_the_json_module_s(value: object, encoding: str, ascii_only: bool) -> None:
    data = json.dumps(value, ensure_ascii=ascii_only).encode(encoding, errors="surrogatepass")
    try:
        expected = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return
    assert _same(_parse_json(data), expected)


def test_a_debezium_change_event_with_its_19_digit_ts_ns_is_read_by_orjson() -> None:
    from streams.views import _has_long_number

    event = (
        b'{"before":null,"after":{"id":7},"source":{"lsn":27017792,"ts_ms":1796167439160,'
        b'"ts_ns":1796167439160123000},"op":"c","ts_ms":1796167439170,"ts_us":1796167439170412,'
        b'"ts_ns":1796167439170412000}'
    )
    assert not _has_long_number(event)
    assert _parse_json(event)["ts_ns"] == 1796167439170412000


@given(st.binary(max_size=80) | st.text(alphabet='0123456789a-"', max_size=80).map(str.encode))
@example(b"-1234567890123456789")
@example(b"12345678901234567890")
def test_the_long_number_check_is_the_regex(data: bytes) -> None:
    from streams.views import _LONG_NUMBER, _has_long_number

    assert _has_long_number(data) == (_LONG_NUMBER.search(data) is not None)
    assert _has_long_number(bytearray(data)) == (_LONG_NUMBER.search(data) is not None)
