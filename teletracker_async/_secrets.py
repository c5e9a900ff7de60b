"""The one place that touches secrets: holders, credential checks, redaction, origins.

Every auth scheme keeps its password here, behind :class:`Secret`, and builds its
requests and error messages through these helpers, so that no ``repr``, ``vars()``
dump, log record or captured frame local ever shows a password or a token.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus, urlencode

import httpx

from teletracker_async._config import (
    DEFAULT_BASE_URL,
    EXCHANGE_TIMEOUT,
    MAX_ACCOUNT_ID,
    user_agent,
)
from teletracker_async._errors import OriginMismatchError
from teletracker_async._http import URL, Stack

__all__ = [
    "EXCHANGE",
    "Credentials",
    "Secret",
    "auth_headers",
    "check_account_id",
    "check_base_url",
    "check_credential",
    "check_margin",
    "check_positive_int",
    "origin_of",
    "parse_account_id",
    "redact",
    "secret_password",
]

_SECRET_KEYS = frozenset(
    {"password", "token", "refreshtoken", "refresh_token", "access_token"}
)


class Secret:
    """Holds a secret so that no repr, str, vars() or pprint dump shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


#: Deeper than this, an error body is not worth keeping (and recursion must stop).
_MAX_DEPTH = 64
#: ``password=…`` or ``refresh_token=…`` in an echoed form body.
_FORM_SECRET = re.compile(r"(?i)\b(password|refresh_token)=[^&\s\"']*")


def _spellings(secrets: tuple[str, ...]) -> list[str]:
    """Each secret as it may come back: plain, form- and URL-encoded, JSON-escaped."""
    found: set[str] = set()
    for secret in secrets:
        if secret:
            found |= {
                secret,
                quote_plus(secret),
                quote(secret, safe=""),
                json.dumps(secret)[1:-1],
            }
    return sorted(found, key=len, reverse=True)  # longest first: no partial leftovers


def redact(body: Any, secrets: tuple[str, ...] = ()) -> Any:
    """Return *body* with secret-looking keys and any of *secrets* blanked, recursively.

    A server or proxy that echoes what it was sent must not smuggle a password or a
    token into an exception through its message or its body, in any spelling:
    plain, form-encoded or JSON-escaped. Bodies nested deeper than a sane error body
    are cut (``"<too deep>"``) rather than walked.
    """
    return _redact(body, _spellings(secrets), 0)


def _redact(body: Any, spellings: list[str], depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return "<too deep>"
    if isinstance(body, Mapping):
        return {
            k: "<redacted>"
            if str(k).lower() in _SECRET_KEYS
            else _redact(v, spellings, depth + 1)
            for k, v in body.items()
        }
    if isinstance(body, list):
        return [_redact(v, spellings, depth + 1) for v in body]
    if isinstance(body, str):
        for spelling in spellings:
            body = body.replace(spelling, "<redacted>")
        body = _FORM_SECRET.sub(r"\1=<redacted>", body)
    return body


def check_credential(name: str, value: object) -> str:
    """A non-empty str, or a TypeError/ValueError naming *name* (never the value)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return value


def check_account_id(value: object) -> int | None:
    """Validate an optional account id: a positive int (bools are refused)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"account_id must be an int or None, not {type(value).__name__}"
        )
    if value <= 0:
        raise ValueError(f"account_id must be positive, got {value}")
    if value > MAX_ACCOUNT_ID:
        raise ValueError(f"account_id must be at most {MAX_ACCOUNT_ID}, got {value}")
    return value


