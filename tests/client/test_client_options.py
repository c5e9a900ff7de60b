"""Client settings: pool and per-call timeouts, total deadlines, with_options views,
configuration from the environment, the User-Agent, checked httpx options, one loop."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

import teletracker_async
from teletracker_async import (
    APITimeoutError,
    RateLimitError,
    Retry,
    ServerError,
    TeletrackerAuth,
    TeletrackerClient,
)
from teletracker_async.testing import FakeClock, FakeTeletracker
from tests.conftest import BASE_URL, PASSWORD, USERNAME, bearer_auth_class

pytestmark = pytest.mark.anyio

DAY = ("2026-01-01", "2026-01-01")
ENV = (
    "TELETRACKER_USERNAME",
    "TELETRACKER_PASSWORD",
    "TELETRACKER_ACCOUNT_ID",
    "TELETRACKER_BASE_URL",
)


class Sleeps:
    """An injectable sleep that records what it was asked and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await anyio.lowlevel.checkpoint()


class Recording(httpx.AsyncBaseTransport):
    """Keeps every request it passes on to *inner*."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return await self.inner.handle_async_request(request)


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_client(
    fake: FakeTeletracker, clock: FakeClock, stack: str, **options: Any
) -> TeletrackerClient:
    auth = bearer_auth_class(stack)(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    transport = options.pop("transport", None) or fake.transport(stack=stack)  # type: ignore[call-overload]
    return TeletrackerClient(auth=auth, transport=transport, **options)


@pytest.fixture
async def client(
    fake: FakeTeletracker, clock: FakeClock, sleeps: Sleeps, stack: str
) -> AsyncIterator[TeletrackerClient]:
    async with make_client(fake, clock, stack, sleep=sleeps) as c:
        yield c


# -- the pool timeout ---------------------------------------------------------------


async def test_pool_timeout_is_honoured_in_the_clients_queue(
    fake: FakeTeletracker, clock: FakeClock, stack: str
) -> None:
    """2 connections, pool=0.05 s, two requests held at the server, six callers:
    the four queued raise APITimeoutError (not retried); the two held succeed."""
    http = importlib.import_module(stack)
    limits = http.Limits(max_connections=2)
    async with make_client(
        fake,
        clock,
        stack,
        limits=limits,
        timeout=http.Timeout(10, pool=0.05),
        sleep=Sleeps(),
    ) as client:
        await client.session()
        gate = fake.pause_next("data", times=2)
        outcomes: list[str] = []
        timed_out = anyio.Event()

        async def call() -> None:
            try:
                await client.call_data(*DAY)
            except APITimeoutError as exc:
                outcomes.append(str(exc))
                if len(outcomes) - outcomes.count("ok") == 4:
                    timed_out.set()
            else:
                outcomes.append("ok")

        with anyio.fail_after(60):  # a guard against a hang, not a measurement
            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(call)
                await timed_out.wait()
                gate.release()
    assert outcomes.count("ok") == 2
    errors = [o for o in outcomes if o != "ok"]
    assert len(errors) == 4
    assert all("timeout.pool=0.05 s" in e and "nothing was sent" in e for e in errors)
    assert fake.stats.data_requests == 2  # the four never left


async def test_without_a_pool_timeout_queued_callers_wait(
    fake: FakeTeletracker, clock: FakeClock
) -> None:
    """The default (no pool timeout): 300 callers on 2 connections all finish."""
    async with make_client(
        fake, clock, "httpx", limits=httpx.Limits(max_connections=2)
    ) as client:
        await client.session()
        gate = fake.pause_next("data", times=2)
        done: list[int] = []

        async def call() -> None:
            done.append(len(await client.call_data(*DAY)))

        async with anyio.create_task_group() as tg:
            for _ in range(300):
                tg.start_soon(call)
            await gate.arrived.wait()
            await anyio.wait_all_tasks_blocked()
            gate.release()
    assert done == [2] * 300


# -- per-call timeouts and deadlines ------------------------------------------------


async def test_per_call_timeout_reaches_the_request(
    fake: FakeTeletracker, clock: FakeClock
) -> None:
    """timeout= on a call, and with_options(timeout=...), set the request's timeouts;
    without them the client's apply."""
    recording = Recording(fake.transport())
    async with make_client(
        fake, clock, "httpx", transport=recording, timeout=httpx.Timeout(20)
    ) as client:
        await client.call_data(*DAY)
        await client.call_data(*DAY, timeout=3.5)
        await client.request_json(
            "GET",
            "/reports/call-data",
            params=dict(zip(("start_date", "end_date"), DAY, strict=True)),
            timeout=None,
        )
        await client.with_options(timeout=httpx.Timeout(7, read=70)).call_data(*DAY)
    data = [r for r in recording.seen if r.url.path == "/reports/call-data"]
    reads = [r.extensions["timeout"]["read"] for r in data]
    assert reads == [20, 3.5, None, 70]


