"""The one gate every JSON message from outside passes: size, JSON, object, type, schema.

Signalling frames (:mod:`protocol.signalling`) and data-channel messages
(:mod:`protocol.channel`) both come through :func:`parse_frame`; a failure is a
:class:`MessageError` whose ``code`` and ``message`` go back to the sender.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Collection
from typing import Any

from pydantic import TypeAdapter, ValidationError


class ErrorCode(str, enum.Enum):
    """Why a message was refused (stable, for programs)."""

    too_large = "too_large"
    invalid_json = "invalid_json"
    invalid_message = "invalid_message"
    unknown_type = "unknown_type"
    peer_absent = "peer_absent"
    session_over = "session_over"
    not_allowed = "not_allowed"


class MessageError(Exception):
    """A message that cannot be accepted; carries what to tell the sender."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def frame_size(frame: str | bytes) -> int:
    # surrogatepass: a str holding a lone surrogate is measured, then refused as JSON,
    # instead of escaping as UnicodeEncodeError.
    return len(frame.encode("utf-8", "surrogatepass")) if isinstance(frame, str) else len(frame)


def parse_frame(
    frame: str | bytes,
    adapter: TypeAdapter[Any],
    types: Collection[str],
    max_bytes: int,
) -> Any:
    """Validate one frame against ``adapter``, accepting only the given ``type`` values."""
    size = frame_size(frame)
    if size > max_bytes:
        raise MessageError(ErrorCode.too_large, f"message of {size} bytes is over the limit of {max_bytes} bytes")
    try:
        data = json.loads(frame)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(ErrorCode.invalid_json, f"message is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MessageError(ErrorCode.invalid_message, "message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in types:
        raise MessageError(
            ErrorCode.unknown_type,
            f"unknown message type {str(kind)[:40]!r}; expected one of {', '.join(sorted(types))}",
        )
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise MessageError(ErrorCode.invalid_message, describe_validation_error(exc, kind)) from None


def describe_validation_error(exc: ValidationError, tag: str | None = None) -> str:
    """Turn pydantic's report into one readable sentence per problem.

    ``tag`` is the message's ``type``: a tagged union puts it first in every
    location, where it only repeats what the sender already knows.
    """
    parts = []
    for err in exc.errors()[:5]:
        loc = [str(p) for p in err["loc"]]
        if tag is not None and loc[:1] == [tag]:
            loc = loc[1:]
        parts.append(f"{'.'.join(loc) or 'message'}: {err['msg']}")
    return "; ".join(parts)