#: An account id as text: ASCII digits only (``'²'.isdigit()`` is true, and ``int``
#: takes ``'٣'``, ``'1_0'`` and ``' 7 '``), and no more than the largest id has.
_ACCOUNT_DIGITS = re.compile(rf"[0-9]{{1,{len(str(MAX_ACCOUNT_ID))}}}", re.ASCII)
#: How much of a bad value an error message repeats.
_SHOWN = 40


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def parse_account_id(text: str) -> int:
    """An account id written as text (an environment variable, an option).

    Raises:
        ValueError: Not 1 to :data:`MAX_ACCOUNT_ID` in ASCII digits; the message
            says what is expected and shows the value (cut short), for the caller
            to prefix with where it came from.
    """
    if _ACCOUNT_DIGITS.fullmatch(text) and 0 < int(text) <= MAX_ACCOUNT_ID:
        return int(text)
    raise ValueError(
        f"must be a positive integer in digits 0-9, at most {MAX_ACCOUNT_ID}; "
        f"got {_shown(text)}"
    )


def check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def check_margin(name: str, value: object) -> float:
    """A finite number of seconds >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return float(value)


def check_base_url(value: object, name: str = "base_url") -> str:
    """Validate a base URL: http(s), with a host, no query; returned without '/'.

    *name* is what the messages call it (``$TELETRACKER_BASE_URL`` when it came
    from there); a password in the URL (``https://user:pw@host``) is never shown.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(
            f"{name} must not hold white space or control characters;"
            f" got {_url_shown(value)!r}"
        )
    try:
        url = httpx.URL(value)
        host = url.host  # decoded here: a bad IDNA label ("xn--zz") raises
    except (httpx.InvalidURL, UnicodeError) as exc:  # idna.IDNAError: UnicodeError
        raise ValueError(f"{name} is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not host:
        raise ValueError(
            f"{name} must be an http(s) URL with a host, like {DEFAULT_BASE_URL!r};"
            f" got {_url_shown(value)}"
        )
    if url.port is not None and not 0 < url.port <= 65535:
        raise ValueError(f"{name} names port {url.port}: ports are 1 to 65535")
    if url.query or url.fragment:
        raise ValueError(f"{name} must not carry a query string or a fragment")
    return value.rstrip("/")


def _url_shown(value: str) -> str:
    """*value* for a message: cut short, with anything before an ``@`` hidden."""
    head, sep, rest = value.partition("://")
    if not sep:
        head, rest = "", value
    if "@" in rest:
        rest = "<redacted>@" + rest.rpartition("@")[2]
    return _shown(f"{head}{sep}{rest}")


def origin_of(scheme: str, host: str, port: int | None) -> str:
    """``scheme://host[:port]``; httpx leaves out a scheme's default port."""
    return f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"


class Credentials:
    """Username, password (kept as a :class:`Secret`), account and API origin.

    Shared by every auth scheme, so that secret handling lives in one place.
    """

    #: The HTTP stack whose requests this scheme builds (set by each adapter).
    _stack: ClassVar[Stack]
    _username: str
    _password: Secret
    _account_id: int | None
    _base_url: str
    _origin: tuple[str, str, int | None]

    def _set_credentials(
        self, username: object, password: Secret, account_id: object, base_url: object
    ) -> None:
        """Check and keep the credentials. Callers wrap the password first (see
        :func:`secret_password`), so that no frame that may raise holds it."""
        self._username = check_credential("username", username)
        self._password = password
        self._account_id = check_account_id(account_id)
        self._base_url = check_base_url(base_url)
        url = httpx.URL(self._base_url)
        port = url.port
        self._origin = (url.scheme, url.host, port)

    def __repr__(self) -> str:
        # Safe on a half-built object: error reporters repr every frame's locals.
        return (
            f"{type(self).__name__}(username={getattr(self, '_username', None)!r}, "
            f"account_id={self.account_id!r}, "
            f"base_url={getattr(self, '_base_url', None)!r})"
        )

    @property
    def username(self) -> str:
        """The user name the requests are made for."""
        return self._username

    @property
    def account_id(self) -> int | None:
        """The account requests work in, or None."""
        return getattr(self, "_account_id", None)

    @property
    def base_url(self) -> str:
        """The API root, without a trailing slash: credentials go nowhere else."""
        return self._base_url

    def _check_origin(self, url: URL) -> None:
        """Refuse to put credentials on a request for another origin.

        Raises:
            OriginMismatchError: *url*'s scheme, host or port is not the base URL's.
        """
        if (url.scheme, url.host, url.port) != self._origin:
            there = origin_of(url.scheme, url.host, url.port)
            raise OriginMismatchError(
                f"Refusing to send Teletracker credentials to {there}: this auth is "
                f"configured for {origin_of(*self._origin)}. To call {there}, create "
                f"the auth with base_url={there!r} (TeletrackerAuth(..., base_url=...)"
                " or TeletrackerClient(..., base_url=...)); otherwise point your "
                f"client at {self._base_url!r}."
            )

    def _secret_values(self) -> tuple[str, ...]:
        """Every secret this auth holds now (to redact echoes of them)."""
        return (self._password.get(),)

    def _form_request(self, path: str, form: dict[str, str]) -> Any:
        """A form POST carrying a secret, marked as the SDK's own and sent once only.

        Its body can be read a single time: if a redirect (``follow_redirects=True``)
        tries to replay it, to any origin, it raises instead of sending the secret.
        """
        body = urlencode(form).encode()
        prepared = self._stack.Request(  # for the headers httpx derives (Host...)
            "POST",
            f"{self._base_url}{path}",
            headers={
                **auth_headers(self._stack.name),
                "Content-Type": "application/x-www-form-urlencoded",
            },
            content=body,
        )
        # The body a transport (or a redirect) iterates can be sent once only. Like
        # any streamed body, an event hook reads it with ``await request.aread()``.
        return self._stack.Request(
            "POST",
            prepared.url,
            headers=prepared.headers,
            stream=_once_stream(self._stack)(body),
            # Its own timeouts: the request is built here, not by a client that
            # would add the client's (without any, a stalled server hangs it).
            extensions={EXCHANGE: True, "timeout": dict(EXCHANGE_TIMEOUT)},
        )


def redact_for(auth: Credentials, body: Any, *, also: tuple[str, ...] = ()) -> Any:
    """*body* without secret-looking keys, any secret *auth* holds, nor any of
    *also* (the token a request was actually sent with, say)."""
    return redact(body, (*auth._secret_values(), *also))  # noqa: SLF001 - this module's class


def login_request(
    auth: Credentials, account_id: int | None, *, auth_only: bool = False
) -> Any:
    """``POST /auth/login`` with *auth*'s credentials (form-encoded).

    The password lives only in the request body: it never sits in a variable of a
    frame that raises.
    """
    form = {"username": auth.username, "password": auth._password.get()}  # noqa: SLF001 - this module's class
    if account_id is not None:
        form["account_id"] = str(account_id)
    if auth_only:
        form["auth_only"] = "1"
    return auth._form_request("/auth/login", form)  # noqa: SLF001 - this module's class


#: The request extension that marks the SDK's own login and refresh requests.
EXCHANGE = "teletracker_async.exchange"


class _OnceStream:
    """A request body that refuses to be sent twice (see ``exchange_request``)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._sent = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._sent:
            raise OriginMismatchError(
                "Refusing to send a Teletracker login or refresh again (a redirect?): "
                "its body holds a secret, and the API does not redirect these."
            )
        self._sent = True
        yield self.body

    async def aclose(self) -> None:
        pass


@functools.cache
def _once_stream(stack: Stack) -> type[_OnceStream]:
    """:class:`_OnceStream` as *stack*'s ``AsyncByteStream`` (its clients check)."""
    return type("OnceStream", (_OnceStream, stack.module.AsyncByteStream), {})


def secret_password(password: object) -> Secret:
    """Check a password and wrap it at once (call it first in a constructor)."""
    return Secret(check_credential("password", password))


def auth_headers(stack: str = "httpx") -> dict[str, str]:
    """The headers of the SDK's own login and refresh requests on *stack*."""
    return {"Accept": "application/json", "User-Agent": user_agent(stack)}
