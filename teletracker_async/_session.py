"""The session state machine: every renewal decision, as a pure function of state.

Nothing here does I/O, waits, or knows about httpx, threads or event loops. Every
method takes the current reading of the auth's clock, so the whole policy is tested
with plain numbers. The adapters (``_auth``) call :meth:`SessionMachine.plan` under a
``threading.Lock``, act on the step it returns, and report the outcome back with
:meth:`~SessionMachine.settle`, :meth:`~SessionMachine.fail`,
:meth:`~SessionMachine.relogin` or :meth:`~SessionMachine.abort`.

A token's life on the local clock, with ``margin = min(refresh_margin, lifetime / 2)``
and ``due_margin = min(DUE_MARGIN, margin / 2)``::

    obtained_at        refresh_at            due_at            expires_at
        |--- USE -----------|--- TRY_EARLY -----|--- RENEW ---------|--- RENEW ...
                              one request         every request      (no backoff
                              refreshes, the      waits for the      can keep the
                              rest go at once     single renewal     old token)

At most one renewal (a *flight*) runs at a time, whatever the number of coroutines,
event loops and threads: :meth:`~SessionMachine.plan` hands out :class:`Start` once and
:class:`Wait` to everyone else until the flight settles. A renewal that fails while
the token is still valid sets a jittered backoff during which requests keep using the
valid token instead of trying again.
"""

from __future__ import annotations

import copy
import enum
import math
import random
from typing import TYPE_CHECKING

import attrs

from teletracker_async._config import DUE_MARGIN, RENEWAL_BACKOFF
from teletracker_async._models import AuthSession

if TYPE_CHECKING:
    from teletracker_async._converter import TokenAnswer
    from teletracker_async._exceptions import TeletrackerError

__all__ = [
    "NEED",
    "Exchange",
    "Failure",
    "GiveBack",
    "Lease",
    "Need",
    "Refused",
    "Renewal",
    "SessionMachine",
    "Share",
    "Start",
    "Step",
    "Switch",
    "Use",
    "Wait",
]


class Renewal(enum.Enum):
    """How to renew."""

    LOGIN = "login"
    REFRESH = "refresh"


class Zone(enum.Enum):
    """Where *now* falls in the current token's life."""

    USE = "use"  # send with the current token
    TRY_EARLY = "try_early"  # one request may refresh; the rest use the token
    RENEW = "renew"  # every request waits for the one renewal


@attrs.frozen(repr=False)
class Lease:
    """An installed session with its precomputed local deadlines and header value.

    ``fast_until`` is the one number the per-request fast path compares with the
    clock: before it, the token is sent without asking the machine anything. It is
    ``refresh_at``, moved later by a backoff and to ``-inf`` when the token is
    suspected of being refused.
    """

    session: AuthSession
    generation: int
    authorization: str
    refresh_at: float
    due_at: float
    expires_at: float
    refresh_expires_at: float | None
    fast_until: float

    @property
    def account_id(self) -> int | None:
        return self.session.account_id

    def __repr__(self) -> str:
        return f"Lease(generation={self.generation}, guid={self.session.guid!r})"


# -- events: why a caller asks -------------------------------------------------------


@attrs.frozen
class Need:
    """A request wants a token."""


NEED = Need()


@attrs.frozen
class Refused:
    """The server refused (401/403) the token of *generation*, for *account_id*."""

    generation: int
    account_id: int | None


@attrs.frozen
class Switch:
    """Open a new session for another account (a login with ``account_id``)."""

    account_id: int | None


Event = Need | Refused | Switch

# -- steps: what the caller does next ------------------------------------------------


@attrs.frozen
class Use:
    """Send with this lease."""

    lease: Lease


@attrs.frozen(repr=False)
class Failure:
    """The shared outcome of a failed renewal: the redacted error it raised."""

    flight: int
    error: TeletrackerError

    def raise_copy(self) -> TeletrackerError:
        """A fresh copy of the error for one more waiter (tracebacks are per raise)."""
        error = copy.copy(self.error)
        error.__traceback__ = None
        return error

    def __repr__(self) -> str:
        return f"Failure(flight={self.flight}, error={type(self.error).__name__})"


@attrs.frozen
class Share:
    """Raise the failure of the flight the caller waited for."""

    failure: Failure


@attrs.frozen
class GiveBack:
    """Hand the refusal back to the caller: retrying could only cross accounts."""


GIVE_BACK = GiveBack()


@attrs.frozen
class Wait:
    """A renewal is in flight: wait for it to settle, then plan again."""

    flight: int