def _slow(_: Any) -> float:
    return 3600.0


async def test_total_timeout_bounds_a_call_and_its_retries(
    client: TeletrackerClient, fake: FakeTeletracker
) -> None:
    """A call that hangs ends at its total deadline with APITimeoutError; the request
    at the server is cancelled."""
    await client.session()
    fake.set_latency("data", _slow)
    with pytest.raises(APITimeoutError, match=r"total_timeout=0\.05 s") as info:
        await client.with_options(total_timeout=0.05).call_data(*DAY)
    assert info.value.host == "api.teletracker.test"
    assert fake.requests[-1].status is None  # cancelled, not answered


async def test_a_retry_that_cannot_finish_in_time_is_not_waited_for(
    client: TeletrackerClient, fake: FakeTeletracker, sleeps: Sleeps
) -> None:
    """A Retry-After beyond the deadline: the 429 is raised at once, not slept on."""
    await client.session()
    fake.fail_next("data", 429, times=3, headers={"Retry-After": "30"})
    bounded = client.with_options(total_timeout=5)
    with pytest.raises(RateLimitError, match="retry after 30 s") as info:
        await bounded.call_data(*DAY)
    assert info.value.retry_after == 30
    assert sleeps.calls == []
    assert await client.call_data(*DAY)  # without a deadline it waits and retries
    assert sleeps.calls == [30.0, 30.0]


