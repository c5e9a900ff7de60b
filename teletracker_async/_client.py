"""``TeletrackerClient``: typed calls, error mapping, retries and report pulls."""

from __future__ import annotations

import difflib
import functools
import inspect
import json
import logging
import math
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import date, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.lowlevel
import attrs
import httpx

from teletracker_async._call.answers import (
    decode_error_body,
    error_context,
    error_for_status,
    parse_retry_after,
)
from teletracker_async._config import (
    BACKOFF_BASE,
    DEFAULT_BASE_URL,
    DEFAULT_LIMITS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_TOTAL_TIMEOUT,
    ENV_ACCOUNT_ID,
    ENV_BASE_URL,
    ENV_PASSWORD,
    ENV_USERNAME,
    IDEMPOTENT_METHODS,
    MAX_BACKOFF,
    MAX_RETRY_AFTER,
    RETRY_STATUSES,
    user_agent,
)
from teletracker_async._converter import (
    CallDataAnswer,
    Envelope,
    decode_json,
    structure,
)
from teletracker_async._errors import (
    AccountMismatchError,
    APIConnectionError,
    APIError,
    APITimeoutError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TeletrackerError,
    detached,
)
from teletracker_async._http import HTTPX, Stack, stack_of
from teletracker_async._models import AuthSession
from teletracker_async._reports import CallDataStream, windows_of
from teletracker_async._secrets import (
    EXCHANGE,
    Credentials,
    check_account_id,
    check_base_url,
    check_positive_int,
    secret_password,
)
from teletracker_async._session.core import _current_loop
from teletracker_async._session.fleet import StoreErrors
from teletracker_async._session.flow import BearerFlow, TeletrackerAuth
from teletracker_async._session.schemes import (
    BasicScheme,
    IntegratorAuth,
    IntegratorScheme,
    TeletrackerBasicAuth,
)

if TYPE_CHECKING:
    from typing_extensions import Self

    from teletracker_async.stores import TokenStore

__all__ = ["DEFAULT_LIMITS", "DEFAULT_TIMEOUT", "TeletrackerClient"]

logger = logging.getLogger("teletracker_async")

#: Any of the three schemes, on either stack.
AnyAuth = BearerFlow | BasicScheme | IntegratorScheme
DateLike = date | str


def _as_date(name: str, value: object) -> date:
    if isinstance(value, datetime):
        raise TypeError(f"{name} must be a date, not a datetime (which day is meant?)")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name} must be YYYY-MM-DD, got {value!r}") from None
    raise TypeError(
        f"{name} must be a datetime.date or a 'YYYY-MM-DD' string, "
        f"not {type(value).__name__}"
    )


def _date_range(start: object, end: object) -> tuple[date, date]:
    first, last = _as_date("start_date", start), _as_date("end_date", end)
    if last < first:
        raise ValueError(f"end_date {last} is before start_date {first}")
    return first, last


def _no_answer(
    method: str, url: Any, exc: Exception, stack: Stack
) -> APIConnectionError:
    """The SDK's error for a transport failure; timeouts are APITimeoutError.

    Raise it ``from`` the transport error, detached first when that error came
    from a login or refresh: the HTTP stack's frames hold the form it was sending.
    The message names the host it could not reach.
    """
    kind = (
        APITimeoutError
        if isinstance(exc, stack.TimeoutException)
        else APIConnectionError
    )
    failed = _failed_request(exc)
    # The login/refresh in front of the request may be what failed: name it.
    where = getattr(failed, "url", None) or url
    port = "" if where.port is None else f":{where.port}"
    front = "" if where.path == url.path else f" ({where.path} in front of it)"
    return kind(
        f"{method} {url.path}: no answer from Teletracker at "
        f"{where.host}{port}{front} ({type(exc).__name__}: {str(exc) or 'no detail'})",
        host=where.host,
    )


def _failed_request(exc: Exception) -> object:
    try:
        return getattr(exc, "request", None)
    except RuntimeError:  # raised without a request (a custom transport)
        return None


def _bearer_classes(stack: Stack) -> tuple[type[Any], type[Any], type[Any]]:
    """(TeletrackerAuth, TeletrackerBasicAuth, IntegratorAuth) of *stack*."""
    if stack is HTTPX:
        return TeletrackerAuth, TeletrackerBasicAuth, IntegratorAuth
    from teletracker_async import httpx2 as adapters  # noqa: PLC0415 - optional

    return (
        adapters.TeletrackerAuth,
        adapters.TeletrackerBasicAuth,
        adapters.IntegratorAuth,
    )


def _pick_stack(http_client: object, transport: object, auth: object) -> Stack:
    """The one stack *http_client*, *transport* and *auth* agree on (httpx if none)."""
    named: list[tuple[str, Stack]] = []
    for what, obj in (("http_client", http_client), ("transport", transport)):
        if obj is None:
            continue
        stack = stack_of(obj)
        if stack is None:
            raise TypeError(
                f"{what} must come from httpx or httpx2, "
                f"not {type(obj).__module__}.{type(obj).__qualname__}"
            )
        named.append((what, stack))
    if isinstance(auth, Credentials):
        named.append(("auth", auth._stack))  # noqa: SLF001 - the SDK's own classes
    stacks = {stack.name for _, stack in named}
    if len(stacks) > 1:
        said = ", ".join(f"{what} is for {stack.name}" for what, stack in named)
        raise TypeError(
            f"mixed HTTP stacks: {said}. Use one stack throughout: the classes of "
            "teletracker_async work with httpx, those of teletracker_async.httpx2 "
            "with httpx2."
        )
    return named[0][1] if named else HTTPX


def _in_stack(stack: Stack, value: Any, kind: str) -> Any:
    """*value* (an httpx Timeout or Limits, like the defaults) as *stack*'s type."""
    if stack is HTTPX or not isinstance(value, (httpx.Timeout, httpx.Limits)):
        return value
    if isinstance(value, httpx.Timeout):
        return stack.module.Timeout(
            connect=value.connect, read=value.read, write=value.write, pool=value.pool
        )
    return getattr(stack.module, kind)(
        max_connections=value.max_connections,
        max_keepalive_connections=value.max_keepalive_connections,
        keepalive_expiry=value.keepalive_expiry,
    )


def _check_max_retries(max_retries: object) -> int:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int):
        raise TypeError("max_retries must be an int")
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries}")
    return max_retries


