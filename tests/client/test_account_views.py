"""Several accounts through one client, and errors that carry their context."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from teletracker_async import (
    AccountMismatchError,
    APIConnectionError,
    AuthenticationError,
    IntegratorAuth,
    NotFoundError,
    RateLimitError,
    TeletrackerAuth,
    TeletrackerBasicAuth,
    TeletrackerClient,
)
from teletracker_async.testing import FakeClock, FakeTeletracker
from tests.conftest import BASE_URL, PASSWORD, USERNAME, bearer_auth_class

pytestmark = pytest.mark.anyio

DAY = ("2026-01-01", "2026-01-01")


async def _no_sleep(_: float) -> None:
    await anyio.lowlevel.checkpoint()


@pytest.fixture
async def client(
    fake: FakeTeletracker, clock: FakeClock, stack: str
) -> AsyncIterator[TeletrackerClient]:
    """A client for account 1, on each HTTP stack."""
    auth = bearer_auth_class(stack)(
        USERNAME, PASSWORD, account_id=1, base_url=BASE_URL, clock=clock
    )
    transport = fake.transport(stack=stack)  # type: ignore[call-overload]
    async with TeletrackerClient(auth=auth, transport=transport, sleep=_no_sleep) as c:
        yield c


# -- a session belongs to one account ----------------------------------------------


async def test_another_accounts_id_is_refused_before_sending(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """call_data(account_id=2) on account 1's session fails at once, naming the way
    out; nothing is sent, no refresh is burnt."""
    await client.session()
    calls = [
        client.call_data(*DAY, account_id=2),
        client.request_json("GET", "/reports/call-data", params={"account_id": 2}),
    ]
    for call in calls:
        with pytest.raises(AccountMismatchError, match="for_account") as info:
            await call
        assert "switch_account(2)" in str(info.value)
        assert (info.value.session_account_id, info.value.account_id) == (1, 2)
        assert isinstance(info.value, ValueError)
    with pytest.raises(AccountMismatchError):
        client.stream_call_data(*DAY, account_id=2)
    with pytest.raises(AccountMismatchError):
        await anext(client.iter_call_data(*DAY, account_id=2))
    assert fake.stats.data_requests == 0
    assert fake.stats.refreshes == 0
    assert await client.call_data(*DAY, account_id=1)  # its own account is fine


async def test_the_account_the_server_reports_is_checked_too(clock: FakeClock) -> None:
    """Logged in without account_id: the account the login answer names is the
    session's, and another one is refused."""
    fake = FakeTeletracker(
        users={USERNAME: (PASSWORD, [3, 4])}, clock=clock, account_id_in_answers=True
    )
    async with TeletrackerClient(
        USERNAME, PASSWORD, base_url=BASE_URL, transport=fake.transport()
    ) as client:
        session = await client.session()
        assert session.account_id == 3
        assert session.extra["accountId"] == 3
        with pytest.raises(AccountMismatchError, match="belongs to account 3"):
            await client.call_data(*DAY, account_id=4)


@pytest.mark.parametrize("reported", ["3", True, -1, None])
async def test_an_odd_account_in_the_answer_is_ignored(
    clock: FakeClock, reported: Any
) -> None:
    """accountId is taken only as a positive int; anything else stays in extra only."""
    fake = FakeTeletracker(users={USERNAME: (PASSWORD, [3])}, clock=clock)
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    body = {
        "success": True,
        "guid": "g",
        "token": "t-1",
        "tokenExpiration": "2026-01-01T00:00:00+00:00",
        "tokenLifetime": 3600,
        "refreshToken": "r-1",
        "accountId": reported,
    }
    fake.fail_next("login", 200, body=body)
    async with TeletrackerClient(auth=auth, transport=fake.transport()) as client:
        session = await client.session()
    assert session.account_id is None
    assert session.extra["accountId"] == reported


