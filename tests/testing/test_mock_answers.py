"""login_answer, refresh_answer and error_answer: the documented answers, ready for
respx, pytest-httpx or httpx.MockTransport, and accepted by the SDK as real ones."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from teletracker_async import (
    AuthenticationError,
    BadRequestError,
    RateLimitError,
    TeletrackerClient,
)
from teletracker_async.testing import (
    FakeTeletracker,
    error_answer,
    login_answer,
    refresh_answer,
)
from tests.conftest import PASSWORD, USERNAME

pytestmark = pytest.mark.anyio

BASE_URL = "https://api.teletracker.test"
LOGIN = f"{BASE_URL}/auth/login"
REFRESH = f"{BASE_URL}/auth/refresh"
DATA = f"{BASE_URL}/reports/call-data"
DAY = "2026-11-26"
NO_RECORDS = httpx.Response(200, json={"success": True, "data": []})
TOKEN_ANSWERS = [login_answer, refresh_answer]

#: The documented keys of a login or refresh answer (TELETRACKER_API.md).
DOCUMENTED_KEYS = {
    "success",
    "guid",
    "token",
    "tokenExpiration",
    "tokenLifetime",
    "refreshToken",
    "refreshTokenExpiration",
}


def body(response: httpx.Response) -> dict[str, Any]:
    payload = json.loads(response.content)
    assert isinstance(payload, dict)
    return payload


def refresh_token_sent(request: httpx.Request) -> str:
    return parse_qs(request.content.decode())["refresh_token"][0]


@pytest.mark.parametrize("answer", TOKEN_ANSWERS)
def test_a_token_answer_has_the_documented_shape_and_defaults(
    answer: Callable[..., httpx.Response],
) -> None:
    """By default: HTTP 200, JSON, the documented keys only, a one-hour token and a
    30-day refresh token, stamped with the current wall time."""
    before = datetime.now(timezone.utc).replace(microsecond=0)
    response = answer()
    after = datetime.now(timezone.utc)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    payload = body(response)
    assert set(payload) == DOCUMENTED_KEYS
    assert payload["success"] is True
    assert payload["tokenLifetime"] == 3600
    expires = datetime.fromisoformat(payload["tokenExpiration"])
    assert before + timedelta(hours=1) <= expires <= after + timedelta(hours=1)
    refresh_expires = datetime.fromisoformat(payload["refreshTokenExpiration"])
    assert refresh_expires - expires == timedelta(days=30) - timedelta(hours=1)


@pytest.mark.parametrize("answer", TOKEN_ANSWERS)
def test_each_token_answer_carries_fresh_random_tokens(
    answer: Callable[..., httpx.Response],
) -> None:
    """Two calls never share a token, a refresh token or a session id."""
    first, second = body(answer()), body(answer())
    for key in ("token", "refreshToken", "guid"):
        assert first[key] != second[key]
    assert first["token"] != first["refreshToken"]


def test_a_token_answer_says_what_it_is_given() -> None:
    """Tokens, id, lifetimes, account and issue time are written as the API does:
    whole seconds as an integer, timestamps to the second with their offset."""
    issued = datetime(2018, 4, 1, 20, 39, 12, 900, tzinfo=timezone.utc)
    payload = body(
        login_answer(
            token="t1",
            refresh_token="r1",
            lifetime=90,
            refresh_lifetime=86400,
            guid="g-1",
            account_id=7,
            issued_at=issued,
        )
    )
    assert payload == {
        "success": True,
        "guid": "g-1",
        "token": "t1",
        "tokenExpiration": "2018-04-01T20:40:42+00:00",
        "tokenLifetime": 90,
        "refreshToken": "r1",
        "refreshTokenExpiration": "2018-04-02T20:39:12+00:00",
        "accountId": 7,
    }
    assert body(refresh_answer(lifetime=1.5))["tokenLifetime"] == 1.5


async def test_a_token_answer_has_the_fakes_own_shape(fake: FakeTeletracker) -> None:
    """The kit and the fake build their answers with one definition: same keys, same
    formats."""
    async with httpx.AsyncClient(transport=fake.transport(), base_url=BASE_URL) as c:
        served = await c.post(
            "/auth/login", data={"username": USERNAME, "password": PASSWORD}
        )
    assert served.status_code == 200
    kit = body(login_answer())
    assert set(body(served)) == set(kit)
    assert served.headers["content-type"] == login_answer().headers["content-type"]
    for key in ("tokenExpiration", "refreshTokenExpiration"):
        assert len(body(served)[key]) == len(kit[key])


@pytest.mark.parametrize("answer", TOKEN_ANSWERS)
@pytest.mark.parametrize(
    ("arguments", "error", "words"),
    [
        ({"lifetime": 0}, ValueError, "lifetime must be a positive"),
        ({"lifetime": -5}, ValueError, "lifetime must be a positive"),
        ({"lifetime": math.inf}, ValueError, "lifetime must be a positive"),
        ({"lifetime": math.nan}, ValueError, "lifetime must be a positive"),
        ({"lifetime": "3600"}, TypeError, "lifetime must be a number of seconds"),
        ({"lifetime": True}, TypeError, "lifetime must be a number of seconds"),
        ({"refresh_lifetime": 0}, ValueError, "refresh_lifetime must be a positive"),
        ({"lifetime": 1e12}, ValueError, "expiration past the year 9999"),
        ({"refresh_lifetime": 1e12}, ValueError, "expiration past the year 9999"),
        (
            {"issued_at": datetime.max.replace(tzinfo=timezone.utc)},
            ValueError,
            "expiration past the year 9999",
        ),
        ({"token": ""}, ValueError, "token must be"),
        ({"token": "two words"}, ValueError, "token must be"),
        ({"token": "t\u00e9"}, ValueError, "token must be"),
        ({"token": b"t1"}, TypeError, "token must be a str"),
        ({"refresh_token": "r\n1"}, ValueError, "refresh_token must be"),
        ({"refresh_token": 1}, TypeError, "refresh_token must be a str"),
        ({"guid": ""}, ValueError, "guid must be"),
        ({"account_id": 0}, ValueError, "account_id must be a positive"),
        ({"account_id": True}, TypeError, "account_id must be an int"),
        ({"account_id": "7"}, TypeError, "account_id must be an int"),
        ({"issued_at": datetime(2026, 1, 1)}, ValueError, "timezone"),  # noqa: DTZ001
        ({"issued_at": "2026-01-01"}, TypeError, "issued_at must be a datetime"),
    ],
)
def test_a_token_answer_refuses_bad_arguments_saying_which(
    answer: Callable[..., httpx.Response],
    arguments: dict[str, Any],
    error: type[Exception],
    words: str,
) -> None:
    """A bad argument is a TypeError or ValueError naming it, raised at once."""
    with pytest.raises(error, match=words):
        answer(**arguments)


def test_a_refused_token_is_never_quoted() -> None:
    """The message says what is wrong with a token, never what the token is."""
    with pytest.raises(ValueError, match="token must be") as caught:
        login_answer(token="s3cret token")
    assert "s3cret" not in str(caught.value)


def test_an_error_answer_is_the_apis_refusal() -> None:
    """``success: false`` with the message, on the status asked for, as JSON."""
    response = error_answer(401, "Token expired")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert body(response) == {"success": False, "message": "Token expired"}


def test_an_error_answer_says_its_status_by_default() -> None:
    """Without a message, the status's own phrase is the message."""
    assert body(error_answer(403))["message"] == "Forbidden"
    assert body(error_answer(599))["message"] == "Error"


