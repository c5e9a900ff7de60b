"""The client the SDK builds keeps no cookie from an answer; yours keeps its jar."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from teletracker_async import TeletrackerClient
from teletracker_async.testing import FakeTeletracker
from tests.conftest import BASE_URL, PASSWORD, USERNAME, bearer_auth_class

pytestmark = pytest.mark.anyio

DAY = {"start_date": "2026-01-01", "end_date": "2026-01-01"}


def cookie_setting(
    fake: FakeTeletracker, stack: str
) -> tuple[Any, list[tuple[str, str | None]]]:
    """The fake's transport, every answer setting a cookie; and the path and
    ``Cookie`` header of each request it got, in order."""
    module = importlib.import_module(stack)
    inner = fake.transport(stack=stack)  # type: ignore[call-overload]
    sent: list[tuple[str, str | None]] = []

    class SettingCookies(module.AsyncBaseTransport):  # type: ignore[misc, name-defined]
        async def handle_async_request(self, request: Any) -> Any:
            sent.append((request.url.path, request.headers.get("cookie")))
            response = await inner.handle_async_request(request)
            response.headers["set-cookie"] = "sid=from-an-answer; Path=/"
            return response

    return SettingCookies(), sent


async def test_no_cookie_from_an_answer_is_sent_again(stack: str) -> None:
    """Login, then requests of two accounts' views: none carries the cookie an
    answer set (one client serves every account's view, and the API is bearer)."""
    fake = FakeTeletracker(users={USERNAME: (PASSWORD, [7, 8])})
    transport, sent = cookie_setting(fake, stack)
    auth = bearer_auth_class(stack)(USERNAME, PASSWORD, base_url=BASE_URL)
    async with TeletrackerClient(auth=auth, transport=transport) as client:
        await client.request_json("GET", "/reports/call-data", params=DAY)
        await client.for_account(7).request_json(
            "GET", "/reports/call-data", params=DAY
        )
        await client.request_json("GET", "/reports/call-data", params=DAY)
        assert list(client.http.cookies.jar) == []
    assert len(sent) >= 4  # the logins and the three calls
    assert [cookie for _, cookie in sent] == [None] * len(sent)


async def test_cookies_you_give_are_sent(stack: str) -> None:
    """``cookies=`` and ``client.http.cookies = ...`` go on every call, and an
    answer's cookie does not join them. (A login is built by the auth, not the
    client: no client's cookie goes on it, as with plain httpx.)"""
    fake = FakeTeletracker(users={USERNAME: PASSWORD})
    transport, sent = cookie_setting(fake, stack)
    auth = bearer_auth_class(stack)(USERNAME, PASSWORD, base_url=BASE_URL)
    async with TeletrackerClient(
        auth=auth, transport=transport, cookies={"pref": "compact"}
    ) as client:
        await client.request_json("GET", "/reports/call-data", params=DAY)
        await client.request_json("GET", "/reports/call-data", params=DAY)
        given = len(sent)
        client.http.cookies = {"pref": "wide"}
        await client.request_json("GET", "/reports/call-data", params=DAY)
    calls = [cookie for path, cookie in sent if path == "/reports/call-data"]
    assert calls == ["pref=compact", "pref=compact", "pref=wide"]
    assert given == 3  # the login, then two calls


async def test_your_own_http_client_keeps_its_jar(stack: str) -> None:
    """An ``http_client`` you pass is yours: the SDK does not change its jar."""
    module = importlib.import_module(stack)
    fake = FakeTeletracker(users={USERNAME: PASSWORD})
    transport, sent = cookie_setting(fake, stack)
    auth = bearer_auth_class(stack)(USERNAME, PASSWORD, base_url=BASE_URL)
    async with (
        module.AsyncClient(auth=auth, transport=transport) as http,
        TeletrackerClient(auth=auth, http_client=http) as client,
    ):
        await client.request_json("GET", "/reports/call-data", params=DAY)
        await client.request_json("GET", "/reports/call-data", params=DAY)
    assert sent[0] == ("/auth/login", None)
    assert sent[-1] == ("/reports/call-data", "sid=from-an-answer")


def test_the_clients_own_http_is_still_the_stacks_client(stack: str) -> None:
    """What the client builds is an instance of the stack's ``AsyncClient``."""
    module = importlib.import_module(stack)
    auth = bearer_auth_class(stack)(USERNAME, PASSWORD, base_url=BASE_URL)
    client = TeletrackerClient(auth=auth)
    assert isinstance(client.http, module.AsyncClient)
    assert type(client.http).__name__ == "AsyncClient"
