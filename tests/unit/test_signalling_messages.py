"""The gate every signalling frame passes through, and the broker's messages both ways."""

from __future__ import annotations

import json

import pytest

from protocol.ice import IceConfig, IceServer
from protocol.signalling import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_SDP_CHARS,
    Answer,
    BrokerMessageT,
    End,
    Error,
    ErrorCode,
    IceCandidate,
    Offer,
    PeerInfo,
    PeerJoined,
    PeerLeft,
    Role,
    SessionEnded,
    SignalError,
    Welcome,
    encode,
    error_message,
    parse_broker_message,
    parse_peer_message,
)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type": "offer", "sdp": "v=0"}', Offer(sdp="v=0")),
        (b'{"type": "offer", "sdp": "v=0"}', Offer(sdp="v=0")),
        ('{"type": "answer", "sdp": "v=0\\r\\no=- 1 1 IN IP4 127.0.0.1"}', Answer(sdp="v=0\r\no=- 1 1 IN IP4 127.0.0.1")),
        ('{"type": "ice", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdp_mid": "0", "sdp_mline_index": 0}',
         IceCandidate(candidate="candidate:1 1 udp 1 127.0.0.1 9 typ host", sdp_mid="0", sdp_mline_index=0)),
        ('{"type": "ice"}', IceCandidate()),
        ('{"type": "ice", "candidate": ""}', IceCandidate(candidate="")),
        ('{"type": "end"}', End()),
        ('{"type": "end", "reason": "done\\nfor today"}', End(reason="done\nfor today")),
        (json.dumps({"type": "offer", "sdp": "x" * MAX_SDP_CHARS}), Offer(sdp="x" * MAX_SDP_CHARS)),
    ],
)
def test_valid_frames(frame: str | bytes, expected: object) -> None:
    assert parse_peer_message(frame) == expected


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        # invalid JSON
        ("{", ErrorCode.invalid_json),
        ("", ErrorCode.invalid_json),
        (b"\xff\xfe", ErrorCode.invalid_json),
        ("\ud800", ErrorCode.invalid_json),  # a str no UTF-8 decoder could have produced
        ('{"type": "offer", "sdp": "x"} trailing', ErrorCode.invalid_json),
        # not an object
        ("42", ErrorCode.invalid_message),
        ("null", ErrorCode.invalid_message),
        ('"offer"', ErrorCode.invalid_message),
        ('[{"type": "offer", "sdp": "x"}]', ErrorCode.invalid_message),
        # unknown type
        ("{}", ErrorCode.unknown_type),
        ('{"type": null}', ErrorCode.unknown_type),
        ('{"type": "OFFER", "sdp": "x"}', ErrorCode.unknown_type),
        ('{"type": ["offer"], "sdp": "x"}', ErrorCode.unknown_type),
        ('{"type": "welcome", "session_id": "x", "role": "host"}', ErrorCode.unknown_type),  # broker-only
        ('{"type": "session_ended", "ended_by": "host"}', ErrorCode.unknown_type),
        # missing, extra and wrongly typed fields
        ('{"type": "offer"}', ErrorCode.invalid_message),
        ('{"type": "offer", "sdp": ""}', ErrorCode.invalid_message),
        ('{"type": "offer", "sdp": 5}', ErrorCode.invalid_message),
        ('{"type": "offer", "sdp": null}', ErrorCode.invalid_message),
        ('{"type": "offer", "sdp": ["v=0"]}', ErrorCode.invalid_message),
        ('{"type": "offer", "sdp": "x", "admin": true}', ErrorCode.invalid_message),
        ('{"type": "ice", "candidate": 7}', ErrorCode.invalid_message),
        ('{"type": "ice", "sdp_mline_index": "zero"}', ErrorCode.invalid_message),
        ('{"type": "ice", "sdp_mline_index": -1}', ErrorCode.invalid_message),
        ('{"type": "ice", "sdp_mline_index": 999}', ErrorCode.invalid_message),
        ('{"type": "ice", "sdp_mid": "' + "m" * 65 + '"}', ErrorCode.invalid_message),
        ('{"type": "ice", "candidate": "' + "c" * 1025 + '"}', ErrorCode.invalid_message),
        ('{"type": "end", "reason": "bell\\u0007"}', ErrorCode.invalid_message),
        ('{"type": "end", "reason": "' + "r" * 501 + '"}', ErrorCode.invalid_message),
        ('{"type": "offer", "sdp": "\\ud800"}', ErrorCode.invalid_message),  # lone surrogate
        # oversized SDP (under the byte limit given here)
        (json.dumps({"type": "offer", "sdp": "x" * (MAX_SDP_CHARS + 1)}), ErrorCode.invalid_message),
        (json.dumps({"type": "answer", "sdp": "x" * (MAX_SDP_CHARS + 1)}), ErrorCode.invalid_message),
    ],
)
def test_invalid_frames_raise_with_a_code_and_a_sentence(frame: str | bytes, code: ErrorCode) -> None:
    with pytest.raises(SignalError) as raised:
        parse_peer_message(frame, max_bytes=1_000_000)
    assert raised.value.code is code
    assert raised.value.message
    reply = error_message(raised.value)
    assert isinstance(reply, Error) and reply.code is code and reply.message == raised.value.message


