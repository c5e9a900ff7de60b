"""TeletrackerClient against FakeTeletracker: errors, retries, reports, accounts."""

from __future__ import annotations

import base64
import email.utils
import json
import time
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

import anyio
import httpx
import pytest

from teletracker_async import (
    DEFAULT_LIMITS,
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    IntegratorAuth,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TeletrackerAuth,
    TeletrackerBasicAuth,
    TeletrackerClient,
)
from teletracker_async.testing import Endpoint, FakeClock, FakeTeletracker
from tests.conftest import BASE_URL, PASSWORD, USERNAME, bearer_auth_class

pytestmark = pytest.mark.anyio

DAY = {"start_date": "2026-01-01", "end_date": "2026-01-01"}


class Sleeps:
    """An injectable sleep that records what it was asked and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await anyio.lowlevel.checkpoint()


class Flaky(httpx.AsyncBaseTransport):
    """Raises *error* for the first *times* requests, then defers to *inner*."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, error: type[Exception], times: int
    ) -> None:
        self.inner, self.error, self.times, self.sent = inner, error, times, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        if self.times > 0:
            self.times -= 1
            raise self.error("simulated", request=request)  # type: ignore[call-arg]
        return await self.inner.handle_async_request(request)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def client(
    fake: FakeTeletracker, clock: FakeClock, sleeps: Sleeps, stack: str
) -> AsyncIterator[TeletrackerClient]:
    """A client on the fake, on each HTTP stack (httpx, httpx2)."""
    auth = bearer_auth_class(stack)(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    transport = fake.transport(stack=stack)  # type: ignore[call-overload]
    async with TeletrackerClient(auth=auth, transport=transport, sleep=sleeps) as c:
        yield c


# -- construction -------------------------------------------------------------------


async def test_credentials_build_a_bearer_auth(fake: FakeTeletracker) -> None:
    """username/password build a TeletrackerAuth on the client's base URL."""
    async with TeletrackerClient(
        USERNAME, PASSWORD, account_id=2, base_url=BASE_URL, transport=fake.transport()
    ) as client:
        assert isinstance(client.auth, TeletrackerAuth)
        assert client.auth.base_url == BASE_URL
        assert client.auth.account_id == 2
        assert client.http.auth is client.auth
        assert client.http.timeout.pool is None
        records = await client.call_data("2026-01-01", "2026-01-01")
    assert {r["account_id"] for r in records} == {2}
    assert PASSWORD not in repr(client)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, TypeError, "needs username and password"),
        ({"username": "u"}, TypeError, "needs username and password"),
        (
            {"username": "u", "password": "p", "auth": TeletrackerBasicAuth("u", "p")},
            TypeError,
            "not both",
        ),
        (
            {"auth": TeletrackerBasicAuth("u", "p"), "account_id": 3},
            TypeError,
            "not both",
        ),
        ({"auth": httpx.BasicAuth("u", "p")}, TypeError, "auth must be"),
        (
            {"auth": TeletrackerAuth("u", "p"), "base_url": "https://elsewhere.test"},
            ValueError,
            "differs",
        ),
        ({"username": "u", "password": "p", "max_retries": -1}, ValueError, ">= 0"),
        ({"username": "u", "password": "p", "max_retries": 1.5}, TypeError, "int"),
        (
            {"username": "u", "password": "p", "base_url": "nope"},
            ValueError,
            "base_url",
        ),
        (
            {"username": "u", "password": "p", "base_url": "https://a.test "},
            ValueError,
            "base_url must not hold white space",
        ),
        (
            {
                "username": "u",
                "password": "p",
                "limits": httpx.Limits(max_connections=0),
            },
            ValueError,
            "limits.max_connections must be at least 1",
        ),
        (
            {"username": "u", "password": "p", "limits": {"max_connections": 3}},
            TypeError,
            "limits must be an httpx.Limits",
        ),
        (
            {"username": "u", "password": "p", "sleep": 0.5},
            TypeError,
            "sleep must be a coroutine function",
        ),
    ],
)
def test_bad_construction(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Exactly one of credentials or auth, and sane settings, or a clear error."""
    with pytest.raises(error, match=match):
        TeletrackerClient(**kwargs)


async def test_auth_base_url_is_the_clients(fake: FakeTeletracker) -> None:
    """With auth=TeletrackerAuth, the client talks to the auth's base URL."""
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url="http://127.0.0.1:9/")
    client = TeletrackerClient(auth=auth, transport=fake.transport())
    assert str(client.http.base_url) == "http://127.0.0.1:9"
    await client.aclose()
    assert client.http.is_closed


