"""FakeTeletracker itself: the rules it enforces are the ones the SDK relies on."""

from __future__ import annotations

import json
import types
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Literal

import httpx
import pytest

from teletracker_async.testing import (
    FakeClock,
    FakeRequest,
    FakeResponse,
    FakeTeletracker,
)

pytestmark = pytest.mark.anyio

URL = "https://fake.test"


@pytest.fixture
async def raw(fake: FakeTeletracker) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=fake.transport(), base_url=URL) as client:
        yield client


async def login(client: httpx.AsyncClient, **form: object) -> httpx.Response:
    return await client.post("/auth/login", data=form)


@pytest.mark.parametrize("encoding", ["form", "json", "multipart"])
async def test_login_accepts_every_documented_body(
    raw: httpx.AsyncClient, fake: FakeTeletracker, encoding: str
) -> None:
    """Form, JSON and multipart logins all open a session."""
    creds = {"username": "ada", "password": "pw-Sup3r-s3cret", "account_id": "2"}
    if encoding == "form":
        response = await raw.post("/auth/login", data=creds)
    elif encoding == "json":
        response = await raw.post("/auth/login", json=creds)
    else:
        response = await raw.post(
            "/auth/login", data=creds, files={"unused": ("f.txt", b"x")}
        )
    body = response.json()
    assert response.status_code == 200
    assert body["success"] is True
    assert body["tokenLifetime"] == 3600
    assert datetime.fromisoformat(body["tokenExpiration"]).tzinfo is not None
    assert fake.stats.logins == 1


async def test_auth_only_checks_without_a_session(
    raw: httpx.AsyncClient, fake: FakeTeletracker
) -> None:
    """auth_only=1 answers success with no tokens and opens no session."""
    response = await login(raw, username="ada", password="pw-Sup3r-s3cret", auth_only=1)
    assert response.json() == {"success": True}
    assert fake.stats.auth_only_checks == 1
    assert fake.live_sessions == 0


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({}, 400, "Missing required variables: username, password"),
        ({"username": "ada"}, 400, "Missing required variables: password"),
        ({"username": "ada", "password": "no"}, 401, "Invalid username or password"),
        ({"username": "bob", "password": "no"}, 401, "Invalid username or password"),
        (
            {"username": "ada", "password": "pw-Sup3r-s3cret", "account_id": "x"},
            400,
            "account_id must be an integer",
        ),
        (
            {"username": "ada", "password": "pw-Sup3r-s3cret", "account_id": "9"},
            403,
            "User cannot access account 9",
        ),
    ],
)
async def test_login_refusals(
    raw: httpx.AsyncClient, form: dict[str, str], status: int, message: str
) -> None:
    """Missing variables, bad credentials and unreachable accounts are refused."""
    response = await raw.post("/auth/login", data=form)
    assert response.status_code == status
    assert response.json()["message"] == message
    assert response.json()["success"] is False


@pytest.mark.parametrize(
    ("content", "ctype"),
    [(b"[1]", "application/json"), (b"{", "application/json"), (b"\xff", "")],
)
async def test_unreadable_login_bodies(
    raw: httpx.AsyncClient, content: bytes, ctype: str
) -> None:
    """Bodies the fake cannot read get a 400, not a crash."""
    response = await raw.post(
        "/auth/login", content=content, headers={"content-type": ctype}
    )
    assert response.status_code == 400


async def test_refresh_rotates_and_reuse_revokes(
    raw: httpx.AsyncClient, fake: FakeTeletracker
) -> None:
    """A refresh returns a new pair; sending the old refresh token kills the session."""
    first = (await login(raw, username="ada", password="pw-Sup3r-s3cret")).json()
    second = (
        await raw.post("/auth/refresh", data={"refresh_token": first["refreshToken"]})
    ).json()
    assert second["token"] != first["token"]
    assert second["refreshToken"] != first["refreshToken"]
    assert second["guid"] == first["guid"]
    reuse = await raw.post(
        "/auth/refresh", data={"refresh_token": first["refreshToken"]}
    )
    assert reuse.status_code == 401
    assert fake.stats.reuse_attempts == 1
    data = await raw.get(
        "/reports/call-data",
        params={"start_date": "2026-01-01", "end_date": "2026-01-01"},
        headers={"authorization": f"Bearer {second['token']}"},
    )
    assert data.status_code == 401  # the whole session is revoked
    fresh = await raw.post(
        "/auth/refresh", data={"refresh_token": second["refreshToken"]}
    )
    assert fresh.status_code == 401
    missing = await raw.post("/auth/refresh", data={})
    assert missing.json()["missing"] == ["refresh_token"]


