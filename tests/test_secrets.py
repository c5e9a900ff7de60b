"""No password, token or refresh token in any repr, str, error message or log."""

from __future__ import annotations

import logging

import pytest

from teletracker_async import (
    AuthenticationError,
    ResponseFormatError,
    ServerError,
    TeletrackerAuth,
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
    """httpx's own request log lines (URLs only) leak nothing either."""
    with caplog.at_level(logging.DEBUG, logger="httpx"):
        await env.call_data()
        response = await env.client.get("/nope")
    assert response.status_code == 404
    assert "auth/login" in caplog.text
    assert_clean(caplog.text, issued_secrets(env.fake))
