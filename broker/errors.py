"""API errors: one JSON shape (:class:`protocol.api.ErrorBody`) for every refusal, and the one
mapping from a rule's :class:`~broker.refusals.Refusal` to an HTTP answer.

Two things are raised to say no. Rules raise refusals (``broker/refusals.py``) and know no
HTTP; :data:`REFUSAL_STATUS` gives each kind its status, and :func:`install_error_handlers`
answers them, so no route translates one. :class:`ApiError` is for what is HTTP's own: the
request's body (too large, too slow), its credentials (``401`` with ``WWW-Authenticate``,
CSRF and origin checks), the framework's errors and the broker being out of database slots.

Whatever goes wrong answers in that shape, also what no route foresaw: a full disk is
``507 disk_full`` (:func:`is_disk_full` knows how the operating system and SQLite say
so), text PostgreSQL cannot hold is ``422 invalid_request`` (:func:`is_nul_in_text`),
anything else ``500 internal_error``, never the framework's bare text.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from broker.refusals import (
    Busy,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    OutOfSpace,
    RateLimited,
    Refusal,
    Retryable,
    TooLarge,
    Unauthenticated,
    Unreadable,
)
from broker.storage.blobs import BlobStoreError
from protocol.api import ErrorBody

log = logging.getLogger(__name__)

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""No space left on the device, or the quota of the broker's user is used up: freeing space fixes both."""

SQLITE_FULL = 13
"""SQLite's result code for "database or disk is full" (the low byte of an extended code)."""


class ApiError(Exception):
    """An error to return to the caller: HTTP status, stable code, a sentence that names the fix."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        detail: object | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers
        self.detail = detail

    def response(self) -> JSONResponse:
        body = ErrorBody(error=self.error, message=self.message, detail=self.detail)
        return JSONResponse(
            body.model_dump(exclude_none=True), status_code=self.status, headers=self.headers
        )


REFUSAL_STATUS: dict[type[Refusal], int] = {
    Unreadable: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    TooLarge: 413,
    Invalid: 422,
    RateLimited: 429,
    Busy: 503,
    OutOfSpace: 507,
}
"""The HTTP status of each kind of refusal; a subclass answers as the nearest kind it derives from."""


def refusal_error(refusal: Refusal) -> ApiError:
    """The HTTP answer to ``refusal``: its kind's status, its code and message, ``Retry-After`` when it says when."""
    status = next(REFUSAL_STATUS[kind] for kind in type(refusal).__mro__ if kind in REFUSAL_STATUS)
    headers = None
    if isinstance(refusal, Retryable) and refusal.retry_after is not None:
        headers = {"Retry-After": str(refusal.retry_after)}
    return ApiError(status, refusal.code, refusal.message, headers=headers, detail=refusal.detail)


def http_error(exc: ApiError | Refusal) -> ApiError:
    """``exc`` as an :class:`ApiError`: for a WebSocket's denial, which no exception handler sends."""
    return exc if isinstance(exc, ApiError) else refusal_error(exc)


class ReadRefusal(StarletteHTTPException):
    """An :class:`ApiError` raised while the request body is being read (too large, too slow).

    FastAPI turns any other exception out of reading a body into ``400 There was an error
    parsing the body``; a Starlette ``HTTPException`` it passes on, so this one reaches the
    handlers below with its own status and code.
    """

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.status, error.message, headers=error.headers)
        self.error = error


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it came from, however deep: SQLAlchemy keeps the driver's
    error as ``orig`` and raises from it, and other code may have wrapped it too."""
    pending: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, current.__context__, getattr(current, "orig", None)]
        if isinstance(current, BaseExceptionGroup):
            pending += current.exceptions


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc``, or an exception it came from, says the disk is full.

    An ``OSError`` with ``ENOSPC`` or ``EDQUOT``, or SQLite's ``SQLITE_FULL`` ("database or
    disk is full").
    """
    for current in _causes(exc):
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return True
        if isinstance(current, sqlite3.Error) and (getattr(current, "sqlite_errorcode", 0) or 0) & 0xFF == SQLITE_FULL:
            return True
    return False


def is_nul_in_text(exc: BaseException) -> bool:
    """True when ``exc`` came from giving PostgreSQL text with a NUL character (U+0000).

    PostgreSQL's text cannot hold one; psycopg refuses it before sending anything. Request
    bodies refuse control characters already (``protocol.api.SingleLine``); this answers
    whatever else reaches a query with one (a query-string filter) as the client's error,
    not the broker's.
    """
    return any(isinstance(c, psycopg.DataError) and "NUL (0x00)" in str(c) for c in _causes(exc))


def nul_in_text() -> ApiError:
    return ApiError(422, "invalid_request", "the request holds a NUL character (U+0000), which the broker cannot "
                    "store or search for: remove it")