async def test_for_account_gives_each_account_its_own_session(
    fake: FakeTeletracker, clock: FakeClock, stack: str
) -> None:
    """50 accounts, 4 requests each, at once, through one client and one pool: one
    login per account, every record from the account asked for."""
    fake.add_user("puller", "pw-puller", list(range(1, 51)))
    auth = bearer_auth_class(stack)(
        "puller", "pw-puller", base_url=BASE_URL, clock=clock
    )
    transport = fake.transport(stack=stack)  # type: ignore[call-overload]
    async with TeletrackerClient(auth=auth, transport=transport) as client:
        seen: dict[int, set[int]] = {}

        async def pull(account: int) -> None:
            view = client.for_account(account)
            records = await view.call_data(*DAY)
            seen.setdefault(account, set()).update(r["account_id"] for r in records)

        async with anyio.create_task_group() as tg:
            for account in range(1, 51):
                for _ in range(4):
                    tg.start_soon(pull, account)
        assert seen == {account: {account} for account in range(1, 51)}
        assert fake.stats.logins == 50
        view = client.for_account(7)
        assert view is client.for_account(7)  # cached per account
        assert view.http is client.http
        assert view.auth is not client.auth
        assert view.auth.account_id == 7
        assert "view_of_account=7" in repr(view)
        assert (await view.session()).account_id == 7
        assert fake.stats.logins == 50  # its session was there already
        assert client.with_options(max_retries=5).for_account(8).max_retries == 5
        assert client.for_account(8).max_retries == 2  # the cached view: the client's
        faster = client.with_options(max_retries=0).for_account(7)
        assert faster is not view
        assert (faster.auth, faster.max_retries) == (view.auth, 0)
        with pytest.raises(TypeError, match="account 7 only"):
            await view.switch_account(8)
        with pytest.raises(AccountMismatchError):
            await view.call_data(*DAY, account_id=8)
        with pytest.raises(TypeError, match="not None"):
            client.for_account(None)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="positive"):
            client.for_account(0)
    with pytest.raises(RuntimeError, match="closed"):
        await view.call_data(*DAY)
    with pytest.raises(RuntimeError, match="closed"):
        client.for_account(9)


async def test_basic_and_integrator_views_send_their_account(
    fake: FakeTeletracker,
) -> None:
    """Basic and Integrator carry account_id per request: a view sends its own, and
    a call may name any account (the server decides)."""
    fake.add_user("partner", "pw-partner", [1, 2], integrator=True)
    for auth in (
        TeletrackerBasicAuth(USERNAME, PASSWORD, account_id=1, base_url=BASE_URL),
        IntegratorAuth("partner", "pw-partner", account_id=1, base_url=BASE_URL),
    ):
        async with TeletrackerClient(auth=auth, transport=fake.transport()) as client:
            two = client.for_account(2)
            assert type(two.auth) is type(auth)
            assert {r["account_id"] for r in await two.call_data(*DAY)} == {2}
            assert {r["account_id"] for r in await client.call_data(*DAY)} == {1}
            other = await client.call_data(*DAY, account_id=2)
            assert {r["account_id"] for r in other} == {2}


# -- errors with context ---------------------------------------------------------------


async def test_api_errors_keep_a_redacted_request_and_response(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """A refusal keeps method, URL, status and headers; no token, no body."""
    session = await client.session()
    fake.fail_next("data", 404, headers={"X-Request-Id": "r-42", "Set-Cookie": "s=1"})
    with pytest.raises(NotFoundError) as info:
        await client.call_data(*DAY)
    error = info.value
    assert error.request is not None
    assert error.response is not None
    assert error.request.method == "GET"
    assert error.request.url.path == "/reports/call-data"
    assert error.request.url.params["start_date"] == "2026-01-01"
    assert error.request.headers["authorization"] == "<redacted>"
    assert error.response.status_code == 404
    assert error.response.headers["x-request-id"] == "r-42"
    assert error.response.headers["set-cookie"] == "<redacted>"
    assert error.response.content == b""
    assert error.request.content == b""
    everything = repr(vars(error)) + repr(error.request.headers) + str(error)
    assert session.token not in everything
    assert session.token not in repr(error.response.headers)


async def test_rate_limit_message_says_when_to_come_back(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """A 429 beyond what the client waits for names its Retry-After."""
    fake.fail_next("data", 429, headers={"Retry-After": "120"})
    with pytest.raises(RateLimitError) as info:
        await client.call_data(*DAY)
    assert "retry after 120 s" in str(info.value)
    assert info.value.response is not None
    assert info.value.response.headers["retry-after"] == "120"


async def test_a_refused_login_keeps_its_request_without_the_password(
    fake: FakeTeletracker, stack: str
) -> None:
    """The login's refusal names POST /auth/login; neither password nor form kept."""
    auth = bearer_auth_class(stack)(USERNAME, "wrong-pw-123", base_url=BASE_URL)
    transport = fake.transport(stack=stack)  # type: ignore[call-overload]
    async with TeletrackerClient(auth=auth, transport=transport) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.call_data(*DAY)
    error = info.value
    assert error.request is not None
    assert error.response is not None
    assert (error.request.method, error.request.url.path) == ("POST", "/auth/login")
    assert error.request.content == b""
    assert error.response.status_code == 401
    assert "wrong-pw-123" not in repr(vars(error)) + repr(error.request.headers)


async def test_connection_errors_name_the_host(fake: FakeTeletracker) -> None:
    """No answer: the message and .host name the host that could not be reached."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with TeletrackerClient(
        USERNAME,
        PASSWORD,
        base_url="https://reports.example.test:8443",
        transport=httpx.MockTransport(refuse),
        max_retries=0,
    ) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.call_data(*DAY)
    assert info.value.host == "reports.example.test"
    assert "at reports.example.test:8443 (/auth/login in front of it)" in str(
        info.value
    )
