"""Testing code that uses teletracker_async with respx: login, a 401, a rotation."""

import httpx
import pytest
import respx

from teletracker_async import TeletrackerClient
from teletracker_async.testing import error_answer, login_answer, refresh_answer

BASE_URL = "https://api.teletracker.test"
DAY = "2026-11-26"
NO_CALLS = httpx.Response(200, json={"success": True, "data": []})

# respx_mock is respx's own fixture; the marker gives its routes a base URL.
pytestmark = [pytest.mark.anyio, pytest.mark.respx(base_url=BASE_URL)]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)  # respx works under both


def client() -> TeletrackerClient:
    return TeletrackerClient("ada", "secret", base_url=BASE_URL)


async def test_login_then_the_token_on_each_call(respx_mock: respx.MockRouter) -> None:
    respx_mock.post("/auth/login") % login_answer(token="t1")
    data = respx_mock.get("/reports/call-data") % NO_CALLS

    async with client() as teletracker:
        assert await teletracker.call_data(DAY, DAY) == []

    assert data.calls.last.request.headers["Authorization"] == "Bearer t1"


async def test_a_401_costs_one_refresh_and_one_retry(
    respx_mock: respx.MockRouter,
) -> None:
    respx_mock.post("/auth/login") % login_answer(token="t1")
    refresh = respx_mock.post("/auth/refresh") % refresh_answer(token="t2")
    data = respx_mock.get("/reports/call-data").mock(
        side_effect=[error_answer(401, "Token expired"), NO_CALLS]
    )

    async with client() as teletracker:
        assert await teletracker.call_data(DAY, DAY) == []

    assert refresh.call_count == 1
    sent = [call.request.headers["Authorization"] for call in data.calls]
    assert sent == ["Bearer t1", "Bearer t2"]


async def test_each_refresh_sends_the_last_refresh_token(
    respx_mock: respx.MockRouter,
) -> None:
    respx_mock.post("/auth/login") % login_answer(refresh_token="r1")
    refresh = respx_mock.post("/auth/refresh").mock(
        side_effect=[refresh_answer(refresh_token="r2"), refresh_answer()]
    )
    respx_mock.get("/reports/call-data").mock(
        side_effect=[error_answer(401), NO_CALLS] * 2
    )

    async with client() as teletracker:
        await teletracker.call_data(DAY, DAY)  # 401: refresh with r1
        await teletracker.call_data(DAY, DAY)  # 401: refresh with r2

    sent = [call.request.content for call in refresh.calls]
    assert sent == [b"refresh_token=r1", b"refresh_token=r2"]