@pytest.mark.parametrize("expired_status", [401, 403])
async def test_expired_token_status_is_configurable(
    clock: FakeClock, expired_status: Literal[401, 403]
) -> None:
    """Expired bearer tokens get 401 or 403, as configured."""
    fake = FakeTeletracker(
        users={"u": "p"}, clock=clock, expired_status=expired_status, token_lifetime=10
    )
    async with httpx.AsyncClient(transport=fake.transport(), base_url=URL) as raw:
        token = (await login(raw, username="u", password="p")).json()["token"]
        clock.advance(10)
        response = await raw.post("/echo", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == expired_status
    assert fake.stats.rejected_requests == 1


async def test_call_data_checks_its_variables(
    raw: httpx.AsyncClient, fake: FakeTeletracker
) -> None:
    """Missing, malformed and reversed dates are 400s; records are deterministic."""
    token = (await login(raw, username="ada", password="pw-Sup3r-s3cret")).json()[
        "token"
    ]
    headers = {"authorization": f"Bearer {token}"}

    async def get(**params: str) -> httpx.Response:
        return await raw.get("/reports/call-data", params=params, headers=headers)

    assert (await get()).json()["missing"] == ["start_date", "end_date"]
    assert (await get(start_date="x", end_date="y")).status_code == 400
    assert (
        await get(start_date="2026-01-02", end_date="2026-01-01")
    ).status_code == 400
    ok = await get(start_date="2026-01-01", end_date="2026-01-03")
    records = ok.json()["data"]
    assert len(records) == 3 * 2
    assert records[:2] == fake.records_for(1, date(2026, 1, 1))
    assert [r["start_time"] for r in records] == sorted(
        r["start_time"] for r in records
    )
    assert (await raw.get("/reports/call-data")).status_code == 401
    bad = await raw.get("/reports/call-data", headers={"authorization": "Bearer nope"})
    assert bad.status_code == 401


async def test_routes(raw: httpx.AsyncClient) -> None:
    """Unknown paths are 404 and wrong methods 405, both as JSON."""
    assert (await raw.get("/nope")).status_code == 404
    assert (await raw.get("/auth/login")).status_code == 405
    assert (await raw.get("/auth/login")).json()["success"] is False


async def test_faults_and_counters(
    raw: httpx.AsyncClient, fake: FakeTeletracker
) -> None:
    """Injected statuses, garbage and drops happen once each, in order."""
    fake.fail_next("login", 429, headers={"retry-after": "3"})
    fake.garble_next("login", b"<html>")
    fake.drop_next("login")
    first = await login(raw, username="ada", password="pw-Sup3r-s3cret")
    assert (first.status_code, first.headers["retry-after"]) == (429, "3")
    assert (
        await login(raw, username="ada", password="pw-Sup3r-s3cret")
    ).text == "<html>"
    with pytest.raises(httpx.RemoteProtocolError):
        await login(raw, username="ada", password="pw-Sup3r-s3cret")
    assert (await login(raw, username="ada", password="pw-Sup3r-s3cret")).is_success
    assert fake.stats.injected_faults == 3
    assert fake.stats.concurrent_logins == 0
    fake.reset_stats()
    assert fake.stats.logins == 0
    with pytest.raises(ValueError, match="endpoint must be one of"):
        fake.fail_next("nope", 500)


def test_constructor_checks_and_clock() -> None:
    """Bad fake settings are refused; the fake clock never runs backwards."""
    with pytest.raises(ValueError, match="expired_status"):
        FakeTeletracker(expired_status=500)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        FakeTeletracker(token_lifetime=0)
    with pytest.raises(ValueError, match="records_per_day"):
        FakeTeletracker(records_per_day=-1)
    fake = FakeTeletracker()
    with pytest.raises(ValueError, match="at least one account"):
        fake.add_user("x", "y", [])
    clock = FakeClock(5)
    clock.advance(1)
    assert clock() == 6
    assert repr(clock) == "FakeClock(now=6.0)"
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


def test_wall_clock_skew() -> None:
    """The server's wall clock is skewed by exactly the configured amount."""
    clock = FakeClock()
    plain = FakeTeletracker(clock=clock).wall_time()
    skewed = FakeTeletracker(clock=clock, wall_clock_skew=3600).wall_time()
    assert (skewed - plain).total_seconds() == pytest.approx(3600, abs=1)
    assert json.dumps(skewed.isoformat())


# -- fidelity with the documented answer -------------------------------------------------


async def test_token_answer_has_only_documented_fields(raw: httpx.AsyncClient) -> None:
    """tokenLifetime is an integer, timestamps are to the second, no invented field."""
    body = (await login(raw, username="ada", password="pw-Sup3r-s3cret")).json()
    assert set(body) == {
        "success",
        "guid",
        "token",
        "tokenExpiration",
        "tokenLifetime",
        "refreshToken",
        "refreshTokenExpiration",
    }
    assert type(body["tokenLifetime"]) is int
    for field in ("tokenExpiration", "refreshTokenExpiration"):
        assert datetime.fromisoformat(body[field]).microsecond == 0
        assert "." not in body[field]


async def test_account_id_field_on_request(clock: FakeClock) -> None:
    """account_id_in_answers=True adds accountId; a fractional lifetime stays a float."""
    fake = FakeTeletracker(
        users={"u": ("p", [7])},
        clock=clock,
        token_lifetime=0.5,
        account_id_in_answers=True,
    )
    async with httpx.AsyncClient(transport=fake.transport(), base_url=URL) as raw:
        body = (await login(raw, username="u", password="p")).json()
    assert body["accountId"] == 7
    assert body["tokenLifetime"] == 0.5


# -- the requests log ------------------------------------------------------------------------


async def test_requests_log_keeps_shape_not_secrets(
    raw: httpx.AsyncClient, fake: FakeTeletracker
) -> None:
    """Each request is logged with method, path, query, body keys, scheme and status."""
    first = (await login(raw, username="ada", password="pw-Sup3r-s3cret")).json()
    await raw.post("/auth/refresh", json={"refresh_token": first["refreshToken"]})
    await raw.get(
        "/reports/call-data",
        params={"start_date": "2026-01-01", "end_date": "2026-01-01", "token": "t-9"},
        headers={"authorization": "Basic " + "YWRhOnB3LVN1cDNyLXMzY3JldA=="},
    )
    await raw.post("/echo", headers={"authorization": "Digest abc"})
    await raw.get("/nope")
    fake.drop_next("data")
    with pytest.raises(httpx.RemoteProtocolError):
        await raw.get("/reports/call-data")
    log = fake.requests
    assert [(r.method, r.path, r.status) for r in log] == [
        ("POST", "/auth/login", 200),
        ("POST", "/auth/refresh", 200),
        ("GET", "/reports/call-data", 200),
        ("POST", "/echo", 401),
        ("GET", "/nope", 404),
        ("GET", "/reports/call-data", None),
    ]
    assert log[0].keys == ("username", "password")
    assert log[1].keys == ("refresh_token",)
    assert [r.scheme for r in log] == [None, None, "Basic", "Digest", None, None]
    assert log[2].query == {
        "start_date": "2026-01-01",
        "end_date": "2026-01-01",
        "token": "<redacted>",
    }
    text = repr(log)
    for secret in {"pw-Sup3r-s3cret", "t-9", *fake.issued_secrets()}:
        assert secret not in text


async def test_requests_log_reads_multipart_and_odd_bodies(
    raw: httpx.AsyncClient, fake: FakeTeletracker
) -> None:
    """Multipart part names are logged; a JSON list or unreadable body logs no keys."""
    await raw.post(
        "/auth/login",
        data={"username": "ada", "password": "x"},
        files={"f": ("f.txt", b"x")},
    )
    await raw.post("/auth/login", json=[1])
    await raw.post(
        "/auth/login", content=b"\xff", headers={"content-type": "text/plain"}
    )
    assert [r.keys for r in fake.requests] == [("username", "password", "f"), (), ()]


async def test_requests_log_keeps_the_latest(clock: FakeClock) -> None:
    """request_log_size bounds the log to the latest requests; a negative one is refused."""
    fake = FakeTeletracker(clock=clock, request_log_size=2)
    async with httpx.AsyncClient(transport=fake.transport(), base_url=URL) as raw:
        for path in ("/a", "/b", "/c"):
            await raw.get(path)
    assert [r.path for r in fake.requests] == ["/b", "/c"]
    with pytest.raises(ValueError, match="request_log_size"):
        FakeTeletracker(request_log_size=-1)


# -- endpoints the fake does not know ----------------------------------------------------------


async def test_added_endpoint_gets_bearer_checks_and_faults(
    raw: httpx.AsyncClient, fake: FakeTeletracker, clock: FakeClock
) -> None:
    """An added endpoint sees the caller's account only after the fake's own checks."""
    seen: list[int | None] = []

    def summary(request: FakeRequest, account_id: int | None) -> object:
        seen.append(account_id)
        return {"success": True, "data": {"calls": 3, "q": dict(request.query)}}

    fake.add_endpoint("get", "/reports/summary/", summary)
    token = (await login(raw, username="ada", password="pw-Sup3r-s3cret")).json()[
        "token"
    ]
    bearer = {"authorization": f"Bearer {token}"}
    ok = await raw.get("/reports/summary", params={"x": "1"}, headers=bearer)
    assert ok.json() == {"success": True, "data": {"calls": 3, "q": {"x": "1"}}}
    assert (await raw.get("/reports/summary")).status_code == 401
    other = await raw.get("/reports/summary", params={"account_id": 2}, headers=bearer)
    assert other.status_code == 403
    fake.fail_next("/reports/summary", 503)
    assert (await raw.get("/reports/summary", headers=bearer)).status_code == 503
    assert (await raw.post("/reports/summary", headers=bearer)).status_code == 405
    clock.advance(3600)
    assert (await raw.get("/reports/summary", headers=bearer)).status_code == 401
    assert seen == [1]
    assert fake.stats.injected_faults == 1


async def test_added_endpoint_options(
    raw: httpx.AsyncClient, fake: FakeTeletracker
) -> None:
    """name= sets the fault target, authenticated=False skips checks, answers pass."""
    fake.add_endpoint(
        "POST",
        "/hooks",
        lambda request, _account: FakeResponse(202, request.body),
        name="hooks",
        authenticated=False,
    )
    fake.drop_next("hooks")
    with pytest.raises(httpx.RemoteProtocolError):
        await raw.post("/hooks", content=b"a")
    answer = await raw.post("/hooks", content=b"ping")
    assert (answer.status_code, answer.content) == (202, b"ping")
    with pytest.raises(ValueError, match="served by the fake itself"):
        fake.add_endpoint("POST", "/auth/login", lambda _r, _a: {})
    with pytest.raises(ValueError, match="must start with '/'"):
        fake.add_endpoint("GET", "x", lambda _r, _a: {})
    with pytest.raises(ValueError, match="'hooks'"):
        fake.fail_next("nope")


# -- public helpers ------------------------------------------------------------------------------


async def test_clear_faults_one_endpoint_or_all(
    raw: httpx.AsyncClient, fake: FakeTeletracker
) -> None:
    """clear_faults forgets queued faults for one endpoint, or for every one."""
    fake.fail_next("login", 500)
    fake.fail_next("refresh", 500)
    fake.clear_faults("login")
    assert (await login(raw, username="ada", password="pw-Sup3r-s3cret")).is_success
    fake.fail_next("login", 500)
    fake.clear_faults()
    assert (await login(raw, username="ada", password="pw-Sup3r-s3cret")).is_success
    assert fake.stats.injected_faults == 0
    with pytest.raises(ValueError, match="endpoint must be one of"):
        fake.clear_faults("nope")


async def test_issued_secrets_and_token_deadlines(
    raw: httpx.AsyncClient, fake: FakeTeletracker, clock: FakeClock
) -> None:
    """Every token and refresh token handed out is listed, spent ones included."""
    first = (await login(raw, username="ada", password="pw-Sup3r-s3cret")).json()
    second = (
        await raw.post("/auth/refresh", data={"refresh_token": first["refreshToken"]})
    ).json()
    assert fake.issued_secrets() == {
        first["token"],
        first["refreshToken"],
        second["token"],
        second["refreshToken"],
    }
    assert fake.token_deadlines() == {
        first["token"]: clock() + 3600,
        second["token"]: clock() + 3600,
    }


def test_json_answers() -> None:
    """FakeResponse.json encodes a payload with its status and extra headers."""
    answer = FakeResponse.json([1], 201, {"x-a": "b"})
    assert (answer.status, answer.body) == (201, b"[1]")
    assert answer.headers == {"content-type": "application/json", "x-a": "b"}


def test_testing_exports_exactly_its_public_names() -> None:
    """teletracker_async.testing's __all__ is its public surface; sockets stay private."""
    from teletracker_async import testing  # noqa: PLC0415

    public = {
        name
        for name, value in vars(testing).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(testing.__all__) == public
    assert {"FakeClock", "FakeGate", "FakeTeletracker", "RecordedRequest"} <= public
    assert not {"bind_socket", "socket_url"} & public
