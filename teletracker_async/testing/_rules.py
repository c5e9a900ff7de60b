"""The API's rules: users, endpoints, the requests log, and the dispatch to them.

:class:`FakeTeletracker` answers :class:`FakeRequest` objects in :meth:`~FakeTeletracker.handle`
the way the real API is documented to; its session rules live in
:mod:`._session_rules` and its fault knobs in :mod:`._fault_rules`. The doors in
:mod:`._doors` bring requests to it from httpx, ASGI or a loopback socket.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections import deque
from collections.abc import (
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
)
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import parse_qsl

import attrs
import httpx

from teletracker_async.testing._answers import (
    REFRESH_TOKEN_LIFETIME,
    TOKEN_LIFETIME,
    FakeStats,
    json_answer,
    multipart,
    refusal,
)
from teletracker_async.testing._doors import (
    asgi_server as uvicorn_server,
)
from teletracker_async.testing._doors import (
    in_process_transport,
    serve_asgi,
)
from teletracker_async.testing._doors import serving as serving_in_thread
from teletracker_async.testing._fault_rules import BUILT_IN, Endpoint, FaultRules
from teletracker_async.testing._session_rules import SessionRules, User
from teletracker_async.testing._wire import FakeRequest, FakeResponse

if TYPE_CHECKING:
    import uvicorn

    import httpx2

__all__ = [
    "Endpoint",
    "EndpointHandler",
    "FakeStats",
    "FakeTeletracker",
    "RecordedRequest",
]

#: What :meth:`FakeTeletracker.add_endpoint` calls: the request and the account the
#: caller acts on (``None`` on an endpoint added with ``authenticated=False``). It
#: returns a :class:`FakeResponse`, or any JSON value to answer 200 with it.
EndpointHandler = Callable[[FakeRequest, "int | None"], Any]

# Values the requests log never keeps, wherever they appear in a query string.
_SECRET_KEYS = frozenset({"password", "refresh_token", "token", "access_token"})
_SCHEMES = {"bearer": "Bearer", "basic": "Basic", "integrator": "Integrator"}


@attrs.frozen
class RecordedRequest:
    """One request that reached the fake, as :attr:`FakeTeletracker.requests` keeps it.

    Secrets stay out: the body is reduced to its form or JSON *keys*, the
    ``Authorization`` header to its scheme, and query values named like a secret
    (``password``, ``token``, ``refresh_token``, ``access_token``) to ``"<redacted>"``.
    """

    method: str
    path: str
    query: Mapping[str, str]
    #: The form, multipart or JSON body's keys, in order; ``()`` for no or other bodies.
    keys: tuple[str, ...]
    #: ``"Bearer"``, ``"Basic"``, ``"Integrator"``, another scheme as sent, or None.
    scheme: str | None
    #: The answer's status; None when the connection was dropped or the request
    #: was cancelled before an answer.
    status: int | None


@attrs.frozen
class _Route:
    endpoint: str | None  # the fault knobs' name; None: no faults, no in-flight count
    work: Callable[[FakeRequest], FakeResponse | Awaitable[FakeResponse]]


def _body_keys(request: FakeRequest) -> tuple[str, ...]:
    ctype = request.headers.get("content-type", "")
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        if ctype.startswith("application/json"):
            payload = json.loads(request.body or b"{}")
            return tuple(payload) if isinstance(payload, dict) else ()
        if ctype.startswith("multipart/form-data"):
            return tuple(multipart(ctype, request.body))
        if request.body:
            return tuple(
                k for k, _ in parse_qsl(request.body.decode(), keep_blank_values=True)
            )
    return ()


def _record(request: FakeRequest, status: int | None) -> RecordedRequest:
    scheme_word = request.headers.get("authorization", "").partition(" ")[0]
    return RecordedRequest(
        method=request.method,
        path=request.path,
        query={
            k: "<redacted>" if k.lower() in _SECRET_KEYS else v
            for k, v in request.query.items()
        },
        keys=_body_keys(request),
        scheme=_SCHEMES.get(scheme_word.lower(), scheme_word or None),
        status=status,
    )


def _check_settings(
    expired_status: int,
    shortest_lifetime: float,
    records_per_day: int,
    request_log_size: int | None,
) -> None:
    if expired_status not in (401, 403):
        raise ValueError("expired_status must be 401 or 403")
    if shortest_lifetime <= 0:
        raise ValueError("lifetimes must be positive")
    if records_per_day < 0:
        raise ValueError("records_per_day must be >= 0")
    if request_log_size is not None and request_log_size < 0:
        raise ValueError("request_log_size must be >= 0 or None")


class FakeTeletracker(SessionRules, FaultRules):
    """An in-process fake of the Teletracker API with the documented behaviour.

    Args:
        users: ``{username: password}`` or ``{username: (password, [account ids])}``.
            A user given without accounts reaches account 1.
        token_lifetime: Seconds a bearer token lives. Answers carry it as an integer
            (``tokenLifetime``), as the API does, unless it has a fraction.
        refresh_token_lifetime: Seconds a refresh token lives.
        expired_status: What an expired bearer token gets: 401 or 403.
        clock: A monotonic clock (share a :class:`FakeClock` with the SDK in tests).
        wall_clock_skew: Seconds the server's wall clock is ahead of the real one.
        records_per_day: Call records per account and day on the data endpoint.
        account_id_in_answers: Add an ``accountId`` field to login and refresh
            answers. The documentation shows none; a test of code that copes with
            extra fields may ask for one.
        request_log_size: How many of the latest requests :attr:`requests` keeps
            (None: all of them), so that a long-running served fake stays small.
    """

    def __init__(
        self,
        users: Mapping[str, str | tuple[str, Iterable[int]]] | None = None,
        *,
        token_lifetime: float = TOKEN_LIFETIME,
        refresh_token_lifetime: float = REFRESH_TOKEN_LIFETIME,
        expired_status: Literal[401, 403] = 401,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_skew: float = 0.0,
        records_per_day: int = 24,
        account_id_in_answers: bool = False,
        request_log_size: int | None = 1000,
    ) -> None:
        _check_settings(
            expired_status,
            min(token_lifetime, refresh_token_lifetime),
            records_per_day,
            request_log_size,
        )
        self.token_lifetime: float = float(token_lifetime)
        self.refresh_token_lifetime: float = float(refresh_token_lifetime)
        self.expired_status: Literal[401, 403] = expired_status
        self.clock = clock
        self.wall_clock_skew = wall_clock_skew
        self.records_per_day = records_per_day
        self.account_id_in_answers = account_id_in_answers
        self.stats: FakeStats = FakeStats()
        #: The requests that reached the fake, in the order they were answered: the
        #: latest ``request_log_size`` of them.
        self.requests: deque[RecordedRequest] = deque(maxlen=request_log_size)
        self._users = {}
        self._sessions = {}
        self._by_token = {}
        self._by_refresh = {}
        self._spent_refresh = {}
        self._faults = {e: deque() for e in BUILT_IN}
        self._latency = {}
        self._day_cache: dict[tuple[int, date], list[dict[str, Any]]] = {}
        self._wall_origin = time.time()
        self._clock_origin = clock()
        self._routes: dict[tuple[str, str], _Route] = {
            ("POST", "/auth/login"): _Route("login", self._login),
            ("POST", "/auth/refresh"): _Route("refresh", self._refresh),
            ("GET", "/reports/call-data"): _Route("data", self._call_data),
            ("POST", "/echo"): _Route("data", self._echo),
            ("GET", "/_fake/stats"): _Route(
                None,
                lambda _: json_answer(
                    {"success": True, "data": attrs.asdict(self.stats)}
                ),
            ),
        }
        self._built_in_routes = frozenset(self._routes)
        for name, spec in (users or {}).items():
            if isinstance(spec, str):
                self.add_user(name, spec)
            else:
                password, accounts = spec
                self.add_user(name, password, accounts)

    def __repr__(self) -> str:
        return (
            f"FakeTeletracker(users={sorted(self._users)!r}, "
            f"live_sessions={self.live_sessions})"
        )

    # -- set-up and knobs -------------------------------------------------------------

    def add_user(
        self,
        username: str,
        password: str,
        account_ids: Iterable[int] = (1,),
        *,
        integrator: bool = False,
    ) -> None:
        """Add (or replace) a user who can reach *account_ids* (the first is default).

        An *integrator* may also use ``Authorization: Integrator``.
        """
        accounts = tuple(account_ids)
        if not accounts:
            raise ValueError("a user needs at least one account")
        self._users[username] = User(password, accounts, integrator)

    def set_password(self, username: str, password: str) -> None:
        """Change a user's password (existing sessions live on)."""
        self._users[username].password = password

    def add_endpoint(
        self,
        method: str,
        path: str,
        handler: EndpointHandler,
        *,
        name: str | None = None,
        authenticated: bool = True,
    ) -> None:
        """Serve an endpoint the fake does not know, under the fake's own rules.

        The caller's ``Authorization`` is checked first, exactly as on the data
        endpoint (bearer tokens with their expiry, revocation and ``account_id``
        check; Basic; Integrator): a refused caller never reaches *handler*. The
        fault knobs apply too: name the endpoint to them by its *name*.

        Args:
            method: The HTTP method, e.g. ``"GET"``.
            path: The path, e.g. ``"/reports/summary"``.
            handler: Called as ``handler(request, account_id)``; returns a
                :class:`FakeResponse`, or any JSON value to answer 200 with it.
            name: What the fault knobs call this endpoint (``fail_next(name)``...).
                Default: the path, so two methods on one path share their faults.
                Naming it ``"data"`` puts it under the data endpoint's faults.
            authenticated: False serves it to anyone; *handler* then gets None.

        Raises:
            ValueError: The route is one the fake serves itself, or *path* does
                not start with ``/``.
        """
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        route = (method.upper(), path.rstrip("/") or "/")
        if route in self._built_in_routes:
            raise ValueError(f"{route[0]} {route[1]} is served by the fake itself")
        endpoint = name if name is not None else route[1]

        def work(request: FakeRequest) -> FakeResponse:
            account: int | None = None
            if authenticated:
                caller = self._caller(request)
                if isinstance(caller, FakeResponse):
                    return caller
                account = caller
            result = handler(request, account)
            return result if isinstance(result, FakeResponse) else json_answer(result)

        self._faults.setdefault(endpoint, deque())
        self._routes[route] = _Route(endpoint, work)

    def reset_stats(self) -> None:
        """Zero the counters (the requests log is kept: ``fake.requests.clear()``)."""
        self.stats = FakeStats()

    # -- doors ------------------------------------------------------------------------

    @overload
    def transport(
        self,
        *,
        max_connections: int | None = None,
        stack: Literal["httpx"] = "httpx",
    ) -> httpx.AsyncBaseTransport: ...
    @overload
    def transport(
        self, *, max_connections: int | None = None, stack: Literal["httpx2"]
    ) -> httpx2.AsyncBaseTransport: ...
    def transport(
        self,
        *,
        max_connections: int | None = None,
        stack: Literal["httpx", "httpx2"] = "httpx",
    ) -> Any:
        """A transport that answers in-process, for ``AsyncClient(transport=)``.

        Args:
            max_connections: Behave like a connection pool of this size: a request
                waits for a free 'connection' and holds it until its answer's body is
                read or closed. None: unlimited.
            stack: ``"httpx"`` (an ``httpx.AsyncBaseTransport``) or ``"httpx2"``
                (for an ``httpx2.AsyncClient``; needs httpx2 installed).
        """
        return in_process_transport(self.handle, max_connections, stack)

    async def asgi(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        """The fake as an ASGI application: ``uvicorn.run(fake.asgi)``.

        Same state, same rules as :meth:`transport`: both doors lead to
        :meth:`handle`. A dropped connection is played by announcing a body and
        never sending it, which the server turns into a closed connection.
        """
        await serve_asgi(self.handle, scope, receive, send)

    def asgi_server(self, **options: object) -> uvicorn.Server:
        """A ``uvicorn.Server`` for :meth:`asgi` (needs the ``cli`` extra).

        Args:
            **options: More ``uvicorn.Config`` settings.
        """
        return uvicorn_server(self.asgi, **options)

    @contextlib.contextmanager
    def serving(self, host: str = "127.0.0.1") -> Iterator[str]:
        """Serve the fake over real HTTP on a free port of *host*, in a thread.

        For harnesses whose code builds its own HTTP client: point it at the URL
        this yields. The fake's state is shared with the thread, so read
        :attr:`stats` once the requests are done. Needs the ``cli`` extra.

        Yields:
            The base URL, like ``http://127.0.0.1:38211``.
        """
        with serving_in_thread(self.asgi, host) as url:
            yield url

    # -- the one implementation -------------------------------------------------------

    async def handle(self, request: FakeRequest) -> FakeResponse:
        """Answer one request, and log it in :attr:`requests`.

        Raises:
            Dropped: A fault drops the connection; the doors turn it into one.
        """
        status: int | None = None
        try:
            answer = await self._dispatch(request)
            status = answer.status
            return answer
        finally:
            self.requests.append(_record(request, status))

    async def _dispatch(self, request: FakeRequest) -> FakeResponse:
        path = request.path.rstrip("/") or "/"
        route = self._routes.get((request.method, path))
        if route is None:
            if any(known == path for _, known in self._routes):
                return refusal(405, f"Method {request.method} not allowed")
            return refusal(404, f"No endpoint {request.path}")
        if route.endpoint is None:
            answer = route.work(request)
            return await answer if not isinstance(answer, FakeResponse) else answer
        return await self._guarded(route.endpoint, request, route.work)

    def _call_data(self, request: FakeRequest) -> FakeResponse:
        account = self._caller(request)
        if isinstance(account, FakeResponse):
            return account
        self.stats.data_requests += 1
        missing = [k for k in ("start_date", "end_date") if not request.query.get(k)]
        if missing:
            return refusal(
                400,
                f"Missing required variables: {', '.join(missing)}",
                missing=missing,
            )
        try:
            start = date.fromisoformat(request.query["start_date"])
            end = date.fromisoformat(request.query["end_date"])
        except ValueError:
            return refusal(400, "Dates must be YYYY-MM-DD")
        if end < start:
            return refusal(400, "end_date is before start_date")
        records: list[dict[str, Any]] = []
        for ordinal in range(start.toordinal(), end.toordinal() + 1):
            # Ordinals: no day after 9999-12-31 is ever formed.
            records.extend(self.records_for(account, date.fromordinal(ordinal)))
        return json_answer({"success": True, "data": records}, 200)

    def _echo(self, request: FakeRequest) -> FakeResponse:
        account = self._caller(request)
        if isinstance(account, FakeResponse):
            return account
        self.stats.data_requests += 1
        return json_answer(
            {
                "success": True,
                "account_id": account,
                "data": request.body.decode("utf-8", "replace"),
            },
            200,
        )

    def records_for(self, account_id: int, day: date) -> list[dict[str, Any]]:
        """The call records the fake serves for *account_id* on *day* (deterministic)."""
        key = (account_id, day)
        cached = self._day_cache.get(key)
        if cached is not None:
            return cached
        rng = random.Random(f"{account_id}/{day.isoformat()}")  # noqa: S311 - not crypto
        records = []
        for i in range(self.records_per_day):
            start = datetime(
                day.year, day.month, day.day, tzinfo=timezone.utc
            ) + timedelta(
                seconds=int(86400 * i / max(self.records_per_day, 1))
                + rng.randrange(60)
            )
            records.append(
                {
                    "id": int(day.strftime("%Y%m%d")) * 10_000 + i,
                    "account_id": account_id,
                    "start_time": start.isoformat(),
                    "duration": rng.randrange(5, 900),
                    "caller_number": f"+1555{rng.randrange(10**7):07d}",
                    "tracking_number": f"+1800{account_id % 10**7:07d}",
                    "source": rng.choice(["google", "bing", "direct", "facebook"]),
                    "status": rng.choice(["answered", "missed", "voicemail"]),
                }
            )
        self._day_cache[key] = records
        return records