def test_the_problem_field_is_named() -> None:
    with pytest.raises(SignalError) as raised:
        parse_peer_message('{"type": "ice", "sdp_mline_index": -1}')
    assert raised.value.message.startswith("sdp_mline_index:")
    with pytest.raises(SignalError) as raised:
        parse_peer_message('{"type": "offer", "sdp": "x", "admin": true}')
    assert "admin" in raised.value.message


def test_the_default_size_limit_applies() -> None:
    at_limit = json.dumps({"type": "ice", "candidate": None, "sdp_mid": None}).ljust(DEFAULT_MAX_MESSAGE_BYTES)
    assert isinstance(parse_peer_message(at_limit), IceCandidate)  # whitespace after JSON is fine
    with pytest.raises(SignalError) as raised:
        parse_peer_message(at_limit + " ")
    assert raised.value.code is ErrorCode.too_large
    assert str(DEFAULT_MAX_MESSAGE_BYTES) in raised.value.message


def test_size_is_checked_before_parsing_and_counted_in_utf8_bytes() -> None:
    frame = json.dumps({"type": "offer", "sdp": "é" * 600}, ensure_ascii=False)
    assert len(frame) < 1024 < len(frame.encode())
    with pytest.raises(SignalError) as raised:
        parse_peer_message(frame, max_bytes=1024)
    assert raised.value.code is ErrorCode.too_large and "1024" in raised.value.message
    with pytest.raises(SignalError) as raised:
        parse_peer_message(b"{" * 2000, max_bytes=1024)  # too large wins over not JSON
    assert raised.value.code is ErrorCode.too_large


BROKER_MESSAGES: list[BrokerMessageT] = [
    Offer(sdp="v=0"),
    Answer(sdp="v=0"),
    IceCandidate(candidate="candidate:1 1 udp 1 127.0.0.1 9 typ host", sdp_mid="0", sdp_mline_index=0),
    IceCandidate(),
    Welcome(session_id="s", role=Role.host, ice=IceConfig(loopback_only=True)),
    Welcome(
        session_id="s",
        role=Role.technician,
        peer=PeerInfo(role=Role.host),
        ice=IceConfig(servers=[IceServer(urls=["turn:turn.example.org"], username="u", credential="p")]),
    ),
    PeerJoined(peer=PeerInfo(role=Role.technician)),
    PeerLeft(role=Role.host),
    SessionEnded(ended_by="technician", reason="done"),
    Error(code=ErrorCode.peer_absent, message="wait for peer_joined"),
]


@pytest.mark.parametrize("message", BROKER_MESSAGES, ids=lambda m: m.type)
def test_broker_messages_round_trip(message: BrokerMessageT) -> None:
    wire = encode(message)
    assert json.loads(wire)["type"] == message.type
    assert parse_broker_message(wire) == message
    assert parse_broker_message(wire.encode()) == message


@pytest.mark.parametrize(
    "frame",
    ['{"type": "from_the_future"}', '{"type": "welcome"}', '{"type": "peer_left", "role": "auditor"}', "not json", "[]"],
)
def test_unreadable_broker_messages_raise_signal_error(frame: str) -> None:
    with pytest.raises(SignalError) as raised:
        parse_broker_message(frame)
    assert raised.value.code is ErrorCode.invalid_message


def test_role_other() -> None:
    assert Role.host.other is Role.technician and Role.technician.other is Role.host


@pytest.mark.parametrize(
    "candidate",
    [
        "candidate:1 1 udp",  # aiortc's parser asserts on fewer than 8 fields
        "candidate:1 x udp 1 127.0.0.1 9 typ host",
        "candidate:1 1 udp one 127.0.0.1 9 typ host",
        "candidate:1 1 udp 1 127.0.0.1 70000 typ host",
        "candidate:1 1 sctp 1 127.0.0.1 9 typ host",
        "candidate:1 1 udp 1 127.0.0.1 9 kind host",
        "candidate:1 1 udp 1 127.0.0.1 9 typ bridge",
        "candidate:1 1 udp 1 127.0.0.1 9 typ srflx raddr",
        "candidate:1 1 udp 1 127.0.0.1 9 typ srflx raddr 0.0.0.0 rport x",
    ],
)
def test_a_malformed_candidate_is_refused_at_the_gate(candidate: str) -> None:
    with pytest.raises(SignalError) as refused:
        parse_peer_message(json.dumps({"type": "ice", "candidate": candidate}))
    assert refused.value.code is ErrorCode.invalid_message


@pytest.mark.parametrize(
    "candidate",
    [
        "candidate:842163049 1 udp 1677729535 198.18.1.2 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag sXA3",
        "candidate:3 1 tcp 1518280447 5e1c0bd5-3a52-4b7e-9c3b-6a0b5e1f2a11.local 9 typ host tcptype active",
        "a1b2 1 udp 16777215 198.18.0.1 50000 typ relay raddr 198.18.1.2 rport 40000",
        "",
    ],
)
def test_well_formed_candidates_pass(candidate: str) -> None:
    assert parse_peer_message(json.dumps({"type": "ice", "candidate": candidate})).candidate == candidate
