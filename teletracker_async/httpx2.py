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

import httpx2
from teletracker_async._http import httpx2_stack
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


class TeletrackerBasicAuth(BasicScheme, httpx2.Auth):
    __doc__ = BasicScheme.__doc__
    _stack = _STACK


class IntegratorAuth(IntegratorScheme, httpx2.Auth):
    __doc__ = IntegratorScheme.__doc__
    _stack = _STACK