def _check_total_timeout(value: object) -> float | None:
    """None (no deadline) or a positive, finite number of seconds."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"total_timeout must be a number of seconds or None, "
            f"not {type(value).__name__}"
        )
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"total_timeout must be a positive number, got {value}")
    return float(value)


def _check_timeout(stack: Stack, value: object) -> Any:
    """*value* as *stack*'s ``Timeout``: a Timeout of either stack, seconds, or None."""
    if isinstance(value, httpx.Timeout):
        return _in_stack(stack, value, "Timeout")
    if isinstance(value, stack.module.Timeout):
        return value
    if value is None or (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    ):
        return stack.module.Timeout(value)
    raise TypeError(
        f"timeout must be an httpx.Timeout, a number of seconds >= 0 or None, "
        f"not {value!r}"
    )


def _check_options(max_retries: object, limits: object, sleep: object) -> None:
    _check_max_retries(max_retries)
    if not callable(sleep):
        raise TypeError(
            f"sleep must be a coroutine function like anyio.sleep, "
            f"not {type(sleep).__name__}"
        )
    if stack_of(limits) is None or not hasattr(limits, "max_connections"):
        raise TypeError(f"limits must be an httpx.Limits, not {type(limits).__name__}")
    if limits.max_connections is not None and limits.max_connections < 1:
        raise ValueError(
            "limits.max_connections must be at least 1 (or None for no limit), "
            f"got {limits.max_connections}"
        )


#: TeletrackerClient's own keyword arguments (for the message about a typo).
_OWN_OPTIONS = (
    "username",
    "password",
    "account_id",
    "auth",
    "base_url",
    "http_client",
    "transport",
    "timeout",
    "total_timeout",
    "limits",
    "max_retries",
    "sleep",
)
#: Headers of a login or refresh that the client's own ``headers=`` never replace.
_EXCHANGE_OWN_HEADERS = frozenset(
    {"content-type", "content-length", "transfer-encoding", "host", "authorization"}
)


def _check_httpx_options(stack: Stack, options: Mapping[str, Any]) -> None:
    """Refuse an option ``AsyncClient`` does not take, now rather than at first use.

    Raises:
        TypeError: Naming the unknown options, what they may be a typo of, and
            every option accepted.
    """
    accepted = [
        name
        for name in inspect.signature(stack.module.AsyncClient.__init__).parameters
        if name != "self" and name not in _OWN_OPTIONS
    ]
    unknown = [name for name in options if name not in accepted]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, [*_OWN_OPTIONS, *accepted], n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise TypeError(
        f"TeletrackerClient got unexpected keyword argument(s) {', '.join(hints)}. "
        f"Its own: {', '.join(_OWN_OPTIONS)}; passed on to "
        f"{stack.name}.AsyncClient: {', '.join(accepted)}."
    )


def _credentials_from_env(
    username: str | None,
    secret: Any,
    account_id: int | None,
    base_url: str | None,
) -> tuple[str, Any, int | None, str]:
    """Fill what was not given from ``TELETRACKER_*``; explicit arguments win.

    Raises:
        TypeError: No username or no password, naming each missing one.
        ValueError: ``TELETRACKER_ACCOUNT_ID`` is not a positive integer.
    """
    if username is None:
        username = os.environ.get(ENV_USERNAME) or None
    if secret is None:
        from_env = os.environ.get(ENV_PASSWORD)
        secret = secret_password(from_env) if from_env else None
        del from_env
    missing = [
        f"{what} (argument {what}= or ${variable})"
        for what, given, variable in (
            ("username", username, ENV_USERNAME),
            ("password", secret, ENV_PASSWORD),
        )
        if given is None
    ]
    if missing:
        raise TypeError(
            "TeletrackerClient needs username and password, or auth=...: missing "
            + " and ".join(missing)
        )
    if account_id is None:
        text = os.environ.get(ENV_ACCOUNT_ID, "").strip()
        if text:
            if not text.isdigit() or int(text) < 1:
                raise ValueError(
                    f"${ENV_ACCOUNT_ID} must be a positive integer, got {text!r}"
                )
            account_id = int(text)
    if base_url is None:
        base_url = os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
    return username, secret, account_id, base_url  # type: ignore[return-value]


def _copy_auth(auth: AnyAuth, account_id: int) -> AnyAuth:
    """A new auth with *auth*'s credentials for *account_id*: its own session."""
    password = auth._password.get()  # noqa: SLF001 - the SDK's own classes
    if isinstance(auth, BearerFlow):
        fleet = auth._fleet  # noqa: SLF001
        return type(auth)(
            auth.username,
            password,
            account_id=account_id,
            base_url=auth.base_url,
            refresh_margin=auth._machine.refresh_margin,  # noqa: SLF001
            clock=auth._clock,  # noqa: SLF001
            # The same store: each account's record is its own key in it.
            store=None if fleet is None else fleet.store,
            store_errors="login" if fleet is None else fleet.errors,
        )
    return type(auth)(
        auth.username, password, account_id=account_id, base_url=auth.base_url
    )


def _may_repeat(method: str, idempotent: bool | None) -> bool:
    """Whether a request may be sent again after a failure."""
    return method in IDEMPOTENT_METHODS if idempotent is None else idempotent


@attrs.frozen
class _Options:
    """What a view may change: per-call settings."""

    #: The stack's Timeout, or None for the HTTP client's own.
    timeout: Any
    max_retries: int
    total_timeout: float | None


class _NotGiven:
    def __repr__(self) -> str:
        return "NOT_GIVEN"


def _took(slots: anyio.Semaphore) -> bool:
    """Take a free connection of the queue, without a yield (the caller checked for
    cancellation); False when every one is busy."""
    try:
        slots.acquire_nowait()
    except anyio.WouldBlock:
        return False
    return True


def _hand_over_at_last_byte(
    response: Any, slots: anyio.Semaphore, shared: _Shared
) -> anyio.Semaphore | None:
    """Let *response*'s body free its queue slot when its last byte is in.

    Returns the slot, still the caller's to release, when the answer has no
    Content-Length to tell its last byte by; None when the body took it over.

    At the last byte the connection is still busy (its answer is not closed), so
    the request at the head of the queue, let in right then, waits in the pool and
    is handed the connection when the answer closes. Released after the close
    instead, the connection sits idle until that request arrives, and every pool
    pass in between probes each idle connection: on httpx2 that halved the
    throughput at 100 connections (``benchmarks/bench_loopback.py``). A request
    still takes its token only when a connection is about to be free.
    """
    length = response.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) == 0:
        return slots
    response.stream = _handing_over(shared.stack.module.AsyncByteStream)(
        response.stream, int(length), slots, shared
    )
    return None


