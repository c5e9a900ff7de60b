"""The public surface: exported names, argument checks, error types and helpers."""

from __future__ import annotations

import email.utils
import importlib
import importlib.metadata
import time
import types
from typing import Any

import attrs
import httpx
import pytest

import teletracker_async
from teletracker_async import (
    APIError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TeletrackerAuth,
    TeletrackerError,
)
from teletracker_async._errors import error_for_status, parse_retry_after

#: Each public class's public attributes, as a user sees them on the class (what
#: httpx.Auth itself defines included: httpx reads those). A new public name is a
#: decision: add it here, in the docs and in the CHANGELOG.
PUBLIC_ATTRIBUTES: dict[str, set[str]] = {
    "teletracker_async.AuthSession": {
        "account_id",
        "expires_at",
        "expires_at_utc",
        "expires_in",
        "extra",
        "guid",
        "obtained_at",
        "refresh_expires_at",
        "refresh_expires_at_utc",
        "refresh_token",
        "refresh_token_expiration",
        "token",
        "token_expiration",
        "token_lifetime",
    },
    "teletracker_async.CallDataStream": {
        "eta",
        "fraction_done",
        "held",
        "window",
        "windows",
    },
    "teletracker_async.CallDataWindow": {
        "end",
        "records",
        "start",
    },
    "teletracker_async.IntegratorAuth": {
        "account_id",
        "async_auth_flow",
        "auth_flow",
        "base_url",
        "for_account",
        "requires_request_body",
        "requires_response_body",
        "sync_auth_flow",
        "use_account",
        "username",
    },
    "teletracker_async.Retry": {
        "backoff",
        "jitter",
        "max_attempts",
        "max_backoff",
        "max_retries",
        "max_retry_after",
        "of_max_retries",
        "statuses",
    },
    "teletracker_async.TeletrackerAuth": {
        "account_id",
        "add_listener",
        "async_auth_flow",
        "auth_flow",
        "base_url",
        "ensure_session",
        "for_account",
        "remove_listener",
        "requires_request_body",
        "requires_response_body",
        "session",
        "sharing",
        "stack",
        "stats",
        "store_stats",
        "switch_account",
        "sync_auth_flow",
        "username",
    },
    "teletracker_async.TeletrackerBasicAuth": {
        "account_id",
        "async_auth_flow",
        "auth_flow",
        "base_url",
        "for_account",
        "requires_request_body",
        "requires_response_body",
        "sync_auth_flow",
        "use_account",
        "username",
    },
    "teletracker_async.TeletrackerClient": {
        "aclose",
        "auth",
        "call_data",
        "for_account",
        "http",
        "is_view",
        "iter_call_data",
        "max_retries",
        "request_json",
        "retry",
        "session",
        "stream_call_data",
        "switch_account",
        "timeout",
        "total_timeout",
        "verify_credentials",
        "with_options",
    },
    "teletracker_async.events.LoggedIn": {
        "account_id",
        "at",
        "at_utc",
        "generation",
        "guid",
        "reason",
        "seconds",
    },
    "teletracker_async.events.RefreshTokenWithheld": {
        "account_id",
        "at",
        "at_utc",
        "generation",
        "guid",
    },
    "teletracker_async.events.Refreshed": {
        "account_id",
        "at",
        "at_utc",
        "by_other_process",
        "generation",
        "guid",
        "seconds",
    },
    "teletracker_async.events.RenewalFailed": {
        "account_id",
        "at",
        "at_utc",
        "error",
        "error_type",
        "generation",
        "guid",
        "kind",
        "retry_at",
        "seconds",
        "status_code",
        "then",
    },
    "teletracker_async.events.RenewalShared": {
        "account_id",
        "at",
        "at_utc",
        "generation",
        "guid",
        "seconds",
        "waiters",
    },
    "teletracker_async.events.RequestRetried": {
        "account_id",
        "at",
        "at_utc",
        "attempt",
        "generation",
        "guid",
        "max_attempts",
        "method",
        "on_exchange",
        "path",
        "reason",
        "wait",
    },
    "teletracker_async.events.SessionDropped": {
        "account_id",
        "at",
        "at_utc",
        "generation",
        "guid",
        "reason",
    },
    "teletracker_async.events.SessionEvent": {
        "account_id",
        "at",
        "at_utc",
        "generation",
        "guid",
    },
    "teletracker_async.events.StoreOperation": {
        "account_id",
        "at",
        "at_utc",
        "generation",
        "guid",
        "op",
        "outcome",
        "seconds",
        "store",
    },
    "teletracker_async.events.SessionStats": {
        "adopted",
        "failed_logins",
        "failed_refreshes",
        "logins",
        "refresh_tokens_withheld",
        "refreshes",
        "requests_waited",
        "retries",
        "sessions_dropped",
    },
    "teletracker_async.stores.FileTokenStore": {
        "aclose",
        "acquire",
        "commit",
        "load",
        "path",
        "release",
        "spend",
    },
    "teletracker_async.stores.MemoryTokenStore": {
        "aclose",
        "acquire",
        "commit",
        "load",
        "release",
        "spend",
    },
    "teletracker_async.stores.RedisTokenStore": {
        "aclose",
        "acquire",
        "commit",
        "load",
        "release",
        "spend",
    },
    "teletracker_async.stores.StoreStats": {
        "adopted",
        "calls",
        "private_renewals",
        "published",
        "refused_commits",
        "store_errors",
    },
    "teletracker_async.stores.StoredRecord": {
        "fence",
        "payload",
        "remaining",
        "spent",
        "trusted",
        "write_id",
    },
    "teletracker_async.stores.TokenStore": {
        "aclose",
        "acquire",
        "commit",
        "load",
        "release",
        "spend",
    },
    "teletracker_async.testing.FakeClock": {
        "advance",
    },
    "teletracker_async.testing.FakeGate": {
        "release",
    },
    "teletracker_async.testing.FakeRequest": {
        "body",
        "headers",
        "method",
        "path",
        "query",
    },
    "teletracker_async.testing.FakeResponse": {
        "body",
        "headers",
        "json",
        "status",
    },
    "teletracker_async.testing.FakeStats": {
        "auth_only_checks",
        "concurrent_logins",
        "concurrent_refreshes",
        "data_requests",
        "failed_logins",
        "failed_refreshes",
        "injected_faults",
        "logins",
        "max_concurrent_logins",
        "max_concurrent_refreshes",
        "premature_refreshes",
        "refreshes",
        "rejected_requests",
        "reuse_attempts",
    },
    "teletracker_async.testing.FakeTeletracker": {
        "add_endpoint",
        "add_user",
        "asgi",
        "asgi_server",
        "clear_faults",
        "delay_next",
        "drop_next",
        "expire_sessions",
        "fail_next",
        "garble_next",
        "handle",
        "issued_secrets",
        "live_sessions",
        "pause_next",
        "records_for",
        "reset_stats",
        "revoke_sessions",
        "serving",
        "set_latency",
        "set_password",
        "token_deadlines",
        "transport",
        "wall_time",
    },
    "teletracker_async.testing.RecordedRequest": {
        "keys",
        "method",
        "path",
        "query",
        "scheme",
        "status",
    },
}

