"""``TeletrackerAuth``: the httpx glue around the session state machine."""

from __future__ import annotations

import functools
import logging
import math
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from importlib.metadata import PackageNotFoundError, version

import anyio
import anyio.lowlevel
import attrs
import httpx

from teletracker_async._converter import parse_token_answer
from teletracker_async._exceptions import ResponseFormatError, TeletrackerError
from teletracker_async._models import AuthSession
from teletracker_async._responses import decode_error_body, error_for_status
from teletracker_async._session import Decision, Lease, Renewal, SessionMachine

__all__ = ["DEFAULT_BASE_URL", "TeletrackerAuth"]

logger = logging.getLogger("teletracker_async")

DEFAULT_BASE_URL = "https://api.teletracker.net"
_REJECTED = (401, 403)

try:
    _USER_AGENT = f"teletracker-async/{version('teletracker-async')}"
except PackageNotFoundError:  # pragma: no cover - only when run from a bare checkout
    _USER_AGENT = "teletracker-async"


class _Secret:
    """Holds a secret so that no repr, str or vars() dump shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


@attrs.frozen
class _Switch:
    """A request to open a new session for another account."""

    account_id: int | None


@attrs.define(repr=False)
class _Exchange:
    """One login/refresh exchange in progress. Its owner holds the lock."""

    lock: anyio.Lock
    kind: Renewal
    request: httpx.Request
    #: True when a rejected token forced it: then failure is never papered over.
    forced: bool
    account_id: int | None
    settled: bool = False
    lease: Lease | None = None


def check_credential(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return value


def check_account_id(value: object) -> int | None:
    """Validate an optional account id: a positive int (bools are refused)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"account_id must be an int or None, not {type(value).__name__}"
        )
    if value <= 0:
        raise ValueError(f"account_id must be positive, got {value}")
    return value


def check_base_url(value: object) -> str:
    """Validate a base URL: http(s), with a host, no query; returned without '/'."""
    if not isinstance(value, str):
        raise TypeError(f"base_url must be a str, not {type(value).__name__}")
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"base_url is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"base_url must be an http(s) URL with a host, like {DEFAULT_BASE_URL!r};"
            f" got {value!r}"
        )
    if url.query or url.fragment:
        raise ValueError("base_url must not carry a query string or a fragment")
    return value.rstrip("/")


class _Credentials:
    """Username, password (kept as a secret) and account, checked once, shown safely.

    Shared by every auth scheme, so that secret handling lives in one place.
    """

    def _set_credentials(
        self, username: object, password: object, account_id: object
    ) -> None:
        self._username = check_credential("username", username)
        self._password = _Secret(check_credential("password", password))
        self._account_id = check_account_id(account_id)

    @property
    def username(self) -> str:
        """The user name the requests are made for."""
        return self._username

    @property
    def account_id(self) -> int | None:
        """The account requests work in, or None."""
        return self._account_id

    def _login_form(self) -> dict[str, str]:
        return {"username": self._username, "password": self._password.get()}


def _is_replayable(request: httpx.Request) -> bool:
    # Bodies built from bytes, str, form data or JSON (and streams already read
    # into memory) are ByteStreams; generators and open files are not.
    return isinstance(request.stream, httpx.ByteStream)


