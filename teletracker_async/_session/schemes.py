"""The two stateless schemes the API accepts besides bearer sessions."""

from __future__ import annotations

import base64
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import httpx

from teletracker_async._config import DEFAULT_BASE_URL
from teletracker_async._http import HTTPX
from teletracker_async._secrets import (
    Credentials,
    Secret,
    check_account_id,
    secret_password,
)

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "BasicScheme",
    "IntegratorAuth",
    "IntegratorScheme",
    "TeletrackerBasicAuth",
]


class _HeaderAuth(Credentials):
    """Sets one precomputed header and an ``account_id`` query parameter.

    Written once for every stack; each adapter adds its stack's ``Auth`` base."""

    _scheme = ""

    def __init__(
        self, username: str, password: Secret, account_id: int | None, base_url: str
    ) -> None:
        self._set_credentials(username, password, account_id, base_url)
        pair = f"{self._username}:{self._password.get()}".encode()
        self._header = Secret(f"{self._scheme} {base64.b64encode(pair).decode()}")

    def auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        """Add the header, and ``account_id`` unless the request names one.

        Raises:
            OriginMismatchError: *request* is for another origin than ``base_url``.
        """
        self._check_origin(request.url)
        request.headers["Authorization"] = self._header.get()
        if self._account_id is not None and "account_id" not in request.url.params:
            request.url = request.url.copy_add_param(
                "account_id", str(self._account_id)
            )
        yield request

    def for_account(self, account_id: int) -> Self:
        """A new auth with these credentials that sends *account_id*.

        Raises:
            TypeError, ValueError: A bad account id.
        """
        return type(self)(
            self._username,
            self._password.get(),  # type: ignore[arg-type]
            account_id=account_id,
            base_url=self._base_url,
        )

    def use_account(self, account_id: int | None) -> None:
        """Send *account_id* with later requests (``TeletrackerClient.switch_account``).

        Raises:
            TypeError, ValueError: A bad account id.
        """
        self._account_id = check_account_id(account_id)


class BasicScheme(_HeaderAuth):
    """``Authorization: Basic`` on every request; no session, nothing to renew.

    Users who can reach several accounts should pass ``account_id``: the API
    documentation warns that without it the API may act on any of their accounts.
    It is added to the query string of every request that does not name one.
    Works with ``httpx.Client`` and ``httpx.AsyncClient``. The header goes only to
    ``base_url``'s origin.

    Raises:
        TypeError, ValueError: A bad username, password, account_id or base_url.
    """

    _scheme = "Basic"

    def __init__(
        self,
        username: str,
        password: str,
        *,
        account_id: int | None = None,
        base_url: str = DEFAULT_BASE_URL,
    ) -> None:
        secret = secret_password(password)
        del password  # no frame that may raise holds it
        super().__init__(username, secret, account_id, base_url)


class IntegratorScheme(_HeaderAuth):
    """``Authorization: Integrator`` for partners who reach many accounts.

    ``account_id`` is required by the API on every request, so it is required here,
    and added to the query string of every request that does not name one. The
    header goes only to ``base_url``'s origin.

    Raises:
        TypeError: account_id is missing or not an int.
        ValueError: A bad username, password, account_id or base_url.
    """

    _scheme = "Integrator"

    def __init__(
        self,
        username: str,
        password: str,
        *,
        account_id: int,
        base_url: str = DEFAULT_BASE_URL,
    ) -> None:
        secret = secret_password(password)
        del password  # no frame that may raise holds it
        if account_id is None:
            raise TypeError(
                "IntegratorAuth needs account_id: the API requires it on every request"
            )
        super().__init__(username, secret, account_id, base_url)

    def use_account(self, account_id: int | None) -> None:
        if account_id is None:
            raise TypeError("IntegratorAuth needs an account_id")
        super().use_account(account_id)


class TeletrackerBasicAuth(BasicScheme, httpx.Auth):
    __doc__ = BasicScheme.__doc__
    _stack = HTTPX

    if TYPE_CHECKING:  # the flow is written once (typed Any): here, in httpx's types

        def auth_flow(
            self, request: httpx.Request
        ) -> Generator[httpx.Request, httpx.Response, None]: ...


class IntegratorAuth(IntegratorScheme, httpx.Auth):
    __doc__ = IntegratorScheme.__doc__
    _stack = HTTPX

    if TYPE_CHECKING:  # the flow is written once (typed Any): here, in httpx's types

        def auth_flow(
            self, request: httpx.Request
        ) -> Generator[httpx.Request, httpx.Response, None]: ...