@functools.cache
def _handing_over(base: type) -> type:
    """The body stream of :func:`_hand_over_at_last_byte`, on *base*: the stack's
    ``AsyncByteStream``."""

    class HandingOver(base):  # type: ignore[misc]
        def __init__(
            self, stream: Any, length: int, slots: anyio.Semaphore, shared: _Shared
        ) -> None:
            self.stream = stream
            self.remaining = length
            self.slots: anyio.Semaphore | None = slots
            self.shared = shared

        def free(self) -> None:
            slots, self.slots = self.slots, None
            if slots is not None:
                slots.release()

        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for chunk in self.stream:
                    self.remaining -= len(chunk)
                    if self.remaining <= 0 and self.slots is not None:
                        self.free()
                        waiting = self.shared.queued
                        if waiting:
                            # The next request goes into the pool now, while
                            # this connection is busy until the answer closes.
                            await anyio.lowlevel.checkpoint()
                            if self.shared.queued >= waiting:
                                # It has not run yet: trio may run this task
                                # first in their batch.
                                await anyio.lowlevel.checkpoint()
                    yield chunk
            finally:
                self.free()

        async def aclose(self) -> None:
            self.free()
            await self.stream.aclose()

    return HandingOver


#: "Not given": None is a value (no timeout, no deadline).
NOT_GIVEN: Final = _NotGiven()


@attrs.define(eq=False)
class _Shared:
    """What a client and all its views share: one pool, one queue, one loop."""

    stack: Stack
    base_url: str
    http: Any
    owns_http: bool
    #: The queue in front of the pool (None: no limit, or your own client's pool).
    slots: anyio.Semaphore | None
    sleep: Callable[[float], Awaitable[object]]
    #: Headers added to each request built (the User-Agent on your own client).
    request_headers: dict[str, str] | None
    #: The settings of the client the views came from.
    options: _Options
    #: The size of the queue's pool, when it has one.
    connections: int | None = None
    #: Whether the pool behind the queue is the stack's own, so that a slot is
    #: handed over before its connection frees (``_hand_over_at_last_byte``).
    handover: bool = False
    #: Coroutines waiting in the queue now.
    queued: int = 0
    loop: object = None
    #: The bound loop's own cancellation check (found once, when the loop binds:
    #: ``anyio.lowlevel.checkpoint_if_cancelled`` looks the backend up each call).
    checkpoint_if_cancelled: Callable[[], Awaitable[None]] = (
        anyio.lowlevel.checkpoint_if_cancelled
    )
    closed: bool = False
    #: account id -> the view with its own session for it (the client's settings).
    accounts: dict[int, TeletrackerClient] = attrs.field(factory=dict)


