"""Testing code that uses teletracker_async with pytest-httpx: login, a 401, a
rotation."""

import pytest
from pytest_httpx import HTTPXMock

from teletracker_async import TeletrackerClient
from teletracker_async.testing import error_answer, login_answer, refresh_answer

BASE_URL = "https://api.teletracker.test"
LOGIN = f"{BASE_URL}/auth/login"
REFRESH = f"{BASE_URL}/auth/refresh"
DAY = "2026-11-26"
NO_CALLS = {"success": True, "data": []}

# httpx_mock is pytest-httpx's own fixture: at teardown it fails the test if a
# response was not requested, or a request had no response.
pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)  # pytest-httpx works under both


def client() -> TeletrackerClient:
    return TeletrackerClient("ada", "secret", base_url=BASE_URL)


async def test_login_then_the_token_on_each_call(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_callback(lambda _: login_answer(token="t1"), url=LOGIN)
    httpx_mock.add_response(
        method="GET", match_headers={"Authorization": "Bearer t1"}, json=NO_CALLS
    )

    async with client() as teletracker:
        assert await teletracker.call_data(DAY, DAY) == []


async def test_a_401_costs_one_refresh_and_one_retry(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_callback(lambda _: login_answer(token="t1"), url=LOGIN)
    httpx_mock.add_callback(
        lambda _: error_answer(401, "Token expired"),
        method="GET",
        match_headers={"Authorization": "Bearer t1"},
    )
    httpx_mock.add_callback(lambda _: refresh_answer(token="t2"), url=REFRESH)
    httpx_mock.add_response(
        method="GET", match_headers={"Authorization": "Bearer t2"}, json=NO_CALLS
    )

    async with client() as teletracker:
        assert await teletracker.call_data(DAY, DAY) == []


async def test_each_refresh_sends_the_last_refresh_token(
    httpx_mock: HTTPXMock,
) -> None:
    httpx_mock.add_callback(lambda _: login_answer(refresh_token="r1"), url=LOGIN)
    httpx_mock.add_callback(
        lambda _: refresh_answer(refresh_token="r2"),
        url=REFRESH,
        match_content=b"refresh_token=r1",
    )
    httpx_mock.add_callback(
        lambda _: refresh_answer(), url=REFRESH, match_content=b"refresh_token=r2"
    )
    for _ in range(2):  # each call: 401, then the retry's records
        httpx_mock.add_callback(lambda _: error_answer(401), method="GET")
        httpx_mock.add_response(method="GET", json=NO_CALLS)

    async with client() as teletracker:
        await teletracker.call_data(DAY, DAY)  # 401: refresh with r1
        await teletracker.call_data(DAY, DAY)  # 401: refresh with r2