# -- request_json and errors ------------------------------------------------------------


async def test_request_json_returns_the_body(client: TeletrackerClient) -> None:
    """A 2xx with success: true comes back decoded."""
    body = await client.request_json("get", "/reports/call-data", params=DAY)
    assert body["success"] is True
    assert len(body["data"]) == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, APIError),
        (500, ServerError),
    ],
)
async def test_error_statuses_raise_typed_errors(
    client: TeletrackerClient, fake: FakeTeletracker, status: int, error: type[APIError]
) -> None:
    """Each error status raises its exception with status, message and body."""
    await client.session()
    fake.fail_next(
        "data", status, times=3, body={"success": False, "message": "no way"}
    )
    with pytest.raises(error) as info:
        await client.request_json("GET", "/reports/call-data", params=DAY)
    assert type(info.value) is error
    assert info.value.status_code == status
    assert "no way" in str(info.value)
    assert info.value.body == {"success": False, "message": "no way"}


async def test_bad_request_names_missing_variables(client: TeletrackerClient) -> None:
    """The fake's 400 for missing dates surfaces as BadRequestError.missing."""
    with pytest.raises(BadRequestError) as info:
        await client.request_json("GET", "/reports/call-data")
    assert info.value.missing == ("start_date", "end_date")
    assert "Missing required variables" in info.value.message


async def test_not_found_from_the_fake(client: TeletrackerClient) -> None:
    """An unknown path is a NotFoundError."""
    with pytest.raises(NotFoundError):
        await client.request_json("GET", "/nope")


async def test_success_false_on_200_is_an_api_error(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """success: false with status 200 is a refusal, not data."""
    await client.session()
    fake.fail_next("data", 200, body={"success": False, "message": "quota used up"})
    with pytest.raises(APIError, match="quota used up") as info:
        await client.request_json("GET", "/reports/call-data", params=DAY)
    assert info.value.status_code == 200


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"<html>maintenance</html>", "HTML, not JSON"),
        (b'"just a string"', "not a JSON object but str"),
        (b'{"data": []}', "success: missing"),
        # The success path is checked by hand: only a real true passes it.
        (b'{"success": 1, "data": []}', "success: expected true or false, got int"),
        (b'{"success": "true", "data": []}', "expected true or false, got str"),
    ],
)
async def test_unreadable_answers(
    client: TeletrackerClient, fake: FakeTeletracker, content: bytes, match: str
) -> None:
    """A 200 that is not a JSON object with success is a ResponseFormatError."""
    await client.session()
    fake.garble_next("data", content)
    with pytest.raises(ResponseFormatError, match=match):
        await client.request_json("GET", "/reports/call-data", params=DAY)


@pytest.mark.parametrize(
    ("error", "raised"),
    [(httpx.ReadTimeout, APITimeoutError), (httpx.ReadError, APIConnectionError)],
)
async def test_transport_failures_are_wrapped(
    fake: FakeTeletracker, error: type[Exception], raised: type[Exception]
) -> None:
    """Transport failures become APIConnectionError; timeouts APITimeoutError."""
    flaky = Flaky(fake.transport(), error, times=100)
    async with TeletrackerClient(
        auth=TeletrackerBasicAuth(USERNAME, PASSWORD),
        transport=flaky,
        sleep=Sleeps(),
    ) as client:
        with pytest.raises(raised, match="no answer from Teletracker") as info:
            await client.request_json("GET", "/reports/call-data", params=DAY)
    assert type(info.value) is raised
    assert isinstance(info.value.__cause__, error)
    assert flaky.sent == 3  # the first try and two retries