def _cause(exc: Exception) -> object:
    """The driver's own error under SQLAlchemy's (whose text adds a second line, a link)."""
    return getattr(exc, "orig", None) or exc


def log_round_failure(logger: logging.Logger, what: str, exc: Exception) -> None:
    """Log that a background round (a sweep, sealing, deliveries) failed; the next round retries.

    A full disk, or Redis or the object store not answering, is one line: it fails every round,
    each second, until it is fixed. Anything else is logged with its traceback.
    """
    if is_disk_full(exc):
        logger.warning("%s failed, the disk is full (%s); it is retried until space is freed", what, _cause(exc))
    elif isinstance(exc, RedisError | BlobStoreError):
        logger.warning("%s failed (%s); it is retried every round", what, _cause(exc))
    else:
        logger.error("%s failed", what, exc_info=exc)


def disk_full(data_dir: Path) -> ApiError:
    """The answer to any request that a full disk stopped."""
    return ApiError(
        507, "disk_full",
        f"the broker's disk is full: free space in {data_dir} (the broker's data directory), then send this again",
    )


SHARED_RETRY_AFTER_SECONDS = 2
"""What a request refused for an unreachable Redis is told to wait."""


def shared_state_unreachable() -> ApiError:
    """The answer to a request that needed the Redis every broker shares, which did not answer."""
    return ApiError(
        503, "shared_state_unreachable",
        "the broker cannot reach the Redis it shares with the other brokers (DESKHAND_REDIS_URL), which counts "
        f"attempts for all of them; try again in {SHARED_RETRY_AFTER_SECONDS} s, and if it persists tell the "
        "administrator to check Redis",
        headers={"Retry-After": str(SHARED_RETRY_AFTER_SECONDS)},
    )


def object_store_unreachable() -> ApiError:
    """The answer to a request that needed the object store (recordings, transfer chunks), which failed."""
    return ApiError(
        503, "object_store_unreachable",
        "the broker cannot reach the object store that keeps recordings and transfer chunks "
        f"(DESKHAND_OBJECT_STORE_URL); try again in {SHARED_RETRY_AFTER_SECONDS} s, and if it persists tell "
        "the administrator to check the object store",
        headers={"Retry-After": str(SHARED_RETRY_AFTER_SECONDS)},
    )


def unauthorized(message: str = "sign in first: send 'Authorization: Bearer <token>'") -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def _describe(errors: list[dict[str, object]]) -> str:
    parts = []
    for err in errors[:5]:
        if err.get("type") == "json_invalid":
            parts.append("the request body is not valid JSON")
            continue
        where = err.get("loc", ())
        loc = [str(p) for p in (where if isinstance(where, (list, tuple)) else ()) if p != "body"]
        parts.append(f"{'.'.join(loc) or 'body'}: {err.get('msg')}")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI, data_dir: Path) -> None:
    """Make every error, ours, the framework's or an unforeseen one, use the one JSON shape.

    ``data_dir`` is named in the answer to a request that a full disk stopped.
    """

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(Refusal)
    async def _refusal(_request: Request, exc: Refusal) -> JSONResponse:
        return refusal_error(exc).response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()
        ]
        return ApiError(
            422, "invalid_request", _describe(errors), detail=errors
        ).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, ReadRefusal):
            return exc.error.response()
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return ApiError(
            exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None)
        ).response()

    def answer(exc: Exception) -> ApiError:
        if is_disk_full(exc):
            return disk_full(data_dir)
        if is_nul_in_text(exc):
            return nul_in_text()
        if isinstance(exc, RedisError):
            return shared_state_unreachable()
        if isinstance(exc, BlobStoreError):
            return object_store_unreachable()
        return ApiError(500, "internal_error", "the broker failed to answer this request; its log says why")

    async def _unforeseen(request: Request, exc: Exception) -> JSONResponse:
        if request.scope["type"] != "http":
            raise exc  # a WebSocket has no answer to send: the server closes it, as before
        refusal = answer(exc)
        if refusal.status == 507 or isinstance(exc, RedisError | BlobStoreError):
            # Expected while the disk is full, Redis or the object store down: one line each, not a traceback.
            log.warning("%s %s: %s (%s)", request.method, request.url.path, refusal.message, _cause(exc))
        elif refusal.status < 500:
            log.info("%s %s: %s", request.method, request.url.path, refusal.message)
        else:
            log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return refusal.response()

    # What a full disk raises is answered where the routes' own errors are, and not raised further.
    for error_class in (OSError, SQLAlchemyError, sqlite3.Error, RedisError, BlobStoreError):
        app.add_exception_handler(error_class, _unforeseen)

    @app.exception_handler(Exception)
    async def _any_other_error(_request: Request, exc: Exception) -> JSONResponse:
        # Starlette's outermost handler: it sends this answer, then raises again for the server's log.
        return answer(exc).response()
