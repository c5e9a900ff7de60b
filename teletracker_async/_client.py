"""``TeletrackerClient``: a facade over the session tower and the request path.

The client holds a :class:`~teletracker_async._call.send.RequestPath` (the shared
link to the pool, its auth, its settings) and delegates: the tries and the queue are
in ``_call/``, report pulls in ``_reports.py``, settings in ``_options.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, overload

import anyio
import attrs

from teletracker_async._call.answers import read_json
from teletracker_async._call.options import (
    NOT_GIVEN,
    CallOptions,
    NotGiven,
    TimeoutArg,
    check_total_timeout,
)
from teletracker_async._call.retry import Retry
from teletracker_async._call.send import RequestPath
from teletracker_async._config import (
    DEFAULT_LIMITS,
    DEFAULT_TIMEOUT,
    DEFAULT_TOTAL_TIMEOUT,
    DEFAULT_WIRE,
    Wire,
)
from teletracker_async._http import TimeoutLike
from teletracker_async._options import AnyAuth, ClientOptions, auth_for, pick_stack
from teletracker_async._reports import ReportCalls
from teletracker_async._secrets import (
    check_account_id,
    secret_password,
)
from teletracker_async._session_calls import SessionCalls
from teletracker_async.events import Listener
from teletracker_async.stores._base import StoreErrors

if TYPE_CHECKING:
    import httpx
    from typing_extensions import Self, TypeVar

    import httpx2
    from teletracker_async._session.flow import TeletrackerAuth
    from teletracker_async._session.schemes import IntegratorAuth, TeletrackerBasicAuth
    from teletracker_async.httpx2 import IntegratorAuth as _Httpx2Integrator
    from teletracker_async.httpx2 import TeletrackerAuth as _Httpx2Bearer
    from teletracker_async.httpx2 import TeletrackerBasicAuth as _Httpx2Basic
    from teletracker_async.stores import TokenStore

    #: The auth class of a client: a bearer flow (``TeletrackerAuth`` of its
    #: stack) when built from credentials, the class of ``auth=`` when given.
    AuthT_co = TypeVar("AuthT_co", bound=AnyAuth, default=AnyAuth, covariant=True)
    HTTPAsyncClient = httpx.AsyncClient | httpx2.AsyncClient
    #: An auth given with ``auth=``, of the stack of the client it goes with.
    _HttpxAuthT = TypeVar(
        "_HttpxAuthT", bound=TeletrackerAuth | TeletrackerBasicAuth | IntegratorAuth
    )
    _Httpx2AuthT = TypeVar(
        "_Httpx2AuthT", bound=_Httpx2Bearer | _Httpx2Basic | _Httpx2Integrator
    )
else:
    from typing import TypeVar

    AuthT_co = TypeVar("AuthT_co", covariant=True)

__all__ = ["DEFAULT_LIMITS", "DEFAULT_TIMEOUT", "TeletrackerClient"]


@attrs.define(eq=False)
class _Views:
    """The account views of a client, shared by the client and all its views."""

    #: account id -> the view with its own session for it (the client's settings).
    accounts: dict[int, TeletrackerClient[Any]] = attrs.field(factory=dict)


class TeletrackerClient(ReportCalls, SessionCalls, Generic[AuthT_co]):
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
        wire: What carries the requests: ``"httpx"`` (httpx's own transport) or
            ``"aiohttp"`` (aiohttp's sockets under httpx, sized from ``limits``;
            the ``aiohttp`` extra, asyncio only). Not with ``transport`` or
            ``http_client``.
        retry: The retry policy (:class:`Retry`): how many tries, which statuses,
            the backoff between tries.
        max_retries: Retries after the first try (the older spelling of
            ``retry=Retry(max_attempts=max_retries + 1)``); not with ``retry``.
        sleep: The coroutine used to wait between retries (inject one in tests).
        store: A token store through which many processes share the session
            (see :mod:`teletracker_async.stores`); with credentials only.
        store_errors: What an unreachable store costs: ``"login"`` (a private login
            past the hard deadline) or ``"raise"`` (``TokenStoreError``).
        on_event: A listener, or a list of listeners, of the session's events
            (:mod:`teletracker_async.events`), retries included: given to the
            auth the client builds, or added to the ``TeletrackerAuth`` given.
        **httpx_options: Passed to the ``AsyncClient`` it builds (``headers``,
            ``proxy``, ``verify``...); an unknown name is a ``TypeError`` at once.

    Raises:
        TypeError, ValueError: Bad, missing or conflicting arguments, including
            objects from two HTTP stacks (named in the message).
        ImportError: ``wire="aiohttp"`` without the ``aiohttp`` extra.
    """

    # One stack per call, as __init__ refuses a mix at run time: httpx objects (and
    # the default, neither http_client nor transport) with the auth classes of
    # teletracker_async; httpx2 objects with those of teletracker_async.httpx2.
    # The httpx overloads come first: without httpx2 installed its types are Any.
    @overload
    def __init__(
        self: TeletrackerClient[TeletrackerAuth],
        username: str | None = None,
        password: str | None = None,
        *,
        account_id: int | None = None,
        auth: None = None,
        base_url: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: TimeoutArg = DEFAULT_TIMEOUT,
        total_timeout: float | None = DEFAULT_TOTAL_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        wire: Wire = "httpx",
        max_retries: int | None = None,
        retry: Retry | None = None,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
        store: TokenStore | None = None,
        store_errors: StoreErrors = "login",
        on_event: Listener | Sequence[Listener] | None = None,
        **httpx_options: object,
    ) -> None: ...
    @overload
    def __init__(
        self: TeletrackerClient[_Httpx2Bearer],
        username: str | None = None,
        password: str | None = None,
        *,
        account_id: int | None = None,
        auth: None = None,
        base_url: str | None = None,
        http_client: httpx2.AsyncClient,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: TimeoutArg = DEFAULT_TIMEOUT,
        total_timeout: float | None = DEFAULT_TOTAL_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        wire: Literal["httpx"] = "httpx",
        max_retries: int | None = None,
        retry: Retry | None = None,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
        store: TokenStore | None = None,
        store_errors: StoreErrors = "login",
        on_event: Listener | Sequence[Listener] | None = None,
        **httpx_options: object,
    ) -> None: ...
    @overload
    def __init__(
        self: TeletrackerClient[_Httpx2Bearer],
        username: str | None = None,
        password: str | None = None,
        *,
        account_id: int | None = None,
        auth: None = None,
        base_url: str | None = None,
        http_client: None = None,
        transport: httpx2.AsyncBaseTransport,
        timeout: TimeoutArg = DEFAULT_TIMEOUT,
        total_timeout: float | None = DEFAULT_TOTAL_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        wire: Literal["httpx"] = "httpx",
        max_retries: int | None = None,
        retry: Retry | None = None,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
        store: TokenStore | None = None,
        store_errors: StoreErrors = "login",
        on_event: Listener | Sequence[Listener] | None = None,
        **httpx_options: object,
    ) -> None: ...
    @overload
    def __init__(
        self: TeletrackerClient[_HttpxAuthT],
        *,
        auth: _HttpxAuthT,
        base_url: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: TimeoutArg = DEFAULT_TIMEOUT,
        total_timeout: float | None = DEFAULT_TOTAL_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        wire: Wire = "httpx",
        max_retries: int | None = None,
        retry: Retry | None = None,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
        # With auth=, the store is the auth's own setting (a TypeError here).
        store: None = None,
        store_errors: Literal["login"] = "login",
        on_event: Listener | Sequence[Listener] | None = None,
        **httpx_options: object,
    ) -> None: ...
    @overload
    def __init__(
        self: TeletrackerClient[_Httpx2AuthT],
        *,
        auth: _Httpx2AuthT,
        base_url: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: TimeoutArg = DEFAULT_TIMEOUT,
        total_timeout: float | None = DEFAULT_TOTAL_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        wire: Literal["httpx"] = "httpx",
        max_retries: int | None = None,
        retry: Retry | None = None,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
        # With auth=, the store is the auth's own setting (a TypeError here).
        store: None = None,
        store_errors: Literal["login"] = "login",
        on_event: Listener | Sequence[Listener] | None = None,
        **httpx_options: object,
    ) -> None: ...
    def __init__(  # type: ignore[misc]  # auth= overloads' **httpx_options could name username: refused at run time
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        account_id: int | None = None,
        auth: AnyAuth | None = None,
        base_url: str | None = None,
        http_client: HTTPAsyncClient | None = None,
        transport: object = None,
        timeout: TimeoutArg = DEFAULT_TIMEOUT,
        total_timeout: float | None = DEFAULT_TOTAL_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        wire: Wire = DEFAULT_WIRE,
        max_retries: int | None = None,
        retry: Retry | None = None,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
        store: TokenStore | None = None,
        store_errors: StoreErrors = "login",
        on_event: Listener | Sequence[Listener] | None = None,
        **httpx_options: object,
    ) -> None:
        secret = None if password is None else secret_password(password)
        del password  # from here on, no frame that may raise holds it
        if retry is not None and max_retries is not None:
            raise TypeError("give retry= or max_retries=, not both")
        stack = pick_stack(http_client, transport, auth)
        built = auth_for(
            stack,
            auth,
            username=username,
            secret=secret,
            account_id=account_id,
            base_url=base_url,
            store=store,
            store_errors=store_errors,
            on_event=on_event,
        )
        if retry is None:
            retry = Retry.of_max_retries(2 if max_retries is None else max_retries)
        options = ClientOptions(
            stack=stack,
            auth=built,
            transport=transport,
            timeout=timeout,
            limits=limits,
            http_client=http_client,
            call=CallOptions(
                retry=retry, total_timeout=check_total_timeout(total_timeout)
            ),
            sleep=sleep,
            httpx_options=httpx_options,
            wire=wire,
        )
        self._start(
            RequestPath(options.link(), built, options.call), _Views(), None, root=True
        )

    def _start(
        self, path: RequestPath, views: _Views, account: int | None, *, root: bool
    ) -> None:
        self._path = path
        self._views = views
        #: The account of a view made by :meth:`for_account`, else None.
        self._account_view = account
        self._is_root = root

    def __repr__(self) -> str:
        # Safe on a half-built client: error reporters repr every frame's locals.
        path = getattr(self, "_path", None)
        view = getattr(self, "_account_view", None)
        return (
            f"TeletrackerClient(auth={None if path is None else path.auth!r}, "
            f"base_url={None if path is None else path.link.base_url!r}, "
            f"stack={None if path is None else path.link.stack.name!r}"
            + ("" if view is None else f", view_of_account={view!r}")
            + ")"
        )

    # -- views ------------------------------------------------------------------------

    def with_options(
        self,
        *,
        timeout: TimeoutArg | NotGiven = NOT_GIVEN,
        retry: Retry | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        total_timeout: float | NotGiven | None = NOT_GIVEN,
    ) -> TeletrackerClient[AuthT_co]:
        """A view of this client with other per-call settings (openai's convention).

        The view shares the connection pool, the queue in front of it and the
        session (so the single-flight renewal too); only the settings differ. It
        is a small object that opens nothing: make one per request if you like.
        Closing the client closes it.

        Args:
            timeout: An ``httpx.Timeout``, seconds, or None (no timeout).
            retry: The retry policy (:class:`Retry`).
            max_retries: Retries after the first try (not with ``retry``).
            total_timeout: Seconds a call may take, retries included, or None.

        Raises:
            TypeError, ValueError: A bad setting, naming it; ``retry`` and
                ``max_retries`` both given.
        """
        path = self._path
        options = path.options.evolve(
            path.link.stack,
            timeout=timeout,
            retry=retry,
            max_retries=max_retries,
            total_timeout=total_timeout,
        )
        return _View(
            RequestPath(path.link, path.auth, options), self._views, self._account_view
        )

    def for_account(self, account_id: int) -> TeletrackerClient[AuthT_co]:
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
        self._path.link.check_open()
        path = self._path
        view = self._views.accounts.get(account)
        if view is None:
            own = RequestPath(path.link, path.auth.for_account(account), path.options)
            view = self._views.accounts[account] = _View(own, self._views, account)
        if view._path.options == path.options:  # noqa: SLF001 - its own class
            return view
        own_path = view._path.with_options(path.options)  # noqa: SLF001
        return _View(own_path, self._views, account)

    # -- lifetime ---------------------------------------------------------------------

    @property
    def http(self) -> HTTPAsyncClient:
        """The underlying ``httpx.AsyncClient`` (or ``httpx2.AsyncClient``).

        The client's own when it built one; yours when you passed ``http_client``.
        """
        http: HTTPAsyncClient = self._path.link.http  # type: ignore[assignment]
        return http

    @property
    def auth(self) -> AuthT_co:
        """The auth object every request of this client (or view) goes through."""
        auth: AuthT_co = self._path.auth
        return auth

    @property
    def timeout(self) -> TimeoutLike:
        """The timeouts requests get (the stack's ``Timeout``)."""
        return self._path.options.timeout or self._path.link.http.timeout

    @property
    def retry(self) -> Retry:
        """The retry policy (see :class:`Retry`)."""
        return self._path.options.retry

    @property
    def max_retries(self) -> int:
        """Retries after the first try (``retry.max_attempts - 1``)."""
        return self._path.options.retry.max_retries

    @property
    def total_timeout(self) -> float | None:
        """Seconds one call may take, retries included, or None."""
        return self._path.options.total_timeout

    @property
    def is_view(self) -> bool:
        """Whether this is a view made by :meth:`with_options` or :meth:`for_account`."""
        return not self._is_root

    async def __aenter__(self) -> Self:
        link = self._path.link
        if link.owns_http and self._is_root:
            await link.http.__aenter__()  # type: ignore[attr-defined]
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
        link = self._path.link
        if link.closed or not self._is_root:
            return
        link.closed = True
        if link.owns_http:
            await link.http.aclose()

    # -- requests ---------------------------------------------------------------------

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        timeout: TimeoutArg | NotGiven = NOT_GIVEN,  # noqa: ASYNC109 - the request's
    ) -> dict[str, Any]:
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
        way = self._path if timeout is NOT_GIVEN else self._path.with_timeout(timeout)
        if params is not None and "account_id" in params:
            self._path.check_account(
                f"{method} {path}", check_account_id(params["account_id"])
            )
        url = way.link.url(path)
        build, extra = way.link.http.build_request, way.extra
        response = await way.send(
            lambda: build(method, url, params=params, data=data, json=json, **extra),
            what=(method, path),
            idempotent=idempotent,
        )
        return read_json(method, path, response, way.auth)

    # -- session ----------------------------------------------------------------------


class _View(TeletrackerClient[AuthT_co]):
    """A view of a client (:meth:`~TeletrackerClient.with_options`,
    :meth:`~TeletrackerClient.for_account`): the same link, its own path."""

    def __init__(
        self, path: RequestPath, views: _Views, account: int | None
    ) -> None:  # the views' own constructor: nothing to check, nothing to open
        self._start(path, views, account, root=False)