# -- retries ----------------------------------------------------------------------------


async def test_retries_then_succeeds_with_jittered_backoff(
    client: TeletrackerClient, fake: FakeTeletracker, sleeps: Sleeps
) -> None:
    """Two 503s then success: two waits, each within the full-jitter bound."""
    await client.session()
    fake.fail_next("data", 503, times=2)
    body = await client.request_json("GET", "/reports/call-data", params=DAY)
    assert body["success"] is True
    assert len(sleeps.calls) == 2
    assert 0 <= sleeps.calls[0] <= 0.5
    assert 0 <= sleeps.calls[1] <= 1.0


async def test_retries_stop_at_the_limit(
    client: TeletrackerClient, fake: FakeTeletracker, sleeps: Sleeps
) -> None:
    """max_retries=2: three tries, then the last error."""
    await client.session()
    fake.fail_next("data", 502, times=5)
    with pytest.raises(ServerError) as info:
        await client.request_json("GET", "/reports/call-data", params=DAY)
    assert info.value.status_code == 502
    assert len(sleeps.calls) == 2
    assert fake.stats.injected_faults == 3


async def test_retry_after_seconds_and_dates_are_honoured(
    client: TeletrackerClient, fake: FakeTeletracker, sleeps: Sleeps
) -> None:
    """Retry-After in seconds, then as an HTTP date, sets the waits."""
    await client.session()
    fake.fail_next("data", 429, headers={"retry-after": "2"})
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    fake.fail_next("data", 503, headers={"retry-after": when})
    await client.request_json("GET", "/reports/call-data", params=DAY)
    assert sleeps.calls[0] == 2.0
    assert 28 <= sleeps.calls[1] <= 30


async def test_long_retry_after_is_not_slept_through(
    client: TeletrackerClient, fake: FakeTeletracker, sleeps: Sleeps
) -> None:
    """A Retry-After beyond the cap raises at once, with the wait on the error."""
    await client.session()
    fake.fail_next("data", 429, headers={"retry-after": "300"})
    with pytest.raises(RateLimitError) as info:
        await client.request_json("GET", "/reports/call-data", params=DAY)
    assert info.value.retry_after == 300
    assert sleeps.calls == []


async def test_max_retries_zero_turns_retries_off(fake: FakeTeletracker) -> None:
    """With max_retries=0 the first failure is final."""
    sleeps = Sleeps()
    async with TeletrackerClient(
        USERNAME,
        PASSWORD,
        base_url=BASE_URL,
        transport=fake.transport(),
        max_retries=0,
        sleep=sleeps,
    ) as client:
        fake.fail_next("data", 503)
        with pytest.raises(ServerError):
            await client.call_data("2026-01-01", "2026-01-01")
    assert sleeps.calls == []


async def test_post_is_never_silently_repeated(
    client: TeletrackerClient, fake: FakeTeletracker, sleeps: Sleeps
) -> None:
    """A POST that got 503 or lost its connection is not sent again by default."""
    await client.session()
    fake.fail_next("data", 503, times=3)
    with pytest.raises(ServerError):
        await client.request_json("POST", "/echo", data={"note": "once"})
    assert fake.stats.injected_faults == 1
    fake.reset_stats()
    fake._faults["data"].clear()
    fake.drop_next("data", times=3)
    with pytest.raises(APIConnectionError):
        await client.request_json("POST", "/echo", data={"note": "once"})
    assert fake.stats.injected_faults == 1
    assert sleeps.calls == []


async def test_post_retries_when_the_caller_opts_in(
    client: TeletrackerClient, fake: FakeTeletracker, sleeps: Sleeps
) -> None:
    """idempotent=True lets a POST retry like a GET."""
    await client.session()
    fake.drop_next("data")
    fake.fail_next("data", 504)
    body = await client.request_json("POST", "/echo", json={"n": 1}, idempotent=True)
    assert json.loads(body["data"]) == {"n": 1}
    assert len(sleeps.calls) == 2


