"""The API's rules: users, sessions with rotating refresh tokens, endpoints and faults.

:class:`FakeTeletracker` answers :class:`FakeRequest` objects in :meth:`~FakeTeletracker.handle`
the way the real API is documented to; the doors in :mod:`._doors` bring requests to
it from httpx, ASGI or a loopback socket.
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import json
import random
import time
import uuid
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

import anyio
import attrs
import httpx

from teletracker_async.testing import _doors
from teletracker_async.testing._clock import FakeGate
from teletracker_async.testing._wire import Dropped, FakeRequest, FakeResponse

if TYPE_CHECKING:
    import uvicorn

__all__ = [
    "Endpoint",
    "EndpointHandler",
    "FakeStats",
    "FakeTeletracker",
    "RecordedRequest",
]

#: The names of the built-in endpoints, as the fault knobs take them. An endpoint
#: added with :meth:`FakeTeletracker.add_endpoint` is named by its path (or ``name=``).
Endpoint = Literal["login", "refresh", "data"]
_BUILT_IN = ("login", "refresh", "data")

#: What :meth:`FakeTeletracker.add_endpoint` calls: the request and the account the
#: caller acts on (``None`` on an endpoint added with ``authenticated=False``). It
#: returns a :class:`FakeResponse`, or any JSON value to answer 200 with it.
EndpointHandler = Callable[[FakeRequest, "int | None"], Any]

# Values the requests log never keeps, wherever they appear in a query string.
_SECRET_KEYS = frozenset({"password", "refresh_token", "token", "access_token"})
_SCHEMES = {"bearer": "Bearer", "basic": "Basic", "integrator": "Integrator"}


@attrs.define
class FakeStats:
    """What the fake has seen. Reset with :meth:`FakeTeletracker.reset_stats`."""

    logins: int = 0
    failed_logins: int = 0
    auth_only_checks: int = 0
    refreshes: int = 0
    failed_refreshes: int = 0
    #: Refreshes of a token younger than half its lifetime. The SDK never refreshes
    #: that early on its own, so these betray a second refresh for one expiry.
    premature_refreshes: int = 0
    reuse_attempts: int = 0
    rejected_requests: int = 0
    data_requests: int = 0
    injected_faults: int = 0
    concurrent_logins: int = 0
    max_concurrent_logins: int = 0
    concurrent_refreshes: int = 0
    max_concurrent_refreshes: int = 0


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


@attrs.define
class _Fault:
    kind: Literal["status", "delay", "drop", "gate", "garbage"]
    status: int = 500
    body: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    seconds: float = 0.0
    gate: FakeGate | None = None
    content: bytes = b""


@attrs.define
class _User:
    password: str
    account_ids: tuple[int, ...]
    integrator: bool = False


@attrs.define
class _Session:
    guid: str
    username: str
    account_id: int
    refresh_token: str
    refresh_expires: float
    issued_at: float = 0.0  # when the current token was issued
    revoked: bool = False


@attrs.define
class _Bearer:
    session: _Session
    expires: float


@attrs.frozen
class _Route:
    endpoint: str | None  # the fault knobs' name; None: no faults, no in-flight count
    work: Callable[[FakeRequest], FakeResponse | Awaitable[FakeResponse]]


_json = FakeResponse.json


def _refusal(status: int, message: str, **more: Any) -> FakeResponse:
    return _json({"success": False, "message": message, **more}, status)


def _seconds(value: float) -> int | float:
    """A lifetime as the API writes it: an integer, unless it has a fraction."""
    return int(value) if float(value).is_integer() else value


def _stamp(moment: datetime) -> str:
    """A timestamp as the API writes it: to the second, with its offset."""
    return moment.replace(microsecond=0).isoformat()


def _body_keys(request: FakeRequest) -> tuple[str, ...]:
    ctype = request.headers.get("content-type", "")
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        if ctype.startswith("application/json"):
            payload = json.loads(request.body or b"{}")
            return tuple(payload) if isinstance(payload, dict) else ()
        if ctype.startswith("multipart/form-data"):
            return tuple(_multipart(ctype, request.body))
        if request.body:
            return tuple(
                k for k, _ in parse_qsl(request.body.decode(), keep_blank_values=True)
            )
    return ()


def _multipart(ctype: str, body: bytes) -> dict[str, str]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"content-type: " + ctype.encode() + b"\r\n\r\n" + body
    )
    form: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload_bytes = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload_bytes, bytes):
            form[name] = payload_bytes.decode()
    return form


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


class FakeTeletracker:
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
        token_lifetime: float = 3600.0,
        refresh_token_lifetime: float = 30 * 86400.0,
        expired_status: Literal[401, 403] = 401,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_skew: float = 0.0,
        records_per_day: int = 24,
        account_id_in_answers: bool = False,
        request_log_size: int | None = 1000,
    ) -> None:
        if expired_status not in (401, 403):
            raise ValueError("expired_status must be 401 or 403")
        if token_lifetime <= 0 or refresh_token_lifetime <= 0:
            raise ValueError("lifetimes must be positive")
        if records_per_day < 0:
            raise ValueError("records_per_day must be >= 0")
        if request_log_size is not None and request_log_size < 0:
            raise ValueError("request_log_size must be >= 0 or None")
        self.token_lifetime = float(token_lifetime)
        self.refresh_token_lifetime = float(refresh_token_lifetime)
        self.expired_status = expired_status
        self.clock = clock
        self.wall_clock_skew = wall_clock_skew
        self.records_per_day = records_per_day
        self.account_id_in_answers = account_id_in_answers
        self.stats = FakeStats()
        #: The requests that reached the fake, in the order they were answered: the
        #: latest ``request_log_size`` of them.
        self.requests: deque[RecordedRequest] = deque(maxlen=request_log_size)
        self._users: dict[str, _User] = {}
        self._sessions: dict[str, _Session] = {}
        self._by_token: dict[str, _Bearer] = {}
        self._by_refresh: dict[str, _Session] = {}
        self._spent_refresh: dict[str, _Session] = {}
        self._faults: dict[str, deque[_Fault]] = {e: deque() for e in _BUILT_IN}
        self._latency: dict[str, Callable[[FakeRequest], float]] = {}
        self._day_cache: dict[tuple[int, date], list[dict[str, Any]]] = {}
        self._wall_origin = time.time()
        self._clock_origin = clock()
        self._routes: dict[tuple[str, str], _Route] = {
            ("POST", "/auth/login"): _Route("login", self._login),
            ("POST", "/auth/refresh"): _Route("refresh", self._refresh),
            ("GET", "/reports/call-data"): _Route("data", self._call_data),
            ("POST", "/echo"): _Route("data", self._echo),
            ("POST", "/oauth/token"): _Route(None, self._oauth_token),
            ("GET", "/_fake/stats"): _Route(
                None,
                lambda _: _json({"success": True, "data": attrs.asdict(self.stats)}),
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
        self._users[username] = _User(password, accounts, integrator)

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
            return result if isinstance(result, FakeResponse) else _json(result)

        self._faults.setdefault(endpoint, deque())
        self._routes[route] = _Route(endpoint, work)

    def _push(self, endpoint: str, fault: _Fault, times: int) -> None:
        if endpoint not in self._faults:
            raise ValueError(
                f"endpoint must be one of {tuple(self._faults)}, got {endpoint!r}"
            )
        self._faults[endpoint].extend([fault] * times)

    def fail_next(
        self,
        endpoint: Endpoint | str,
        status: int = 500,
        *,
        times: int = 1,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next *times* requests to *endpoint* with *status* and *body*.

        *endpoint* is ``"login"``, ``"refresh"``, ``"data"`` (the call-data and echo
        endpoints) or the name of an endpoint added with :meth:`add_endpoint`; so
        for every knob below.
        """
        payload = (
            body
            if body is not None
            else {"success": False, "message": "Injected failure"}
        )
        self._push(
            endpoint, _Fault("status", status, payload, dict(headers or {})), times
        )

    def garble_next(
        self, endpoint: Endpoint | str, content: bytes, *, status: int = 200
    ) -> None:
        """Answer the next request to *endpoint* with raw *content* (an HTML page...)."""
        self._push(endpoint, _Fault("garbage", status, content=content), 1)

    def delay_next(
        self, endpoint: Endpoint | str, seconds: float, *, times: int = 1
    ) -> None:
        """Sleep *seconds* (real time) before handling the next requests."""
        self._push(endpoint, _Fault("delay", seconds=seconds), times)

    def set_latency(
        self,
        endpoint: Endpoint | str,
        seconds: Callable[[FakeRequest], float] | None,
    ) -> None:
        """Sleep ``seconds(request)`` (real time) before handling each request to
        *endpoint*, until set to None: a server whose answers take their time, per
        request (a slow report day, say), unlike the one-off :meth:`delay_next`."""
        if endpoint not in self._faults:
            raise ValueError(
                f"endpoint must be one of {tuple(self._faults)}, got {endpoint!r}"
            )
        if seconds is None:
            self._latency.pop(endpoint, None)
        else:
            self._latency[endpoint] = seconds

    def drop_next(self, endpoint: Endpoint | str, *, times: int = 1) -> None:
        """Drop the connection of the next requests without answering."""
        self._push(endpoint, _Fault("drop"), times)

    def pause_next(
        self, endpoint: Endpoint | str, *, after: bool = False, times: int = 1
    ) -> FakeGate:
        """Hold the next *times* requests to *endpoint* at one gate.

        The gate holds them before the server's work, or with ``after=True`` after
        it (the work is done, the answer not yet sent).
        """
        gate = FakeGate(after=after, expected=times)
        self._push(endpoint, _Fault("gate", gate=gate), times)
        return gate

    def clear_faults(self, endpoint: Endpoint | str | None = None) -> None:
        """Forget the faults still queued for *endpoint*, or for every endpoint."""
        if endpoint is None:
            for queue in self._faults.values():
                queue.clear()
        elif endpoint in self._faults:
            self._faults[endpoint].clear()
        else:
            raise ValueError(
                f"endpoint must be one of {tuple(self._faults)}, got {endpoint!r}"
            )

    def expire_sessions(self) -> None:
        """Make every bearer token expire now (refresh tokens stay valid)."""
        now = self.clock()
        for bearer in self._by_token.values():
            bearer.expires = min(bearer.expires, now)

    def revoke_sessions(self) -> None:
        """Kill every session server-side: tokens and refresh tokens stop working."""
        for session in self._sessions.values():
            session.revoked = True

    def reset_stats(self) -> None:
        """Zero the counters (the requests log is kept: ``fake.requests.clear()``)."""
        self.stats = FakeStats()

    # -- what tests read ----------------------------------------------------------------

    @property
    def live_sessions(self) -> int:
        """Sessions neither revoked nor past their refresh token's expiry."""
        now = self.clock()
        return sum(
            1
            for s in self._sessions.values()
            if not s.revoked and now < s.refresh_expires
        )

    def issued_secrets(self) -> frozenset[str]:
        """Every bearer token and refresh token the fake has handed out, spent or not.

        For leak tests: none of them should appear in your logs or output.
        """
        return frozenset({*self._by_token, *self._by_refresh, *self._spent_refresh})

    def token_deadlines(self) -> dict[str, float]:
        """Each bearer token issued, with the ``clock`` time it expires (or expired)."""
        return {token: bearer.expires for token, bearer in self._by_token.items()}

    def wall_time(self) -> datetime:
        """The server's wall clock: it moves with ``clock`` and is skewed on purpose."""
        elapsed = self.clock() - self._clock_origin
        return datetime.fromtimestamp(
            self._wall_origin + elapsed + self.wall_clock_skew, tz=timezone.utc
        )

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
    ) -> Any: ...
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
        return _doors.in_process_transport(self.handle, max_connections, stack)

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
        await _doors.serve_asgi(self.handle, scope, receive, send)

    def asgi_server(self, **options: Any) -> uvicorn.Server:
        """A ``uvicorn.Server`` for :meth:`asgi` (needs the ``cli`` extra).

        Args:
            **options: More ``uvicorn.Config`` settings.
        """
        return _doors.asgi_server(self.asgi, **options)

    @contextlib.contextmanager
    def serving(self, host: str = "127.0.0.1") -> Iterator[str]:
        """Serve the fake over real HTTP on a free port of *host*, in a thread.

        For harnesses whose code builds its own HTTP client: point it at the URL
        this yields. The fake's state is shared with the thread, so read
        :attr:`stats` once the requests are done. Needs the ``cli`` extra.

        Yields:
            The base URL, like ``http://127.0.0.1:38211``.
        """
        with _doors.serving(self.asgi, host) as url:
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
                return _refusal(405, f"Method {request.method} not allowed")
            return _refusal(404, f"No endpoint {request.path}")
        if route.endpoint is None:
            answer = route.work(request)
            return await answer if not isinstance(answer, FakeResponse) else answer
        return await self._guarded(route.endpoint, request, route.work)

    async def _guarded(
        self,
        endpoint: str,
        request: FakeRequest,
        work: Callable[[FakeRequest], FakeResponse | Awaitable[FakeResponse]],
    ) -> FakeResponse:
        fault = self._faults[endpoint].popleft() if self._faults[endpoint] else None
        self._in_flight(endpoint, +1)
        try:
            if fault is not None:
                self.stats.injected_faults += 1
                if fault.kind == "delay":
                    await anyio.sleep(fault.seconds)
                elif fault.kind == "drop":
                    raise Dropped
                elif fault.kind == "status":
                    return _json(fault.body, fault.status, fault.headers)
                elif fault.kind == "garbage":
                    return FakeResponse(
                        fault.status, fault.content, {"content-type": "text/html"}
                    )
                elif fault.gate is not None and not fault.gate.after:
                    await fault.gate._hold()  # noqa: SLF001
            latency = self._latency.get(endpoint)
            if latency is not None:
                await anyio.sleep(latency(request))
            response = work(request)
            if not isinstance(response, FakeResponse):
                response = await response
            if fault is not None and fault.gate is not None and fault.gate.after:
                await fault.gate._hold()  # noqa: SLF001
            return response
        finally:
            self._in_flight(endpoint, -1)

    def _in_flight(self, endpoint: str, change: int) -> None:
        """Track logins and refreshes being handled now, and their peaks."""
        stats = self.stats
        if endpoint == "login":
            stats.concurrent_logins += change
            stats.max_concurrent_logins = max(
                stats.max_concurrent_logins, stats.concurrent_logins
            )
        elif endpoint == "refresh":
            stats.concurrent_refreshes += change
            stats.max_concurrent_refreshes = max(
                stats.max_concurrent_refreshes, stats.concurrent_refreshes
            )

    # -- endpoints --------------------------------------------------------------------

    def _form(self, request: FakeRequest) -> dict[str, str] | FakeResponse:
        ctype = request.headers.get("content-type", "")
        try:
            if ctype.startswith("application/json"):
                payload = json.loads(request.body or b"{}")
                if not isinstance(payload, dict):
                    return _refusal(400, "The JSON body must be an object")
                return {k: str(v) for k, v in payload.items() if v is not None}
            if ctype.startswith("multipart/form-data"):
                return _multipart(ctype, request.body)
            return dict(parse_qsl(request.body.decode(), keep_blank_values=True))
        except (ValueError, UnicodeDecodeError):
            return _refusal(400, "The request body could not be read")

    def _issue(self, session: _Session) -> str:
        token = str(uuid.uuid4())
        session.issued_at = self.clock()
        self._by_token[token] = _Bearer(
            session, session.issued_at + self.token_lifetime
        )
        return token

    def _new_session(self, username: str, account_id: int) -> tuple[_Session, str]:
        session = _Session(
            guid=str(uuid.uuid4()),
            username=username,
            account_id=account_id,
            refresh_token=str(uuid.uuid4()),
            refresh_expires=self.clock() + self.refresh_token_lifetime,
        )
        self._sessions[session.guid] = session
        self._by_refresh[session.refresh_token] = session
        return session, self._issue(session)

    def _token_answer(self, session: _Session, token: str) -> FakeResponse:
        wall = self.wall_time()
        answer: dict[str, Any] = {
            "success": True,
            "guid": session.guid,
            "token": token,
            "tokenExpiration": _stamp(wall + timedelta(seconds=self.token_lifetime)),
            "tokenLifetime": _seconds(self.token_lifetime),
            "refreshToken": session.refresh_token,
            "refreshTokenExpiration": _stamp(
                wall + timedelta(seconds=self.refresh_token_lifetime)
            ),
        }
        if self.account_id_in_answers:
            answer["accountId"] = session.account_id
        return _json(answer)

    def _login(self, request: FakeRequest) -> FakeResponse:
        form = self._form(request)
        if isinstance(form, FakeResponse):
            self.stats.failed_logins += 1
            return form
        missing = [k for k in ("username", "password") if not form.get(k)]
        if missing:
            self.stats.failed_logins += 1
            return _refusal(
                400,
                f"Missing required variables: {', '.join(missing)}",
                missing=missing,
            )
        user = self._users.get(form["username"])
        if user is None or user.password != form["password"]:
            self.stats.failed_logins += 1
            return _refusal(401, "Invalid username or password")
        account_id = user.account_ids[0]
        if form.get("account_id"):
            try:
                account_id = int(form["account_id"])
            except ValueError:
                self.stats.failed_logins += 1
                return _refusal(400, "account_id must be an integer", missing=[])
            if account_id not in user.account_ids:
                self.stats.failed_logins += 1
                return _refusal(403, f"User cannot access account {account_id}")
        if form.get("auth_only") == "1":
            self.stats.auth_only_checks += 1
            return _json({"success": True}, 200)
        self.stats.logins += 1
        return self._token_answer(*self._new_session(form["username"], account_id))

    def _refresh(self, request: FakeRequest) -> FakeResponse:
        form = self._form(request)
        if isinstance(form, FakeResponse):
            self.stats.failed_refreshes += 1
            return form
        old = form.get("refresh_token")
        if not old:
            self.stats.failed_refreshes += 1
            return _refusal(
                400,
                "Missing required variables: refresh_token",
                missing=["refresh_token"],
            )
        reused = self._spent_refresh.get(old)
        if reused is not None:
            # OAuth practice: a used refresh token coming back revokes the session.
            self.stats.reuse_attempts += 1
            self.stats.failed_refreshes += 1
            reused.revoked = True
            return _refusal(401, "Refresh token already used; session revoked")
        session = self._by_refresh.get(old)
        now = self.clock()
        if session is None or session.revoked or now >= session.refresh_expires:
            self.stats.failed_refreshes += 1
            return _refusal(401, "Invalid or expired refresh token")
        del self._by_refresh[old]
        self._spent_refresh[old] = session
        if now - session.issued_at < self.token_lifetime / 2:
            self.stats.premature_refreshes += 1
        # The old bearer token stays valid until its own expiry: requests already in
        # flight with it must not fail.
        session.refresh_token = str(uuid.uuid4())
        session.refresh_expires = now + self.refresh_token_lifetime
        self._by_refresh[session.refresh_token] = session
        self.stats.refreshes += 1
        return self._token_answer(session, self._issue(session))

    async def _oauth_token(self, request: FakeRequest) -> FakeResponse:
        """An OAuth2-shaped door to the same sessions, for benchmarking peers.

        ``grant_type=password`` logs in, ``grant_type=refresh_token`` refreshes (with
        the same rotation and reuse detection); answers carry ``access_token``,
        ``expires_in`` and ``refresh_token``, errors ``{"error": "invalid_grant"}``.
        """
        form = self._form(request)
        grant = form.get("grant_type") if isinstance(form, dict) else None
        if grant == "password":
            answer = await self._guarded("login", request, self._login)
        elif grant == "refresh_token":
            answer = await self._guarded("refresh", request, self._refresh)
        else:
            return _json({"error": "unsupported_grant_type"}, 400)
        try:
            body = json.loads(answer.body)
        except ValueError:
            return answer  # a garbled answer stays garbled
        if answer.status != 200 or "token" not in body:
            return _json(
                {"error": "invalid_grant", "error_description": body.get("message")},
                400 if answer.status < 500 else answer.status,
            )
        return _json(
            {
                "access_token": body["token"],
                "token_type": "Bearer",
                "expires_in": body["tokenLifetime"],
                "refresh_token": body["refreshToken"],
            },
            200,
        )

    def _caller(self, request: FakeRequest) -> int | FakeResponse:
        """The account a data request acts on, or the refusal it gets."""
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and credential:
            answer = self._check_bearer(request, credential)
        elif scheme in ("basic", "integrator") and credential:
            answer = self._check_password(request, scheme, credential)
        else:
            answer = _refusal(401, "Authentication required")
        if isinstance(answer, FakeResponse):
            self.stats.rejected_requests += 1
        return answer

    def _check_bearer(self, request: FakeRequest, token: str) -> int | FakeResponse:
        bearer = self._by_token.get(token)
        if bearer is None or bearer.session.revoked:
            return _refusal(401, "Invalid token")
        if self.clock() >= bearer.expires:
            return _refusal(self.expired_status, "Token expired")
        account = bearer.session.account_id
        asked = request.query.get("account_id")
        if asked is not None and asked != str(account):
            return _refusal(403, f"This session belongs to account {account}")
        return account

    def _check_password(
        self, request: FakeRequest, scheme: str, credential: str
    ) -> int | FakeResponse:
        try:
            username, _, password = (
                base64.b64decode(credential, validate=True).decode().partition(":")
            )
        except (ValueError, UnicodeDecodeError):
            return _refusal(401, f"Malformed {scheme.title()} credentials")
        user = self._users.get(username)
        if user is None or user.password != password:
            return _refusal(401, "Invalid username or password")
        if scheme == "integrator" and not user.integrator:
            return _refusal(403, "User is not an integrator")
        asked = request.query.get("account_id")
        if asked is None:
            if scheme == "integrator":
                return _refusal(
                    400,
                    "Missing required variables: account_id",
                    missing=["account_id"],
                )
            # The documented hazard: without account_id the API picks an account.
            return user.account_ids[0]
        if not asked.isdigit() or int(asked) not in user.account_ids:
            return _refusal(403, f"User cannot access account {asked}")
        return int(asked)

    def _call_data(self, request: FakeRequest) -> FakeResponse:
        account = self._caller(request)
        if isinstance(account, FakeResponse):
            return account
        self.stats.data_requests += 1
        missing = [k for k in ("start_date", "end_date") if not request.query.get(k)]
        if missing:
            return _refusal(
                400,
                f"Missing required variables: {', '.join(missing)}",
                missing=missing,
            )
        try:
            start = date.fromisoformat(request.query["start_date"])
            end = date.fromisoformat(request.query["end_date"])
        except ValueError:
            return _refusal(400, "Dates must be YYYY-MM-DD")
        if end < start:
            return _refusal(400, "end_date is before start_date")
        records: list[dict[str, Any]] = []
        day = start
        while day <= end:
            records.extend(self.records_for(account, day))
            day += timedelta(days=1)
        return _json({"success": True, "data": records}, 200)

    def _echo(self, request: FakeRequest) -> FakeResponse:
        account = self._caller(request)
        if isinstance(account, FakeResponse):
            return account
        self.stats.data_requests += 1
        return _json(
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
