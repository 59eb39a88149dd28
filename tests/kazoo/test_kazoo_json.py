"""Kazoo's answers are read with orjson, and mean exactly what json.loads makes of them.

orjson refuses what json.loads takes (NaN, Infinity, 1e400, lone surrogates, a BOM, UTF-16, JSON
nested deeper than 1,024): those answers go to json.loads, so a hostile figure still drops only
its own field, never the answer.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from exporter.kazoo import BadResponseError, parse_queue_status
from exporter.kazoo.envelope import decode

from .fake_crossbar import ACCOUNT


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN included, and of the same types all the way down (1 is not 1.0 here)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


ODD_BODIES = [
    b'{"data": {"n": NaN, "i": Infinity, "m": -Infinity}}',
    b'{"data": {"big": 1e400, "tiny": 1e-400, "neg": -0.0}}',
    b'{"data": {"name": "\\ud800 lone surrogate"}}',
    b'\xef\xbb\xbf{"data": 1}',  # a UTF-8 BOM
    '{"data": {"name": "Support"}}'.encode("utf-16"),
    b'{"data": 1, "data": 2}',  # duplicate keys: the last one wins in both
    b'{"data": 18446744073709551615}',  # the largest integer orjson keeps as an integer
]


@pytest.mark.parametrize("body", ODD_BODIES)
def test_an_answer_orjson_refuses_reads_as_json_loads_reads_it(body: bytes):
    assert _same(decode(body, "queue list status", 200), json.loads(body))


json_documents = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 63), max_value=2 ** 64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)


@given(json_documents)
def test_any_json_up_to_64_bit_integers_reads_the_same_with_either_parser(value: Any):
    body = json.dumps({"data": value}).encode()
    assert _same(decode(body, "queue list status", 200), json.loads(body))


@pytest.mark.parametrize("body", [b'{"data": [1, 2', b"<html>502</html>", b"[" * 5000 + b"]" * 5000, b"\xff\xfe\x00"])
def test_what_neither_reads_is_a_bad_response_naming_the_call(body: bytes):
    with pytest.raises(BadResponseError, match=r"^queue list status: HTTP 200 with a body that is not JSON$"):
        decode(body, "queue list status", 200)


async def test_a_nan_figure_from_kazoo_drops_that_figure_only(kazoo):
    # Real HTTP: the fake Crossbar answers the status call with raw text holding NaN and 1e400.
    text = ('{"data": {"q001": {"active_recipient_count": NaN, "available_recipient_count": 2, "node": "kz1",'
            ' "stats": {"estimated_wait": 1e400, "average_wait": 7, "recipient_count": 3, "active_session_count": 1,'
            ' "total_sessions": 12, "missed_sessions": 1, "abandoned_sessions": 0}}}, "status": "success"}')
    kazoo.crossbar.script["queue_list_status"] = [web.Response(text=text, content_type="application/json")]
    answer = await kazoo.client().queue_list_status(ACCOUNT, ["q001"])
    status, problems = parse_queue_status(answer["q001"])
    assert sorted(problems) == ["active_recipient_count", "stats.estimated_wait"]
    assert (status.available_recipients, status.daily_sessions, status.node) == (2.0, 12.0, "kz1")
