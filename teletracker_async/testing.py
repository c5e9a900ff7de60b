"""A stateful, in-process fake of the Teletracker API for tests.

``FakeTeletracker`` keeps users, sessions with rotating refresh tokens, and call
records, and answers the way the real API is documented to. Hand its transport to the
SDK (or to any httpx client)::

    fake = FakeTeletracker(users={"ada": "secret"}, clock=clock)
    async with TeletrackerClient("ada", "secret", transport=fake.transport()) as c:
        ...
    assert fake.stats.logins == 1

Everything it does is in one place, :meth:`FakeTeletracker.handle`, which takes a
plain :class:`FakeRequest`. Two doors lead there: :meth:`FakeTeletracker.transport`
(an in-process httpx transport) and :meth:`FakeTeletracker.asgi` (an ASGI app, served
on loopback by ``teletracker-async serve``).

Besides the documented endpoints it offers ``POST /echo``, an authenticated endpoint
that answers with the body it got (for tests of request replay), and
``GET /_fake/stats``, the counters as JSON (for a fake served in another process).
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import json
import random
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
)
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl

import anyio
import attrs
import httpx

if TYPE_CHECKING:
    import uvicorn

__all__ = [
    "Endpoint",
    "FakeClock",
    "FakeGate",
    "FakeRequest",
    "FakeResponse",
    "FakeStats",
    "FakeTeletracker",
    "bind_socket",
    "socket_url",
]

Endpoint = Literal["login", "refresh", "data"]
_ENDPOINTS = ("login", "refresh", "data")


class FakeClock:
    """A clock that moves only when told to: ``clock()`` reads it, ``advance`` moves it.

    Share one between ``TeletrackerAuth(clock=...)`` and ``FakeTeletracker(clock=...)``
    to step through token lifetimes without waiting.
    """

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by *seconds* (never backwards)."""
        if seconds < 0:
            raise ValueError("a monotonic clock does not go backwards")
        self.now += seconds

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now!r})"


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
class FakeRequest:
    """A request as the fake sees it, whichever door it came through."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes = b""


@attrs.frozen
class FakeResponse:
    """The fake's answer: status, headers and a body (JSON unless said otherwise)."""

    status: int
    body: bytes
    headers: Mapping[str, str] = attrs.field(
        factory=lambda: {"content-type": "application/json"}
    )


class FakeGate:
    """Holds requests at a point of their handling until :meth:`release`.

    ``await gate.arrived.wait()`` returns once the expected number of requests got
    there; cancel the client then, or release them. ``after=True`` gates hold the
    answer after the server has done its work (a refresh has rotated): the client
    cannot know what happened.
    """

    def __init__(self, *, after: bool, expected: int = 1) -> None:
        self.after = after
        self.expected = expected
        self.waiting = 0
        self.arrived = anyio.Event()
        self._released = anyio.Event()

    def release(self) -> None:
        """Let the held requests go on (and any later ones through this gate)."""
        self._released.set()

    async def _hold(self) -> None:
        self.waiting += 1
        if self.waiting >= self.expected:
            self.arrived.set()
        try:
            await self._released.wait()
        finally:
            self.waiting -= 1


@attrs.define
class _Fault:
    kind: Literal["status", "delay", "drop", "gate", "garbage"]
    status: int = 500
    body: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    seconds: float = 0.0
    gate: FakeGate | None = None
    content: bytes = b""


class _Dropped(Exception):  # noqa: N818 - a signal, not an error
    """The fake drops the connection instead of answering."""


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