def test_an_error_answer_lists_missing_variables_and_asks_to_wait() -> None:
    """A 400 may list the missing variables; any error may carry ``Retry-After``."""
    missing = error_answer(
        400, "Missing required variables: end_date", missing=["end_date"]
    )
    assert body(missing)["missing"] == ["end_date"]
    assert error_answer(429, retry_after=3).headers["retry-after"] == "3"
    assert "retry-after" not in error_answer(429).headers


@pytest.mark.parametrize(
    ("arguments", "error", "words"),
    [
        (
            {"status": 200},
            ValueError,
            r"status must be an error status \(400-599\), got 200",
        ),
        ({"status": 302}, ValueError, "got 302"),
        ({"status": 600}, ValueError, "got 600"),
        ({"status": "401"}, TypeError, "status must be an int"),
        ({"status": True}, TypeError, "status must be an int"),
        ({"status": 401, "message": 5}, TypeError, "message must be a str"),
        ({"status": 401, "missing": ["x"]}, ValueError, "missing goes with status 400"),
        ({"status": 400, "missing": "end_date"}, TypeError, "missing must be a list"),
        ({"status": 400, "missing": [""]}, ValueError, "missing must be a list"),
        ({"status": 429, "retry_after": -1}, ValueError, "retry_after must be"),
        ({"status": 429, "retry_after": 1.5}, TypeError, "retry_after must be"),
    ],
)
def test_an_error_answer_refuses_bad_arguments_saying_which(
    arguments: dict[str, Any], error: type[Exception], words: str
) -> None:
    """A success status, a mistyped argument or a misplaced option is refused."""
    with pytest.raises(error, match=words):
        error_answer(**arguments)


