"""Reading answers: the JSON body of a success, the right exception for the rest.

Also the SDK's errors for a try that got no answer (:func:`no_answer`) and the
:class:`~teletracker_async._call.retry.Failure` the retry policy reads from it.
"""

from __future__ import annotations

import json
from typing import Any

from teletracker_async._call.retry import Failure
from teletracker_async._converter import (
    CallDataAnswer,
    Envelope,
    decode_json,
    structure,
)
from teletracker_async._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ResponseFormatError,
    TeletrackerError,
    decode_error_body,
    detached,
    error_context,
    error_for_status,
)
from teletracker_async._http import URL, Request, Response, Stack
from teletracker_async._secrets import EXCHANGE, Credentials, redact_for

__all__ = [
    "failure_of",
    "no_answer",
    "outcome",
    "read_json",
    "records",
    "request_error",
]


def read_json(
    method: str,
    path: str,
    response: Response,
    auth: Credentials,
    *,
    auth_endpoint: bool = False,
) -> dict[str, Any]:
    """The body of a successful answer, or raise the error it stands for.

    The answer is read by :func:`outcome`: this frame, which raises, holds no body,
    so an error reporter capturing frame locals finds no echoed secret.

    Raises:
        APIError: A refusal (a subclass per status), or ``success: false``.
        ResponseFormatError: Not a JSON object with ``success``.
    """
    if response.status_code == 200:
        # The success envelope checked by hand (measured: the strict converter
        # was 3.7 % of request_json), and nothing built for an error message.
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError, RecursionError):
            pass
        else:
            if type(body) is dict and body.get("success") is True:
                return body
            del body  # not kept in the frame that raises below
    result = outcome(method, path, response, auth, auth_endpoint)
    if isinstance(result, TeletrackerError):
        raise result
    return result


def outcome(
    method: str, path: str, response: Response, auth: Credentials, auth_endpoint: bool
) -> dict[str, Any] | TeletrackerError:
    """The JSON object of a successful answer, or the error it stands for."""
    what = f"{method} {path}"
    status = response.status_code
    if not response.is_success:
        return _refusal(response, what, auth, auth_endpoint, by_status=True)
    try:
        body = decode_json(
            response.content, what=f"answer to {what}", status_code=status
        )
    except ResponseFormatError as exc:
        return detached(exc)
    if isinstance(body, dict) and body.get("success") is True:
        return body  # a 2xx other than 200 (see read_json)
    try:
        # The strict converter says exactly what is wrong.
        structure(body, Envelope, what=f"answer to {what}", status_code=status)
    except ResponseFormatError as exc:
        return detached(exc)
    # The converter accepts true or false only, and true returned above.
    return _refusal(response, what, auth, auth_endpoint, by_status=False)


def _refusal(
    response: Response,
    what: str,
    auth: Credentials,
    auth_endpoint: bool,
    *,
    by_status: bool,
) -> APIError:
    status = response.status_code
    # The token it was sent with may be an older one than the auth's current.
    sent = response.request.headers.get("authorization", "").partition(" ")[2]
    body = redact_for(auth, decode_error_body(response.content), also=(sent,))
    refusal = error_for_status(
        status,
        body,
        response.headers,
        what=what,
        auth_endpoint=auth_endpoint,
        response=response,
    )
    if by_status:
        return refusal
    # success: false on a 2xx: the status says nothing, the body says no.
    return APIError(status, refusal.message, refusal.body, **error_context(response))


def records(
    path: str, response: Response, auth: Credentials
) -> list[dict[str, Any]] | TeletrackerError:
    """The call records of a report answer, or the error it stands for."""
    body = outcome("GET", path, response, auth, auth_endpoint=False)
    if isinstance(body, TeletrackerError):
        return body
    try:
        answer = structure(
            body,
            CallDataAnswer,
            what=f"answer to GET {path}",
            status_code=response.status_code,
        )
    except ResponseFormatError as exc:
        return detached(exc)
    return answer.data


def _failed_request(exc: Exception) -> Request | None:
    try:
        return getattr(exc, "request", None)
    except RuntimeError:  # raised without a request (a custom transport)
        return None


def failure_of(exc: Exception, request: Request, stack: Stack) -> Failure:
    """How far *request* went before the transport error *exc* ended it."""
    failed = _failed_request(exc)
    if failed is not request and failed is not None and failed.extensions.get(EXCHANGE):
        return Failure.IN_FRONT
    if isinstance(exc, stack.not_sent):
        return Failure.NOT_SENT
    if isinstance(exc, stack.retryable):
        return Failure.SENT
    return Failure.FINAL


def no_answer(
    method: str, url: URL, exc: Exception, stack: Stack
) -> APIConnectionError:
    """The SDK's error for a transport failure; timeouts are APITimeoutError.

    Raise it ``from`` the transport error, detached first when that error came
    from a login or refresh: the HTTP stack's frames hold the form it was sending.
    The message names the host it could not reach.
    """
    kind = (
        APITimeoutError
        if isinstance(exc, stack.TimeoutException)
        else APIConnectionError
    )
    failed = _failed_request(exc)
    # The login/refresh in front of the request may be what failed: name it.
    where = url if failed is None else failed.url
    port = "" if where.port is None else f":{where.port}"
    front = "" if where.path == url.path else f" ({where.path} in front of it)"
    return kind(
        f"{method} {url.path}: no answer from Teletracker at "
        f"{where.host}{port}{front} ({type(exc).__name__}: {str(exc) or 'no detail'})",
        host=where.host,
    )


def request_error(exc: Exception, request: Request, stack: Stack) -> TeletrackerError:
    """What an error of the HTTP stack that is not a transport failure means."""
    where = f"{request.method} {request.url.path}"
    if isinstance(exc, stack.DecodingError):
        return ResponseFormatError(
            f"The answer to {where} could not be decoded ({exc})."
        )
    return APIConnectionError(
        f"{where} to {request.url.host}: {type(exc).__name__}: {exc}",
        host=request.url.host,
    )