# The httpx2 adapters offer exactly what their httpx twins do.
PUBLIC_ATTRIBUTES |= {
    f"teletracker_async.httpx2.{name}": PUBLIC_ATTRIBUTES[f"teletracker_async.{name}"]
    for name in ("IntegratorAuth", "TeletrackerAuth", "TeletrackerBasicAuth")
}


def _public_attributes(qualified: str) -> set[str]:
    module, _, name = qualified.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    base = BaseException if issubclass(cls, BaseException) else object
    return {n for n in dir(cls) if not n.startswith("_") and n not in dir(base)}


@pytest.mark.parametrize("qualified", sorted(PUBLIC_ATTRIBUTES))
def test_each_public_class_has_exactly_its_public_attributes(qualified: str) -> None:
    """No public attribute appears or leaves a public class unnoticed."""
    if qualified.startswith("teletracker_async.httpx2."):
        pytest.importorskip("httpx2")
    assert _public_attributes(qualified) == PUBLIC_ATTRIBUTES[qualified]


@pytest.mark.parametrize(
    "helper",
    ["secret_values", "redact", "check_origin", "exchange_request", "login_request"],
)
def test_no_auth_class_offers_its_secret_handling(helper: str) -> None:
    """The helpers that read the password or tokens are the SDK's own: no auth class
    offers them to a user (one returned the password itself)."""
    for qualified in PUBLIC_ATTRIBUTES:
        if qualified.endswith("Auth") and not qualified.startswith(
            "teletracker_async.httpx2."
        ):
            assert helper not in _public_attributes(qualified)