class TeletrackerClient:
    """An async client for the Teletracker API, safe to share between coroutines.

    Give ``username`` and ``password`` (a :class:`TeletrackerAuth` is built), or
    ``auth=`` (a :class:`TeletrackerAuth`, :class:`TeletrackerBasicAuth` or
    :class:`IntegratorAuth`), not both. With neither, the credentials come from
    ``TELETRACKER_USERNAME`` and ``TELETRACKER_PASSWORD``, and ``account_id`` and
    ``base_url``, when not given, from ``TELETRACKER_ACCOUNT_ID`` and
    ``TELETRACKER_BASE_URL`` (arguments win over the environment, one by one).

    Use one client per event loop; the auth object may be shared between loops.

    Args:
        username: The Teletracker user name.
        password: The password.
        account_id: The account to work in (with credentials only).
        auth: A ready auth object instead of credentials (from
            ``teletracker_async.httpx2`` for an httpx2 client or transport).
        base_url: The API root; defaults to the auth's, else the public API.
        http_client: Your own ``httpx.AsyncClient`` or ``httpx2.AsyncClient``, with
            its proxies, TLS, event hooks and transport. The SDK adds its auth to each
            request and never closes it: it is yours. Excludes ``transport``,
            ``timeout``, ``limits`` and ``**httpx_options``.
        transport: An httpx or httpx2 transport (``FakeTeletracker().transport()``
            in tests); the client is of the same stack.
        timeout: Timeouts; see :data:`DEFAULT_TIMEOUT`. ``pool`` bounds the wait
            for a connection, in the SDK's queue as in httpx's pool.
        total_timeout: Seconds one call may take, retries and waits between them
            included; None (the default) for no such deadline.
        limits: Connection limits; see :data:`DEFAULT_LIMITS`.
        max_retries: Retries after the first try for 429/502/503/504 and transport
            failures; 0 turns retries off.
        sleep: The coroutine used to wait between retries (inject one in tests).
        store: A token store through which many processes share the session
            (see :mod:`teletracker_async.stores`); with credentials only.
        store_errors: What an unreachable store costs: ``"login"`` (a private login
            past the hard deadline) or ``"raise"`` (``TokenStoreError``).
        **httpx_options: Passed to the ``AsyncClient`` it builds (``headers``,
            ``proxy``, ``verify``...); an unknown name is a ``TypeError`` at once.

    Raises:
        TypeError, ValueError: Bad, missing or conflicting arguments, including
            objects from two HTTP stacks (named in the message).
    """

    _shared: _Shared
    _auth: AnyAuth
    _options: _Options
    #: ``_request_options(_options)``, built once.
    _extra: dict[str, Any]
    #: The account of a view made by :meth:`for_account`, else None.
    _account_view: int | None
    _is_root: bool

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        account_id: int | None = None,
        auth: AnyAuth | None = None,
        base_url: str | None = None,
        http_client: Any = None,
        transport: Any = None,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        total_timeout: float | None = DEFAULT_TOTAL_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        max_retries: int = DEFAULT_MAX_RETRIES,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
        store: TokenStore | None = None,
        store_errors: StoreErrors = "login",
        **httpx_options: Any,
    ) -> None:
        secret = None if password is None else secret_password(password)
        del password  # from here on, no frame that may raise holds it
        stack = _pick_stack(http_client, transport, auth)
        bearer, basic, integrator = _bearer_classes(stack)
        if auth is None:
            username, secret, account_id, url = _credentials_from_env(
                username, secret, account_id, base_url
            )
            auth = bearer(
                username,
                secret.get(),
                account_id=account_id,
                base_url=check_base_url(url),
                store=store,
                store_errors=store_errors,
            )
        elif username is not None or secret is not None or account_id is not None:
            raise TypeError(
                "give either username/password/account_id or auth=..., not both"
            )
        elif store is not None or store_errors != "login":
            raise TypeError(
                "store= and store_errors= configure the auth the client builds: "
                "with auth=..., pass them to TeletrackerAuth(...) instead"
            )
        elif not isinstance(auth, (bearer, basic, integrator)):
            raise TypeError(
                "auth must be a TeletrackerAuth, TeletrackerBasicAuth or "
                f"IntegratorAuth, not {type(auth).__name__}"
            )
        if base_url is not None and check_base_url(base_url) != auth.base_url:
            raise ValueError(
                f"base_url {base_url!r} differs from the auth's {auth.base_url!r}: "
                "the auth sends credentials to its own base_url only"
            )
        _check_options(max_retries, limits, sleep)
        total = _check_total_timeout(total_timeout)
        _check_httpx_options(stack, httpx_options)
        if http_client is None:
            http = self._build_http(
                stack=stack,
                auth=auth,
                transport=transport,
                timeout=timeout,
                limits=limits,
                options=httpx_options,
            )
            client_ua = None
        else:
            self._check_http_client(stack, http_client, transport, timeout, limits)
            http = http_client
            # Your own client keeps its headers; only its library default User-Agent
            # is replaced, so that the API can tell the SDK's traffic apart.
            client_ua = http.headers.get("user-agent", "")
        request_headers = (
            {"User-Agent": user_agent(stack.name)}
            if client_ua is not None
            and (not client_ua or client_ua.startswith(f"python-{stack.name}/"))
            else None
        )
        self._shared = _Shared(
            stack=stack,
            base_url=auth.base_url,
            http=http,
            owns_http=http_client is None,
            # Coroutines queue here, not in httpcore's pool: its queue rescans every
            # connection on each change (70 % of the CPU with 2000 waiters,
            # measured), and a request waiting here has not been given a token yet,
            # so a long wait cannot make it arrive with an expired one (or, after
            # switch_account, with the other account's). That is why httpx2 keeps
            # it too, though its pool has no herd to spare; there the queue hands
            # a connection over before it goes idle (Stack.hand_over), which makes
            # it cost nothing (benchmarks/bench_loopback.py, ours_httpx2_sem).
            slots=None
            if limits.max_connections is None or http_client is not None
            else anyio.Semaphore(limits.max_connections, fast_acquire=True),
            sleep=sleep,
            request_headers=request_headers,
            options=_Options(None, max_retries, total),
            connections=limits.max_connections,
            handover=stack.hand_over
            and (
                transport is None
                or isinstance(transport, stack.module.AsyncHTTPTransport)
            ),
        )
        self._auth = auth
        self._options = self._shared.options
        self._extra = self._request_options(self._options)
        self._account_view = None
        self._is_root = True
        self._rng = random.Random()  # noqa: S311 - jitter, not cryptography

    @staticmethod
    def _build_http(
        *,
        stack: Stack,
        auth: AnyAuth,
        transport: Any,
        timeout: Any,
        limits: Any,
        options: dict[str, Any],
    ) -> Any:
        """The AsyncClient the client owns: the SDK's User-Agent (unless yours in
        ``headers=``), and your ``headers=`` on the login and refresh too."""
        module = stack.module
        given = module.Headers(options.pop("headers", None))
        headers = module.Headers({"User-Agent": user_agent(stack.name)})
        headers.update(given)
        hooks = dict(options.pop("event_hooks", None) or {})
        if given:

            async def exchange_headers(request: Any) -> None:
                # Login and refresh requests are built by the auth, which knows no
                # client: they get the client's own headers here, never replacing
                # what the exchange needs (its body's type, its host).
                if request.extensions.get(EXCHANGE):
                    for key, value in given.multi_items():
                        if key.lower() not in _EXCHANGE_OWN_HEADERS:
                            request.headers[key] = value

            hooks["request"] = [exchange_headers, *hooks.get("request", ())]
        return stack.AsyncClient(
            auth=auth,
            base_url=auth.base_url,
            transport=transport,
            timeout=_check_timeout(stack, timeout),
            limits=_in_stack(stack, limits, "Limits"),
            headers=headers,
            event_hooks=hooks,
            **options,
        )

    @staticmethod
    def _check_http_client(
        stack: Stack, http_client: Any, transport: Any, timeout: Any, limits: Any
    ) -> None:
        given = {
            "transport": transport is not None,
            "timeout": timeout is not DEFAULT_TIMEOUT,
            "limits": limits is not DEFAULT_LIMITS,
        }
        if any(given.values()):
            raise TypeError(
                "http_client= brings its own settings: do not also pass "
                f"{', '.join(k for k, v in given.items() if v)}"
            )
        if not isinstance(http_client, stack.module.AsyncClient):
            raise TypeError(
                f"http_client must be an {stack.name}.AsyncClient, "
                f"not {type(http_client).__name__}"
            )

    def __repr__(self) -> str:
        # Safe on a half-built client: error reporters repr every frame's locals.
        shared = getattr(self, "_shared", None)
        view = getattr(self, "_account_view", None)
        return (
            f"TeletrackerClient(auth={getattr(self, '_auth', None)!r}, "
            f"base_url={None if shared is None else shared.base_url!r}, "
            f"stack={None if shared is None else shared.stack.name!r}"
            + ("" if view is None else f", view_of_account={view!r}")
            + ")"
        )

    # -- views ------------------------------------------------------------------------

    def _view(self, auth: AnyAuth, options: _Options, account: int | None) -> Self:
        view = object.__new__(type(self))
        view._shared = self._shared
        view._auth = auth
        view._options = options
        view._extra = view._request_options(options)
        view._account_view = account
        view._is_root = False
        view._rng = self._rng
        return view

    def with_options(
        self,
        *,
        timeout: Any = NOT_GIVEN,
        max_retries: int | _NotGiven = NOT_GIVEN,
        total_timeout: float | _NotGiven | None = NOT_GIVEN,
    ) -> Self:
        """A view of this client with other per-call settings (openai's convention).

        The view shares the connection pool, the queue in front of it and the
        session (so the single-flight renewal too); only the settings differ. It
        is a small object that opens nothing: make one per request if you like.
        Closing the client closes it.

        Args:
            timeout: An ``httpx.Timeout``, seconds, or None (no timeout).
            max_retries: Retries after the first try.
            total_timeout: Seconds a call may take, retries included, or None.

        Raises:
            TypeError, ValueError: A bad setting, naming it.
        """
        options = self._options
        if not isinstance(timeout, _NotGiven):
            options = attrs.evolve(
                options, timeout=_check_timeout(self._shared.stack, timeout)
            )
        if not isinstance(max_retries, _NotGiven):
            options = attrs.evolve(options, max_retries=_check_max_retries(max_retries))
        if not isinstance(total_timeout, _NotGiven):
            options = attrs.evolve(
                options, total_timeout=_check_total_timeout(total_timeout)
            )
        return self._view(self._auth, options, self._account_view)

    def for_account(self, account_id: int) -> TeletrackerClient:
        """A view of this client that works in *account_id*, with its own session.

        A bearer session acts on one account. The view logs in for *account_id*
        with the same credentials, on first use, and keeps its own session (and
        its own single-flight renewal), through the same connection pool: a
        puller covering 50 accounts needs one client. Views are cached per
        account (the same account gives the same session); they keep this
        client's settings, and closing the client closes them. With Basic or
        Integrator auth the view sends ``account_id`` with every request.

        Raises:
            TypeError, ValueError: *account_id* is not a positive int.
        """
        account = check_account_id(account_id)
        if account is None:
            raise TypeError("for_account needs an account id, not None")
        self._check_open()
        shared = self._shared
        view = shared.accounts.get(account)
        if view is None:
            view = shared.accounts[account] = self._view(
                _copy_auth(self._auth, account), shared.options, account
            )
        if view._options == self._options:  # noqa: SLF001 - its own class
            return view
        return view._view(view._auth, self._options, account)  # noqa: SLF001

    # -- lifetime ---------------------------------------------------------------------

    @property
    def http(self) -> Any:
        """The underlying ``httpx.AsyncClient`` (or ``httpx2.AsyncClient``).

        The client's own when it built one; yours when you passed ``http_client``.
        """
        return self._shared.http

    @property
    def auth(self) -> AnyAuth:
        """The auth object every request of this client (or view) goes through."""
        return self._auth

    @property
    def timeout(self) -> Any:
        """The timeouts requests get (the stack's ``Timeout``)."""
        return self._options.timeout or self._shared.http.timeout

    @property
    def max_retries(self) -> int:
        """Retries after the first try."""
        return self._options.max_retries

    @property
    def total_timeout(self) -> float | None:
        """Seconds one call may take, retries included, or None."""
        return self._options.total_timeout

    @property
    def is_view(self) -> bool:
        """Whether this is a view made by :meth:`with_options` or :meth:`for_account`."""
        return not self._is_root

    async def __aenter__(self) -> Self:
        if self._shared.owns_http and self._is_root:
            await self._shared.http.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client: its connection pool (unless it is an ``http_client``
        you passed) and every view of it, which refuse requests from then on.

        On a view (:meth:`with_options`, :meth:`for_account`) this does nothing:
        the view shares the pool of the client it came from; close that one.
        """
        shared = self._shared
        if shared.closed or not self._is_root:
            return
        shared.closed = True
        if shared.owns_http:
            await shared.http.aclose()

    def _check_open(self) -> None:
        if self._shared.closed:
            raise RuntimeError(
                "this TeletrackerClient (or the client this view came from) is "
                "closed: create a new one"
            )

    # -- requests ---------------------------------------------------------------------

    def _url(self, path: str) -> str:
        # Absolute, so that a client you passed in, whatever its base_url, sends to
        # the auth's origin (and the origin check names the path if it is not).
        return f"{self._shared.base_url}{path}" if path.startswith("/") else path

    def _request_options(self, options: _Options) -> dict[str, Any]:
        """What ``build_request`` gets besides the call's own parts (once a call)."""
        extra: dict[str, Any] = {}
        if options.timeout is not None:
            extra["timeout"] = options.timeout
        if self._shared.request_headers is not None:
            extra["headers"] = self._shared.request_headers
        return extra

    def _options_for(self, timeout: Any) -> _Options:
        if isinstance(timeout, _NotGiven):
            return self._options
        return attrs.evolve(
            self._options, timeout=_check_timeout(self._shared.stack, timeout)
        )

    def _check_loop(self) -> None:
        shared = self._shared
        loop = _current_loop()
        if shared.loop is loop:
            return
        if shared.loop is None:
            check = anyio.lowlevel.current_token().backend_class.checkpoint_if_cancelled
            shared.checkpoint_if_cancelled, shared.loop = check, loop
        else:
            raise RuntimeError(
                "this TeletrackerClient was first used in another event loop (a "
                "second asyncio.run, a module-level client?): its connections belong "
                "to that loop. Create one client per event loop; they may share one "
                "session: TeletrackerClient(auth=client.auth)."
            )

    def _wait(
        self,
        attempt: int,
        retry_after: float | None,
        options: _Options,
        deadline: float,
    ) -> float | None:
        """Seconds before retry number *attempt* + 1, or None to give up."""
        if attempt >= options.max_retries:
            return None
        if retry_after is not None:
            wait = retry_after if retry_after <= MAX_RETRY_AFTER else None
        else:
            wait = self._rng.uniform(0, min(MAX_BACKOFF, BACKOFF_BASE * 2**attempt))
        if wait is not None and anyio.current_time() + wait >= deadline:
            return None  # the retry could not finish in time: the real error now
        return wait

    async def _queue(self, request: Any, options: _Options) -> anyio.Semaphore:
        """Wait for a free connection, at most the pool timeout; return the queue's
        semaphore, acquired."""
        slots = self._shared.slots
        assert slots is not None  # noqa: S101 - the caller found it full
        shared = self._shared
        pool = (options.timeout or shared.http.timeout).pool
        shared.queued += 1
        try:
            if pool is None:
                await slots.acquire()
                return slots
            with anyio.move_on_after(pool) as waiting:
                await slots.acquire()
        finally:
            shared.queued -= 1
        if waiting.cancelled_caught:
            raise self._no_free_connection(request, pool)
        return slots

    def _no_free_connection(self, request: Any, pool: float) -> APITimeoutError:
        return APITimeoutError(
            f"{request.method} {request.url.path}: no free connection to "
            f"{request.url.host} within timeout.pool={pool:g} s (all "
            f"{self._shared.connections} busy); nothing was sent",
            host=request.url.host,
        )

    def _after_no_answer(
        self,
        *,
        exc: Exception,
        request: Any,
        attempt: int,
        may_repeat: bool,
        options: _Options,
        deadline: float,
    ) -> float:
        """Seconds to wait before retrying a request that got no answer, or raise."""
        stack = self._shared.stack
        failed = _failed_request(exc)
        # Our login/refresh in front of it failed: the request itself never left.
        in_front = failed is not request and bool(
            getattr(failed, "extensions", {}).get(EXCHANGE)
        )
        retryable = (
            in_front
            or isinstance(exc, stack.not_sent)
            or (may_repeat and isinstance(exc, stack.retryable))
        )
        wait = self._wait(attempt, None, options, deadline) if retryable else None
        if wait is None:
            # The login/refresh in front holds the password or a refresh token in
            # the frames of the HTTP stack: keep none of them.
            cause = detached(exc) if in_front else exc
            raise _no_answer(request.method, request.url, exc, stack) from cause
        return wait

    def _request_error(self, exc: Exception, request: Any) -> TeletrackerError:
        """What an error of the HTTP stack that is not a transport failure means."""
        where = f"{request.method} {request.url.path}"
        if isinstance(exc, self._shared.stack.DecodingError):
            return ResponseFormatError(
                f"The answer to {where} could not be decoded ({exc})."
            )
        return APIConnectionError(
            f"{where} to {request.url.host}: {type(exc).__name__}: {exc}",
            host=request.url.host,
        )

    def _after_refusal(
        self,
        response: Any,
        may_repeat: bool,
        attempt: int,
        options: _Options,
        deadline: float,
    ) -> float | None:
        """Seconds before retrying a request refused with a retryable status, or
        None to give the answer to the caller."""
        if not may_repeat:
            return None
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return self._wait(attempt, retry_after, options, deadline)

    def _after_auth_failure(
        self,
        exc: ServerError | RateLimitError,
        attempt: int,
        options: _Options,
        deadline: float,
    ) -> float:
        """Seconds before retrying a request whose login/refresh failed, or raise.

        The request itself was never processed: any method may be retried.
        """
        wait = (
            self._wait(attempt, getattr(exc, "retry_after", None), options, deadline)
            if exc.status_code in RETRY_STATUSES
            else None
        )
        if wait is None:
            raise exc
        return wait

    def _send(
        self,
        make: Callable[[], Any],
        options: _Options,
        *,
        what: tuple[str, str],
        idempotent: bool | None,
        authenticate: bool = True,
    ) -> Awaitable[Any]:
        """Send a request that *make* builds (anew for each try) with retries, all
        within ``options.total_timeout``; return the last answer, or raise.

        *what* is the method and path, for the message of a total timeout."""
        if options.total_timeout is None:  # no extra coroutine on the common path
            return self._tries(make, options, math.inf, idempotent, authenticate)
        return self._within(make, options, " ".join(what), idempotent, authenticate)

    async def _within(
        self,
        make: Callable[[], Any],
        options: _Options,
        what: str,
        idempotent: bool | None,
        authenticate: bool,
    ) -> Any:
        total = options.total_timeout
        with anyio.move_on_after(total) as scope:
            return await self._tries(
                make, options, scope.deadline, idempotent, authenticate
            )
        raise APITimeoutError(
            f"{what}: no answer within total_timeout={total} s (retries included)",
            host=httpx.URL(self._shared.base_url).host,
        )

    async def _tries(  # noqa: C901, PLR0912 - one try inlined: every call's path
        self,
        make: Callable[[], Any],
        options: _Options,
        deadline: float,
        idempotent: bool | None,
        authenticate: bool,
    ) -> Any:
        """The tries of :meth:`_send`.

        Redirects are never followed: the API does not redirect, and a login or
        refresh must not be replayed to wherever a ``Location`` points.
        """
        shared = self._shared
        stack = shared.stack
        auth = self._auth if authenticate else None
        attempt = 0
        while True:
            request = make()
            method = request.method
            wait: float | None
            try:
                # One try, inlined (this is every call's path): the checks, then
                # the queue in front of the pool, then the send.
                # A call in a cancelled scope sends nothing: a transport need not
                # check before it sends (anyio's acquire() used to check this). It
                # is cancelled before any other check, closed client included; the
                # loop's own check once the client is bound to this loop.
                bound = _current_loop() is shared.loop
                await (
                    shared.checkpoint_if_cancelled
                    if bound
                    else anyio.lowlevel.checkpoint_if_cancelled
                )()
                if shared.closed or not bound:
                    self._check_open()
                    self._check_loop()
                slots = shared.slots
                if slots is not None and not _took(slots):
                    slots = await self._queue(request, options)
                try:
                    response = await shared.http.send(
                        request, auth=auth, follow_redirects=False, stream=True
                    )
                    if slots is not None and shared.handover:
                        slots = _hand_over_at_last_byte(response, slots, shared)
                    try:
                        await response.aread()
                    except BaseException:
                        await response.aclose()  # and the slot, if the body has it
                        raise
                finally:
                    if slots is not None:
                        slots.release()
            except stack.TransportError as exc:
                wait = self._after_no_answer(
                    exc=exc,
                    request=request,
                    attempt=attempt,
                    may_repeat=_may_repeat(method, idempotent),
                    options=options,
                    deadline=deadline,
                )
                reason = type(exc).__name__
            except stack.RequestError as exc:  # undecodable, or anything else
                raise self._request_error(exc, request) from exc
            except (ServerError, RateLimitError) as exc:
                wait = self._after_auth_failure(exc, attempt, options, deadline)
                reason = f"HTTP {exc.status_code} from the auth endpoint"
            else:
                status = response.status_code
                if status not in RETRY_STATUSES:
                    return response
                wait = self._after_refusal(
                    response,
                    _may_repeat(method, idempotent),
                    attempt,
                    options,
                    deadline,
                )
                if wait is None:
                    return response
                reason = f"HTTP {status}"
            attempt += 1
            logger.debug(
                "retry %d/%d of %s %s in %.2f s after %s",
                attempt,
                options.max_retries,
                method,
                request.url.path,
                wait,
                reason,
            )
            await shared.sleep(wait)

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        timeout: Any = NOT_GIVEN,  # noqa: ASYNC109 - the HTTP request's, httpx's type
    ) -> Any:
        """Call an endpoint and return its decoded JSON body.

        Args:
            method: The HTTP method.
            path: The path under the base URL, like ``"/reports/call-data"``.
            params: The query string.
            data: A form body.
            json: A JSON body.
            idempotent: Whether the call may be repeated after a failure. By default
                GET, HEAD, OPTIONS, PUT and DELETE may; pass True to let a POST retry.
            timeout: This call's timeouts (an ``httpx.Timeout``, seconds or None),
                instead of the client's.

        Returns:
            The answer's JSON object (with ``success: true``).

        Raises:
            AccountMismatchError: ``params`` names an ``account_id`` that the
                bearer session does not belong to (nothing is sent).
            APIError: The server refused (a subclass per status), or said
                ``success: false``.
            ResponseFormatError: The answer was not a JSON object with ``success``.
            APIConnectionError: No answer (``APITimeoutError`` for timeouts).
        """
        method = method.upper()
        if timeout is NOT_GIVEN:  # the common case, without a call
            options, extra = self._options, self._extra
        else:
            options = self._options_for(timeout)
            extra = self._request_options(options)
        if params is not None and "account_id" in params:
            self._check_account(
                f"{method} {path}", check_account_id(params["account_id"])
            )
        url = self._url(path)
        build = self._shared.http.build_request
        response = await self._send(
            lambda: build(method, url, params=params, data=data, json=json, **extra),
            options,
            what=(method, path),
            idempotent=idempotent,
        )
        return self._read(method, path, response)

    def _read(
        self,
        method: str,
        path: str,
        response: Any,
        *,
        auth_endpoint: bool = False,
    ) -> Any:
        """The body of a successful answer, or raise the error it stands for.

        The answer is read by :meth:`_outcome`: this frame, which raises, holds no
        body, so an error reporter capturing frame locals finds no echoed secret.
        """
        if response.status_code == 200:  # the common answer
            # The success envelope checked by hand (measured: the strict converter
            # was 3.7 % of request_json), and nothing built for an error message.
            try:
                body = json.loads(response.content)
            except (ValueError, UnicodeDecodeError, RecursionError):
                pass
            else:
                if type(body) is dict and body.get("success") is True:
                    return body
                del body  # not kept in the frame that raises below
        result = self._outcome(method, path, response, auth_endpoint)
        if isinstance(result, TeletrackerError):
            raise result
        return result

    def _outcome(
        self, method: str, path: str, response: Any, auth_endpoint: bool
    ) -> Any:
        what = f"{method} {path}"
        status = response.status_code
        if not response.is_success:
            return self._refusal(response, what, auth_endpoint, by_status=True)
        try:
            body = decode_json(
                response.content, what=f"answer to {what}", status_code=status
            )
        except ResponseFormatError as exc:
            return detached(exc)
        if isinstance(body, dict) and body.get("success") is True:
            return body  # a 2xx other than 200 (see _read)
        try:
            # The strict converter says exactly what is wrong.
            structure(body, Envelope, what=f"answer to {what}", status_code=status)
        except ResponseFormatError as exc:
            return detached(exc)
        # The converter accepts true or false only, and true returned above.
        return self._refusal(response, what, auth_endpoint, by_status=False)

    def _refusal(
        self,
        response: Any,
        what: str,
        auth_endpoint: bool,
        *,
        by_status: bool,
    ) -> APIError:
        status = response.status_code
        # The token it was sent with may be an older one than the auth's current.
        sent = response.request.headers.get("authorization", "").partition(" ")[2]
        body = self._auth.redact(decode_error_body(response.content), also=(sent,))
        refusal = error_for_status(
            status,
            body,
            response.headers,
            what=what,
            auth_endpoint=auth_endpoint,
            response=response,
        )
        if by_status:
            return refusal
        # success: false on a 2xx: the status says nothing, the body says no.
        return APIError(
            status, refusal.message, refusal.body, **error_context(response)
        )

    def _check_account(self, what: str, account_id: int | None) -> None:
        """Refuse, before sending, a bearer request for another account than the
        session's (it could only be refused, after a wasted renewal)."""
        auth = self._auth
        if account_id is None or not isinstance(auth, BearerFlow):
            return
        session = auth.session
        current = (
            session.account_id
            if session is not None and session.account_id is not None
            else auth.account_id
        )
        if current is None or current == account_id:
            return  # the same account, or one only the server knows: let it decide
        raise AccountMismatchError(
            f"{what}: account_id={account_id}, but this client's bearer session "
            f"belongs to account {current}, and a session acts on one account only. "
            f"Use client.for_account({account_id}) (its own session, the same "
            f"connection pool), or client.switch_account({account_id}) to move this "
            "client's session. Nothing was sent.",
            session_account_id=current,
            account_id=account_id,
        )

    # -- reports ----------------------------------------------------------------------

    async def call_data(
        self,
        start_date: DateLike,
        end_date: DateLike,
        *,
        account_id: int | None = None,
        timeout: Any = NOT_GIVEN,  # noqa: ASYNC109 - the HTTP request's, httpx's type
    ) -> list[dict[str, Any]]:
        """Call records between two dates, both included.

        Args:
            start_date: A ``date`` or ``"YYYY-MM-DD"``.
            end_date: A ``date`` or ``"YYYY-MM-DD"``, not before ``start_date``.
            account_id: The account to report on. With a bearer session it must be
                the session's own (use :meth:`for_account` for others); Basic and
                Integrator auth send it with the request.
            timeout: This call's timeouts instead of the client's.

        Returns:
            The records as the API sends them (plain dicts).

        Raises:
            ValueError, TypeError: Bad dates or account id (before any request).
            AccountMismatchError: A bearer session of another account.
            TeletrackerError: As :meth:`request_json`; ``ResponseFormatError`` when
                ``data`` is not a list of objects.
        """
        first, last = _date_range(start_date, end_date)
        account = check_account_id(account_id)
        self._check_account("call_data", account)
        return await self._call_data(first, last, account, self._options_for(timeout))

    async def _call_data(
        self, first: date, last: date, account_id: int | None, options: _Options
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {
            "start_date": first.isoformat(),
            "end_date": last.isoformat(),
        }
        if account_id is not None:
            params["account_id"] = account_id
        path = "/reports/call-data"
        url = self._url(path)
        build, extra = self._shared.http.build_request, self._request_options(options)
        response = await self._send(
            lambda: build("GET", url, params=params, **extra),
            options,
            what=("GET", path),
            idempotent=None,
        )
        result = self._records(path, response)
        if isinstance(result, TeletrackerError):
            raise result
        return result

    def _records(
        self, path: str, response: Any
    ) -> list[dict[str, Any]] | TeletrackerError:
        body = self._outcome("GET", path, response, auth_endpoint=False)
        if isinstance(body, TeletrackerError):
            return body
        try:
            answer = structure(
                body,
                CallDataAnswer,
                what=f"answer to GET {path}",
                status_code=response.status_code,
            )
        except ResponseFormatError as exc:
            return detached(exc)
        return answer.data

    def stream_call_data(
        self,
        start_date: DateLike,
        end_date: DateLike,
        *,
        account_id: int | None = None,
        window_days: int = 1,
        concurrency: int = 8,
        ahead: int | None = None,
        timeout: Any = NOT_GIVEN,
    ) -> CallDataStream:
        """Call records of a long range, in date order, through a sliding window.

        ::

            async with client.stream_call_data(start, end) as stream:
                async for record in stream:
                    ...

        The range is cut into windows of ``window_days``. As soon as one window's
        answer arrives the next one starts, keeping up to ``concurrency`` requests
        in flight, also while your loop body works. Records come out in date
        order. At most ``ahead`` windows past the one being read are fetched or
        in flight (default ``2 * concurrency``), which bounds memory. Leaving the
        block cancels whatever still runs; the first error is raised as itself.
        ``stream.windows_done``, ``stream.windows_total``, ``stream.records`` and
        ``stream.eta()`` tell how far it is.

        Raises:
            ValueError, TypeError: Bad arguments, here, before any request.
            AccountMismatchError: A bearer session of another account, here.
            TeletrackerError: From the loop: the first window that failed.
        """
        first, last = _date_range(start_date, end_date)
        account = check_account_id(account_id)
        step = check_positive_int("window_days", window_days)
        width = check_positive_int("concurrency", concurrency)
        lookahead = 2 * width if ahead is None else check_positive_int("ahead", ahead)
        self._check_account("stream_call_data", account)
        options = self._options_for(timeout)

        async def fetch(start: date, end: date) -> list[dict[str, Any]]:
            return await self._call_data(start, end, account, options)

        return CallDataStream(
            fetch, windows_of(first, last, step), concurrency=width, ahead=lookahead
        )

    async def iter_call_data(
        self,
        start_date: DateLike,
        end_date: DateLike,
        *,
        account_id: int | None = None,
        window_days: int = 1,
        concurrency: int = 8,
        timeout: Any = NOT_GIVEN,  # noqa: ASYNC109 - the HTTP request's, httpx's type
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield call records of a long range in date order, a batch at a time.

        The simple form of :meth:`stream_call_data`, usable without a block: the
        range is cut into windows of ``window_days``; ``concurrency`` windows are
        fetched together, then their records are yielded in order before the next
        batch starts. An async generator cannot hold a task group across its
        ``yield``, so each batch's tasks end before its records are yielded: a
        ``break`` leaves nothing running, and the first error is raised as itself.
        The price: a batch waits for its slowest window, and nothing is fetched
        while you consume it. :meth:`stream_call_data` has neither cost.

        Raises:
            ValueError, TypeError: Bad arguments, before any request.
            AccountMismatchError: A bearer session of another account.
            TeletrackerError: The first error of a batch; the rest are cancelled.
        """
        first, last = _date_range(start_date, end_date)
        account = check_account_id(account_id)
        step = check_positive_int("window_days", window_days)
        width = check_positive_int("concurrency", concurrency)
        self._check_account("iter_call_data", account)
        options = self._options_for(timeout)
        windows = windows_of(first, last, step)
        for batch_start in range(0, len(windows), width):
            batch = windows[batch_start : batch_start + width]
            for records in await self._fetch_batch(batch, account, options):
                for record in records:
                    yield record

    async def _fetch_batch(
        self,
        batch: list[tuple[date, date]],
        account_id: int | None,
        options: _Options,
    ) -> list[list[dict[str, Any]]]:
        results: list[list[dict[str, Any]]] = [[] for _ in batch]
        errors: list[BaseException] = []

        async def fetch(index: int, window: tuple[date, date]) -> None:
            try:
                results[index] = await self._call_data(*window, account_id, options)
            except TeletrackerError as exc:
                if not errors:
                    errors.append(exc)
                tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            for index, window in enumerate(batch):
                tg.start_soon(fetch, index, window)
        if errors:
            raise errors[0]
        return results

    # -- session ----------------------------------------------------------------------

    def _bearer_auth(self, what: str) -> BearerFlow:
        if not isinstance(self._auth, BearerFlow):
            raise TypeError(
                f"{what} needs a bearer session (TeletrackerAuth), "
                f"not {type(self._auth).__name__}"
            )
        return self._auth

    async def _send_raw(self, request: Any) -> Any:
        shared = self._shared
        self._check_open()
        self._check_loop()
        try:
            return await shared.http.send(
                request, auth=None, stream=True, follow_redirects=False
            )
        except shared.stack.TransportError as exc:
            raise _no_answer(
                request.method, request.url, exc, shared.stack
            ) from detached(exc)

    async def session(self) -> AuthSession:
        """A valid session now: logs in or refreshes as needed.

        Shares the single-flight rules of the auth flow: concurrent callers and
        requests in flight cause one login or refresh between them.

        Raises:
            TypeError: The client does not use :class:`TeletrackerAuth`.
            TeletrackerError: The login or refresh failed.
        """
        auth = self._bearer_auth("session()")
        return await auth.ensure_session(self._send_raw)

    async def switch_account(self, account_id: int | None) -> None:
        """Work in another account from now on.

        With bearer sessions this is a new login with ``account_id``: requests
        already sent finish with the old token, later ones use the new one, and a
        request refused with the old account's token is never retried with the new
        one. A refused switch fails only this call; the old session stays.
        With Basic or Integrator auth, later requests carry the new ``account_id``.
        It moves every view that shares this client's session (``with_options``
        views); a :meth:`for_account` view stays on its account and refuses it.

        Raises:
            TypeError, ValueError: A bad account id (Integrator: None is refused),
                or a :meth:`for_account` view.
            AuthenticationError: The user cannot reach that account.
        """
        if self._account_view is not None:
            raise TypeError(
                f"this view works in account {self._account_view} only: use "
                "client.for_account(...) for another account"
            )
        account = check_account_id(account_id)
        if isinstance(self._auth, BearerFlow):
            await self._auth.switch_account(account, self._send_raw)
        else:
            self._auth.use_account(account)

    async def verify_credentials(self) -> bool:
        """Check the credentials with ``auth_only=1``; creates no session.

        Returns:
            True when accepted, False when refused with 401.

        Raises:
            TeletrackerError: Any other answer (400, 403, 5xx...) or no answer.
        """
        path = "/auth/login"
        response = await self._send(
            lambda: self._auth.login_request(self._auth.account_id, auth_only=True),
            self._options,
            what=("POST", path),
            idempotent=True,
            authenticate=False,
        )
        if response.status_code == 401:
            return False
        self._read("POST", path, response, auth_endpoint=True)
        return True