# -- the SDK accepts them as the API's own ---------------------------------------------


async def test_a_client_logs_in_with_a_login_answer_through_respx() -> None:
    """The SDK logs in on a login_answer and sends its token."""
    with respx.mock(assert_all_called=True) as mock:
        mock.post(LOGIN) % login_answer(token="t1", account_id=3)
        data = mock.get(DATA) % NO_RECORDS
        async with TeletrackerClient(USERNAME, PASSWORD, base_url=BASE_URL) as client:
            assert await client.call_data(DAY, DAY) == []
            session = await client.session()
    assert data.calls.last.request.headers["authorization"] == "Bearer t1"
    assert (session.token_lifetime, session.account_id) == (3600, 3)


async def test_a_refresh_answer_rotates_the_refresh_token() -> None:
    """Each refresh sends the refresh token the previous answer gave: r1, then r2."""
    with respx.mock(assert_all_called=True) as mock:
        mock.post(LOGIN) % login_answer(token="t1", refresh_token="r1")
        refresh = mock.post(REFRESH).mock(
            side_effect=[
                refresh_answer(token="t2", refresh_token="r2"),
                refresh_answer(token="t3", refresh_token="r3"),
            ]
        )
        mock.get(DATA).mock(
            side_effect=[error_answer(401), NO_RECORDS] * 2,
        )
        async with TeletrackerClient(USERNAME, PASSWORD, base_url=BASE_URL) as client:
            await client.call_data(DAY, DAY)
            await client.call_data(DAY, DAY)
            session = await client.session()
    assert [refresh_token_sent(c.request) for c in refresh.calls] == ["r1", "r2"]
    assert (session.token, session.refresh_token) == ("t3", "r3")


@pytest.mark.parametrize("status", [401, 403])
async def test_an_error_answer_on_a_data_call_costs_one_renewal_and_one_retry(
    status: int,
) -> None:
    """A refused token is renewed once (a refresh) and the call retried with the new
    token; the caller sees only the records."""
    with respx.mock(assert_all_called=True) as mock:
        mock.post(LOGIN) % login_answer(token="t1")
        refresh = mock.post(REFRESH) % refresh_answer(token="t2")
        data = mock.get(DATA).mock(side_effect=[error_answer(status), NO_RECORDS])
        async with TeletrackerClient(USERNAME, PASSWORD, base_url=BASE_URL) as client:
            assert await client.call_data(DAY, DAY) == []
    assert refresh.call_count == 1
    assert [c.request.headers["authorization"] for c in data.calls] == [
        "Bearer t1",
        "Bearer t2",
    ]


async def test_the_sdk_reads_what_an_error_answer_carries() -> None:
    """Its message, ``missing`` and ``Retry-After`` reach the typed errors."""
    with respx.mock() as mock:
        mock.post(LOGIN) % login_answer()
        mock.get(DATA).mock(
            side_effect=[
                error_answer(400, "Missing required variables: x", missing=["x"]),
                error_answer(429, retry_after=7),
            ]
        )
        async with TeletrackerClient(
            USERNAME, PASSWORD, base_url=BASE_URL, max_retries=0
        ) as client:
            with pytest.raises(BadRequestError) as bad:
                await client.call_data(DAY, DAY)
            with pytest.raises(RateLimitError) as limited:
                await client.call_data(DAY, DAY)
    assert bad.value.missing == ("x",)
    assert "Missing required variables: x" in str(bad.value)
    assert limited.value.retry_after == 7


async def test_an_error_answer_on_login_is_a_refused_login() -> None:
    """error_answer(401) on the login is the SDK's AuthenticationError."""
    with respx.mock() as mock:
        mock.post(LOGIN) % error_answer(401, "Invalid username or password")
        async with TeletrackerClient(USERNAME, PASSWORD, base_url=BASE_URL) as client:
            with pytest.raises(AuthenticationError):
                await client.call_data(DAY, DAY)


async def test_the_answers_serve_an_httpx_mock_transport() -> None:
    """A handler for httpx.MockTransport, handed to the client, returns them as
    they are."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/login":
            return login_answer(token="t1")
        assert request.headers["authorization"] == "Bearer t1"
        return NO_RECORDS

    async with TeletrackerClient(
        USERNAME, PASSWORD, base_url=BASE_URL, transport=httpx.MockTransport(handler)
    ) as client:
        assert await client.call_data(DAY, DAY) == []
