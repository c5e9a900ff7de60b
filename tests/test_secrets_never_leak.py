"""No password, token or refresh token in any repr, str, error message or log."""

from __future__ import annotations

import logging
import pprint
import traceback
from collections.abc import Awaitable

import pytest

from teletracker_async import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequestError,
    ResponseFormatError,
    ServerError,
    TeletrackerAuth,
    TeletrackerClient,
    TeletrackerError,
)
from teletracker_async.testing import FakeTeletracker

from .conftest import BASE_URL, PASSWORD, USERNAME, Env

pytestmark = pytest.mark.anyio


def issued_secrets(fake: FakeTeletracker) -> set[str]:
    """Every bearer and refresh token the fake ever handed out, and the password."""
    return {
        PASSWORD,
        *fake._by_token,
        *fake._by_refresh,
        *fake._spent_refresh,
    }


def assert_clean(text: str, secrets: set[str]) -> None:
    leaked = sorted(s for s in secrets if s in text)
    assert not leaked, f"secrets leaked: {len(leaked)}"


async def test_secrets_never_reach_repr_errors_or_logs(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """A full life (login, refresh, refused refresh, failures) leaks nothing."""
    texts: list[str] = []
    errors: list[BaseException] = []
    with caplog.at_level(logging.DEBUG):
        await env.call_data()
        texts += [repr(env.auth), str(env.auth), repr(env.auth.session)]
        texts += [str(env.auth.session), repr(env.auth._core)]
        env.clock.advance(3600)  # a plain refresh
        await env.call_data()
        env.clock.advance(3600 - 200)  # early refresh that fails, then succeeds
        env.fake.fail_next("refresh", 503)
        await env.call_data()
        env.clock.advance(3600)
        await env.call_data()
        env.fake.revoke_sessions()  # refused refresh, then login
        env.clock.advance(3600)
        await env.call_data()
        # A server that echoes secrets back must not smuggle them into an error.
        session = env.auth.session
        assert session is not None
        env.clock.advance(3600)
        env.fake.fail_next(
            "refresh",
            500,
            body={
                "message": f"cannot refresh {session.refresh_token} for {PASSWORD}",
                "refreshToken": session.refresh_token,
                "echo": {"password": PASSWORD},
            },
        )
        try:
            await env.call_data()
        except ServerError as exc:  # expired token, failed refresh: raised
            errors.append(exc)
        env.fake.fail_next("login", 401, body={"message": f"bad password {PASSWORD}"})
        try:
            await env.call_data()
        except AuthenticationError as exc:
            errors.append(exc)
        env.fake.garble_next("login", b'{"success": true, "token": "tok-LEAK-1"}')
        try:
            await env.call_data()
        except ResponseFormatError as exc:
            errors.append(exc)
        texts.append(repr(env.fake))
    assert len(errors) == 3
    for error in errors:
        texts += [str(error), repr(error), repr(getattr(error, "body", None))]
    texts += [record.getMessage() for record in caplog.records]
    texts += [caplog.text]
    secrets = issued_secrets(env.fake) | {"tok-LEAK-1"}
    assert len(secrets) > 5
    for text in texts:
        assert_clean(text, secrets)
    assert "refreshed" in caplog.text
    assert "logged in" in caplog.text
    assert "keeping the valid token" in caplog.text


async def test_error_body_from_auth_endpoint_is_redacted(env: Env) -> None:
    """Secret-looking keys and echoed secrets in an error body are blanked."""
    env.fake.fail_next(
        "login", 403, body={"message": f"no: {PASSWORD}", "password": PASSWORD}
    )
    with pytest.raises(AuthenticationError) as info:
        await env.call_data()
    assert info.value.body == {"message": "no: <redacted>", "password": "<redacted>"}
    assert PASSWORD not in str(info.value)


def test_auth_repr_and_attributes_hide_the_password() -> None:
    """repr, str and vars() of the auth show no password."""
    auth = TeletrackerAuth(USERNAME, PASSWORD, base_url=BASE_URL)
    for text in (repr(auth), str(auth), repr(vars(auth))):
        assert PASSWORD not in text
    assert USERNAME in repr(auth)


async def test_errors_do_not_carry_the_login_request(env: Env) -> None:
    """Even chained exceptions and args of a failed login hold no password."""
    env.fake.fail_next("login", 500)
    with pytest.raises(TeletrackerError) as info:
        await env.call_data()
    chain: list[BaseException] = []
    exc: BaseException | None = info.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert chain
    for link in chain:
        assert PASSWORD not in repr(link.args)


async def test_httpx_logs_show_no_secret(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx's (or httpx2's) own request log lines, under its own logger name,
    leak nothing either."""
    with caplog.at_level(logging.DEBUG, logger=env.http.__name__):
        await env.call_data()
        response = await env.client.get("/nope")
    assert response.status_code == 404
    assert "auth/login" in caplog.text
    assert_clean(caplog.text, issued_secrets(env.fake))


# -- nothing reachable shows a secret ------------------------------------------------


def sdk_objects(*roots: object) -> list[object]:
    """Every object of this SDK reachable from *roots* through attributes, slots and
    containers (the way a debugger, ``pprint(vars(...))`` or a crash dump walks)."""
    found: list[object] = []
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            stack.extend(obj.values())
            continue
        if isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
            continue
        if not type(obj).__module__.startswith("teletracker_async"):
            continue
        found.append(obj)
        if hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())
        slots = [s for c in type(obj).__mro__ for s in getattr(c, "__slots__", ())]
        stack.extend(  # everything but a Secret's own value
            getattr(obj, s) for s in slots if s != "_value" and hasattr(obj, s)
        )
    return found


def shown(obj: object) -> list[str]:
    texts = [repr(obj), str(obj), pprint.pformat(obj)]
    if hasattr(obj, "__dict__"):
        texts.append(pprint.pformat(vars(obj)))
    return texts


async def test_no_sdk_object_shows_a_secret(env: Env) -> None:
    """repr, str, pprint and vars() of every SDK object reachable from the auth and
    the client, internal ones included, show no password and no token, even with a
    stored failure whose server echoed them."""
    await env.call_data()
    session = env.auth.session
    assert session is not None
    env.clock.advance(3600)
    env.fake.fail_next(
        "refresh",
        500,
        body={"message": f"cannot use {session.refresh_token} / {session.token}"},
    )
    with pytest.raises(ServerError):
        await env.call_data()
    assert env.auth._core.machine.last_failure is not None  # kept for its waiters
    async with TeletrackerClient(
        USERNAME, PASSWORD, base_url=BASE_URL, transport=env.fake.transport()
    ) as client:
        await client.call_data("2026-01-01", "2026-01-01")
        objects = sdk_objects(env.auth, client)
    kinds = {type(o).__name__ for o in objects}
    assert {"TeletrackerAuth", "SessionCore", "SessionMachine", "Lease"} <= kinds
    assert {"Failure", "ServerError", "AuthSession", "Secret"} <= kinds
    secrets = issued_secrets(env.fake)
    for obj in objects:
        for text in shown(obj):
            assert_clean(text, secrets)


def captured(error: BaseException) -> str:
    """What an error reporter that captures frame locals (Sentry's default) sees."""
    report = traceback.TracebackException.from_exception(error, capture_locals=True)
    return "".join(report.format())


async def test_no_secret_in_captured_frame_locals(env: Env) -> None:
    """Login, refresh and data failures, through a plain httpx client and through
    TeletrackerClient, and verify_credentials: the tracebacks' frame locals (and
    their chained exceptions') hold no password and no token."""
    errors: list[BaseException] = []

    async def expect(kind: type[BaseException], call: Awaitable[object]) -> None:
        with pytest.raises(kind) as info:
            await call
        errors.append(info.value)

    env.fake.fail_next("login", 401, body={"message": f"bad password {PASSWORD}"})
    await expect(AuthenticationError, env.call_data())
    env.fake.garble_next("login", b'{"success": true, "token": "tok-LEAK-2"}')
    await expect(ResponseFormatError, env.call_data())
    await env.call_data()
    session = env.auth.session
    assert session is not None
    env.clock.advance(3600)
    env.fake.fail_next("refresh", 500, body={"message": f"no: {session.refresh_token}"})
    await expect(ServerError, env.call_data())
    async with TeletrackerClient(
        auth=env.auth,
        transport=env.fake.transport(stack=env.http.__name__),  # type: ignore[call-overload]
        max_retries=0,
    ) as client:
        await client.session()
        token = env.auth.session.token if env.auth.session else ""
        env.fake.fail_next("data", 400, body={"message": f"bad token {token}"})
        await expect(BadRequestError, client.call_data("2026-01-01", "2026-01-01"))
        env.fake.fail_next(
            "data", 200, body={"success": False, "message": f"token {token}"}
        )
        await expect(APIError, client.call_data("2026-01-01", "2026-01-01"))
        env.fake.fail_next(
            "login", 200, body={"success": False, "message": f"pw {PASSWORD}"}
        )
        await expect(APIError, client.verify_credentials())
        env.fake.fail_next("login", 403, body={"message": f"pw {PASSWORD}"})
        await expect(AuthenticationError, client.verify_credentials())
        env.clock.advance(3600)
        env.fake.revoke_sessions()
        env.fake.drop_next("login")  # the refresh is refused, the login is lost
        await expect(APIConnectionError, client.request_json("POST", "/echo"))
    secrets = issued_secrets(env.fake) | {"tok-LEAK-2"}
    for error in errors:
        text = captured(error)
        assert "<redacted>" in text or "bad fields" in text or "no answer" in text
        assert_clean(text, secrets)
        for line in str(error).splitlines():
            assert_clean(line, secrets)
