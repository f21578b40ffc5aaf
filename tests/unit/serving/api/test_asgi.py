"""The hot routes read JSON bodies as FastAPI's standard parser does, with orjson when it
reads them the same."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.api.asgi import _parse_json

_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: past 64 bits orjson would read a float
    | st.floats()  # NaN and infinities too, which only the standard parser reads
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _same(left: Any, right: Any) -> bool:
    """Equal, NaN equal to NaN, and of the same type (1 and 1.0 are not the same reading)."""
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    if type(left) is not type(right):
        return False
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_same, left, right))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    return bool(left == right)


@given(_VALUES)
def test_bodies_read_as_the_standard_parser_reads_them(value: Any) -> None:
    raw = json.dumps(value).encode()
    assert _same(_parse_json(raw), json.loads(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"quantity": 123456789012345678901234567890}',
        b'{"a": -9223372036854775809}',
        b'{"a": 1e400}',
        b'"\\ud800"',
        '{"a": 1}'.encode("utf-16"),
        b'\xef\xbb\xbf{"a": 1}',
        b'{"a": 1, "a": 2}',
    ],
)
def test_what_orjson_reads_otherwise_is_read_by_the_standard_parser(raw: bytes) -> None:
    assert _same(_parse_json(raw), json.loads(raw))


def test_unreadable_bodies_fail_as_with_the_standard_parser() -> None:
    with pytest.raises(json.JSONDecodeError):
        _parse_json(b"[1,]")
    with pytest.raises(RecursionError):
        _parse_json(b"[" * 100_000)