@attrs.define(repr=False)
class Exchange:
    """One login or refresh the caller owns: it sends it and reports the outcome.

    Attributes:
        number: The flight's number; waiters are woken when it settles.
        kind: Login or refresh; a refused refresh turns into a login.
        account_id: The account the new session is for.
        refresh_token: The single-use token to send (refresh only). Spent already.
        forced: A refused token or an account switch asked for it: its failure is
            raised, never papered over with the old token.
        switch: An account switch: its failure is the switcher's alone.
    """

    number: int
    kind: Renewal
    account_id: int | None
    refresh_token: str | None = attrs.field(repr=False)
    forced: bool
    switch: bool
    #: The generation installed when it started (to spot a superseded exchange).
    generation: int = 0

    def __repr__(self) -> str:
        return (
            f"Exchange(number={self.number}, kind={self.kind.value}, "
            f"account_id={self.account_id!r}, forced={self.forced}, "
            f"switch={self.switch})"
        )


@attrs.frozen
class Start:
    """Run this exchange: you own the flight until you settle or abort it."""

    exchange: Exchange


Step = Use | Share | GiveBack | Wait | Start


@attrs.define(repr=False)
class SessionMachine:
    """The renewal policy of one session.

    Args:
        refresh_margin: Seconds before expiry at which early refresh may start.
        account_id: The account the first login is for.
        rng: Source of jitter for the backoff (injectable for tests).
    """

    refresh_margin: float
    account_id: int | None = None
    rng: random.Random = attrs.field(factory=random.Random)
    lease: Lease | None = None
    generation: int = 0
    #: True once the current refresh token has been sent: it is never sent again.
    refresh_token_spent: bool = False
    backoff_until: float = -math.inf
    #: The exchange in flight, if any.
    flight: Exchange | None = None
    flights: int = 0
    last_failure: Failure | None = None
    #: A generation whose token was refused on a request that could not be replayed.
    suspect: int | None = None

    def __repr__(self) -> str:
        return (
            f"SessionMachine(generation={self.generation}, lease={self.lease!r}, "
            f"flight={self.flight!r}, refresh_token_spent={self.refresh_token_spent}, "
            f"last_failure={self.last_failure!r})"
        )

    # -- deciding -------------------------------------------------------------------

    def zone(self, now: float) -> Zone:
        """Where *now* falls in the current token's life (backoff included)."""
        lease = self.lease
        if lease is None or lease.generation == self.suspect:
            return Zone.RENEW
        if now < lease.refresh_at:
            return Zone.USE
        if now < lease.expires_at and now < self.backoff_until:
            return Zone.USE
        if now < lease.due_at:
            return Zone.TRY_EARLY
        return Zone.RENEW

    def plan(self, now: float, event: Event, waited: int | None = None) -> Step:
        """Say what a caller should do next.

        Args:
            now: The auth's clock.
            event: Why the caller asks: it needs a token, its token was refused, or
                it switches accounts.
            waited: The flight the caller has just waited for, if any: its failure
                is shared with the caller (one attempt, one outcome).
        """
        if isinstance(event, Switch):
            if self.flight is not None:
                return Wait(self.flight.number)
            return Start(self._start(now, event.account_id, forced=True, switch=True))
        lease = self.lease
        early = (
            self._after_refusal(now, event)
            if isinstance(event, Refused)
            else self._without_renewal(now)
        )
        if early is not None:
            return early
        failure = self.last_failure
        if waited is not None and failure is not None and failure.flight == waited:
            return Share(failure)
        if self.flight is not None:
            return Wait(self.flight.number)
        # A refused token (the caller's, or one suspected after an unreplayable
        # request) cannot serve while the renewal fails: its failure is raised.
        suspected = lease is not None and lease.generation == self.suspect
        forced = isinstance(event, Refused) or suspected
        return Start(self._start(now, self._account(), forced=forced))

    def _after_refusal(self, now: float, event: Refused) -> Step | None:
        """A newer token to retry with, a refusal to give back, or None: renew."""
        lease = self.lease
        if lease is None or lease.generation == event.generation:
            return None
        if lease.account_id != event.account_id:
            return GIVE_BACK  # never retry with another account's token
        if now < lease.expires_at and lease.generation != self.suspect:
            return Use(lease)
        return None

    def _without_renewal(self, now: float) -> Step | None:
        """What a request can do without waiting, or None: it needs the renewal."""
        lease = self.lease
        zone = self.zone(now)
        if zone is Zone.RENEW or lease is None:
            return None
        if zone is Zone.USE or self.flight is not None:
            return Use(lease)  # early window: someone is renewing already
        return Start(self._start(now, self._account(), forced=False))

    def _account(self) -> int | None:
        lease = self.lease
        return self.account_id if lease is None else lease.account_id

    def _renewal(self, now: float) -> Renewal:
        """Refresh when an unspent refresh token is still alive; log in otherwise."""
        lease = self.lease
        if lease is None or self.refresh_token_spent:
            return Renewal.LOGIN
        if lease.refresh_expires_at is not None and now >= lease.refresh_expires_at:
            return Renewal.LOGIN
        return Renewal.REFRESH

    def _start(
        self, now: float, account_id: int | None, *, forced: bool, switch: bool = False
    ) -> Exchange:
        self.flights += 1
        kind = Renewal.LOGIN if switch else self._renewal(now)
        refresh_token = None
        if kind is Renewal.REFRESH:
            assert self.lease is not None  # noqa: S101 - _renewal checked it
            refresh_token = self.lease.session.refresh_token
            # Spent as it is handed out, under the caller's lock: nobody else, in
            # any thread, can be handed it again.
            self.refresh_token_spent = True
        self.flight = Exchange(
            self.flights,
            kind,
            account_id,
            refresh_token,
            forced,
            switch,
            self.generation,
        )
        return self.flight

    # -- outcomes ---------------------------------------------------------------------

    def settle(self, exchange: Exchange, answer: TokenAnswer, now: float) -> Lease:
        """The exchange brought a new session: install it, in one step.

        An exchange that was given up on (its event loop looked dead) and answered
        after a newer session was installed does not replace it: the newer one is
        returned instead.
        """
        superseded = self.flight is not exchange and (
            self.flight is not None or self.generation != exchange.generation
        )
        if superseded and self.lease is not None:
            return self.lease
        self._land(exchange)
        session = AuthSession(
            token=answer.token,
            refresh_token=answer.refresh_token,
            guid=answer.guid,
            token_expiration=answer.token_expiration,
            token_lifetime=answer.token_lifetime,
            refresh_token_expiration=answer.refresh_token_expiration,
            obtained_at=now,
            account_id=answer.account_id or exchange.account_id,  # the server's say
            extra=answer.extra,
        )
        margin = min(self.refresh_margin, session.token_lifetime / 2)
        expires_at = session.expires_at
        refresh_at = expires_at - margin
        self.generation += 1
        self.account_id = exchange.account_id
        self.lease = Lease(
            session=session,
            generation=self.generation,
            authorization=f"Bearer {session.token}",
            refresh_at=refresh_at,
            due_at=expires_at - min(DUE_MARGIN, margin / 2),
            expires_at=expires_at,
            refresh_expires_at=session.refresh_expires_at,
            fast_until=refresh_at,
        )
        self.refresh_token_spent = False
        self.backoff_until = -math.inf
        self.last_failure = None
        self.suspect = None
        return self.lease

    def relogin(self, exchange: Exchange) -> None:
        """The refresh was refused (session revoked): the same flight logs in."""
        exchange.kind = Renewal.LOGIN
        exchange.refresh_token = None

    def fail(
        self, exchange: Exchange, now: float, error: TeletrackerError
    ) -> Lease | None:
        """The exchange got an answer that was not a new session.

        Returns the valid lease to go on with (an early refresh failed), or None when
        the caller must raise *error*. Waiters of this flight share *error*, except
        after an account switch: that failure is the switcher's alone, and requests
        that waited for it renew for their own account.
        """
        self._land(exchange)
        if not exchange.switch:
            self.last_failure = Failure(exchange.number, error)
            self._back_off(now)
        if exchange.forced:
            return None
        lease = self.lease
        if lease is not None and now < lease.expires_at:
            return lease
        return None

    def abort(self, exchange: Exchange, now: float) -> None:
        """The exchange ended without a readable outcome (cancelled, transport error,
        its event loop gone).

        Its refresh token stays spent: the next renewal logs in. Waiters learn nothing
        from it and plan again; while the token is valid, early tries pause as after a
        failure, so that a network outage costs one request per backoff, not one per
        request.
        """
        if self.flight is not exchange:
            return  # settled already
        self._land(exchange)
        if not exchange.switch:
            self._back_off(now)

    def suspect_generation(self, generation: int) -> None:
        """The token of *generation* was refused on a request that could not be
        replayed: the next request renews first (the fast path is closed)."""
        lease = self.lease
        if lease is not None and lease.generation == generation:
            self.suspect = generation
            self.lease = attrs.evolve(lease, fast_until=-math.inf)

    def forget(self) -> None:
        """Drop the session and any flight (a forked child must log in itself)."""
        self.lease = None
        self.flight = None
        self.refresh_token_spent = False
        self.backoff_until = -math.inf
        self.last_failure = None
        self.suspect = None

    def _land(self, exchange: Exchange) -> None:
        if self.flight is exchange:
            self.flight = None

    def _back_off(self, now: float) -> None:
        lease = self.lease
        if lease is not None:
            margin = lease.expires_at - lease.refresh_at
            base = min(RENEWAL_BACKOFF, margin / 4)
            self.backoff_until = now + base * self.rng.uniform(0.8, 1.2)
            if lease.generation != self.suspect:
                fast = max(lease.refresh_at, min(self.backoff_until, lease.expires_at))
                self.lease = attrs.evolve(lease, fast_until=fast)