class TeletrackerAuth(_Credentials, httpx.Auth):
    """An ``httpx.Auth`` that keeps one Teletracker bearer session for all coroutines.

    Use one instance per set of credentials, shared by every request of an
    ``httpx.AsyncClient`` (or several clients). It logs in on first use, refreshes
    early in the background of one request, renews when a token is refused, and
    never sends a refresh token twice.

    Args:
        username: The Teletracker user name.
        password: The password; kept private, never shown in repr, logs or errors.
        account_id: The account to open sessions for, when the user has several.
        base_url: The API root; its ``/auth/login`` and ``/auth/refresh`` are used.
        refresh_margin: Seconds before expiry at which one request refreshes early
            (at most half the token's lifetime).
        clock: A monotonic clock in seconds; inject a fake one in tests.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: An argument has a bad value (empty, negative, not a URL).
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        username: str,
        password: str,
        *,
        account_id: int | None = None,
        base_url: str = DEFAULT_BASE_URL,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._set_credentials(username, password, account_id)
        self._base_url = check_base_url(base_url)
        if isinstance(refresh_margin, bool) or not isinstance(
            refresh_margin, (int, float)
        ):
            raise TypeError(
                f"refresh_margin must be a number, not {type(refresh_margin).__name__}"
            )
        if not math.isfinite(refresh_margin) or refresh_margin < 0:
            raise ValueError(
                f"refresh_margin must be a finite number >= 0, got {refresh_margin}"
            )
        if not callable(clock):
            raise TypeError("clock must be a callable returning seconds as a float")
        self._clock = clock
        self._machine = SessionMachine(refresh_margin=float(refresh_margin))
        self._login_url = f"{self._base_url}/auth/login"
        self._refresh_url = f"{self._base_url}/auth/refresh"
        # One lock per event loop: a lock from a loop that has ended must not be
        # reused (its waiters, if any, died with it).
        self._lock_loop: weakref.ref[object] | None = None
        self._lock_obj: anyio.Lock | None = None

    def __repr__(self) -> str:
        return (
            f"TeletrackerAuth(username={self._username!r}, "
            f"account_id={self._account_id!r}, base_url={self._base_url!r})"
        )

    @property
    def base_url(self) -> str:
        """The API root, without a trailing slash."""
        return self._base_url

    @property
    def session(self) -> AuthSession | None:
        """The current session, or None before the first login."""
        lease = self._machine.lease
        return None if lease is None else lease.session

    # -- httpx entry points -------------------------------------------------------

    def sync_auth_flow(
        self,
        request: httpx.Request,  # noqa: ARG002 - httpx's signature
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Refuse: the session is shared through an anyio lock, which needs async."""
        raise TypeError(
            "TeletrackerAuth works with httpx.AsyncClient only: use "
            "`async with httpx.AsyncClient(auth=auth) as client: ...` "
            "(or teletracker_async.TeletrackerClient)."
        )

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Send *request* with a valid bearer token, renewing it when needed."""
        machine = self._machine
        rejected: int | None = None  # generation whose token the server refused
        while True:
            lease = machine.lease
            if (
                rejected is not None
                or lease is None
                or self._clock() >= lease.refresh_at
            ):
                step = await self._begin(rejected)
                if isinstance(step, _Exchange):
                    try:
                        while step.lease is None:
                            answer = yield step.request
                            await self._on_answer(step, answer)
                    finally:
                        self._end(step)
                    lease = step.lease
                else:
                    lease = step
            request.headers["Authorization"] = lease.authorization
            response = yield request
            status = response.status_code
            if status not in _REJECTED:
                return
            if rejected is not None:
                # A fresh token was refused too: the refusal is real, not expiry.
                machine.confirm_rejection(status, lease.generation)
                return
            if machine.rejection_confirmed(status, lease.generation):
                return
            if not _is_replayable(request):
                # httpx hands back the last answer, so renewing here would return
                # the login answer: the next request renews instead.
                machine.suspect_generation(lease.generation)
                return
            # Free the refused answer's connection before waiting for the renewal:
            # the renewal may need that very connection (pool exhausted by refused
            # requests all waiting for the lock = deadlock). httpx reads it anyway
            # before sending the retry; its body is a few bytes.
            await response.aread()
            rejected = lease.generation

    # -- the single-flight renewal --------------------------------------------------

    def _lock(self) -> anyio.Lock:
        loop = anyio.lowlevel.current_token().native_token
        if (
            self._lock_obj is None
            or self._lock_loop is None
            or self._lock_loop() is not loop
        ):
            self._lock_loop = weakref.ref(loop)
            self._lock_obj = anyio.Lock(fast_acquire=True)
        return self._lock_obj

    async def _begin(
        self, rejected: int | None = None, switch: _Switch | None = None
    ) -> Lease | _Exchange:
        """Return the lease to use, or an exchange to run with the lock held.

        Args:
            rejected: The generation whose token the server refused, if any.
            switch: Force a fresh login for this account (account switch).
        """
        lock = self._lock()
        if switch is None:
            ready = self._without_waiting(lock, rejected)
            if ready is not None:
                return ready
        seen = self._machine.finished_attempts
        await lock.acquire()
        try:
            return self._after_waiting(lock, rejected, switch, seen)
        except BaseException:
            lock.release()
            raise

    def _without_waiting(
        self, lock: anyio.Lock, rejected: int | None
    ) -> Lease | _Exchange | None:
        """What a request can do at once, or None when it must wait for the lock."""
        machine = self._machine
        now = self._clock()
        if rejected is not None:
            return self._renewed_since(rejected, now)
        decision = machine.decide(now)
        if decision is Decision.RENEW:
            return None
        if decision is Decision.TRY_EARLY:
            try:
                lock.acquire_nowait()
            except anyio.WouldBlock:
                pass  # someone is renewing already: go with the valid token
            else:
                return self._exchange(lock, now, forced=False)
        return machine.lease

    def _renewed_since(self, rejected: int, now: float) -> Lease | None:
        """A valid lease newer than the refused generation, if there is one."""
        if self._machine.generation == rejected:
            return None
        return self._machine.valid(now)

    def _after_waiting(
        self,
        lock: anyio.Lock,
        rejected: int | None,
        switch: _Switch | None,
        seen: int,
    ) -> Lease | _Exchange:
        """With the lock held: use what a previous holder achieved, share its
        failure, or start our own exchange."""
        machine = self._machine
        now = self._clock()
        if switch is None:
            if rejected is not None:
                lease = self._renewed_since(rejected, now)
            elif machine.decide(now) is not Decision.RENEW:
                lease = machine.lease
            else:
                lease = None
            if lease is not None:
                lock.release()
                return lease
            failure = machine.failure_since(seen)
            if failure is not None:
                # One attempt, one outcome: everyone who waited on it gets it.
                raise failure.make_error()
        forced = rejected is not None or switch is not None
        return self._exchange(lock, now, forced=forced, switch=switch)

    def _exchange(
        self,
        lock: anyio.Lock,
        now: float,
        *,
        forced: bool,
        switch: _Switch | None = None,
    ) -> _Exchange:
        machine = self._machine
        lease = machine.lease
        if switch is not None:
            account = switch.account_id
            kind = Renewal.LOGIN
        else:
            account = self._account_id if lease is None else lease.session.account_id
            kind = machine.renewal(now)
        if kind is Renewal.REFRESH and lease is not None:
            request = self._refresh_request(lease.session.refresh_token)
            machine.spend_refresh_token()
        else:
            request = self._login_request(account)
        return _Exchange(lock, kind, request, forced, account)

    def _login_request(self, account_id: int | None) -> httpx.Request:
        form = self._login_form()
        if account_id is not None:
            form["account_id"] = str(account_id)
        return httpx.Request(
            "POST",
            self._login_url,
            data=form,
            headers={"Accept": "application/json", "User-Agent": _USER_AGENT},
        )

    def _refresh_request(self, refresh_token: str) -> httpx.Request:
        return httpx.Request(
            "POST",
            self._refresh_url,
            data={"refresh_token": refresh_token},
            headers={"Accept": "application/json", "User-Agent": _USER_AGENT},
        )

    async def _on_answer(self, step: _Exchange, response: httpx.Response) -> None:
        """Read the answer to a login/refresh; settle the exchange or go on to login."""
        await response.aread()
        machine = self._machine
        now = self._clock()
        status = response.status_code
        what = "Teletracker login" if step.kind is Renewal.LOGIN else "Token refresh"
        if step.kind is Renewal.REFRESH and status in (400, 401, 403):
            logger.info(
                "refresh refused (HTTP %d), logging in again: session %s",
                status,
                machine.lease.session.guid if machine.lease else None,
            )
            step.kind = Renewal.LOGIN
            step.request = self._login_request(step.account_id)
            return
        make_error: Callable[[], TeletrackerError]
        if 200 <= status < 300:
            try:
                answer = parse_token_answer(
                    response.content, what=f"{what} answer", status_code=status
                )
            except ResponseFormatError as exc:
                make_error = functools.partial(
                    ResponseFormatError,
                    exc.message,
                    status_code=exc.status_code,
                    problems=exc.problems,
                )
            else:
                step.lease = machine.install(answer, now, step.account_id)
                step.settled = True
                logger.info(
                    "%s: session %s, account %s",
                    "logged in" if step.kind is Renewal.LOGIN else "refreshed",
                    answer.guid,
                    step.account_id,
                )
                return
        else:
            make_error = functools.partial(
                error_for_status,
                status,
                decode_error_body(response.content),
                response.headers,
                what=what,
                auth_endpoint=True,
                secrets=self._secrets(),
            )
        machine.fail(now, make_error)
        step.settled = True
        lease = None if step.forced else machine.valid(now)
        if lease is None:
            raise make_error()
        logger.warning(
            "%s failed (HTTP %d), keeping the valid token of session %s",
            "login" if step.kind is Renewal.LOGIN else "refresh",
            status,
            lease.session.guid,
        )
        step.lease = lease

    def _secrets(self) -> tuple[str, ...]:
        lease = self._machine.lease
        if lease is None:
            return (self._password.get(),)
        return (self._password.get(), lease.session.token, lease.session.refresh_token)

    def _end(self, step: _Exchange) -> None:
        if not step.settled:
            # Cancelled, timed out or dropped: we cannot know whether the server
            # used the refresh token, so it was spent when it went out.
            self._machine.abort(self._clock())
            logger.debug("%s abandoned before its answer was read", step.kind.value)
        step.lock.release()

    # -- for TeletrackerClient --------------------------------------------------------

    async def _drive(
        self,
        send: Callable[[httpx.Request], Awaitable[httpx.Response]],
        *,
        switch: _Switch | None = None,
    ) -> Lease:
        """Make sure a valid session exists, sending exchanges through *send*.

        The same single-flight rules as the auth flow apply: this shares the lock,
        the generation and every waiter's outcome with requests in flight.
        """
        step = await self._begin(None, switch)
        if isinstance(step, Lease):
            return step
        try:
            while step.lease is None:
                response = await send(step.request)
                try:
                    await self._on_answer(step, response)
                finally:
                    await response.aclose()
        finally:
            self._end(step)
        if switch is not None:
            self._account_id = switch.account_id
        return step.lease