def test_all_lists_exactly_the_public_names() -> None:
    """__all__ names every public object once (ruff's RUF022 keeps it sorted)."""
    public = {
        name
        for name, value in vars(teletracker_async).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert len(set(teletracker_async.__all__)) == len(teletracker_async.__all__)
    assert set(teletracker_async.__all__) == public
    assert teletracker_async.__all__ == [
        "DEFAULT_LIMITS",
        "DEFAULT_TIMEOUT",
        "APIConnectionError",
        "APIError",
        "APITimeoutError",
        "AccountMismatchError",
        "AuthSession",
        "AuthenticationError",
        "BadRequestError",
        "CallDataStream",
        "CallDataWindow",
        "IntegratorAuth",
        "NotFoundError",
        "OriginMismatchError",
        "PermissionDeniedError",
        "RateLimitError",
        "ResponseFormatError",
        "Retry",
        "ServerError",
        "TeletrackerAuth",
        "TeletrackerBasicAuth",
        "TeletrackerClient",
        "TeletrackerError",
        "TokenCodecError",
        "TokenStoreError",
    ]
    assert teletracker_async.DEFAULT_TIMEOUT.pool is None


def test_the_events_module_exports_exactly_its_names() -> None:
    """teletracker_async.events's __all__, pinned: the events, their base, the
    listener type and the counters."""
    from teletracker_async import events  # noqa: PLC0415

    assert events.__all__ == [
        "Listener",
        "LoggedIn",
        "RefreshTokenWithheld",
        "Refreshed",
        "RenewalFailed",
        "RenewalShared",
        "RequestRetried",
        "SessionDropped",
        "SessionEvent",
        "SessionStats",
        "StoreOperation",
    ]


def test_the_testing_kit_exports_exactly_its_names() -> None:
    """teletracker_async.testing's __all__, pinned: the fake, its clock, and the
    answers for mocking libraries."""
    from teletracker_async import testing  # noqa: PLC0415

    assert testing.__all__ == [
        "Endpoint",
        "EndpointHandler",
        "FakeClock",
        "FakeGate",
        "FakeRequest",
        "FakeResponse",
        "FakeStats",
        "FakeTeletracker",
        "RecordedRequest",
        "error_answer",
        "login_answer",
        "refresh_answer",
    ]
    for name in ("error_answer", "login_answer", "refresh_answer"):
        function = getattr(testing, name)
        assert function.__module__.startswith("teletracker_async.testing")
        assert function.__doc__


def test_version_comes_from_package_metadata() -> None:
    """__version__ is the installed distribution's version, whatever its number."""
    assert teletracker_async.__version__ == importlib.metadata.version(
        "teletracker-async"
    )
    assert teletracker_async.__version__[0].isdigit()
    with pytest.raises(AttributeError):
        teletracker_async.nope  # noqa: B018


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"username": 5}, TypeError, "username must be a str"),
        ({"username": ""}, ValueError, "username must not be empty"),
        ({"password": None}, TypeError, "password must be a str"),
        ({"password": ""}, ValueError, "password must not be empty"),
        ({"account_id": "7"}, TypeError, "account_id must be an int"),
        ({"account_id": True}, TypeError, "account_id must be an int"),
        ({"account_id": 0}, ValueError, "account_id must be positive"),
        ({"base_url": b"https://x"}, TypeError, "base_url must be a str"),
        ({"base_url": "ftp://x"}, ValueError, "http"),
        ({"base_url": "api.teletracker.net"}, ValueError, "with a host"),
        ({"base_url": "https://x/?a=1"}, ValueError, "query"),
        ({"base_url": "https://[::1"}, ValueError, "not a valid URL"),
        ({"refresh_margin": "5"}, TypeError, "refresh_margin must be a number"),
        ({"refresh_margin": -1}, ValueError, "refresh_margin"),
        ({"refresh_margin": float("nan")}, ValueError, "refresh_margin"),
        ({"clock": 5}, TypeError, "clock must be a callable"),
    ],
)
def test_bad_arguments_get_clear_errors(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Every bad constructor argument is refused with a message naming it."""
    args: dict[str, Any] = {"username": "u", "password": "p-secret-9", **kwargs}
    with pytest.raises(error, match=match) as info:
        TeletrackerAuth(**args)
    assert "p-secret-9" not in str(info.value)


def test_base_url_trailing_slash_is_dropped() -> None:
    """https://host/ and https://host build the same endpoint URLs."""
    auth = TeletrackerAuth("u", "p", base_url="http://127.0.0.1:8000/")
    assert auth.base_url == "http://127.0.0.1:8000"
    assert auth.username == "u"
    assert auth.account_id is None
    assert auth.session is None


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, APIError),
        (429, RateLimitError),
        (500, ServerError),
        (503, ServerError),
    ],
)
def test_status_maps_to_exception(status: int, cls: type[APIError]) -> None:
    """Each status gets its own exception class, all under TeletrackerError."""
    error = error_for_status(status, {"message": "m"}, {}, what="Call")
    assert type(error) is cls
    assert isinstance(error, TeletrackerError)
    assert error.status_code == status
    wait = "; no Retry-After given" if status == 429 else ""
    assert str(error) == f"Call failed: m (HTTP {status}{wait})"
    assert (
        repr(error) == f"{cls.__name__}(status_code={status}, message='Call failed: m')"
    )


