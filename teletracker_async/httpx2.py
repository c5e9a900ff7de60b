"""The SDK's auth classes for httpx2, the maintained fork of httpx.

Needs the ``httpx2`` extra (``pip install 'teletracker-async[httpx2]'``, Python >= 3.11).
The classes behave exactly as their httpx twins in ``teletracker_async``: they share
one implementation of the flow and differ only in the module whose types they use::

    import httpx2
    from teletracker_async.httpx2 import TeletrackerAuth

    auth = TeletrackerAuth("ada@example.com", "s3cret")
    async with httpx2.AsyncClient(auth=auth, base_url=auth.base_url) as client:
        ...

``TeletrackerAuth.sharing(auth)`` makes an httpx2 auth that shares the session of an
httpx ``TeletrackerAuth`` (and the other way round): one login and one refresh per
expiry for both stacks.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING

import httpx2
from teletracker_async._http import httpx2_stack
from teletracker_async._models import AuthSession
from teletracker_async._session.flow import BearerFlow
from teletracker_async._session.flow import TeletrackerAuth as _HttpxTeletrackerAuth
from teletracker_async._session.schemes import BasicScheme, IntegratorScheme

__all__ = ["IntegratorAuth", "TeletrackerAuth", "TeletrackerBasicAuth"]

_STACK = httpx2_stack()


class TeletrackerAuth(BearerFlow, httpx2.Auth):
    __doc__ = (_HttpxTeletrackerAuth.__doc__ or "").replace("httpx.", "httpx2.")
    _stack = _STACK
    requires_request_body = False
    requires_response_body = False

    if TYPE_CHECKING:  # the flow is written once (typed Any): here, in httpx2's types

        def sync_auth_flow(
            self, request: httpx2.Request
        ) -> Generator[httpx2.Request, httpx2.Response, None]: ...
        def async_auth_flow(
            self, request: httpx2.Request
        ) -> AsyncGenerator[httpx2.Request, httpx2.Response]: ...
        async def ensure_session(
            self, send: Callable[[httpx2.Request], Awaitable[httpx2.Response]]
        ) -> AuthSession: ...
        async def switch_account(
            self,
            account_id: int | None,
            send: Callable[[httpx2.Request], Awaitable[httpx2.Response]],
        ) -> AuthSession: ...


class TeletrackerBasicAuth(BasicScheme, httpx2.Auth):
    __doc__ = BasicScheme.__doc__
    _stack = _STACK

    if TYPE_CHECKING:  # the flow is written once (typed Any): here, in httpx2's types

        def auth_flow(
            self, request: httpx2.Request
        ) -> Generator[httpx2.Request, httpx2.Response, None]: ...


class IntegratorAuth(IntegratorScheme, httpx2.Auth):
    __doc__ = IntegratorScheme.__doc__
    _stack = _STACK

    if TYPE_CHECKING:  # the flow is written once (typed Any): here, in httpx2's types

        def auth_flow(
            self, request: httpx2.Request
        ) -> Generator[httpx2.Request, httpx2.Response, None]: ...
