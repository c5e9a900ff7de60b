"""One call from start to end: the checks, the queue, the send, the tries.

A :class:`Link` is what a client and all its views share (the HTTP client, the
queue in front of its pool, the event loop it is bound to); a :class:`RequestPath`
is one view's way through it: the link, the auth its requests go through and the
call settings. The tries loop asks :func:`~teletracker_async._call.retry.decide`
after each failure and obeys.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import httpx

from teletracker_async._call.answers import (
    failure_of,
    no_answer,
    request_error,
)
from teletracker_async._call.options import NOT_GIVEN, CallOptions
from teletracker_async._call.queue import Queue
from teletracker_async._call.retry import (
    AuthFailed,
    Failure,
    GiveUp,
    NoAnswer,
    Refused,
    TryAgain,
    decide,
)
from teletracker_async._config import IDEMPOTENT_METHODS
from teletracker_async._errors import (
    AccountMismatchError,
    APITimeoutError,
    RateLimitError,
    ServerError,
    detached,
    parse_retry_after,
)
from teletracker_async._http import HTTPClient, Request, Response, Stack
from teletracker_async._session.core import current_loop
from teletracker_async._session.flow import BearerFlow

__all__ = ["Link", "RequestPath"]

logger = logging.getLogger("teletracker_async")

#: Builds the request of one try (anew for each).
Make = Callable[[], Request]


@attrs.define(eq=False)
class Link:
    """What a client and all its views share: one pool, one queue, one loop."""

    stack: Stack
    base_url: str
    http: HTTPClient
    owns_http: bool
    #: The queue in front of the pool (None: no limit, or your own client's pool).
    queue: Queue | None
    sleep: Callable[[float], Awaitable[object]]
    #: Headers added to each request built (the User-Agent on your own client).
    request_headers: dict[str, str] | None
    loop: object = None
    #: The bound loop's own cancellation check (found once, when the loop binds:
    #: ``anyio.lowlevel.checkpoint_if_cancelled`` looks the backend up each call).
    checkpoint_if_cancelled: Callable[[], Awaitable[None]] = (
        anyio.lowlevel.checkpoint_if_cancelled
    )
    closed: bool = False
    rng: random.Random = attrs.field(factory=random.Random)

    def check_open(self) -> None:
        """Raises:
        RuntimeError: The client is closed.
        """
        if self.closed:
            raise RuntimeError(
                "this TeletrackerClient (or the client this view came from) is "
                "closed: create a new one"
            )

    def check_loop(self) -> None:
        """Bind to the running event loop on first use.

        Raises:
            RuntimeError: The link is bound to another event loop.
        """
        loop = current_loop()
        if self.loop is loop:
            return
        if self.loop is None:
            check = anyio.lowlevel.current_token().backend_class.checkpoint_if_cancelled
            self.checkpoint_if_cancelled, self.loop = check, loop
        else:
            raise RuntimeError(
                "this TeletrackerClient was first used in another event loop (a "
                "second asyncio.run, a module-level client?): its connections belong "
                "to that loop. Create one client per event loop; they may share one "
                "session: TeletrackerClient(auth=client.auth)."
            )

    def url(self, path: str) -> str:
        """*path* under the base URL (an absolute URL is left as it is)."""
        # Absolute, so that a client you passed in, whatever its base_url, sends to
        # the auth's origin (and the origin check names the path if it is not).
        return f"{self.base_url}{path}" if path.startswith("/") else path

    async def send_raw(self, request: Request) -> Response:
        """Send a login or refresh once, past the queue and without auth.

        Raises:
            APIConnectionError: No answer.
        """
        self.check_open()
        self.check_loop()
        try:
            return await self.http.send(
                request, auth=None, stream=True, follow_redirects=False
            )
        except self.stack.TransportError as exc:
            raise no_answer(request.method, request.url, exc, self.stack) from detached(
                exc
            )


@attrs.frozen
class RequestPath:
    """One view's way to the API: the shared link, its auth and its settings."""

    link: Link
    auth: Any  # the auth object of the view (an httpx.Auth of the link's stack)
    options: CallOptions
    #: What ``build_request`` gets besides the call's own parts, built once.
    extra: Mapping[str, Any] = attrs.field(init=False)

    @extra.default
    def _extra(self) -> Mapping[str, Any]:
        extra: dict[str, Any] = {}
        if self.options.timeout is not None:
            extra["timeout"] = self.options.timeout
        if self.link.request_headers is not None:
            extra["headers"] = self.link.request_headers
        return extra

    def with_options(self, options: CallOptions) -> RequestPath:
        """This path with other settings (itself when they are the same)."""
        if options == self.options:
            return self
        return RequestPath(self.link, self.auth, options)

    def with_timeout(self, timeout: object) -> RequestPath:
        """This path with the call's own *timeout*, unless it is NOT_GIVEN.

        Raises:
            TypeError: A bad timeout.
        """
        if timeout is NOT_GIVEN:
            return self
        return self.with_options(self.options.evolve(self.link.stack, timeout=timeout))

    def check_account(self, what: str, account_id: int | None) -> None:
        """Refuse, before sending, a bearer request for another account than the
        session's (it could only be refused, after a wasted renewal).

        Raises:
            AccountMismatchError: The bearer session works in another account.
        """
        auth = self.auth
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

    def send(
        self,
        make: Make,
        *,
        what: tuple[str, str],
        idempotent: bool | None,
        authenticate: bool = True,
    ) -> Awaitable[Response]:
        """Send a request that *make* builds (anew for each try) with retries, all
        within ``options.total_timeout``; return the last answer, or raise.

        *what* is the method and path, for the message of a total timeout.
        """
        if self.options.total_timeout is None:  # no extra coroutine on the common path
            return self._tries(make, math.inf, idempotent, authenticate)
        return self._within(make, " ".join(what), idempotent, authenticate)

    async def _within(
        self, make: Make, what: str, idempotent: bool | None, authenticate: bool
    ) -> Response:
        total = self.options.total_timeout
        with anyio.move_on_after(total) as scope:
            return await self._tries(make, scope.deadline, idempotent, authenticate)
        raise APITimeoutError(
            f"{what}: no answer within total_timeout={total} s (retries included)",
            host=httpx.URL(self.link.base_url).host,
        )

    async def _tries(
        self, make: Make, deadline: float, idempotent: bool | None, authenticate: bool
    ) -> Response:
        """The tries of :meth:`send`, each as :func:`decide` says.

        Redirects are never followed: the API does not redirect, and a login or
        refresh must not be replayed to wherever a ``Location`` points.
        """
        link, retry = self.link, self.options.retry
        stack = link.stack
        auth = self.auth if authenticate else None
        tries = 0
        while True:
            request = make()
            tries += 1
            try:
                response = await self._try(link, request, auth)
            except stack.TransportError as exc:
                failure = failure_of(exc, request, stack)
                verdict = self._decide(
                    tries, NoAnswer(failure), request, deadline, idempotent
                )
                if isinstance(verdict, GiveUp):
                    # The login/refresh in front holds the password or a refresh
                    # token in the frames of the HTTP stack: keep none of them.
                    cause = detached(exc) if failure is Failure.IN_FRONT else exc
                    raise no_answer(request.method, request.url, exc, stack) from cause
                reason = type(exc).__name__
                on_exchange = failure is Failure.IN_FRONT
            except stack.RequestError as exc:  # undecodable, or anything else
                raise request_error(exc, request, stack) from exc
            except (ServerError, RateLimitError) as exc:
                failed = AuthFailed(exc.status_code, getattr(exc, "retry_after", None))
                verdict = self._decide(
                    tries, failed, request, deadline, idempotent=True
                )
                if isinstance(verdict, GiveUp):
                    raise
                reason = f"HTTP {exc.status_code} from the auth endpoint"
                on_exchange = True
            else:
                status = response.status_code
                if status not in retry.statuses:  # the common answer, no decision
                    return response
                wait_said = parse_retry_after(response.headers.get("retry-after"))
                refused = Refused(status, wait_said)
                verdict = self._decide(tries, refused, request, deadline, idempotent)
                if isinstance(verdict, GiveUp):
                    return response
                reason = f"HTTP {status}"
                on_exchange = False
            self._tell_retry(request, tries, reason, verdict.wait, on_exchange)
            logger.debug(
                "retry %d/%d of %s %s in %.2f s after %s",
                tries,
                retry.max_retries,
                request.method,
                request.url.path,
                verdict.wait,
                reason,
            )
            await link.sleep(verdict.wait)

    def _tell_retry(
        self, request: Request, tries: int, reason: str, wait: float, on_exchange: bool
    ) -> None:
        """Count the retry in the session's stats, and tell its listeners."""
        auth = self.auth
        if isinstance(auth, BearerFlow):
            auth._core.retried(  # noqa: SLF001 - the SDK's own auth
                method=request.method,
                path=request.url.path,
                attempt=tries,
                max_attempts=self.options.retry.max_attempts,
                reason=reason,
                wait=wait,
                on_exchange=on_exchange,
            )

    def _decide(
        self,
        tries: int,
        outcome: NoAnswer | Refused | AuthFailed,
        request: Request,
        deadline: float,
        idempotent: bool | None,
    ) -> TryAgain | GiveUp:
        may_repeat = (
            request.method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        )
        return decide(
            self.options.retry,
            tries,
            outcome,
            idempotent=may_repeat,
            now=anyio.current_time(),
            deadline=deadline,
            random=self.link.rng.random,
        )

    async def _try(self, link: Link, request: Request, auth: Any) -> Response:
        """One try: the checks, the queue in front of the pool, the send."""
        # A call in a cancelled scope sends nothing: a transport need not check
        # before it sends (anyio's acquire() used to check this). It is cancelled
        # before any other check, closed client included; the loop's own check
        # once the client is bound to this loop.
        bound = current_loop() is link.loop
        await (
            link.checkpoint_if_cancelled
            if bound
            else anyio.lowlevel.checkpoint_if_cancelled
        )()
        if link.closed or not bound:
            link.check_open()
            link.check_loop()
        queue = link.queue
        slots = None
        if queue is not None:
            slots = queue.slots
            if not queue.took():
                pool = (self.options.timeout or link.http.timeout).pool
                slots = await queue.wait(request, pool)
        try:
            response = await link.http.send(
                request, auth=auth, follow_redirects=False, stream=True
            )
            if queue is not None and queue.handover:
                slots = queue.hand_over_at_last_byte(response)
            try:
                await response.aread()
            except BaseException:
                await response.aclose()  # and the slot, if the body has it
                raise
        finally:
            if slots is not None:
                slots.release()
        return response
