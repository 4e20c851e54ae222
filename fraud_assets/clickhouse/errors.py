"""Which ClickHouse errors are worth retrying, and the retry policy of the assets that meet them.

A run that meets a *transient* fault (the server restarting, a network blip,
too many parts or queries for a moment, the embedded database held by another
process) should wait and try again: every ClickHouse-touching asset carries
``CLICKHOUSE_RETRY_POLICY`` (exponential backoff with jitter). A *permanent*
error (bad SQL, an unknown table or column, wrong credentials, no access) fails
the same way on every attempt, so it becomes ``PermanentClickHouseError``, a
``dagster.Failure`` that disallows retries: the step fails once, with the
ClickHouse error code and name, instead of a retry storm.

``connect`` (and so every client this project opens) applies the
classification to whatever escapes the ``with`` block, with the DSN's password
redacted from the message.

Dagster's ``RetryPolicy`` retries *any* exception, so a plain bug (a
``KeyError``, bad data) would cost three backed-off attempts before failing
the same way. Each retried asset's compute function is therefore wrapped in
``retry_transient_only``: a non-transient exception fails the step at once,
as a ``dagster.Failure`` that carries the original exception as its cause.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
from collections.abc import Callable
from typing import Any

import dagster as dg

# Server error codes that a later attempt can succeed on (ClickHouse's ErrorCodes.cpp).
TRANSIENT_CODES: frozenset[int] = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE
        32,  # ATTEMPT_TO_READ_AFTER_EOF
        159,  # TIMEOUT_EXCEEDED
        164,  # READONLY (replica temporarily read-only)
        173,  # CANNOT_ALLOCATE_MEMORY
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT
        394,  # QUERY_WAS_CANCELLED
        425,  # SYSTEM_ERROR
        439,  # CANNOT_SCHEDULE_TASK
        473,  # DEADLOCK_AVOIDED
        999,  # KEEPER_EXCEPTION
        1000,  # POCO_EXCEPTION
    }
)
# HTTP statuses without a ClickHouse code that mean "try again later".
TRANSIENT_HTTP_STATUSES: frozenset[int] = frozenset({408, 425, 429, 500, 502, 503, 504})

_CODE = re.compile(r"\bcode:?\s*(\d+)", re.IGNORECASE)
_HTTP_STATUS = re.compile(r"HTTP status (\d{3})")

CLICKHOUSE_RETRY_POLICY = dg.RetryPolicy(
    max_retries=int(os.environ.get("FRAUD_CLICKHOUSE_MAX_RETRIES", "3")),
    delay=float(os.environ.get("FRAUD_CLICKHOUSE_RETRY_DELAY_S", "2")),
    backoff=dg.Backoff.EXPONENTIAL,
    jitter=dg.Jitter.PLUS_MINUS,
)


class PermanentClickHouseError(dg.Failure):
    """A ClickHouse error that retrying cannot fix; fails the step without retries."""

    def __init__(self, description: str, code: int | None = None) -> None:
        super().__init__(
            description=description,
            metadata={"clickhouse_error_code": code if code is not None else -1},
            allow_retries=False,
        )
        self.code = code


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code of a driver exception (attribute, or ``Code: N`` in the text)."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    match = _CODE.search(str(exc))
    return int(match.group(1)) if match else None


def is_clickhouse_error(exc: BaseException) -> bool:
    from clickhouse_connect.driver.exceptions import ClickHouseError

    return isinstance(exc, ClickHouseError)


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed: the embedded database busy, a network fault or
    timeout, or a ClickHouse error with a transient code. Anything else (bad SQL, a bug, bad
    data) fails the same way again."""
    from clickhouse_connect.driver.exceptions import OperationalError

    from fraud_assets.clickhouse.client import EmbeddedBusyError

    if isinstance(exc, EmbeddedBusyError | OperationalError | TimeoutError | ConnectionError):
        return True
    if not is_clickhouse_error(exc):
        return False
    code = error_code(exc)
    if code is not None:
        return code in TRANSIENT_CODES
    status = _HTTP_STATUS.search(str(exc))
    if status:
        return int(status.group(1)) in TRANSIENT_HTTP_STATUSES
    return True  # a driver error without a code: a transport problem


def _caused_by_transient(exc: BaseException) -> bool:
    """``exc`` or an exception it was raised *from* (``raise ... from``) is transient.

    An implicit ``__context__`` is not followed: an error raised while handling a
    transient one (a bug in an ``except`` block) is a new failure that another
    attempt would repeat.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if is_transient(current):
            return True
        seen.add(id(current))
        current = current.__cause__
    return False


def _passes_through(exc: Exception) -> bool:
    """Raised as it is: Dagster's own control flow (its failures, retry requests and errors,
    which decide retries themselves) or a transient fault (left to the RetryPolicy)."""
    return isinstance(exc, dg.Failure | dg.RetryRequested | dg.DagsterError) or (
        _caused_by_transient(exc)
    )


def _not_retried(exc: Exception) -> dg.Failure:
    return dg.Failure(
        description=f"{type(exc).__name__}: {exc} (not a transient fault, so not retried: "
        "another attempt would fail the same way)",
        allow_retries=False,
    )


def retry_transient_only(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an asset's compute function so its RetryPolicy applies to transient faults only.

    Dagster's own control-flow exceptions (``Failure``, ``RetryRequested``, its errors)
    pass through unchanged; any other exception that is not transient (see
    ``is_transient``, checked along its cause chain) becomes a non-retryable
    ``dagster.Failure`` raised from it.
    """
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                if _passes_through(exc):
                    raise
                raise _not_retried(exc) from exc

        return generator

    @functools.wraps(fn)
    def function(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if _passes_through(exc):
                raise
            raise _not_retried(exc) from exc

    return function


def permanent_or_none(exc: BaseException, redact) -> PermanentClickHouseError | None:
    """The non-retryable failure for a permanent ClickHouse error, else None.

    ``redact`` removes credentials from the message.
    """
    if isinstance(exc, PermanentClickHouseError) or not is_clickhouse_error(exc):
        return None
    if is_transient(exc):
        return None
    code = error_code(exc)
    name = getattr(exc, "name", None)
    label = f"code {code}" + (f" {name}" if name else "") if code is not None else "no code"
    return PermanentClickHouseError(
        f"ClickHouse rejected the request ({label}); retrying cannot fix this, so the step "
        f"fails now: {redact(str(exc))}",
        code=code,
    )
