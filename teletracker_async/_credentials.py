"""The one place that touches secrets: holders, credential checks, redaction, origins.

Every auth scheme keeps its password here, behind :class:`Secret`, and builds its
requests and error messages through these helpers, so that no ``repr``, ``vars()``
dump, log record or captured frame local ever shows a password or a token.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from teletracker_async._config import DEFAULT_BASE_URL, user_agent
from teletracker_async._exceptions import OriginMismatchError
from teletracker_async._stack import Stack

__all__ = [
    "Credentials",
    "Secret",
    "auth_headers",
    "check_account_id",
    "check_base_url",
    "check_credential",
    "check_margin",
    "check_positive_int",
    "origin_of",
    "redact",
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


def redact(body: Any, secrets: tuple[str, ...] = ()) -> Any:
    """Return *body* with secret-looking keys and any of *secrets* blanked, recursively.

    A server that echoes what it was sent must not smuggle a password or a token into
    an exception through its message or its body.
    """
    if isinstance(body, Mapping):
        return {
            k: "<redacted>" if str(k).lower() in _SECRET_KEYS else redact(v, secrets)
            for k, v in body.items()
        }
    if isinstance(body, list):
        return [redact(v, secrets) for v in body]
    if isinstance(body, str):
        for secret in secrets:
            if secret:
                body = body.replace(secret, "<redacted>")
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
    return value


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


def check_base_url(value: object) -> str:
    """Validate a base URL: http(s), with a host, no query; returned without '/'."""
    if not isinstance(value, str):
        raise TypeError(f"base_url must be a str, not {type(value).__name__}")
    if value != value.strip():
        raise ValueError(
            f"base_url must not start or end with white space; got {value!r}"
        )
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"base_url is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"base_url must be an http(s) URL with a host, like {DEFAULT_BASE_URL!r};"
            f" got {value!r}"
        )
    if url.query or url.fragment:
        raise ValueError("base_url must not carry a query string or a fragment")
    return value.rstrip("/")


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
        self, username: object, password: object, account_id: object, base_url: object
    ) -> None:
        self._username = check_credential("username", username)
        self._password = Secret(check_credential("password", password))
        self._account_id = check_account_id(account_id)
        self._base_url = check_base_url(base_url)
        url = httpx.URL(self._base_url)
        port = url.port
        self._origin = (url.scheme, url.host, port)

    @property
    def username(self) -> str:
        """The user name the requests are made for."""
        return self._username

    @property
    def account_id(self) -> int | None:
        """The account requests work in, or None."""
        return self._account_id

    @property
    def base_url(self) -> str:
        """The API root, without a trailing slash: credentials go nowhere else."""
        return self._base_url

    def check_origin(self, url: Any) -> None:
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

    def secret_values(self) -> tuple[str, ...]:
        """Every secret this auth holds now (to redact echoes of them)."""
        return (self._password.get(),)

    def redact(self, body: Any) -> Any:
        """*body* without secret-looking keys nor any secret this auth holds."""
        return redact(body, self.secret_values())

    def login_request(self, account_id: int | None, *, auth_only: bool = False) -> Any:
        """``POST /auth/login`` with the credentials (form-encoded).

        The password lives only in the request body: it never sits in a variable of a
        frame that raises.
        """
        form = {"username": self._username, "password": self._password.get()}
        if account_id is not None:
            form["account_id"] = str(account_id)
        if auth_only:
            form["auth_only"] = "1"
        return self._stack.Request(
            "POST", f"{self._base_url}/auth/login", data=form, headers=auth_headers()
        )


def auth_headers() -> dict[str, str]:
    """The headers of the SDK's own login and refresh requests."""
    return {"Accept": "application/json", "User-Agent": user_agent()}
