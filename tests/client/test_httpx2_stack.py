"""httpx2 beside httpx: the same auth behaviour, one session across stacks, and a
clear error whenever two stacks are mixed."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import anyio
import httpx
import pytest

from teletracker_async import TeletrackerAuth, TeletrackerClient
from teletracker_async.testing import FakeClock, FakeTeletracker
from tests.conftest import BASE_URL, PASSWORD, USERNAME

httpx2 = pytest.importorskip("httpx2")  # Python 3.10 has no httpx2

from teletracker_async import httpx2 as adapters  # noqa: E402

pytestmark = pytest.mark.anyio


def asgi(fake: FakeTeletracker) -> Any:
    return httpx2.ASGITransport(app=fake.asgi)


async def test_httpx2_client_takes_the_auth_at_client_level_and_per_request(
    clock: FakeClock, fake: FakeTeletracker
) -> None:
    """httpx2.AsyncClient(auth=...) and client.get(..., auth=...) both work."""
    auth = adapters.TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    assert auth.stack == "httpx2"
    async with httpx2.AsyncClient(
        auth=auth, transport=asgi(fake), base_url=BASE_URL
    ) as client:
        assert (await client.post("/echo", content=b"x")).status_code == 200
    async with httpx2.AsyncClient(transport=asgi(fake), base_url=BASE_URL) as client:
        response = await client.post("/echo", content=b"x", auth=auth)
        assert response.status_code == 200
    assert (fake.stats.logins, fake.stats.refreshes) == (1, 0)


@pytest.mark.parametrize("scheme", ["basic", "integrator"])
async def test_httpx2_header_schemes(fake: FakeTeletracker, scheme: str) -> None:
    """Basic and Integrator auth work on httpx2 and carry account_id."""
    fake.add_user("partner", "pp", [7], integrator=True)
    auth: Any = (
        adapters.TeletrackerBasicAuth(
            USERNAME, PASSWORD, account_id=2, base_url=BASE_URL
        )
        if scheme == "basic"
        else adapters.IntegratorAuth("partner", "pp", account_id=7, base_url=BASE_URL)
    )
    async with httpx2.AsyncClient(
        auth=auth, transport=asgi(fake), base_url=BASE_URL
    ) as client:
        body = (await client.post("/echo", content=b"x")).json()
    assert body["account_id"] == (2 if scheme == "basic" else 7)


@pytest.mark.parametrize(
    "coroutines", [100, pytest.param(2000, marks=pytest.mark.slow)], ids=str
)
async def test_one_session_across_stacks(
    clock: FakeClock, fake: FakeTeletracker, coroutines: int
) -> None:
    """An httpx auth and its httpx2 twin made with sharing() use one session: one
    login, and one refresh per expiry for hundreds of coroutines split over both
    stacks (thousands in the slow tier)."""
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL, clock=clock)
    twin = adapters.TeletrackerAuth.sharing(auth)
    assert TeletrackerAuth.sharing(twin).session is auth.session
    # Everything the auth holds is the original's own object, nothing a copy.
    assert vars(twin).keys() == vars(auth).keys()
    assert all(vars(twin)[name] is value for name, value in vars(auth).items())
    codes: list[int] = []
    async with (
        httpx.AsyncClient(
            auth=auth, transport=fake.transport(), base_url=BASE_URL
        ) as one,
        httpx2.AsyncClient(auth=twin, transport=asgi(fake), base_url=BASE_URL) as two,
    ):

        async def call(client: Any) -> None:
            codes.append((await client.post("/echo", content=b"x")).status_code)

        for _ in range(3):
            async with anyio.create_task_group() as tg:
                for n in range(coroutines):
                    tg.start_soon(call, one if n % 2 else two)
            clock.advance(3600)
    assert set(codes) == {200}
    assert (fake.stats.logins, fake.stats.refreshes) == (1, 2)
    assert fake.stats.reuse_attempts == 0
    assert twin.session is auth.session


async def test_client_on_httpx2_and_its_own_http_client(
    clock: FakeClock, fake: FakeTeletracker
) -> None:
    """TeletrackerClient builds an httpx2 client from an httpx2 transport, and uses
    (without closing) an httpx2.AsyncClient it is given."""
    async with TeletrackerClient(
        USERNAME, PASSWORD, base_url=BASE_URL, transport=asgi(fake)
    ) as client:
        assert isinstance(client.http, httpx2.AsyncClient)
        assert isinstance(client.auth, adapters.TeletrackerAuth)
        assert await client.call_data("2026-01-01", "2026-01-01")
    hooked: list[str] = []

    async def hook(request: Any) -> None:
        hooked.append(request.url.path)

    async with httpx2.AsyncClient(
        transport=asgi(fake),
        base_url="http://ignored.test",  # the SDK sends to the auth's base_url
        event_hooks={"request": [hook]},
    ) as http:
        async with TeletrackerClient(
            USERNAME, PASSWORD, base_url=BASE_URL, http_client=http
        ) as client:
            assert client.http is http
            assert await client.call_data("2026-01-01", "2026-01-01")
        assert not http.is_closed  # not ours to close
        assert (await http.get(f"{BASE_URL}/reports/call-data")).status_code == 401
    assert hooked[:2] == ["/auth/login", "/reports/call-data"]


async def test_an_httpx_client_passed_in_is_not_closed_either(
    fake: FakeTeletracker,
) -> None:
    """Ownership is the same on httpx: the SDK closes only the client it built."""
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        async with TeletrackerClient(
            USERNAME, PASSWORD, base_url=BASE_URL, http_client=http
        ) as client:
            assert await client.call_data("2026-01-01", "2026-01-01")
        await client.aclose()
        assert not http.is_closed


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"auth": "httpx", "transport": "httpx2"},
            "transport is for httpx2, auth is for httpx",
        ),
        (
            {"auth": "httpx2", "transport": "httpx"},
            "transport is for httpx, auth is for httpx2",
        ),
        (
            {"auth": "httpx", "http_client": "httpx2"},
            "http_client is for httpx2, auth is for httpx",
        ),
        ({"transport": "object"}, "transport must come from httpx or httpx2"),
        ({"http_client": "httpx", "timeout": 3}, "do not also pass timeout"),
        ({"http_client": "sync"}, "http_client must be an httpx.AsyncClient"),
    ],
)
def test_mixed_stacks_get_a_type_error_naming_both(
    fake: FakeTeletracker, kwargs: dict[str, str], match: str
) -> None:
    """Objects from two stacks (or none) are refused when the client is built."""
    made: dict[str, Any] = {}
    for key, kind in kwargs.items():
        if key == "auth":
            cls = TeletrackerAuth if kind == "httpx" else adapters.TeletrackerAuth
            made[key] = cls(USERNAME, PASSWORD, base_url=BASE_URL)
        elif key == "transport":
            made[key] = {
                "httpx": fake.transport(),
                "httpx2": asgi(fake),
                "object": object(),
            }[kind]
        elif key == "http_client":
            made[key] = {
                "httpx": httpx.AsyncClient(),
                "httpx2": httpx2.AsyncClient(),
                "sync": httpx.Client(),
            }[kind]
        else:
            made[key] = kind
    extra: dict[str, Any] = (
        {} if "auth" in made else {"username": USERNAME, "password": PASSWORD}
    )
    with pytest.raises(TypeError, match=match):
        TeletrackerClient(**made, **extra)


async def test_httpx2_logs_under_its_own_name(
    fake: FakeTeletracker, caplog: pytest.LogCaptureFixture
) -> None:
    """Requests on httpx2 are logged by the 'httpx2' logger, and show no secret."""
    with caplog.at_level(logging.INFO):
        async with TeletrackerClient(
            USERNAME, PASSWORD, base_url=BASE_URL, transport=asgi(fake)
        ) as client:
            await client.call_data("2026-01-01", "2026-01-01")
    names = {record.name for record in caplog.records}
    assert "httpx2" in names
    assert "httpx" not in names
    assert PASSWORD not in caplog.text


async def test_session_and_switch_account_on_httpx2(fake: FakeTeletracker) -> None:
    """session() and switch_account() work with the httpx2 bearer auth too."""
    async with TeletrackerClient(
        USERNAME, PASSWORD, base_url=BASE_URL, transport=asgi(fake)
    ) as client:
        session = await client.session()
        await client.switch_account(2)
        assert (await client.session()).guid != session.guid
        assert client.auth.account_id == 2
        body = await client.request_json("POST", "/echo")
    assert body["account_id"] == 2


@pytest.mark.slow  # a real child process
def test_httpx2_costs_nothing_until_asked_for() -> None:
    """Importing the SDK, building a client and a fake imports no httpx2: only
    teletracker_async.httpx2 (or an httpx2 object handed in) does."""
    code = (
        "import sys, teletracker_async, teletracker_async.testing\n"
        "teletracker_async.TeletrackerClient('u', 'p')\n"
        "assert 'httpx2' not in sys.modules, 'httpx2 imported'\n"
        "import teletracker_async.httpx2\n"
        "assert 'httpx2' in sys.modules\n"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter, our own code
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
