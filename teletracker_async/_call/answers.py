"""Turning an error answer into the right exception."""

from __future__ import annotations

import email.utils
import json
import math
import sys
import time
from collections.abc import Mapping
from typing import Any

from teletracker_async._errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)

__all__ = [
    "decode_error_body",
    "error_context",
    "error_for_status",
    "parse_retry_after",
]

#: Header values an error keeps as ``<redacted>``: they carry credentials.
_PRIVATE_REQUEST_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_PRIVATE_RESPONSE_HEADERS = frozenset({"set-cookie"})


def decode_error_body(content: bytes) -> Any:
    """The JSON of an error answer, or its text (cut short) when it is not JSON."""
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return content[:1000].decode("utf-8", "replace")


def _server_message(body: Any) -> str | None:
    if isinstance(body, Mapping):
        for key in ("message", "error", "errors", "msg"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if (
                isinstance(value, list)
                and value
                and all(isinstance(v, str) for v in value)
            ):
                return "; ".join(value)
    return None


def _missing(body: Any) -> tuple[str, ...]:
    if isinstance(body, Mapping):
        value = body.get("missing")
        if isinstance(value, list):
            return tuple(str(v) for v in value)
    return ()


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Returns None when the header is absent or unreadable (including dates no clock can
    hold); negative waits become 0. The value is not capped: the caller decides what
    it will wait for.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            if when.tzinfo is None:
                return None
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _kept(headers: Any, private: frozenset[str]) -> list[tuple[str, str]]:
    return [
        (key, "<redacted>" if key.lower() in private else value)
        for key, value in headers.multi_items()
    ]


def error_context(response: Any) -> dict[str, Any]:
    """``request=`` and ``response=`` for an error about *response*: copies of the
    request (method, URL, headers) and the answer (status, headers), without bodies
    and with credential headers redacted, in *response*'s own HTTP stack's types."""
    module = sys.modules[type(response).__module__.partition(".")[0]]
    try:
        sent = response.request
    except RuntimeError:  # an answer built without a request (a custom transport)
        request = None
    else:
        request = module.Request(
            sent.method,
            sent.url,
            headers=_kept(sent.headers, _PRIVATE_REQUEST_HEADERS),
        )
    copy = module.Response(
        response.status_code,
        headers=_kept(response.headers, _PRIVATE_RESPONSE_HEADERS),
        request=request,
    )
    return {"request": request, "response": copy}


def error_for_status(
    status_code: int,
    body: Any,
    headers: Mapping[str, str],
    *,
    what: str,
    auth_endpoint: bool = False,
    response: Any = None,
) -> APIError:
    """Build the exception for an error answer to *what*.

    On an authentication endpoint, 400/401/403 mean the credentials were refused.
    *body* must be redacted already (``Credentials.redact``): it becomes the message.
    With *response*, the error keeps redacted copies of the request and the answer
    (see :func:`error_context`).
    """
    server = _server_message(body)
    message = f"{what} failed: {server}" if server else f"{what} failed"
    context = {} if response is None else error_context(response)
    if auth_endpoint and status_code in (400, 401, 403):
        return AuthenticationError(status_code, message, body, **context)
    if status_code == 400:
        return BadRequestError(
            status_code, message, body, missing=_missing(body), **context
        )
    if status_code == 401:
        return AuthenticationError(status_code, message, body, **context)
    if status_code == 403:
        return PermissionDeniedError(status_code, message, body, **context)
    if status_code == 404:
        return NotFoundError(status_code, message, body, **context)
    if status_code == 429:
        return RateLimitError(
            status_code,
            message,
            body,
            retry_after=parse_retry_after(headers.get("retry-after")),
            **context,
        )
    if status_code >= 500:
        return ServerError(status_code, message, body, **context)
    return APIError(status_code, message, body, **context)