async def test_get_retries_a_dropped_connection(
    client: TeletrackerClient, fake: FakeTeletracker, sleeps: Sleeps
) -> None:
    """A GET whose connection dropped is retried."""
    await client.session()
    fake.drop_next("data")
    assert (await client.request_json("GET", "/reports/call-data", params=DAY))[
        "success"
    ]
    assert len(sleeps.calls) == 1


async def test_unsent_post_may_be_retried(fake: FakeTeletracker) -> None:
    """A connect error proves the POST never left: retrying it repeats nothing."""
    flaky = Flaky(fake.transport(), httpx.ConnectError, times=1)
    sleeps = Sleeps()
    async with TeletrackerClient(
        auth=TeletrackerBasicAuth(USERNAME, PASSWORD), transport=flaky, sleep=sleeps
    ) as client:
        body = await client.request_json("POST", "/echo", data={"a": "1"})
    assert body["data"] == "a=1"
    assert flaky.sent == 2
    assert len(sleeps.calls) == 1


async def test_failed_login_is_retried_for_any_method(
    client: TeletrackerClient, fake: FakeTeletracker, sleeps: Sleeps
) -> None:
    """A 503 on the login means the request never went out: even a POST retries."""
    fake.fail_next("login", 503)
    body = await client.request_json("POST", "/echo", data={"x": "1"})
    assert body["success"] is True
    assert len(sleeps.calls) == 1
    assert fake.stats.logins == 1


async def test_refused_login_is_not_retried(
    fake: FakeTeletracker, sleeps: Sleeps
) -> None:
    """Bad credentials fail at once, without retries."""
    async with TeletrackerClient(
        USERNAME, "wrong", base_url=BASE_URL, transport=fake.transport(), sleep=sleeps
    ) as client:
        with pytest.raises(AuthenticationError):
            await client.call_data("2026-01-01", "2026-01-02")
    assert sleeps.calls == []
    assert fake.stats.failed_logins == 1


# -- call data ---------------------------------------------------------------------------


async def test_call_data_takes_dates_or_strings(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """date objects and ISO strings give the same records, in order."""
    by_date = await client.call_data(date(2026, 1, 1), date(2026, 1, 3))
    by_str = await client.call_data("2026-01-01", "2026-01-03")
    assert by_date == by_str
    expected = [r for d in range(3) for r in fake.records_for(1, date(2026, 1, 1 + d))]
    assert by_date == expected
    other = await client.call_data("2026-01-01", "2026-01-01", account_id=1)
    assert other == expected[:2]


@pytest.mark.parametrize(
    ("start", "end", "error", "match"),
    [
        ("2026-01-02", "2026-01-01", ValueError, "before start_date"),
        ("2026-13-01", "2026-01-01", ValueError, "start_date must be YYYY-MM-DD"),
        ("2026-01-01", 20260102, TypeError, "end_date must be a datetime.date"),
        (
            datetime(2026, 1, 1, tzinfo=timezone.utc),
            "2026-01-02",
            TypeError,
            "not a datetime",
        ),
    ],
)
async def test_bad_ranges_fail_before_any_request(
    client: TeletrackerClient,
    fake: FakeTeletracker,
    start: Any,
    end: Any,
    error: type[Exception],
    match: str,
) -> None:
    """Reversed or malformed dates raise before the SDK even logs in."""
    with pytest.raises(error, match=match):
        await client.call_data(start, end)
    with pytest.raises(error, match=match):
        async for _ in client.iter_call_data(start, end):
            pass  # pragma: no cover
    assert fake.stats.logins == 0


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (
            b'{"success": true, "data": {"a": 1}}',
            "data: expected a list of records, got dict",
        ),
        (b'{"success": true, "data": [{}, 5]}', "data: record 1 is int, not an object"),
        (b'{"success": true}', "data: missing"),
    ],
)
async def test_call_data_envelope_is_checked(
    client: TeletrackerClient, fake: FakeTeletracker, payload: bytes, match: str
) -> None:
    """data must be a list of objects; the error names the field."""
    await client.session()
    fake.garble_next("data", payload)
    with pytest.raises(ResponseFormatError, match=match):
        await client.call_data("2026-01-01", "2026-01-01")