async def test_with_options_shares_pool_and_session(
    client: TeletrackerClient, fake: FakeTeletracker, sleeps: Sleeps
) -> None:
    """A view has its own settings but the client's pool, queue and session; closing
    a view closes nothing, closing the client closes its views."""
    view = client.with_options(max_retries=0)
    assert view.is_view
    assert not client.is_view
    assert (view.http, view.auth) == (client.http, client.auth)
    assert (view.max_retries, client.max_retries) == (0, 2)
    assert view.total_timeout is None
    assert view.timeout == client.timeout
    fake.fail_next("data", 503, times=3)
    with pytest.raises(ServerError):
        await view.call_data(*DAY)
    assert sleeps.calls == []
    assert await client.call_data(*DAY)  # the two other 503s, then success
    assert len(sleeps.calls) == 2
    assert fake.stats.logins == 1
    async with view:
        pass
    assert await view.call_data(*DAY)  # closing a view closed nothing
    await client.aclose()
    await client.aclose()  # twice is fine
    for closed in (client, view, view.with_options(max_retries=1)):
        with pytest.raises(RuntimeError, match="closed"):
            await closed.call_data(*DAY)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"timeout": "5"}, TypeError, "timeout must be"),
        ({"timeout": -1}, TypeError, "timeout must be"),
        ({"max_retries": -1}, ValueError, ">= 0"),
        ({"total_timeout": 0}, ValueError, "total_timeout must be a positive number"),
        ({"total_timeout": float("inf")}, ValueError, "total_timeout"),
        ({"total_timeout": "1"}, TypeError, "total_timeout must be a number"),
        ({"retry": 3}, TypeError, "retry must be a teletracker_async.Retry"),
        ({"retry": Retry(), "max_retries": 1}, TypeError, "retry= or max_retries="),
    ],
)
def test_bad_options_are_refused(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """with_options checks what it is given, like the constructor."""
    client = TeletrackerClient("u", "p")
    with pytest.raises(error, match=match):
        client.with_options(**kwargs)
    with pytest.raises(error, match=match):
        TeletrackerClient("u", "p", **kwargs)


# -- the environment ----------------------------------------------------------------


async def test_credentials_from_the_environment(
    fake: FakeTeletracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TeletrackerClient() reads TELETRACKER_*; arguments win, one by one."""
    monkeypatch.setenv("TELETRACKER_USERNAME", USERNAME)
    monkeypatch.setenv("TELETRACKER_PASSWORD", PASSWORD)
    monkeypatch.setenv("TELETRACKER_ACCOUNT_ID", "2")
    monkeypatch.setenv("TELETRACKER_BASE_URL", BASE_URL)
    async with TeletrackerClient(transport=fake.transport()) as client:
        assert client.auth.base_url == BASE_URL
        assert client.auth.account_id == 2
        assert {r["account_id"] for r in await client.call_data(*DAY)} == {2}
        assert PASSWORD not in repr(client)
    explicit = TeletrackerClient(
        "other", account_id=1, base_url="https://elsewhere.test"
    )
    assert (explicit.auth.username, explicit.auth.account_id) == ("other", 1)
    assert explicit.auth.base_url == "https://elsewhere.test"
    given = TeletrackerClient(auth=TeletrackerAuth("x", "y"))
    assert given.auth.base_url == "https://api.teletracker.net"  # env not consulted


@pytest.mark.parametrize(
    ("env", "error", "match"),
    [
        ({}, TypeError, "missing username .*TELETRACKER_USERNAME.* and password"),
        ({"TELETRACKER_USERNAME": "u"}, TypeError, r"missing password \(argument"),
        ({"TELETRACKER_PASSWORD": "p"}, TypeError, "missing username"),
        (
            {
                "TELETRACKER_USERNAME": "u",
                "TELETRACKER_PASSWORD": "p",
                "TELETRACKER_ACCOUNT_ID": "seven",
            },
            ValueError,
            "TELETRACKER_ACCOUNT_ID must be a positive integer .*; got 'seven'",
        ),
        (
            {
                "TELETRACKER_USERNAME": "u",
                "TELETRACKER_PASSWORD": "p",
                "TELETRACKER_BASE_URL": "ftp://x",
            },
            ValueError,
            "TELETRACKER_BASE_URL must be an http",
        ),
    ],
)
def test_missing_or_bad_environment_is_named(
    env: dict[str, str],
    error: type[Exception],
    match: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The error names what is missing or wrong, and never a password."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(error, match=match) as info:
        TeletrackerClient()
    assert "'p'" not in str(info.value)


#: Values of $TELETRACKER_ACCOUNT_ID that are not an account id, each refused by name.
BAD_ACCOUNT_IDS = {
    "superscript-two": "\u00b2",  # '²'.isdigit() is true, int('²') is not
    "arabic-indic-three": "\u0663",  # int('٣') == 3
    "underscore": "1_000",
    "negative": "-3",
    "zero": "0",  # the API's account ids start at 1
    "past-int64": str(2**63),
    "huge": "9" * 5000,  # past int()'s 4300-digit limit
    "spaces": "   ",
    "padded": " 7 ",
    "inner-space": "1 2",
    "empty": "",
}
#: Values of $TELETRACKER_BASE_URL that are not an http(s) URL with a host.
BAD_BASE_URLS = {
    "ftp": "ftp://x",
    "empty": "",
    "spaces": "   ",
    "padded": " https://api.test ",
    "no-scheme": "api.test",
    "password-in-url": "ftp://user:hunter2@api.test",
    "bad-idna-label": "https://user:hunter2@xn--zz",  # idna's own IDNAError
    "port-past-65535": "https://user:hunter2@api.test:99999",
    "space-in-host": "https://ho st",
    "tab-in-path": "https://api.test/v1\t",
}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        *[("TELETRACKER_ACCOUNT_ID", v) for v in BAD_ACCOUNT_IDS.values()],
        *[("TELETRACKER_BASE_URL", v) for v in BAD_BASE_URLS.values()],
    ],
    ids=[
        *[f"account-{k}" for k in BAD_ACCOUNT_IDS],
        *[f"url-{k}" for k in BAD_BASE_URLS],
    ],
)
def test_a_bad_environment_value_is_a_value_error_naming_the_variable(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every value that is not an account id or an http(s) URL (non-ASCII digits,
    zero, huge, blank, set but empty) is one ValueError whose message starts with
    the variable's name and holds no password, not int()'s own words."""
    monkeypatch.setenv("TELETRACKER_USERNAME", USERNAME)
    monkeypatch.setenv("TELETRACKER_PASSWORD", PASSWORD)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=f"^\\${variable} ") as info:
        TeletrackerClient()
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 200
    assert "invalid literal" not in message
    assert PASSWORD not in message
    assert "hunter2" not in message


def test_an_account_id_argument_past_int64_is_refused() -> None:
    """account_id= is held to the same range as the variable: 1 to 2**63 - 1."""
    with pytest.raises(ValueError, match="account_id must be at most"):
        TeletrackerClient("u", "p", account_id=2**63)
    assert (
        TeletrackerClient("u", "p", account_id=2**63 - 1).auth.account_id == 2**63 - 1
    )


# -- headers -------------------------------------------------------------------------


async def test_every_request_carries_the_sdks_user_agent(
    fake: FakeTeletracker, clock: FakeClock, stack: str
) -> None:
    """Data requests and the login both say teletracker-async/<v> <stack>/<v>; the
    client's own headers= reach the login too, and a User-Agent there wins."""
    http = importlib.import_module(stack)
    version = teletracker_async.__version__
    ours = f"teletracker-async/{version} {stack}/{http.__version__}"
    for headers, agent in [
        (None, ours),
        ({"X-Team": "reports"}, ours),
        (
            {"User-Agent": "mine/1.0", "X-Team": "reports", "Content-Type": "x/y"},
            "mine/1.0",
        ),
    ]:
        seen: list[Any] = []

        async def keep(request: Any, into: list[Any] = seen) -> None:
            into.append(request)

        options: dict[str, Any] = {"event_hooks": {"request": [keep]}}
        if headers is not None:
            options["headers"] = headers
        async with make_client(fake, clock, stack, **options) as client:
            await client.call_data(*DAY)
            await client.session()
            await client.verify_credentials()
        paths = [r.url.path for r in seen]
        assert paths == ["/auth/login", "/reports/call-data", "/auth/login"]
        assert {r.headers["user-agent"] for r in seen} == {agent}
        if headers is not None:
            assert {r.headers.get("x-team") for r in seen} == {"reports"}
        login = seen[0]
        assert login.headers["content-type"] == "application/x-www-form-urlencoded"
        assert "authorization" not in login.headers
        fake.revoke_sessions()


def test_set_latency_is_checked_and_can_be_undone(fake: FakeTeletracker) -> None:
    """The fake's latency knob names its endpoints, and None takes it away."""
    with pytest.raises(ValueError, match="endpoint must be one of"):
        fake.set_latency("nope", lambda _: 1.0)
    fake.set_latency("data", lambda _: 1.0)
    fake.set_latency("data", None)
    fake.set_latency("data", None)  # twice is fine
    assert not fake._latency


async def test_your_own_client_keeps_its_user_agent(
    fake: FakeTeletracker, clock: FakeClock
) -> None:
    """With http_client=, httpx's default User-Agent is replaced by the SDK's; one of
    your own is kept."""
    for agent, expected in [(None, "teletracker-async/"), ("mine/2", "mine/2")]:
        recording = Recording(fake.transport())
        headers = {} if agent is None else {"User-Agent": agent}
        async with (
            httpx.AsyncClient(transport=recording, headers=headers) as http,
            TeletrackerClient(
                auth=TeletrackerAuth(
                    USERNAME, PASSWORD, base_url=BASE_URL, clock=clock
                ),
                http_client=http,
            ) as client,
        ):
            await client.call_data(*DAY)
        data = recording.seen[-1]
        assert data.headers["user-agent"].startswith(expected)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"tiemout": 5}, r"'tiemout' \(did you mean 'timeout'\?\)"),
        ({"verfy": False}, r"did you mean 'verify'\?"),
        (
            {"zzz": 1},
            r"'zzz'\. Its own: username, .* passed on to httpx\.AsyncClient: params, headers",
        ),
    ],
)
def test_unknown_httpx_options_fail_at_construction(
    options: dict[str, Any], match: str
) -> None:
    """A typo in **httpx_options is a TypeError now, listing the valid names."""
    with pytest.raises(TypeError, match=match):
        TeletrackerClient("u", "p", **options)
    TeletrackerClient("u", "p", verify=False, http2=False, trust_env=False)


