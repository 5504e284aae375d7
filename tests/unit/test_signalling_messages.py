"""The gate every signalling frame passes through."""

from __future__ import annotations

import json

import pytest

from protocol.signalling import (
    Answer,
    End,
    ErrorCode,
    IceCandidate,
    Offer,
    SessionEnded,
    SignalError,
    Welcome,
    encode,
    parse_broker_message,
    parse_peer_message,
)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type": "offer", "sdp": "v=0"}', Offer(sdp="v=0")),
        (b'{"type": "answer", "sdp": "v=0"}', Answer(sdp="v=0")),
        ('{"type": "ice", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdp_mid": "0", "sdp_mline_index": 0}',
         IceCandidate(candidate="candidate:1 1 udp 1 127.0.0.1 9 typ host", sdp_mid="0", sdp_mline_index=0)),
        ('{"type": "ice"}', IceCandidate()),
        ('{"type": "end", "reason": "done\\nfor today"}', End(reason="done\nfor today")),
    ],
)
def test_valid_frames(frame: str | bytes, expected: object) -> None:
    assert parse_peer_message(frame) == expected


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{", ErrorCode.invalid_json),
        (b"\xff\xfe", ErrorCode.invalid_json),
        ("42", ErrorCode.invalid_message),
        ('"offer"', ErrorCode.invalid_message),
        ("{}", ErrorCode.unknown_type),
        ('{"type": "welcome", "session_id": "x", "role": "host"}', ErrorCode.unknown_type),
        ('{"type": "offer"}', ErrorCode.invalid_message),
        ('{"type": "offer", "sdp": ""}', ErrorCode.invalid_message),
        ('{"type": "offer", "sdp": 5}', ErrorCode.invalid_message),
        ('{"type": "offer", "sdp": "x", "admin": true}', ErrorCode.invalid_message),
        ('{"type": "ice", "sdp_mline_index": 999}', ErrorCode.invalid_message),
        ('{"type": "end", "reason": "bell\\u0007"}', ErrorCode.invalid_message),
        (json.dumps({"type": "offer", "sdp": "x" * 60_001}), ErrorCode.invalid_message),
    ],
)
def test_invalid_frames_raise_with_a_code_and_a_sentence(frame: str | bytes, code: ErrorCode) -> None:
    with pytest.raises(SignalError) as raised:
        parse_peer_message(frame, max_bytes=1_000_000)
    assert raised.value.code is code
    assert raised.value.message
    assert raised.value.to_message().type == "error"


def test_size_is_counted_in_utf8_bytes() -> None:
    frame = json.dumps({"type": "offer", "sdp": "é" * 600}, ensure_ascii=False)
    assert len(frame) < 1024 < len(frame.encode())
    with pytest.raises(SignalError) as raised:
        parse_peer_message(frame, max_bytes=1024)
    assert raised.value.code is ErrorCode.too_large
    assert "1024" in raised.value.message


def test_broker_messages_round_trip() -> None:
    for message in (
        SessionEnded(ended_by="technician", reason="done"),
        Welcome.model_validate({"session_id": "s", "role": "host", "ice": {"servers": [], "loopback_only": True}}),
        Offer(sdp="v=0"),
    ):
        assert parse_broker_message(encode(message)) == message
    with pytest.raises(SignalError):
        parse_broker_message('{"type": "from_the_future"}')
