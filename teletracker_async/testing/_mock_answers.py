"""The API's answers as ``httpx.Response`` objects, for tests that mock httpx.

respx, pytest-httpx and ``httpx.MockTransport`` all answer with an ``httpx.Response``:
respx takes one as a route's ``return_value`` or in its ``side_effect`` list,
pytest-httpx's ``add_callback`` and a ``MockTransport`` take a function returning one.
The bodies come from the same builders as :class:`FakeTeletracker`'s answers.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from http import HTTPStatus

import attrs
import httpx

from teletracker_async.testing._answers import (
    REFRESH_TOKEN_LIFETIME,
    TOKEN_LIFETIME,
    refusal,
    token_answer,
)
from teletracker_async.testing._wire import FakeResponse

__all__ = ["error_answer", "login_answer", "refresh_answer"]


def login_answer(
    *,
    token: str | None = None,
    refresh_token: str | None = None,
    lifetime: float = TOKEN_LIFETIME,
    refresh_lifetime: float = REFRESH_TOKEN_LIFETIME,
    guid: str | None = None,
    account_id: int | None = None,
    issued_at: datetime | None = None,
) -> httpx.Response:
    """A successful ``POST /auth/login`` answer, as the API documents it.

    ``respx.post(url) % login_answer(token="t1")`` with respx;
    ``httpx_mock.add_callback(lambda _: login_answer(token="t1"), url=url)`` with
    pytest-httpx. Each call makes a new answer: a route that should give each login
    new tokens takes ``side_effect=lambda _: login_answer()``.

    Args:
        token: The bearer token. Default: a new random UUID on each call.
        refresh_token: The refresh token. Default: a new random UUID on each call.
        lifetime: Seconds the token lives (``tokenLifetime``): the documented
            3600 by default. The SDK counts them from the answer's arrival.
        refresh_lifetime: Seconds the refresh token lives: 30 days by default.
        guid: The session's id. Default: a new random UUID on each call.
        account_id: Adds an ``accountId`` field (the documentation shows none; some
            servers send one).
        issued_at: The server's wall time of the answer (a timezone-aware
            datetime), from which it states both expirations. Default: now.

    Returns:
        HTTP 200 with the JSON body ``success``, ``guid``, ``token``,
        ``tokenExpiration``, ``tokenLifetime``, ``refreshToken`` and
        ``refreshTokenExpiration`` (and ``accountId`` if asked).

    Raises:
        TypeError: An argument of the wrong type.
        ValueError: An empty token, one with spaces, control or non-ASCII
            characters (the message never quotes it), a lifetime that is not a
            positive finite number, an account id below 1, a naive *issued_at*,
            an expiration past the year 9999.
    """
    return _token_answer(
        token=token,
        refresh_token=refresh_token,
        lifetime=lifetime,
        refresh_lifetime=refresh_lifetime,
        guid=guid,
        account_id=account_id,
        issued_at=issued_at,
    )


def refresh_answer(
    *,
    token: str | None = None,
    refresh_token: str | None = None,
    lifetime: float = TOKEN_LIFETIME,
    refresh_lifetime: float = REFRESH_TOKEN_LIFETIME,
    guid: str | None = None,
    account_id: int | None = None,
    issued_at: datetime | None = None,
) -> httpx.Response:
    """A successful ``POST /auth/refresh`` answer: a new token and refresh token.

    The API gives a refresh the login's shape; the arguments, defaults and errors
    are those of :func:`login_answer`. The refresh token rotates: the SDK sends the
    one of this answer on its next refresh, so a test gives each refresh its own
    (``side_effect=[refresh_answer(refresh_token="r2"), ...]``, or the fresh random
    ones of the defaults).

    Args:
        token: The new bearer token. Default: a new random UUID on each call.
        refresh_token: The new refresh token. Default: a new random UUID.
        lifetime: Seconds the new token lives: 3600 by default.
        refresh_lifetime: Seconds the new refresh token lives: 30 days by default.
        guid: The session's id. Default: a new random UUID on each call.
        account_id: Adds an ``accountId`` field.
        issued_at: The server's wall time of the answer. Default: now.

    Returns:
        HTTP 200 with the JSON body of a login answer.

    Raises:
        TypeError: An argument of the wrong type.
        ValueError: A bad value, as for :func:`login_answer`.
    """
    return _token_answer(
        token=token,
        refresh_token=refresh_token,
        lifetime=lifetime,
        refresh_lifetime=refresh_lifetime,
        guid=guid,
        account_id=account_id,
        issued_at=issued_at,
    )


def error_answer(
    status: int,
    message: str | None = None,
    *,
    missing: Sequence[str] | None = None,
    retry_after: int | None = None,
) -> httpx.Response:
    """The API's refusal: ``{"success": false, "message": ...}`` on an error status.

    On a data call, ``error_answer(401)`` (or 403) is how the API says a token
    expired: the SDK renews the session once and retries the call. On the login
    it is a refused login.

    Args:
        status: An HTTP error status, 400 to 599.
        message: The server's message. Default: the status's phrase
            (``"Unauthorized"`` for 401).
        missing: With status 400 only: the variable names the API lists as
            missing (``BadRequestError.missing`` in the SDK).
        retry_after: Whole seconds for a ``Retry-After`` header (429, 503...).

    Returns:
        The answer, with a JSON body.

    Raises:
        TypeError: An argument of the wrong type.
        ValueError: A status outside 400-599, *missing* with another status than
            400 or with an empty name, a negative *retry_after*.
    """
    _check_int("status", status)
    if not 400 <= status <= 599:
        raise ValueError(f"status must be an error status (400-599), got {status}")
    if message is None:
        message = _phrase(status)
    elif not isinstance(message, str):
        raise TypeError(f"message must be a str, not {type(message).__name__}")
    more: dict[str, list[str]] = {}
    if missing is not None:
        if status != 400:
            raise ValueError(f"missing goes with status 400, not {status}")
        more["missing"] = _names(missing)
    answer = refusal(status, message, **more)
    if retry_after is not None:
        _check_int("retry_after", retry_after)
        if retry_after < 0:
            raise ValueError(f"retry_after must be >= 0 seconds, got {retry_after}")
        headers = {**answer.headers, "retry-after": str(retry_after)}
        answer = attrs.evolve(answer, headers=headers)
    return _response(answer)


def _token_answer(
    *,
    token: str | None,
    refresh_token: str | None,
    lifetime: float,
    refresh_lifetime: float,
    guid: str | None,
    account_id: int | None,
    issued_at: datetime | None,
) -> httpx.Response:
    if account_id is not None:
        _check_int("account_id", account_id)
        if account_id < 1:
            raise ValueError(f"account_id must be a positive int, got {account_id}")
    if issued_at is None:
        issued_at = datetime.now(timezone.utc)
    elif not isinstance(issued_at, datetime):
        raise TypeError(f"issued_at must be a datetime, not {type(issued_at).__name__}")
    elif issued_at.utcoffset() is None:
        raise ValueError("issued_at must be timezone-aware (the API states offsets)")
    guid, token = _word("guid", guid), _word("token", token)
    refresh_token = _word("refresh_token", refresh_token)
    lifetime = _seconds("lifetime", lifetime)
    refresh_lifetime = _seconds("refresh_lifetime", refresh_lifetime)
    try:
        answer = token_answer(
            guid=guid,
            token=token,
            refresh_token=refresh_token,
            token_lifetime=lifetime,
            refresh_token_lifetime=refresh_lifetime,
            issued_at=issued_at,
            account_id=account_id,
        )
    except OverflowError:
        raise ValueError(
            "issued_at plus lifetime or refresh_lifetime makes an expiration past "
            "the year 9999"
        ) from None
    return _response(answer)


def _response(answer: FakeResponse) -> httpx.Response:
    return httpx.Response(answer.status, headers=answer.headers, content=answer.body)


def _word(name: str, value: str | None) -> str:
    """*value*, or a new random UUID: a non-empty, printable ASCII str without
    spaces, as a header or a form carries it. The message never quotes it."""
    if value is None:
        return str(uuid.uuid4())
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not (value.isascii() and value.isprintable() and value.split() == [value]):
        raise ValueError(
            f"{name} must be a non-empty str of printable ASCII without spaces"
        )
    return value


def _seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{name} must be a number of seconds, not {type(value).__name__}"
        )
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return float(value)


def _check_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")


def _names(missing: object) -> list[str]:
    if isinstance(missing, str | bytes) or not isinstance(missing, Sequence):
        raise TypeError(
            f"missing must be a list of variable names, not {type(missing).__name__}"
        )
    if not all(isinstance(n, str) and n for n in missing):
        raise ValueError("missing must be a list of non-empty variable names")
    return list(missing)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
