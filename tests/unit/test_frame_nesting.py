"""Nesting judged on the raw text, before any parser sees it: the first gate of every message."""

from __future__ import annotations

import json

import pytest

from protocol.channel import parse_input, parse_tech_control
from protocol.frames import MAX_MESSAGE_DEPTH, ErrorCode, MessageError, check_nesting, nesting_depth
from protocol.signalling import parse_peer_message


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize(("text", "depth"), [
    ("1", 0), ('"[[[{{{"', 0), ("{}", 1), ("[[], {}]", 2), ('{"a": [1, {"b": [[]]}]}', 5),
    ('{"a": "\\"[[[", "b": "\\\\"}', 1),  # an escaped quote does not end the string; an escaped backslash does not escape it
    ('{"a": "\\\\", "b": [[1]]}', 3),
    (nested(30_000), 30_000),
])
def test_depth_counts_brackets_outside_strings(text: str, depth: int) -> None:
    assert nesting_depth(text) == depth
    assert nesting_depth(text.encode()) == depth


def test_multibyte_text_keeps_its_structure_when_scanned_as_bytes() -> None:
    text = json.dumps({"a": "ä[{€", "b": ["✓"]}, ensure_ascii=False)
    assert nesting_depth(text.encode()) == nesting_depth(text) == 2


def test_the_depth_of_real_json_is_what_the_parser_builds() -> None:
    value = {"events": [{"id": "x", "data": {"text": "] } [ {", "n": [1, [2, [3]]]}}]}
    assert nesting_depth(json.dumps(value)) == 7


def test_a_frame_nested_too_deep_is_refused_before_it_is_parsed() -> None:
    """30,000 levels used to end in RecursionError inside json.loads; now it is a refusal like any other."""
    for frame in ('{"type": "ice", "candidate": ' + nested(30_000) + "}", nested(30_000).encode()):
        with pytest.raises(MessageError) as refused:
            parse_peer_message(frame)
        assert refused.value.code is ErrorCode.too_deep
    deep_enough = '{"type": "monitors", "x": ' + nested(MAX_MESSAGE_DEPTH) + "}"
    for parse in (parse_input, parse_tech_control):
        with pytest.raises(MessageError) as refused:
            parse(deep_enough)
        assert refused.value.code is ErrorCode.too_deep, parse


def test_check_nesting_names_the_text_and_the_limit() -> None:
    check_nesting(nested(3), 3)
    with pytest.raises(MessageError, match="the request body nests 4 levels deep; at most 3"):
        check_nesting(nested(4), 3, "the request body")
