"""``TeletrackerAuth``: the HTTP glue around the shared session.

Every decision is the state machine's (``_session``); the process-wide sharing is
``_core``'s. This module only checks where a request goes, asks the core what to do,
yields the login/refresh requests, reads their answers and reports them back. There
is one exchange loop, :meth:`BearerFlow._renew`, pumped by the auth flow (for an
``AsyncClient``) and by :meth:`BearerFlow.ensure_session` (for callers that send the
exchanges themselves, like ``TeletrackerClient``).

The flow is written once, in :class:`BearerFlow`, against a
:class:`~teletracker_async._http.Stack`; ``TeletrackerAuth`` here is its httpx
adapter, and ``teletracker_async.httpx2.TeletrackerAuth`` its httpx2 adapter. They
differ only in the module whose types they use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, cast

import attrs
import httpx

from teletracker_async._config import DEFAULT_BASE_URL, DEFAULT_REFRESH_MARGIN
from teletracker_async._converter import parse_token_answer
from teletracker_async._errors import (
    ResponseFormatError,
    TeletrackerError,
    decode_error_body,
    detached,
    error_for_status,
)
from teletracker_async._http import HTTPX
from teletracker_async._models import AuthSession
from teletracker_async._secrets import (
    Credentials,
    check_account_id,
    check_margin,
    login_request,
    redact_for,
    secret_password,
)
from teletracker_async._session.core import SessionCore, check_listeners
from teletracker_async._session.machine import (
    NEED,
    Event,
    Exchange,
    GiveBack,
    Lease,
    Refused,
    Renewal,
    SessionMachine,
    Share,
    Step,
    Switch,
    Use,
    Wait,
)
from teletracker_async.events import Listener, SessionStats
from teletracker_async.stores._base import StoreErrors, StoreStats, TokenStore

if TYPE_CHECKING:
    from collections.abc import Sequence

    from typing_extensions import Self

    from teletracker_async._session.fleet import FleetLink

__all__ = ["BearerFlow", "Sender", "TeletrackerAuth"]

logger = logging.getLogger("teletracker_async")

_REJECTED = (401, 403)

#: Sends one request without auth and returns its answer (body may be unread).
Sender = Callable[[Any], Awaitable[Any]]


def _undecodable(response: Any, what: str) -> TeletrackerError:
    return ResponseFormatError(
        f"The {what} (HTTP {response.status_code}) could not be decoded "
        f"(Content-Encoding {response.headers.get('content-encoding')!r}).",
        status_code=response.status_code,
    )


class BearerFlow(Credentials):
    """The bearer session flow, for any stack; see :class:`TeletrackerAuth`.

    Requests and answers are the stack's (``httpx`` or ``httpx2``): typed ``Any`` here
    so that one implementation serves both.
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        account_id: int | None = None,
        base_url: str = DEFAULT_BASE_URL,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        clock: Callable[[], float] = time.monotonic,
        store: TokenStore | None = None,
        store_errors: StoreErrors = "login",
        on_event: Listener | Sequence[Listener] | None = None,
    ) -> None:
        secret = secret_password(password)
        del password  # from here on, no frame that may raise holds it
        self._set_credentials(username, secret, account_id, base_url)
        margin = check_margin("refresh_margin", refresh_margin)
        if not callable(clock):
            raise TypeError("clock must be a callable returning seconds as a float")
        self._clock = clock
        if store is not None and not isinstance(store, TokenStore):
            raise TypeError(
                "store must be a token store (teletracker_async.stores), not "
                f"{type(store).__name__}"
            )
        if store_errors not in ("login", "raise"):
            raise ValueError(
                f"store_errors must be 'login' or 'raise', got {store_errors!r}"
            )
        listeners = check_listeners(on_event)
        self._machine = SessionMachine(
            refresh_margin=margin,
            account_id=self._account_id,
            fleet=store is not None,
            clock=clock,
        )
        self._core = SessionCore(self._machine, clock, listeners)
        self._fleet: FleetLink | None = None
        if store is not None:
            # Imported here: a session without a store never needs it.
            from teletracker_async._session.fleet import FleetLink  # noqa: PLC0415

            self._fleet = FleetLink(
                store,
                self._core,
                base_url=self._base_url,
                username=self._username,
                clock=clock,
                errors=store_errors,
            )
        self._refresh_url = f"{self._base_url}/auth/refresh"

    @classmethod
    def sharing(cls, other: BearerFlow) -> Self:
        """An auth of this class's stack that shares *other*'s session.

        ``teletracker_async.httpx2.TeletrackerAuth.sharing(auth)`` lets an httpx2
        client and an httpx client use one session: one login, one refresh per
        expiry between them (and the other way round).
        """
        if not isinstance(other, BearerFlow):
            raise TypeError(
                f"sharing() takes a TeletrackerAuth, not {type(other).__name__}"
            )
        new = cls.__new__(cls)
        new._share(other)  # noqa: SLF001 - an instance of this very class
        return new

    def _share(self, other: BearerFlow) -> None:
        """Hold *other*'s credentials and its very session: the same core (so one
        single-flight renewal), machine, token store link and clock."""
        self._username, self._password = other._username, other._password
        self._account_id, self._base_url = other._account_id, other._base_url
        self._origin, self._refresh_url = other._origin, other._refresh_url
        self._clock, self._machine = other._clock, other._machine
        self._core, self._fleet = other._core, other._fleet

    def for_account(self, account_id: int) -> Self:
        """A new auth with these credentials for *account_id*: its own session.

        It keeps this auth's refresh margin, clock, token store (each account's
        record is its own key in the store) and listeners (those of now);
        ``TeletrackerClient.for_account`` uses it.

        Raises:
            TypeError, ValueError: A bad account id.
        """
        fleet = self._fleet
        return type(self)(
            self._username,
            self._password.get(),
            account_id=account_id,
            base_url=self._base_url,
            refresh_margin=self._machine.refresh_margin,
            clock=self._clock,
            store=None if fleet is None else fleet.store,
            store_errors="login" if fleet is None else fleet.errors,
            on_event=self._core.listeners,
        )

    @property
    def stack(self) -> str:
        """The HTTP stack this auth works with: ``"httpx"`` or ``"httpx2"``."""
        return self._stack.name

    @property
    def account_id(self) -> int | None:
        """The account sessions are opened for (changed by an account switch)."""
        machine = getattr(self, "_machine", None)  # None while being built
        return None if machine is None else machine.account_id

    @property
    def session(self) -> AuthSession | None:
        """The current session, or None before the first login.

        Its expiry is on two clocks. ``session.expires_at`` and
        ``session.refresh_expires_at`` are readings of this auth's ``clock``
        (``time.monotonic`` by default): compare them with that clock only, or ask
        ``session.expires_in()`` for the seconds left. ``session.expires_at_utc`` and
        ``session.refresh_expires_at_utc`` are the server's wall-clock claims (UTC
        datetimes), for people and other processes: off by the skew between the
        server's clock and yours.
        """
        lease = self._core.lease
        return None if lease is None else lease.session

    @property
    def store_stats(self) -> StoreStats | None:
        """What this auth did with its token store (a copy), or None without one."""
        fleet = getattr(self, "_fleet", None)  # None while being built
        return None if fleet is None else attrs.evolve(fleet.stats)

    @property
    def stats(self) -> SessionStats:
        """What this session went through (a copy): logins, refreshes, failures,
        requests that waited, retries; always counted, listener or not."""
        return attrs.evolve(self._core.stats)

    def add_listener(self, listener: Listener) -> None:
        """Call *listener* with each later event (:mod:`teletracker_async.events`).

        It is called synchronously, after the change it reports, in the event loop
        and thread that made it, never under a lock others wait on. If it raises,
        the error is logged once, with its traceback, and the session goes on.
        Auths made by :meth:`sharing` share their listeners.

        Raises:
            TypeError: *listener* is not callable.
        """
        self._core.add_listener(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling *listener* (added by ``on_event`` or :meth:`add_listener`).

        Raises:
            ValueError: *listener* is not a listener of this auth.
        """
        self._core.remove_listener(listener)

    def _secret_values(self) -> tuple[str, ...]:
        """The password and the current tokens (to redact echoes of them)."""
        lease = self._core.lease
        if lease is None:
            return (self._password.get(),)
        session = lease.session
        return (self._password.get(), session.token, session.refresh_token)

    # -- httpx entry points -------------------------------------------------------

    def sync_auth_flow(
        self,
        request: Any,  # noqa: ARG002 - httpx's signature
    ) -> Generator[Any, Any, None]:
        """Refuse: waiting for a shared renewal needs an event loop."""
        name = self._stack.name
        raise TypeError(
            f"TeletrackerAuth works with {name}.AsyncClient only: use "
            f"`async with {name}.AsyncClient(auth=auth) as client: ...` "
            "(or teletracker_async.TeletrackerClient)."
        )

    async def async_auth_flow(self, request: Any) -> AsyncGenerator[Any, Any]:
        """Send *request* with a valid bearer token, renewing it when needed.

        Raises:
            OriginMismatchError: *request* is for another origin than ``base_url``.
            TeletrackerError: The login or refresh it needed failed.
        """
        url = request.url  # ~0.3 us a request: the price of never leaking a token
        if (url.scheme, url.host, url.port) != self._origin:
            self._check_origin(url)  # raises, naming both origins
        lease = self._machine.lease
        event: Event = NEED
        while True:
            # The fast path: one clock read, one comparison, no lock, no await.
            if event is not NEED or lease is None or self._clock() >= lease.fast_until:
                # Waiting for a renewal in flight needs no exchange loop: in a storm
                # that is everyone but the one renewing (no generator each).
                core = self._core
                step = core.plan(event)
                while isinstance(step, Wait):
                    await core.wait(step.flight)
                    step = core.replan(event, step.flight)
                if isinstance(step, Use):
                    lease = step.lease
                else:
                    renewal = self._renew(event, step)
                    try:
                        item = await renewal.asend(None)
                        while isinstance(item, self._stack.Request):
                            item = await renewal.asend((yield item))
                    finally:
                        await renewal.aclose()
                    if item is None:
                        return  # the refusal goes back: only another account's token
                    lease = item
            request.headers["Authorization"] = lease.authorization
            response = yield request
            if response.status_code not in _REJECTED or event is not NEED:
                return  # a refusal a fresh token did not cure ends this request
            if not await self._retry_refused(request, response, lease):
                return
            event = Refused(lease.generation, lease.account_id)

    async def _retry_refused(self, request: Any, response: Any, lease: Lease) -> bool:
        """Whether a request refused with *lease*'s token may be sent again once
        renewed; its answer is read first, to free its connection."""
        # Bodies built from bytes, str, form data or JSON (and streams read into
        # memory) are ByteStreams; generators and open files are not.
        if not isinstance(request.stream, self._stack.ByteStream):
            # httpx hands back the last answer, so renewing here would return
            # the login answer: the next request renews first instead.
            self._core.suspect(lease.generation)
            return False
        # Free the refused answer's connection before waiting for the renewal:
        # the renewal may need that very connection (pool exhausted by refused
        # requests all waiting = deadlock). Its body is a few bytes.
        try:
            await response.aread()
        except self._stack.DecodingError:
            # Neither we nor httpx (which reads it before a retry) can read it:
            # raise what it is, and let the next request renew first.
            self._core.suspect(lease.generation)
            raise _undecodable(response, "refusal") from None
        return True

    # -- for callers that send the exchanges themselves -----------------------------

    async def ensure_session(self, send: Sender) -> AuthSession:
        """A valid session now: log in or refresh as needed, sending through *send*.

        The same single-flight rules as the auth flow apply: this shares the
        renewal, the generation and every waiter's outcome with requests in flight.
        ``TeletrackerClient.session()`` is built on it.

        Args:
            send: Sends one request without auth and returns the answer.

        Raises:
            TeletrackerError: The login or refresh failed.
        """
        lease = await self._drive(send, NEED)
        return lease.session

    async def switch_account(self, account_id: int | None, send: Sender) -> AuthSession:
        """Open a new session for *account_id* (a login), sending through *send*.

        Requests already sent finish with the old token; later ones use the new one.
        A refused switch fails only this call: the old session stays, and requests
        waiting to renew it renew for their own account.

        Raises:
            TypeError, ValueError: A bad account id.
            AuthenticationError: The user cannot reach that account.
        """
        lease = await self._drive(send, Switch(check_account_id(account_id)))
        return lease.session

    async def _drive(self, send: Sender, event: Event) -> Lease:
        renewal = self._renew(event)
        try:
            item = await renewal.asend(None)
            while isinstance(item, self._stack.Request):
                response = await send(item)
                try:
                    item = await renewal.asend(response)
                finally:
                    await response.aclose()
        finally:
            await renewal.aclose()
        return cast("Lease", item)  # only a Refused event gives back None

    # -- the exchange loop ------------------------------------------------------------

    async def _renew(
        self, event: Event, step: Step | None = None
    ) -> AsyncGenerator[Any, Any]:
        """Yield exchange requests (send each, send back its answer), then the lease
        to use, or None when a refusal must go back to its caller. *step* is the
        machine's first answer when the caller already asked it."""
        core = self._core
        if step is None:
            step = core.plan(event)
        while True:
            if isinstance(step, Use):
                yield step.lease
                return
            if isinstance(step, Wait):
                await core.wait(step.flight)
                step = core.replan(event, step.flight)
                continue
            if isinstance(step, Share):
                raise step.failure.raise_copy()  # one attempt, one outcome
            if isinstance(step, GiveBack):
                yield None
                return
            exchange = step.exchange
            fleet = self._fleet
            try:
                # With a store: a session another process published, or the valid
                # token kept while another renews, needs no exchange.
                lease = None if fleet is None else await fleet.prepare(exchange)
                while lease is None:
                    request = self._exchange_request(exchange)
                    response = yield request
                    lease = await self._on_answer(exchange, request, response)
            finally:
                # Cancelled, timed out or dropped: nobody can know whether the server
                # used the refresh token, so it stays spent; waiters plan again.
                core.abort(exchange)
                if fleet is not None:
                    await fleet.done(exchange)
            yield lease
            return

    def _exchange_request(self, exchange: Exchange) -> Any:
        if exchange.kind is Renewal.REFRESH and exchange.refresh_token is not None:
            return self._form_request(
                "/auth/refresh", {"refresh_token": exchange.refresh_token}
            )
        return login_request(self, exchange.account_id)

    async def _on_answer(
        self, exchange: Exchange, request: Any, response: Any
    ) -> Lease | None:
        """Read a login/refresh answer: the lease to use, None to go on with a login,
        or the (redacted) error raised."""
        what = (
            "Teletracker login" if exchange.kind is Renewal.LOGIN else "Token refresh"
        )
        status = response.status_code
        arrived = self._clock()
        error: TeletrackerError | None
        try:
            await response.aread()
        except self._stack.DecodingError:
            error = _undecodable(response, f"{what} answer")
        else:
            error = self._redirected(request, response, what)
        if error is None:
            if exchange.kind is Renewal.REFRESH and status in (400, 401, 403):
                logger.info(
                    "refresh refused (HTTP %d), logging in again (session revoked?)",
                    status,
                )
                self._core.relogin(
                    exchange, lambda: self._refusal(status, response, what)
                )
                return None
            if not 200 <= status < 300:
                error = self._refusal(status, response, what)
            else:
                accepted = await self._accept(exchange, response, what, arrived)
                if not isinstance(accepted, TeletrackerError):
                    return accepted
                error = accepted
        if error is None:  # pragma: no cover - every branch above returned or set it
            raise AssertionError(status)
        valid = self._core.fail(exchange, error)
        if valid is None:
            raise error
        logger.warning(
            "%s failed (HTTP %d), keeping the valid token of session %s",
            exchange.kind.value,
            status,
            valid.session.guid,
        )
        return valid

    async def _accept(
        self, exchange: Exchange, response: Any, what: str, arrived: float
    ) -> Lease | TeletrackerError:
        """Install a 2xx exchange answer, or the error that it cannot be read."""
        status = response.status_code
        try:
            answer = parse_token_answer(
                response.content, what=f"{what} answer", status_code=status
            )
        except ResponseFormatError as exc:
            return detached(exc)
        logger.info(
            "%s: session %s, account %s",
            "logged in" if exchange.kind is Renewal.LOGIN else "refreshed",
            answer.guid,
            exchange.account_id,
        )
        if self._fleet is not None:
            return await self._fleet.publish(exchange, answer, arrived)
        return self._core.settle(exchange, answer)

    def _redirected(
        self, request: Any, response: Any, what: str
    ) -> TeletrackerError | None:
        """An answer to another request than ours came through a redirect: it is
        not the API's (which never redirects these), so no token is adopted from
        it."""
        if response.request is request:
            return None
        return ResponseFormatError(
            f"The {what} answer came through a redirect to "
            f"{response.url.scheme}://{response.url.host}; the API does not redirect "
            "login or refresh, so it was refused.",
            status_code=response.status_code,
        )

    def _refusal(self, status: int, response: Any, what: str) -> TeletrackerError:
        # Built here, not at the raise site: no frame that raises holds a secret.
        return error_for_status(
            status,
            redact_for(self, decode_error_body(response.content)),
            response.headers,
            what=what,
            auth_endpoint=True,
            response=response,
        )


class TeletrackerAuth(BearerFlow, httpx.Auth):
    """An ``httpx.Auth`` that keeps one Teletracker bearer session for all coroutines.

    Use one instance per set of credentials, shared by every request of an
    ``httpx.AsyncClient`` (or several clients, in any number of event loops and
    threads). It logs in on first use, refreshes early in the background of one
    request, renews when a token is refused, and never sends a refresh token twice.
    ``teletracker_async.httpx2.TeletrackerAuth`` is the same for httpx2.

    Args:
        username: The Teletracker user name.
        password: The password; kept private, never shown in repr, logs or errors.
        account_id: The account to open sessions for, when the user has several.
        base_url: The API root; its ``/auth/login`` and ``/auth/refresh`` are used,
            and no credential is sent to any other origin.
        refresh_margin: Seconds before expiry at which one request refreshes early
            (at most half the token's lifetime).
        clock: A monotonic clock in seconds; inject a fake one in tests.
        store: A token store (:mod:`teletracker_async.stores`) through which many
            processes share this session: one login, one refresh per expiry
            fleet-wide. None (the default) shares it within this process only,
            with no I/O beyond the exchanges themselves.
        store_errors: With an unreachable store, ``"login"`` keeps the valid
            token and, past its hard deadline, logs in privately (at most once per
            token lifetime); ``"raise"`` raises ``TokenStoreError`` instead, for
            APIs that cap the sessions of a user.
        on_event: A listener, or a list of listeners, called with each event of
            the session (:mod:`teletracker_async.events`); see
            :meth:`add_listener`.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: An argument has a bad value (empty, negative, not a URL).
    """

    _stack = HTTPX
    requires_request_body = False
    requires_response_body = False

    if TYPE_CHECKING:  # the flow is written once (typed Any): here, in httpx's types

        def sync_auth_flow(
            self, request: httpx.Request
        ) -> Generator[httpx.Request, httpx.Response, None]: ...
        def async_auth_flow(
            self, request: httpx.Request
        ) -> AsyncGenerator[httpx.Request, httpx.Response]: ...
        async def ensure_session(
            self, send: Callable[[httpx.Request], Awaitable[httpx.Response]]
        ) -> AuthSession: ...
        async def switch_account(
            self,
            account_id: int | None,
            send: Callable[[httpx.Request], Awaitable[httpx.Response]],
        ) -> AuthSession: ...