def _json(
    status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> FakeResponse:
    merged = {"content-type": "application/json"}
    if headers:
        merged.update(headers)
    return FakeResponse(status, json.dumps(payload).encode(), merged)


def _refusal(status: int, message: str, **more: Any) -> FakeResponse:
    return _json(status, {"success": False, "message": message, **more})


class FakeTeletracker:
    """An in-process fake of the Teletracker API with the documented behaviour.

    Args:
        users: ``{username: password}`` or ``{username: (password, [account ids])}``.
            A user given without accounts reaches account 1.
        token_lifetime: Seconds a bearer token lives.
        refresh_token_lifetime: Seconds a refresh token lives.
        expired_status: What an expired bearer token gets: 401 or 403.
        clock: A monotonic clock (share a :class:`FakeClock` with the SDK in tests).
        wall_clock_skew: Seconds the server's wall clock is ahead of the real one.
        records_per_day: Call records per account and day on the data endpoint.
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
    ) -> None:
        if expired_status not in (401, 403):
            raise ValueError("expired_status must be 401 or 403")
        if token_lifetime <= 0 or refresh_token_lifetime <= 0:
            raise ValueError("lifetimes must be positive")
        if records_per_day < 0:
            raise ValueError("records_per_day must be >= 0")
        self.token_lifetime = float(token_lifetime)
        self.refresh_token_lifetime = float(refresh_token_lifetime)
        self.expired_status = expired_status
        self.clock = clock
        self.wall_clock_skew = wall_clock_skew
        self.records_per_day = records_per_day
        self.stats = FakeStats()
        self._users: dict[str, _User] = {}
        self._sessions: dict[str, _Session] = {}
        self._by_token: dict[str, _Bearer] = {}
        self._by_refresh: dict[str, _Session] = {}
        self._spent_refresh: dict[str, _Session] = {}
        self._faults: dict[str, deque[_Fault]] = {e: deque() for e in _ENDPOINTS}
        self._day_cache: dict[tuple[int, date], list[dict[str, Any]]] = {}
        self._wall_origin = time.time()
        self._clock_origin = clock()
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

    def _push(self, endpoint: Endpoint, fault: _Fault, times: int) -> None:
        if endpoint not in _ENDPOINTS:
            raise ValueError(f"endpoint must be one of {_ENDPOINTS}, got {endpoint!r}")
        self._faults[endpoint].extend([fault] * times)

    def fail_next(
        self,
        endpoint: Endpoint,
        status: int = 500,
        *,
        times: int = 1,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next *times* requests to *endpoint* with *status* and *body*."""
        payload = (
            body
            if body is not None
            else {"success": False, "message": "Injected failure"}
        )
        self._push(
            endpoint, _Fault("status", status, payload, dict(headers or {})), times
        )

    def garble_next(
        self, endpoint: Endpoint, content: bytes, *, status: int = 200
    ) -> None:
        """Answer the next request to *endpoint* with raw *content* (an HTML page...)."""
        self._push(endpoint, _Fault("garbage", status, content=content), 1)

    def delay_next(self, endpoint: Endpoint, seconds: float, *, times: int = 1) -> None:
        """Sleep *seconds* (real time) before handling the next requests."""
        self._push(endpoint, _Fault("delay", seconds=seconds), times)

    def drop_next(self, endpoint: Endpoint, *, times: int = 1) -> None:
        """Drop the connection of the next requests without answering."""
        self._push(endpoint, _Fault("drop"), times)

    def pause_next(
        self, endpoint: Endpoint, *, after: bool = False, times: int = 1
    ) -> FakeGate:
        """Hold the next *times* requests to *endpoint* at one gate.

        The gate holds them before the server's work, or with ``after=True`` after
        it (the work is done, the answer not yet sent).
        """
        gate = FakeGate(after=after, expected=times)
        self._push(endpoint, _Fault("gate", gate=gate), times)
        return gate

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
        """Zero the counters."""
        self.stats = FakeStats()

    @property
    def live_sessions(self) -> int:
        """Sessions neither revoked nor past their refresh token's expiry."""
        now = self.clock()
        return sum(
            1
            for s in self._sessions.values()
            if not s.revoked and now < s.refresh_expires
        )

    def wall_time(self) -> datetime:
        """The server's wall clock: it moves with ``clock`` and is skewed on purpose."""
        elapsed = self.clock() - self._clock_origin
        return datetime.fromtimestamp(
            self._wall_origin + elapsed + self.wall_clock_skew, tz=timezone.utc
        )

    # -- doors ------------------------------------------------------------------------

    def asgi_server(self, **options: Any) -> uvicorn.Server:
        """A ``uvicorn.Server`` for :meth:`asgi` (needs the ``cli`` extra).

        Args:
            **options: More ``uvicorn.Config`` settings.
        """
        try:
            import uvicorn  # noqa: PLC0415
        except ImportError:
            raise RuntimeError(
                "serving the fake needs uvicorn: pip install 'teletracker-async[cli]'"
            ) from None
        settings: dict[str, Any] = {
            "log_level": "warning",
            "access_log": False,
            "lifespan": "on",
            "interface": "asgi3",
            "timeout_keep_alive": 30,
            **options,
        }
        return uvicorn.Server(uvicorn.Config(self.asgi, **settings))

    @contextlib.contextmanager
    def serving(self, host: str = "127.0.0.1") -> Iterator[str]:
        """Serve the fake over real HTTP on a free port of *host*, in a thread.

        For harnesses whose code builds its own HTTP client: point it at the URL
        this yields. The fake's state is shared with the thread, so read
        :attr:`stats` once the requests are done. Needs the ``cli`` extra.

        Yields:
            The base URL, like ``http://127.0.0.1:38211``.
        """
        sock = bind_socket(host, 0)
        server = self.asgi_server()
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="fake-teletracker"
        )
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the fake server did not start")
                time.sleep(0.01)
            yield socket_url(sock)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()

    def transport(
        self, *, max_connections: int | None = None
    ) -> httpx.AsyncBaseTransport:
        """An httpx transport that answers in-process, for ``AsyncClient(transport=)``.

        Args:
            max_connections: Behave like a connection pool of this size: a request
                waits for a free 'connection' and holds it until its answer's body is
                read or closed. None: unlimited.
        """
        return _FakeTransport(self, max_connections)

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
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":  # pragma: no cover - websockets are not served
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        request = FakeRequest(
            method=scope["method"],
            path=scope["path"],
            query=dict(
                parse_qsl(
                    scope["query_string"].decode("latin-1"), keep_blank_values=True
                )
            ),
            headers={
                k.decode("latin-1").lower(): v.decode("latin-1")
                for k, v in scope["headers"]
            },
            body=b"".join(chunks),
        )
        try:
            answer = await self.handle(request)
        except _Dropped:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"1")],
                }
            )
            return  # the server closes a connection whose body came up short
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (k.encode("latin-1"), v.encode("latin-1"))
                    for k, v in answer.headers.items()
                ]
                # A length, not chunks: one write for the body, no trailing
                # zero-chunk write for Nagle and delayed ACKs to stall (44 ms).
                + [(b"content-length", str(len(answer.body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})

    # -- the one implementation -------------------------------------------------------

    async def handle(self, request: FakeRequest) -> FakeResponse:
        """Answer one request. Raises ``_Dropped`` when a fault drops the connection."""
        route = (request.method, request.path.rstrip("/") or "/")
        if route == ("POST", "/auth/login"):
            return await self._guarded("login", request, self._login)
        if route == ("POST", "/auth/refresh"):
            return await self._guarded("refresh", request, self._refresh)
        if route == ("GET", "/reports/call-data"):
            return await self._guarded("data", request, self._call_data)
        if route == ("POST", "/echo"):
            return await self._guarded("data", request, self._echo)
        if route == ("POST", "/oauth/token"):
            return await self._oauth_token(request)
        if route == ("GET", "/_fake/stats"):
            return _json(200, {"success": True, "data": attrs.asdict(self.stats)})
        if route[1] in ("/auth/login", "/auth/refresh", "/reports/call-data", "/echo"):
            return _refusal(405, f"Method {request.method} not allowed")
        return _refusal(404, f"No endpoint {request.path}")

    async def _guarded(
        self,
        endpoint: str,
        request: FakeRequest,
        work: Callable[[FakeRequest], FakeResponse],
    ) -> FakeResponse:
        fault = self._faults[endpoint].popleft() if self._faults[endpoint] else None
        self._in_flight(endpoint, +1)
        try:
            if fault is not None:
                self.stats.injected_faults += 1
                if fault.kind == "delay":
                    await anyio.sleep(fault.seconds)
                elif fault.kind == "drop":
                    raise _Dropped
                elif fault.kind == "status":
                    return _json(fault.status, fault.body, fault.headers)
                elif fault.kind == "garbage":
                    return FakeResponse(
                        fault.status, fault.content, {"content-type": "text/html"}
                    )
                elif fault.gate is not None and not fault.gate.after:
                    await fault.gate._hold()  # noqa: SLF001
            response = work(request)
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
                message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    b"content-type: " + ctype.encode() + b"\r\n\r\n" + request.body
                )
                form: dict[str, str] = {}
                for part in message.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    payload_bytes = part.get_payload(decode=True)
                    if isinstance(name, str) and isinstance(payload_bytes, bytes):
                        form[name] = payload_bytes.decode()
                return form
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
        return _json(
            200,
            {
                "success": True,
                "guid": session.guid,
                "token": token,
                "tokenExpiration": (
                    wall + timedelta(seconds=self.token_lifetime)
                ).isoformat(),
                "tokenLifetime": self.token_lifetime,
                "refreshToken": session.refresh_token,
                "refreshTokenExpiration": (
                    wall + timedelta(seconds=self.refresh_token_lifetime)
                ).isoformat(),
                "accountId": session.account_id,
            },
        )

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
            return _json(200, {"success": True})
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
            return _json(400, {"error": "unsupported_grant_type"})
        try:
            body = json.loads(answer.body)
        except ValueError:
            return answer  # a garbled answer stays garbled
        if answer.status != 200 or "token" not in body:
            return _json(
                400 if answer.status < 500 else answer.status,
                {"error": "invalid_grant", "error_description": body.get("message")},
            )
        return _json(
            200,
            {
                "access_token": body["token"],
                "token_type": "Bearer",
                "expires_in": body["tokenLifetime"],
                "refresh_token": body["refreshToken"],
            },
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
        return _json(200, {"success": True, "data": records})

    def _echo(self, request: FakeRequest) -> FakeResponse:
        account = self._caller(request)
        if isinstance(account, FakeResponse):
            return account
        self.stats.data_requests += 1
        return _json(
            200,
            {
                "success": True,
                "account_id": account,
                "data": request.body.decode("utf-8", "replace"),
            },
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


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket bound to *host*:*port* (0: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only
    # when the protocol is spelled out, and without it Nagle's algorithm and
    # delayed ACKs add 40 ms to every keep-alive answer (measured: 44 ms -> 1 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def socket_url(sock: socket.socket) -> str:
    """The http:// base URL of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _PooledBody(httpx.AsyncByteStream):
    """A response body that holds its 'connection' until it is closed."""

    def __init__(self, body: bytes, release: Callable[[], None]) -> None:
        self._body = body
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._body

    async def aclose(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


class _FakeTransport(httpx.AsyncBaseTransport):
    def __init__(self, fake: FakeTeletracker, max_connections: int | None) -> None:
        self._fake = fake
        self._pool = (
            None if max_connections is None else anyio.Semaphore(max_connections)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # Iterate rather than aread(): aread() would make a one-shot stream replayable,
        # which a real connection does not.
        body = b"".join([chunk async for chunk in request.stream])  # type: ignore[union-attr]
        fake_request = FakeRequest(
            method=request.method,
            path=request.url.path,
            query=dict(request.url.params),
            headers={k.decode().lower(): v.decode() for k, v in request.headers.raw},
            body=body,
        )
        pool = self._pool
        if pool is not None:
            await pool.acquire()
        try:
            answer = await self._fake.handle(fake_request)
        except BaseException as exc:
            if pool is not None:
                pool.release()
            if isinstance(exc, _Dropped):
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                ) from None
            raise
        headers = {**answer.headers, "content-length": str(len(answer.body))}
        # stream=, not content=: like a real connection, nothing is read up front,
        # and the connection is held until the body is read or closed.
        stream: httpx.AsyncByteStream = (
            httpx.ByteStream(answer.body)
            if pool is None
            else _PooledBody(answer.body, pool.release)
        )
        return httpx.Response(
            answer.status, headers=headers, stream=stream, request=request
        )
