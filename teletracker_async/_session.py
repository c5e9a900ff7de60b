"""The session state machine: deadlines, generations, backoff and what to do next.

Nothing here does I/O or knows about httpx; every method takes the current reading of
the auth's clock, so the whole policy can be tested with plain numbers.

A token's life on the local clock, with ``margin = min(refresh_margin, lifetime / 2)``
and ``due_margin = min(5 s, margin / 2)``::

    obtained_at        refresh_at            due_at            expires_at
        |--- USE -----------|--- TRY_EARLY -----|--- RENEW ---------|--- RENEW ...
                              one request         every request      (no backoff
                              refreshes, the      waits for the      can keep the
                              rest go at once     single renewal     old token)

A renewal that fails while the token is still valid sets a jittered backoff during
which requests keep using the valid token instead of trying again.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from teletracker_async._models import AuthSession

if TYPE_CHECKING:
    from teletracker_async._converter import TokenAnswer
    from teletracker_async._exceptions import TeletrackerError

__all__ = ["Decision", "Failure", "Lease", "Renewal", "SessionMachine"]

#: The hard deadline sits this many seconds before expiry (less for short lifetimes).
DUE_MARGIN = 5.0
#: Pause after a failed renewal while the token is still valid (jittered +-20 %).
BACKOFF = 30.0


class Decision(enum.Enum):
    """What a request should do before it goes out."""

    USE = "use"  # send with the current token
    TRY_EARLY = "try_early"  # send with the current token unless we may refresh now
    RENEW = "renew"  # wait for (or perform) the one renewal, then send


class Renewal(enum.Enum):
    """How to renew."""

    LOGIN = "login"
    REFRESH = "refresh"


@attrs.frozen(repr=False)
class Lease:
    """An installed session with its precomputed local deadlines and header value."""

    session: AuthSession
    generation: int
    authorization: str
    refresh_at: float
    due_at: float
    expires_at: float
    refresh_expires_at: float | None

    def __repr__(self) -> str:
        return f"Lease(generation={self.generation}, guid={self.session.guid!r})"


@attrs.frozen
class Failure:
    """The shared outcome of a failed renewal attempt."""

    attempt: int
    make_error: Callable[[], TeletrackerError]


@attrs.define
class SessionMachine:
    """The renewal policy of one :class:`TeletrackerAuth`.

    Args:
        refresh_margin: Seconds before expiry at which early refresh may start.
        rng: Source of jitter for the backoff (injectable for tests).
    """

    refresh_margin: float
    rng: random.Random = attrs.field(factory=random.Random)
    lease: Lease | None = None
    generation: int = 0
    #: True once the current refresh token has been sent: it is never sent again.
    refresh_token_spent: bool = False
    backoff_until: float = -math.inf
    #: Renewal attempts that ended, however they ended.
    finished_attempts: int = 0
    last_failure: Failure | None = None
    #: status code -> generation for which that status proved persistent.
    confirmed_rejections: dict[int, int] = attrs.field(factory=dict)
    #: A generation whose token was refused on a request we could not replay.
    suspect: int | None = None

    def decide(self, now: float) -> Decision:
        """Say what a request that starts at *now* should do."""
        lease = self.lease
        if lease is None or lease.generation == self.suspect:
            return Decision.RENEW
        if now < lease.refresh_at:
            return Decision.USE
        if now < lease.expires_at and now < self.backoff_until:
            return Decision.USE
        if now < lease.due_at:
            return Decision.TRY_EARLY
        return Decision.RENEW

    def renewal(self, now: float) -> Renewal:
        """Refresh when an unspent refresh token is still alive; log in otherwise."""
        lease = self.lease
        if lease is None or self.refresh_token_spent:
            return Renewal.LOGIN
        if lease.refresh_expires_at is not None and now >= lease.refresh_expires_at:
            return Renewal.LOGIN
        return Renewal.REFRESH

    def valid(self, now: float) -> Lease | None:
        """The current lease if its token has not expired at *now*."""
        lease = self.lease
        if lease is not None and now < lease.expires_at:
            return lease
        return None

    def install(self, answer: TokenAnswer, now: float, account_id: int | None) -> Lease:
        """Replace the session with a new token pair, in one step."""
        session = AuthSession(
            token=answer.token,
            refresh_token=answer.refresh_token,
            guid=answer.guid,
            token_expiration=answer.token_expiration,
            token_lifetime=answer.token_lifetime,
            refresh_token_expiration=answer.refresh_token_expiration,
            obtained_at=now,
            account_id=account_id,
            extra=answer.extra,
        )
        margin = min(self.refresh_margin, session.token_lifetime / 2)
        expires_at = session.expires_at
        self.generation += 1
        self.lease = Lease(
            session=session,
            generation=self.generation,
            authorization=f"Bearer {session.token}",
            refresh_at=expires_at - margin,
            due_at=expires_at - min(DUE_MARGIN, margin / 2),
            expires_at=expires_at,
            refresh_expires_at=session.refresh_expires_at,
        )
        self.refresh_token_spent = False
        self.backoff_until = -math.inf
        self.last_failure = None
        self.finished_attempts += 1
        return self.lease

    def spend_refresh_token(self) -> None:
        """Call as a refresh goes out: its token is never sent a second time."""
        self.refresh_token_spent = True

    def fail(self, now: float, make_error: Callable[[], TeletrackerError]) -> None:
        """Record a renewal that ended with an answer that was not a new session."""
        self.finished_attempts += 1
        self.last_failure = Failure(self.finished_attempts, make_error)
        self._back_off(now)

    def abort(self, now: float) -> None:
        """Record a renewal whose outcome is unknown (cancelled, transport error).

        Waiters learn nothing from it and try themselves; while the token is valid,
        early tries pause as after a failure, so that a network outage costs one
        request per backoff, not one per request.
        """
        self.finished_attempts += 1
        self.last_failure = None
        self._back_off(now)

    def _back_off(self, now: float) -> None:
        lease = self.lease
        if lease is not None:
            margin = lease.expires_at - lease.refresh_at
            base = min(BACKOFF, margin / 4)
            self.backoff_until = now + base * self.rng.uniform(0.8, 1.2)

    def failure_since(self, seen: int) -> Failure | None:
        """The failure of an attempt that ended after *seen* attempts had ended."""
        failure = self.last_failure
        if failure is not None and failure.attempt > seen:
            return failure
        return None

    def confirm_rejection(self, status_code: int, generation: int) -> None:
        """A fresh token got *status_code* again: stop renewing for it."""
        self.confirmed_rejections[status_code] = generation

    def rejection_confirmed(self, status_code: int, generation: int) -> bool:
        """Whether *status_code* is known to persist for tokens of *generation*."""
        return self.confirmed_rejections.get(status_code) == generation

    def suspect_generation(self, generation: int) -> None:
        """The token of *generation* was refused: the next request renews first."""
        self.suspect = generation
