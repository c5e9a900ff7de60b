"""An OAuth2-shaped door in front of the fake, so that OAuth2 clients (authlib,
httpx-auth) can be measured against the same sessions as ours.

``POST /oauth/token`` with ``grant_type=password`` is the fake's login and
``grant_type=refresh_token`` its refresh (same rotation, reuse detection, faults and
counters: the request goes through :meth:`FakeTeletracker.handle`); answers carry
``access_token``, ``expires_in`` and ``refresh_token``, errors
``{"error": "invalid_grant"}``. Every other request reaches the fake unchanged.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import attrs

from teletracker_async.testing import FakeRequest, FakeResponse, FakeTeletracker
from teletracker_async.testing._doors import serve_asgi, serving

__all__ = ["oauth_serving"]

_GRANTS = {"password": "/auth/login", "refresh_token": "/auth/refresh"}


async def _token(fake: FakeTeletracker, request: FakeRequest) -> FakeResponse:
    form = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
    path = _GRANTS.get(form.get("grant_type", ""))
    if path is None:
        return FakeResponse.json({"error": "unsupported_grant_type"}, 400)
    answer = await fake.handle(attrs.evolve(request, path=path))
    try:
        body = json.loads(answer.body)
    except ValueError:
        return answer  # a garbled answer stays garbled
    if answer.status != 200 or "token" not in body:
        return FakeResponse.json(
            {"error": "invalid_grant", "error_description": body.get("message")},
            400 if answer.status < 500 else answer.status,
        )
    return FakeResponse.json(
        {
            "access_token": body["token"],
            "token_type": "Bearer",
            "expires_in": body["tokenLifetime"],
            "refresh_token": body["refreshToken"],
        }
    )


@contextlib.contextmanager
def oauth_serving(fake: FakeTeletracker) -> Iterator[str]:
    """Serve *fake* with the OAuth2 door on a free loopback port; yield its URL."""

    async def handler(request: FakeRequest) -> FakeResponse:
        if (request.method, request.path.rstrip("/")) == ("POST", "/oauth/token"):
            return await _token(fake, request)
        return await fake.handle(request)

    async def app(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        await serve_asgi(handler, scope, receive, send)

    with serving(app) as url:
        yield url