def test_auth_endpoint_refusals_are_authentication_errors() -> None:
    """400, 401 and 403 from a login all mean: the credentials were refused."""
    for status in (400, 401, 403):
        error = error_for_status(status, "x", {}, what="Login", auth_endpoint=True)
        assert type(error) is AuthenticationError


def test_bad_request_lists_missing_variables() -> None:
    """A 400 that names missing variables exposes them as a tuple."""
    error = error_for_status(
        400, {"message": "Missing", "missing": ["a", "b"]}, {}, what="Call"
    )
    assert isinstance(error, BadRequestError)
    assert error.missing == ("a", "b")


def test_server_messages_in_other_shapes() -> None:
    """'error' strings and lists of errors are read; text bodies give a plain message."""
    assert error_for_status(500, {"error": "e"}, {}, what="C").message == "C failed: e"
    assert (
        error_for_status(500, {"errors": ["a", "b"]}, {}, what="C").message
        == "C failed: a; b"
    )
    assert error_for_status(500, "<html>", {}, what="C").message == "C failed"


def test_rate_limit_reads_retry_after() -> None:
    """429 carries Retry-After in seconds."""
    error = error_for_status(429, {}, {"retry-after": "7"}, what="C")
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("3", 3.0),
        ("2.5", 2.5),
        ("-4", 0.0),
        ("99999", 99999.0),  # passed through: the caller decides what it waits for
        ("soon", None),
        ("Fri, 01 Jan 99999999999 00:00:00 GMT", None),  # no clock holds it
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00", None),  # no zone: unreadable
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Retry-After as seconds, capped, or None when unreadable."""
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    """An HTTP date becomes the seconds left until then."""
    now = time.time()
    value = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(value, now=now) == pytest.approx(30, abs=1)


def test_error_context_without_a_request() -> None:
    """An answer built without a request (a custom transport) still gives a response
    copy; the request is None."""
    answer = httpx.Response(502, headers={"Set-Cookie": "s=1", "X-Id": "7"})
    error = error_for_status(
        502, "bad gateway", answer.headers, what="Call", response=answer
    )
    assert error.request is None
    assert error.response is not None
    assert error.response.status_code == 502
    assert error.response.headers["set-cookie"] == "<redacted>"
    assert error.response.headers["x-id"] == "7"


def test_stores_all_lists_exactly_its_public_names() -> None:
    """teletracker_async.stores exports the protocol, the three stores and their
    helpers (the file and Redis stores imported on first use, listed all the same),
    and its error is the package's own TokenStoreError."""
    from teletracker_async import stores  # noqa: PLC0415

    public = {
        name
        for name in dir(stores)
        if not name.startswith("_")
        and not isinstance(getattr(stores, name), types.ModuleType)
    }
    assert set(stores.__all__) == public
    assert {"FileTokenStore", "MemoryTokenStore", "RedisTokenStore"} <= public
    assert stores.TokenStoreError is teletracker_async.TokenStoreError
    assert stores.TokenCodecError is teletracker_async.TokenCodecError
    assert issubclass(stores.TokenCodecError, stores.TokenStoreError)
    assert issubclass(stores.TokenStoreError, TeletrackerError)


def test_retry_public_attributes_are_pinned() -> None:
    """Retry's fields and defaults are the documented ones."""
    retry = teletracker_async.Retry()
    assert [f.name for f in attrs.fields(teletracker_async.Retry)] == [
        "max_attempts",
        "backoff",
        "max_backoff",
        "jitter",
        "statuses",
        "max_retry_after",
    ]
    assert (retry.max_attempts, retry.backoff, retry.max_backoff) == (3, 0.5, 8.0)
    assert (retry.jitter, retry.max_retry_after, retry.max_retries) == (1.0, 60.0, 2)
    assert retry.statuses == frozenset({429, 502, 503, 504})