async def test_iter_call_data_keeps_date_order(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """Thirty days fetched four windows at a time come out in date order."""
    start = date(2026, 3, 1)
    records = [
        r
        async for r in client.iter_call_data(
            start, start + timedelta(days=29), concurrency=4
        )
    ]
    expected = [
        r for d in range(30) for r in fake.records_for(1, start + timedelta(days=d))
    ]
    assert records == expected
    weekly = [
        r
        async for r in client.iter_call_data(
            start, start + timedelta(days=29), window_days=7
        )
    ]
    assert weekly == expected
    assert fake.stats.data_requests == 30 + 5


async def test_iter_call_data_surfaces_the_first_error_and_cancels(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """One window of a batch fails: the windows after it are cancelled at once
    (nothing left waiting at the server for them), those before it finish and
    their records come out first, then the error. Which window fails is whichever
    request arrives fourth, so the test reads it off the server."""
    await client.session()
    gate = fake.pause_next("data", times=3)  # three windows hang at the server
    fake.fail_next("data", 404)  # the fourth to arrive fails
    got: list[Any] = []
    records = client.iter_call_data("2026-01-01", "2026-01-04", concurrency=4)

    async def drain() -> None:
        async for record in records:
            got.append(record)  # noqa: PERF401 - as they come, up to the error

    async def pull() -> None:
        with pytest.raises(NotFoundError):
            await drain()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(pull)
            while not any(r.status == 404 for r in fake.requests):  # noqa: ASYNC110
                await anyio.sleep(0.001)  # polling the fake's log is the point
            await anyio.wait_all_tasks_blocked()
            failed = next(r for r in fake.requests if r.status == 404)
            before = (date.fromisoformat(failed.query["start_date"]).day) - 1
            assert gate.waiting == before  # the windows after it were cancelled
            gate.release()  # the windows before it finish
    assert len(got) == before * fake.records_per_day
    assert gate.waiting == 0


async def test_iter_call_data_can_be_abandoned(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """Breaking out early leaves no request running and fetches no further batch."""
    records = client.iter_call_data("2026-01-01", "2026-12-31", concurrency=8)
    count = 0
    async for _ in records:
        count += 1
        if count == 3:
            break
    await records.aclose()  # type: ignore[attr-defined]
    assert count == 3
    assert fake.stats.data_requests == 8  # the first batch only, of 365 days


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"window_days": 0}, ValueError), ({"concurrency": True}, TypeError)],
)
async def test_iter_call_data_checks_its_knobs(
    client: TeletrackerClient, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    """window_days and concurrency must be positive ints."""
    with pytest.raises(error):
        async for _ in client.iter_call_data("2026-01-01", "2026-01-02", **kwargs):
            pass  # pragma: no cover


# -- session, verify, switch --------------------------------------------------------------


async def test_session_is_single_flight_with_requests(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """session() and 500 concurrent requests share one login."""
    gate = fake.pause_next("login")
    sessions = []

    async def ask() -> None:
        sessions.append(await client.session())

    async with anyio.create_task_group() as tg:
        for _ in range(250):
            tg.start_soon(ask)
            tg.start_soon(client.call_data, "2026-01-01", "2026-01-01")
        await gate.arrived.wait()
        await anyio.wait_all_tasks_blocked()
        gate.release()
    assert fake.stats.logins == 1
    assert len({s.guid for s in sessions}) == 1


async def test_session_refreshes_when_due(
    client: TeletrackerClient, fake: FakeTeletracker, clock: FakeClock
) -> None:
    """Past expiry, session() refreshes once; an unreachable server is wrapped."""
    first = await client.session()
    clock.advance(3600)
    second = await client.session()
    assert second.guid == first.guid
    assert second.token != first.token
    assert fake.stats.refreshes == 1
    clock.advance(3600)
    fake.drop_next("refresh")
    with pytest.raises(APIConnectionError):
        await client.session()
    assert (await client.session()).guid != first.guid  # spent token: a login


async def test_session_needs_a_bearer_auth(fake: FakeTeletracker) -> None:
    """Basic auth has no session: a clear TypeError."""
    async with TeletrackerClient(
        auth=TeletrackerBasicAuth("u", "p"), transport=fake.transport()
    ) as client:
        with pytest.raises(TypeError, match="TeletrackerAuth"):
            await client.session()


async def test_verify_credentials(fake: FakeTeletracker) -> None:
    """True when accepted, False on 401, an error otherwise; never a session."""
    async with TeletrackerClient(
        USERNAME, PASSWORD, base_url=BASE_URL, transport=fake.transport()
    ) as good:
        assert await good.verify_credentials() is True
    async with TeletrackerClient(
        USERNAME, "nope", base_url=BASE_URL, transport=fake.transport()
    ) as bad:
        assert await bad.verify_credentials() is False
    async with TeletrackerClient(
        USERNAME, PASSWORD, account_id=99, base_url=BASE_URL, transport=fake.transport()
    ) as elsewhere:
        with pytest.raises(
            AuthenticationError, match="cannot access account 99"
        ) as info:
            await elsewhere.verify_credentials()
    assert PASSWORD not in str(info.value)
    async with TeletrackerClient(
        auth=TeletrackerBasicAuth(USERNAME, PASSWORD), transport=fake.transport()
    ) as basic:
        assert await basic.verify_credentials() is True
    assert fake.stats.auth_only_checks == 2  # the accepted ones
    assert fake.stats.logins == 0
    assert fake.live_sessions == 0


async def test_verify_credentials_server_error(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """A 500 on the check is raised, with the password scrubbed from the message."""
    fake.fail_next(
        "login", 500, times=3, body={"success": False, "message": f"echo {PASSWORD}"}
    )
    with pytest.raises(ServerError) as info:
        await client.verify_credentials()
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in repr(info.value.body)


async def test_switch_account_under_load(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """Requests in flight finish on the old account; later ones use the new one."""

    async def echo() -> int:
        body = await client.request_json("POST", "/echo", data={"x": "1"})
        return int(body["account_id"])

    await client.session()
    accounts: list[int] = []
    # A pool's worth of requests are held at the server carrying the old token; the
    # rest wait for a connection slot, so they have no token yet.
    pool = DEFAULT_LIMITS.max_connections
    assert pool is not None
    gate = fake.pause_next("data", times=pool)
    async with anyio.create_task_group() as tg:
        for _ in range(300):
            tg.start_soon(lambda: _append(accounts, echo()))
        await gate.arrived.wait()
        await client.switch_account(2)
        gate.release()
    after = [await echo() for _ in range(5)]
    assert sorted(accounts) == [1] * pool + [2] * (300 - pool)
    assert after == [2] * 5
    assert client.auth.account_id == 2
    assert fake.stats.logins == 2
    with pytest.raises(AuthenticationError, match="cannot access account 7"):
        await client.switch_account(7)
    assert client.auth.account_id == 2  # a refused switch changes nothing
    assert await echo() == 2


async def _append(into: list[int], value: Any) -> None:
    into.append(await value)


# -- Basic and Integrator ------------------------------------------------------------------


async def test_basic_auth_sends_header_and_account(fake: FakeTeletracker) -> None:
    """Basic sends the header and account_id on every request; switching moves it."""
    seen: list[httpx.Request] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(request)

    auth = TeletrackerBasicAuth(USERNAME, PASSWORD, account_id=2)
    async with TeletrackerClient(
        auth=auth, transport=fake.transport(), event_hooks={"request": [hook]}
    ) as client:
        assert (await client.request_json("POST", "/echo"))["account_id"] == 2
        records = await client.call_data("2026-01-01", "2026-01-01", account_id=1)
        await client.switch_account(1)
        assert (await client.request_json("POST", "/echo"))["account_id"] == 1
    expected = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    assert seen[0].headers["authorization"] == f"Basic {expected}"
    assert seen[0].url.params["account_id"] == "2"
    assert seen[1].url.params.get_list("account_id") == ["1"]  # the caller's wins
    assert {r["account_id"] for r in records} == {1}
    assert PASSWORD not in repr(auth)
    assert repr(auth) == (
        "TeletrackerBasicAuth(username='ada', account_id=1, "
        "base_url='https://api.teletracker.net')"
    )
    assert auth.username == USERNAME


def test_basic_auth_works_with_a_sync_client() -> None:
    """The stateless schemes work with httpx.Client too."""
    auth = TeletrackerBasicAuth("u", "p", base_url="https://x")

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=request.headers["authorization"])

    with httpx.Client(transport=httpx.MockTransport(answer), auth=auth) as c:
        assert c.get("https://x/").text == "Basic dTpw"


async def test_integrator_auth(fake: FakeTeletracker) -> None:
    """Integrator needs account_id; the fake accepts integrators only."""
    fake.add_user("partner", "partner-pw", [5, 6], integrator=True)
    with pytest.raises(TypeError, match="needs account_id"):
        IntegratorAuth("partner", "partner-pw", account_id=None)  # type: ignore[arg-type]
    auth = IntegratorAuth("partner", "partner-pw", account_id=6)
    async with TeletrackerClient(auth=auth, transport=fake.transport()) as client:
        assert (await client.request_json("POST", "/echo"))["account_id"] == 6
        with pytest.raises(TypeError, match="needs an account_id"):
            await client.switch_account(None)
        await client.switch_account(5)
        assert (await client.request_json("POST", "/echo"))["account_id"] == 5
    plain = IntegratorAuth(USERNAME, PASSWORD, account_id=1)
    async with TeletrackerClient(auth=plain, transport=fake.transport()) as client:
        with pytest.raises(PermissionDeniedError, match="not an integrator"):
            await client.request_json("POST", "/echo")
    assert "partner-pw" not in repr(auth)


async def test_integrator_without_account_id_is_refused_by_the_fake(
    fake: FakeTeletracker,
) -> None:
    """The fake enforces the documented rule, for users' own clients."""
    fake.add_user("partner", "partner-pw", [5], integrator=True)
    header = base64.b64encode(b"partner:partner-pw").decode()
    async with httpx.AsyncClient(transport=fake.transport()) as raw:
        response = await raw.post(
            f"{BASE_URL}/echo", headers={"authorization": f"Integrator {header}"}
        )
        garbled = await raw.post(
            f"{BASE_URL}/echo", headers={"authorization": "Basic !!!"}
        )
    assert response.status_code == 400
    assert response.json()["missing"] == ["account_id"]
    assert garbled.status_code == 401


# -- answers that cannot be read ---------------------------------------------------------


class BadGzip(httpx.AsyncBaseTransport):
    """Answers the next request to *path* with a body that says gzip and is not."""

    def __init__(self, inner: httpx.AsyncBaseTransport, path: str) -> None:
        self.inner = inner
        self.path = path
        self.armed = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.armed and request.url.path == self.path:
            self.armed = False
            return httpx.Response(
                200,
                headers={
                    "Content-Encoding": "gzip",
                    "Content-Type": "application/json",
                },
                content=b"this is not gzip",
            )
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize("path", ["/auth/login", "/auth/refresh", "/reports/call-data"])
async def test_undecodable_bodies_are_response_format_errors(
    clock: FakeClock, fake: FakeTeletracker, path: str
) -> None:
    """A body whose Content-Encoding lies raises ResponseFormatError on login,
    refresh, data calls and report pulls, never httpx.DecodingError or a group."""
    transport = BadGzip(fake.transport(), path)
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    async with TeletrackerClient(auth=auth, transport=transport) as client:

        async def arm() -> None:
            transport.armed = True
            if path == "/auth/refresh":  # a fresh session, then its refresh is due
                await client.session()
                clock.advance(3600)

        await arm()
        with pytest.raises(ResponseFormatError, match="could not be decoded"):
            await client.call_data("2026-01-01", "2026-01-01")
        await arm()
        with pytest.raises(ResponseFormatError, match="could not be decoded"):
            async for _ in client.iter_call_data("2026-01-01", "2026-01-03"):
                pass
        assert await client.call_data("2026-01-01", "2026-01-01")  # and then it works


# httpx's aread leaves its inner async generators unclosed when decoding fails
# mid-stream; trio reports them when they are collected. httpx's, not ours.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_undecodable_refusal_comes_back_and_the_next_request_renews(
    clock: FakeClock, fake: FakeTeletracker
) -> None:
    """A 401 whose body cannot be decoded cannot be retried (httpx reads it again):
    it comes back as a ResponseFormatError, and the next request renews first."""

    class BadGzip401(httpx.AsyncBaseTransport):
        armed = False

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if self.armed and request.url.path == "/echo":
                self.armed = False
                return httpx.Response(
                    401,
                    headers={"Content-Encoding": "gzip"},
                    stream=httpx.ByteStream(b"this is not gzip"),
                )
            return await fake.transport().handle_async_request(request)

    transport = BadGzip401()
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    async with TeletrackerClient(auth=auth, transport=transport) as client:
        await client.request_json("POST", "/echo")
        transport.armed = True
        with pytest.raises(ResponseFormatError, match="could not be decoded"):
            await client.request_json("POST", "/echo")
        assert fake.stats.refreshes == 0
        await client.request_json("POST", "/echo")
    assert fake.stats.refreshes == 1
    assert fake.stats.reuse_attempts == 0


@pytest.mark.parametrize("endpoint", ["login", "data"])
async def test_hostile_json_is_a_response_format_error(
    client: TeletrackerClient, fake: FakeTeletracker, endpoint: Endpoint
) -> None:
    """100 000 nested brackets raise ResponseFormatError, not RecursionError."""
    if endpoint == "data":
        await client.session()
    fake.garble_next(endpoint, b"[" * 100_000)
    with pytest.raises(ResponseFormatError, match="nested too deeply"):
        await client.call_data("2026-01-01", "2026-01-01")
    fake.garble_next(endpoint, b"[" * 100_000, status=500)
    with pytest.raises(ServerError):
        await client.call_data("2026-01-01", "2026-01-01")


async def test_post_is_retried_when_the_refresh_in_front_was_lost(
    clock: FakeClock, fake: FakeTeletracker
) -> None:
    """A transport failure on the refresh in front of a POST means the POST never
    left: it is retried (with a login, as the lost refresh token counts as spent)."""
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    async with TeletrackerClient(
        auth=auth, transport=fake.transport(), sleep=sleep
    ) as client:
        await client.session()
        clock.advance(3600)
        fake.drop_next("refresh")
        body = await client.request_json("POST", "/echo", data={"n": "1"})
    assert body["data"] == "n=1"
    assert len(sleeps) == 1
    assert (fake.stats.logins, fake.stats.injected_faults) == (2, 1)
    assert fake.stats.reuse_attempts == 0


async def test_a_cancelled_queued_request_never_wedges_the_queue() -> None:
    """A request queued for a connection is cancelled just as the connection frees
    up and another request arrives: the newcomer still gets the connection. (anyio
    before 4.14 left the cancelled waiter queued on asyncio, and the queue - and
    httpcore's pool lock, the same code - deadlocked: a `call-data | head` hung.)"""
    async with TeletrackerClient(
        USERNAME,
        PASSWORD,
        base_url=BASE_URL,
        limits=httpx.Limits(max_connections=1),
    ) as client:
        queue = client._path.link.queue
        assert queue is not None
        slots = queue.slots  # the queue in front of the pool
        assert slots is not None
        await slots.acquire()  # the one connection is busy
        scopes: list[anyio.CancelScope] = []
        served: list[str] = []

        async def cancelled() -> None:
            with anyio.CancelScope() as scope:
                scopes.append(scope)
                await slots.acquire()
                served.append("cancelled")  # pragma: no cover - it is cancelled

        async def newcomer() -> None:
            async with slots:
                served.append("newcomer")

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(cancelled)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(newcomer)
                scopes[0].cancel()
                slots.release()
        assert served == ["newcomer"]