# -- one event loop -------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_second_event_loop_gets_a_clear_error(
    fake: FakeTeletracker, backend: str
) -> None:
    """A client used by a second anyio.run says to make one client per loop; a new
    client sharing the auth works there, with the same session."""
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL)
    client = TeletrackerClient(auth=auth, transport=fake.transport())

    async def pull(with_client: TeletrackerClient) -> int:
        return len(await with_client.call_data(*DAY))

    assert anyio.run(pull, client, backend=backend) == 2
    with pytest.raises(RuntimeError, match="one client per event loop"):
        anyio.run(pull, client, backend=backend)
    with pytest.raises(RuntimeError, match="one client per event loop"):
        anyio.run(client.verify_credentials, backend=backend)
    second = TeletrackerClient(auth=client.auth, transport=fake.transport())
    assert anyio.run(pull, second, backend=backend) == 2
    assert fake.stats.logins == 1


async def test_retry_sets_tries_backoff_and_statuses(
    client: TeletrackerClient, fake: FakeTeletracker, sleeps: Sleeps
) -> None:
    """retry=Retry(...) on a view: its tries, exact backoff and retried statuses;
    max_retries reads it, and with_options(max_retries=...) keeps the rest."""
    policy = Retry(max_attempts=4, backoff=1.0, jitter=0.0)
    view = client.with_options(retry=policy)
    assert (view.retry, view.max_retries, client.retry) == (policy, 3, Retry())
    fake.fail_next("data", 503, times=3)
    assert await view.call_data(*DAY)
    assert sleeps.calls == [1.0, 2.0, 4.0]
    fewer = view.with_options(max_retries=0)
    assert fewer.retry == Retry(max_attempts=1, backoff=1.0, jitter=0.0)
    only_404 = client.with_options(retry=Retry(statuses=frozenset({404})))
    fake.fail_next("data", 503, times=1)
    with pytest.raises(ServerError):
        await only_404.call_data(*DAY)


def test_retry_in_the_constructor() -> None:
    """TeletrackerClient(retry=...) and max_retries= both build the policy."""
    assert TeletrackerClient("u", "p", retry=Retry(max_attempts=5)).max_retries == 4
    assert TeletrackerClient("u", "p", max_retries=0).retry == Retry(max_attempts=1)
    assert TeletrackerClient("u", "p").retry == Retry()
