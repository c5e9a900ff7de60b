"""The exceptions raised by teletracker_async.

Every exception the SDK raises on purpose derives from one root::

    TeletrackerError
    ├── OriginMismatchError        a request for another origin than the auth's
    │                              (also a ValueError); nothing was sent
    ├── AccountMismatchError       a bearer session asked to act on another account
    │                              (also a ValueError); nothing was sent
    ├── ResponseFormatError        an answer the SDK cannot read
    ├── TokenStoreError            a token store (``stores``) unreachable or unreadable
    │   └── TokenCodecError        its codec could not encrypt, or a record not decrypt
    ├── APIConnectionError         the request did not get an answer (transport failure)
    │   └── APITimeoutError        ... because a timeout ran out
    └── APIError                   the server answered with an error
        ├── AuthenticationError    login refused, or 401 that a fresh token did not cure
        ├── BadRequestError        400: missing or invalid variables
        ├── PermissionDeniedError  403 that persists with a fresh token
        ├── NotFoundError          404
        ├── RateLimitError         429 (``retry_after``)
        └── ServerError            5xx

Messages say what happened and what to do about it. They never contain a password,
a bearer token or a refresh token: bodies kept on errors from the authentication
endpoints are redacted before they are stored.
"""

from __future__ import annotations

import email.utils
import json
import math
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from teletracker_async._http import Headers

if TYPE_CHECKING:
    import httpx

    import httpx2

    #: A request or an answer of the stack the error came from.
    AnyRequest = httpx.Request | httpx2.Request
    AnyResponse = httpx.Response | httpx2.Response

E = TypeVar("E", bound=BaseException)

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AccountMismatchError",
    "AuthenticationError",
    "BadRequestError",
    "NotFoundError",
    "OriginMismatchError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseFormatError",
    "ServerError",
    "TeletrackerError",
    "TokenCodecError",
    "TokenStoreError",
    "decode_error_body",
    "detached",
    "error_context",
    "error_for_status",
    "parse_retry_after",
]


def detached(error: E) -> E:
    """*error* without its traceback and chained exceptions, ready to raise again.

    The frames of a parser hold what it parsed (a body that may carry a token):
    error reporters that capture frame locals must not find them.
    """
    error.__traceback__ = None
    error.__cause__ = None
    error.__context__ = None
    error.__suppress_context__ = True
    return error


class TeletrackerError(Exception):
    """The root of every exception the SDK raises on purpose."""


class OriginMismatchError(TeletrackerError, ValueError):
    """A request for an origin (scheme, host, port) that the auth was not made for.

    Raised before anything is sent: no password and no token goes to an origin
    other than the auth's ``base_url``. The message names both origins.
    """


class AccountMismatchError(TeletrackerError, ValueError):
    """A request names an ``account_id`` that the bearer session does not belong to.

    A bearer session acts on one account: sending it with another account's id would
    only be refused (and cost a renewal). Raised before anything is sent; the message
    names both accounts and the way out: ``client.for_account(account_id)`` (a view
    with its own session, same connection pool) or ``client.switch_account(...)``.

    Attributes:
        session_account_id: The account the session belongs to.
        account_id: The account the request asked for.
    """

    def __init__(
        self, message: str, *, session_account_id: int, account_id: int
    ) -> None:
        super().__init__(message)
        self.message = message
        self.session_account_id = session_account_id
        self.account_id = account_id


class ResponseFormatError(TeletrackerError):
    """An answer the SDK cannot read: not JSON, not an object, or a bad field.

    Attributes:
        status_code: The HTTP status of the answer, when there was one.
        problems: One line per bad field, naming the field as the server spells it.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        problems: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.problems = problems


class APIConnectionError(TeletrackerError):
    """The request got no answer: connection refused or dropped, DNS, TLS, timeout.

    Attributes:
        host: The host that could not be reached (also named in the message), when
            known.
    """

    def __init__(self, message: str, *, host: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.host = host


class APITimeoutError(APIConnectionError):
    """A connect, read, write or pool timeout ran out before the answer came."""


class APIError(TeletrackerError):
    """The server answered with an error status, or with ``success: false``.

    Attributes:
        status_code: The HTTP status.
        message: The server's own message when it gave one, else a description.
        body: The decoded JSON body (or the text when it was not JSON), redacted of
            secrets (the password, the tokens the request carried).
        request: The request that was answered (an ``httpx.Request``, or httpx2's):
            its method, URL and headers, with ``Authorization`` and ``Cookie``
            values replaced by ``<redacted>`` and no body. None when unknown.
        response: The answer (``httpx.Response`` or httpx2's): its status and
            headers (``Set-Cookie`` redacted), without a body: read ``body``.
            None when unknown.
    """

    def __init__(
        self,
        status_code: int,
        message: str,
        body: Any = None,
        *,
        request: AnyRequest | None = None,
        response: AnyResponse | None = None,
    ) -> None:
        super().__init__(status_code, message, body)
        self.status_code = status_code
        self.message = message
        self.body = body
        self.request: AnyRequest | None = request
        self.response: AnyResponse | None = response

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status_code})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code!r}, "
            f"message={self.message!r})"
        )


class AuthenticationError(APIError):
    """The server refused the credentials, or a fresh token was refused (401).

    Raised for a refused login (400, 401 or 403 on ``/auth/login``): check the
    username, the password and the ``account_id``. Never retried automatically.
    """


class BadRequestError(APIError):
    """400: the server says variables are missing or invalid.

    Attributes:
        missing: The variable names the server listed as missing, when it did.
    """

    def __init__(
        self,
        status_code: int,
        message: str,
        body: Any = None,
        *,
        missing: tuple[str, ...] = (),
        request: Any = None,
        response: Any = None,
    ) -> None:
        super().__init__(status_code, message, body, request=request, response=response)
        self.missing = missing


class PermissionDeniedError(APIError):
    """403 that persists with a fresh token: the user may not do this."""


class NotFoundError(APIError):
    """404: no such endpoint or object."""


class RateLimitError(APIError):
    """429: too many requests.

    Attributes:
        retry_after: Seconds the server asked us to wait, or None when it did not say.
    """

    def __init__(
        self,
        status_code: int,
        message: str,
        body: Any = None,
        *,
        retry_after: float | None = None,
        request: Any = None,
        response: Any = None,
    ) -> None:
        super().__init__(status_code, message, body, request=request, response=response)
        self.retry_after = retry_after

    def __str__(self) -> str:
        wait = (
            "no Retry-After given"
            if self.retry_after is None
            else f"retry after {self.retry_after:g} s"
        )
        return f"{self.message} (HTTP {self.status_code}; {wait})"


class ServerError(APIError):
    """5xx: the server failed. Usually worth trying again later."""


class TokenStoreError(TeletrackerError):
    """A token store could not be reached or answered something unreadable.

    The auth survives it: it keeps the valid token and, past the hard deadline,
    logs in privately (unless built with ``store_errors="raise"``). Messages name
    the store, never a password of its URL nor a token it holds.
    """


class TokenCodecError(TokenStoreError):
    """A store's codec could not encrypt a record (nothing was written) or a
    record does not decrypt with it (another key, or altered: never used).

    A :class:`TokenStoreError`, handled as one; its own type tells a key problem
    from an unreachable store.
    """


# -- from an answer to its error ---------------------------------------------------

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
    headers: Headers | Mapping[str, str],
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
