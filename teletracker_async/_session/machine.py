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
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from teletracker_async._config import DUE_MARGIN, FLEET_JITTER, RENEWAL_BACKOFF
from teletracker_async._models import AuthSession
from teletracker_async.events import LoginReason

if TYPE_CHECKING:
    from teletracker_async._converter import TokenAnswer
    from teletracker_async._errors import TeletrackerError

__all__ = [
    "NEED",
    "Exchange",
    "Failure",
    "FleetChoice",
    "GiveBack",
    "Lease",
    "Need",
    "Refused",
    "Renewal",
    "Seen",
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
    #: The token store record it came from or was published as; None when the
    #: session is this process's own (no store, or not published).
    write_id: str | None = None

    @property
    def account_id(self) -> int | None:
        return self.session.account_id

    def __repr__(self) -> str:
        return f"Lease(generation={self.generation}, guid={self.session.guid!r})"


@attrs.frozen(repr=False)
class Seen:
    """A token store's record, decoded, as the fleet policy sees it.

    Attributes:
        write_id: The record's write id.
        answer: The login or refresh answer it holds.
        account_id: The account its session is for.
        spent: Its refresh token was handed to a refresher already.
        trusted: Written by the store instance running now.
        expires_at: Its token's expiry on the auth's clock, derived from the time
            the store said remained (so, conservative by one round trip).
    """

    write_id: str
    answer: TokenAnswer
    account_id: int | None
    spent: bool
    trusted: bool
    expires_at: float

    def __repr__(self) -> str:
        return (
            f"Seen(write_id={self.write_id!r}, guid={self.answer.guid!r}, "
            f"spent={self.spent}, trusted={self.trusted})"
        )


class FleetChoice(enum.Enum):
    """How the lease holder renews a session shared through a token store."""

    SPEND = "spend"  # spend the record, then refresh with its refresh token
    PRIVATE_REFRESH = "private_refresh"  # refresh this process's unpublished session
    LOGIN = "login"


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
    #: The auth's clock when it started.
    started: float = 0.0
    #: Why it logs in (see :class:`~teletracker_async.events.LoggedIn`); unused
    #: for a refresh.
    reason: LoginReason = "first"
    #: Requests that waited for it (counted by the core).
    waiters: int = 0

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
    #: The session is shared through a token store: the store decides refresh or
    #: login (see :meth:`fleet_choice`), and refresh deadlines are jittered.
    fleet: bool = False
    #: The auth's clock, never read here: the sessions installed carry it (for
    #: :meth:`AuthSession.expires_in`).
    clock: Callable[[], float] = time.monotonic

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
        # The account asked for (at construction or by the last switch), not the
        # one an answer reported: renewals, and a store's record key, stay on it.
        return self.account_id

    def _renewal(self, now: float) -> Renewal:
        """Refresh when an unspent refresh token is still alive; log in otherwise."""
        return Renewal.REFRESH if self._why_login(now) is None else Renewal.LOGIN

    def _why_login(self, now: float) -> LoginReason | None:
        """Why a renewal cannot refresh, or None when it can."""
        lease = self.lease
        if lease is None:
            return "first"
        if self.refresh_token_spent:
            return "refresh_withheld"  # its last use had no known outcome
        if lease.refresh_expires_at is not None and now >= lease.refresh_expires_at:
            return "refresh_expired"
        return None

    def _start(
        self, now: float, account_id: int | None, *, forced: bool, switch: bool = False
    ) -> Exchange:
        self.flights += 1
        # With a store, a login until fleet_choice says otherwise: only the record's
        # spender (or a private session's owner) may send a refresh token.
        if switch:
            why: LoginReason | None = "account_switch"
        else:
            why = self._why_login(now)
            if self.fleet and why is None:  # the store decides: see fleet_choice
                why = "store"
        kind = Renewal.REFRESH if why is None else Renewal.LOGIN
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
            started=now,
            reason=why or "first",
        )
        return self.flight

    # -- outcomes ---------------------------------------------------------------------

    def settle(
        self,
        exchange: Exchange,
        answer: TokenAnswer,
        now: float,
        *,
        expires_at: float | None = None,
        write_id: str | None = None,
    ) -> Lease:
        """The exchange brought a new session: install it, in one step.

        An exchange that was given up on (its event loop looked dead) and answered
        after a newer session was installed does not replace it: the newer one is
        returned instead.

        Args:
            expires_at: For a session adopted from a token store: its expiry on
                this clock (by default, ``now`` + its lifetime).
            write_id: The store record it came from or was published as.
        """
        superseded = self.flight is not exchange and (
            self.flight is not None or self.generation != exchange.generation
        )
        if superseded and self.lease is not None:
            return self.lease
        self._land(exchange)
        return self._install(
            AuthSession(
                token=answer.token,
                refresh_token=answer.refresh_token,
                guid=answer.guid,
                token_expiration=answer.token_expiration,
                token_lifetime=answer.token_lifetime,
                refresh_token_expiration=answer.refresh_token_expiration,
                obtained_at=now
                if expires_at is None
                else expires_at - answer.token_lifetime,
                account_id=answer.account_id or exchange.account_id,  # the server's
                extra=answer.extra,
                clock=self.clock,
            ),
            exchange.account_id,
            write_id,
        )

    def _install(
        self, session: AuthSession, account_id: int | None, write_id: str | None
    ) -> Lease:
        """Make *session* the current one: its timeline, a new generation."""
        margin = min(self.refresh_margin, session.token_lifetime / 2)
        if self.fleet:  # each process its own moment, or the fleet comes at once
            margin *= self.rng.uniform(1 - FLEET_JITTER, 1)
        expires_at = session.expires_at
        refresh_at = expires_at - margin
        self.generation += 1
        self.account_id = account_id
        self.lease = Lease(
            session=session,
            generation=self.generation,
            authorization=f"Bearer {session.token}",
            refresh_at=refresh_at,
            due_at=expires_at - min(DUE_MARGIN, margin / 2),
            expires_at=expires_at,
            refresh_expires_at=session.refresh_expires_at,
            fast_until=refresh_at,
            write_id=write_id,
        )
        self.refresh_token_spent = False
        self.backoff_until = -math.inf
        self.last_failure = None
        self.suspect = None
        return self.lease

    # -- a session shared through a token store -------------------------------------

    def usable(self, now: float) -> bool:
        """Whether the current token may still be sent instead of waiting (before
        the hard deadline, and not suspected of being refused)."""
        lease = self.lease
        return (
            lease is not None
            and lease.generation != self.suspect
            and now < lease.due_at
        )

    def adoptable(self, seen: Seen | None, now: float, *, forced: bool) -> bool:
        """Whether *seen*, a store's record, should replace the current session.

        Only a record written by the store instance running now, for this account,
        that is not the current session: another process renewed. It must be young
        enough to use without renewing at once (for a refused token: valid before
        its hard deadline).
        """
        lease = self.lease
        if seen is None or not seen.trusted:
            return False
        # The account the renewal in flight is for (a switch names another).
        flight = self.flight
        account = self._account() if flight is None else flight.account_id
        if seen.account_id != account:
            return False
        if lease is not None and lease.write_id == seen.write_id:
            return False  # nothing new: this is the session in use
        margin = min(self.refresh_margin, seen.answer.token_lifetime / 2)
        if forced:
            return now < seen.expires_at - min(DUE_MARGIN, margin / 2)
        return now < seen.expires_at - margin

    def fleet_choice(
        self, exchange: Exchange, seen: Seen | None, now: float
    ) -> FleetChoice:
        """How the lease holder renews: spend the record and refresh with its token,
        refresh this process's own unpublished session, or log in.

        A private refresh is chosen here, and its token handed out (and spent) at
        once; for :attr:`FleetChoice.SPEND` the caller spends the record in the
        store and calls :meth:`refresh_with` only if that succeeded.
        """
        if exchange.switch:
            return FleetChoice.LOGIN
        if (
            seen is not None
            and seen.trusted
            and not seen.spent
            and seen.account_id == exchange.account_id
            and _refresh_alive(seen.answer, seen.expires_at, now)
        ):
            return FleetChoice.SPEND
        lease = self.lease
        if (
            lease is not None
            and lease.write_id is None
            and self.account_id == exchange.account_id
            and self._renewal(now) is Renewal.REFRESH
        ):
            self.refresh_with(exchange, lease.session.refresh_token)
            self.refresh_token_spent = True
            return FleetChoice.PRIVATE_REFRESH
        return FleetChoice.LOGIN

    @staticmethod
    def refresh_with(exchange: Exchange, refresh_token: str) -> None:
        """The exchange refreshes with *refresh_token* (won by spending a record)."""
        exchange.kind = Renewal.REFRESH
        exchange.refresh_token = refresh_token

    def defer(self, exchange: Exchange, now: float, seconds: float) -> Lease | None:
        """End the flight without renewing: another process renews now.

        The valid token goes on until *seconds* have passed (or its hard
        deadline): returned. None when it cannot serve any more: then the flight
        stays the caller's.
        """
        lease = self.lease
        if lease is None or not self.usable(now):
            return None  # the flight goes on: the caller waits for the renewal
        self._land(exchange)
        self.backoff_until = min(now + seconds, lease.due_at)
        fast = max(lease.refresh_at, min(self.backoff_until, lease.due_at))
        self.lease = attrs.evolve(lease, fast_until=fast)
        return self.lease

    def relogin(self, exchange: Exchange) -> None:
        """The refresh was refused (session revoked): the same flight logs in."""
        exchange.kind = Renewal.LOGIN
        exchange.refresh_token = None
        exchange.reason = "refresh_refused"

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


def _refresh_alive(answer: TokenAnswer, expires_at: float, now: float) -> bool:
    """Whether a stored session's refresh token is still alive (same rule as
    :attr:`AuthSession.refresh_expires_at`: the server's own difference)."""
    if answer.refresh_token_expiration is None:
        return True
    gap = answer.refresh_token_expiration - answer.token_expiration
    return now < expires_at + gap.total_seconds()
