"""Every data-channel message type, with values nested too deep, too long and of the wrong type.

The host reads the technician's ``input``, ``pointer`` and ``control`` messages,
the technician the host's ``control`` messages, both sides each other's ``ping`` and
``pong`` (on ``control``), each through one parser of
:mod:`protocol.channel`: every bad value is a :class:`~protocol.frames.MessageError`
(the host answers it with a ``refused``), never an exception of another kind.
The host's rate per channel is tested end to end in ``tests/e2e/test_channel_floods.py``.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from typing import Any

import pytest

from protocol.channel import (
    MAX_CHANNEL_MESSAGE_BYTES,
    HostControlMessage,
    InputMessage,
    LivenessMessage,
    TechControlMessage,
    parse_host_control,
    parse_input,
    parse_liveness,
    parse_tech_control,
)
from protocol.frames import MAX_MESSAGE_DEPTH, ErrorCode, MessageError

EXAMPLES: dict[str, dict[str, Any]] = {
    "pointer_move": {"type": "pointer_move", "seq": 1, "x": 0.5, "y": 0.5},
    "pointer_button": {"type": "pointer_button", "seq": 1, "button": "left", "down": True, "x": 0.5, "y": 0.5},
    "wheel": {"type": "wheel", "seq": 1, "dx": 0, "dy": 1, "x": 0.5, "y": 0.5},
    "key": {"type": "key", "seq": 1, "code": "KeyA", "key": "a", "down": True},
    "text": {"type": "text", "seq": 1, "text": "hello"},
    "chat": {"type": "chat", "text": "hello"},
    "clipboard": {"type": "clipboard", "text": "hello"},
    "select_monitor": {"type": "select_monitor", "index": 1},
    "monitors": {"type": "monitors", "monitors": [{"index": 1, "left": 0, "top": 0, "width": 10, "height": 10}], "selected": 1},
    "refused": {"type": "refused", "seq": 1, "what": "key", "reason": "no", "refused_total": 1},
    "notice": {"type": "notice", "text": "paused"},
    "link": {"type": "link", "limited": True, "kbps": 1200, "fps": 12.0},
    "ping": {"type": "ping", "seq": 1},
    "pong": {"type": "pong", "seq": 1},
}
PARSERS: list[tuple[Any, Callable[[str], object]]] = [
    (InputMessage, parse_input), (TechControlMessage, parse_tech_control), (HostControlMessage, parse_host_control),
    (LivenessMessage, parse_liveness),
]
TOO_DEEP = json.loads("[" * (MAX_MESSAGE_DEPTH + 1) + "]" * (MAX_MESSAGE_DEPTH + 1))
REFUSALS = {ErrorCode.too_deep, ErrorCode.too_large, ErrorCode.invalid_message, ErrorCode.invalid_json,
            ErrorCode.unknown_type}


def types_of(union: Any) -> set[str]:
    return {model.model_fields["type"].default for model in typing.get_args(typing.get_args(union)[0])}


def cases() -> list[Any]:
    """One ``pytest.param(frame, parse, id=...)`` per bad value of every field of every type."""
    found = []
    for union, parse in PARSERS:
        for kind in sorted(types_of(union)):
            valid = EXAMPLES[kind]
            parse(json.dumps(valid))  # the example itself is fine
            for field, value in valid.items():
                if field == "type":
                    continue
                wrong = 12345 if isinstance(value, str) else "not the right type"
                for bad in (TOO_DEEP, "x" * 100_000, wrong):
                    found.append(pytest.param(json.dumps({**valid, field: bad}), parse, id=f"{kind}.{field}"))
            found.append(pytest.param('{{"type": "{}", "x": {}}}'.format(kind, "[" * 30_000 + "]" * 30_000), parse,
                                      id=f"{kind} nested 30000 deep"))
            found.append(pytest.param(json.dumps({**valid, "pad": "x" * MAX_CHANNEL_MESSAGE_BYTES}), parse,
                                      id=f"{kind} over the size limit"))
    return found


def test_every_message_type_has_an_example() -> None:
    assert set().union(*(types_of(union) for union, _ in PARSERS)) == set(EXAMPLES)


@pytest.mark.parametrize(("frame", "parse"), cases())
def test_bad_values_are_refusals(frame: str, parse: Callable[[str], object]) -> None:
    with pytest.raises(MessageError) as refused:
        parse(frame)
    assert refused.value.code in REFUSALS
