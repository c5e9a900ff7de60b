"""The retry policy: whether a failed try is tried again, and after how long.

:func:`decide` is pure: it gets plain values (what the try came to, how many tries
were made, the clock's reading and the call's deadline, a random number source) and
returns :class:`TryAgain` or :class:`GiveUp`. It reads no clock, sleeps never and
knows no HTTP stack; the tries loop (``send.py``) describes each failure with an
:data:`Outcome` and obeys. ``tests/call/test_retry_policy.py`` specifies it with
plain numbers.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Final

import attrs

from teletracker_async._config import (
    BACKOFF_BASE,
    DEFAULT_JITTER,
    DEFAULT_MAX_ATTEMPTS,
    MAX_BACKOFF,
    MAX_RETRY_AFTER,
    RETRY_STATUSES,
)

__all__ = [
    "AuthFailed",
    "Failure",
    "GiveUp",
    "NoAnswer",
    "Outcome",
    "Refused",
    "Retry",
    "TryAgain",
    "decide",
]


def _whole(name: str, low: int) -> Callable[[object, object, object], None]:
    def check(_instance: object, _attribute: object, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")

    return check


def _seconds(name: str) -> Callable[[object, object, object], None]:
    def check(_instance: object, _attribute: object, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(
                f"{name} must be a number of seconds, not {type(value).__name__}"
            )
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")

    return check


def _check_jitter(_instance: object, _attribute: object, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"jitter must be a number from 0.0 (none) to 1.0 (full jitter), "
            f"not {type(value).__name__}"
        )
    if not 0 <= value <= 1:
        raise ValueError(f"jitter must be between 0.0 and 1.0, got {value}")


def _check_statuses(_instance: object, _attribute: object, value: object) -> None:
    if not isinstance(value, frozenset):
        raise TypeError(
            f"statuses must be a frozenset of HTTP statuses, not {type(value).__name__}"
        )
    for status in value:
        if isinstance(status, bool) or not isinstance(status, int):
            raise TypeError(f"statuses must hold ints, not {status!r}")
        if not 400 <= status <= 599:
            raise ValueError(f"statuses must be error statuses (4xx, 5xx): {status}")


def _frozen(value: object) -> object:
    # Any iterable of statuses is read as a frozenset; the validator checks the rest.
    if isinstance(value, (set, list, tuple)):
        return frozenset(value)
    return value


@attrs.frozen
class Retry:
    """How a call is tried again after a failure: ``TeletrackerClient(retry=...)``.

    A try is repeated when it got no answer (a connection that failed, a timeout)
    or one of ``statuses``, within the call's ``total_timeout``. A request that may
    have been processed (it was sent, or refused with a status) is repeated only if
    it is idempotent (GET, HEAD, OPTIONS, PUT, DELETE, or ``idempotent=True``); a
    request whose login or refresh failed in front of it was never sent, so any
    method is. Before try *n* + 1 the call waits the server's ``Retry-After`` when
    it gave one (more than ``max_retry_after`` seconds: the error is raised at
    once), else ``min(max_backoff, backoff * 2 ** (n - 1))`` seconds, of which the
    share ``jitter`` is drawn at random. A wait that would end past the deadline
    gives up at once with the real error.

    Attributes:
        max_attempts: Tries in all, the first included (>= 1; 1 turns retries off).
        backoff: Seconds of the first backoff, doubled for each later one (>= 0).
        max_backoff: The longest backoff, in seconds (>= 0).
        jitter: The share of each backoff drawn at random, from 0.0 (exactly the
            backoff) to 1.0 (uniform between 0 and the backoff: "full jitter").
        statuses: The HTTP statuses retried (any iterable of 4xx/5xx ints).
        max_retry_after: The longest ``Retry-After`` slept through, in seconds.

    Raises:
        TypeError, ValueError: A field of the wrong type or out of range, named.
    """

    max_attempts: int = attrs.field(
        default=DEFAULT_MAX_ATTEMPTS, validator=_whole("max_attempts", 1)
    )
    backoff: float = attrs.field(default=BACKOFF_BASE, validator=_seconds("backoff"))
    max_backoff: float = attrs.field(
        default=MAX_BACKOFF, validator=_seconds("max_backoff")
    )
    jitter: float = attrs.field(default=DEFAULT_JITTER, validator=_check_jitter)
    statuses: frozenset[int] = attrs.field(
        default=RETRY_STATUSES, converter=_frozen, validator=_check_statuses
    )
    max_retry_after: float = attrs.field(
        default=MAX_RETRY_AFTER, validator=_seconds("max_retry_after")
    )

    @property
    def max_retries(self) -> int:
        """Tries after the first (``max_attempts - 1``)."""
        return self.max_attempts - 1

    @classmethod
    def of_max_retries(cls, max_retries: int) -> Retry:
        """The default policy with *max_retries* retries after the first try.

        Raises:
            TypeError, ValueError: *max_retries* is not an int >= 0.
        """
        if isinstance(max_retries, bool) or not isinstance(max_retries, int):
            raise TypeError("max_retries must be an int")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        return cls(max_attempts=max_retries + 1)


#: The default policy.
DEFAULT_RETRY: Final = Retry()


class Failure(enum.Enum):
    """How far a request went before its transport failed."""

    #: The request never left (no connection, no free connection in the pool).
    NOT_SENT = "not sent"
    #: It may have arrived and been processed: repeat only an idempotent request.
    SENT = "sent"
    #: The login or refresh in front of it failed: the request itself never left.
    IN_FRONT = "exchange in front failed"
    #: A failure no retry mends (a proxy refusing, a protocol the stack lacks).
    FINAL = "final"


@attrs.frozen
class NoAnswer:
    """A try that got no answer."""

    failure: Failure


@attrs.frozen
class Refused:
    """A try answered with an error *status*; *retry_after* seconds, if said."""

    status: int
    retry_after: float | None = None


@attrs.frozen
class AuthFailed:
    """The login or refresh in front of the request was refused with *status*
    (a 5xx or 429 of the auth endpoint): the request itself was never sent."""

    status: int
    retry_after: float | None = None


Outcome = NoAnswer | Refused | AuthFailed


@attrs.frozen
class TryAgain:
    """Try again after *wait* seconds."""

    wait: float


@attrs.frozen
class GiveUp:
    """Do not try again; *reason* says why (for logs and tests)."""

    reason: str


def decide(
    policy: Retry,
    tries: int,
    outcome: Outcome,
    *,
    idempotent: bool,
    now: float,
    deadline: float,
    random: Callable[[], float],
) -> TryAgain | GiveUp:
    """Whether to try once more after *outcome*, the end of try number *tries*.

    Args:
        policy: The retry settings.
        tries: Tries made so far, the one that failed included (>= 1).
        outcome: What that try came to.
        idempotent: Whether the request may be processed twice without harm.
        now: The clock's reading (the same clock as *deadline*).
        deadline: When the call must be over (``math.inf`` for never).
        random: Returns a float in [0, 1) for the jitter (``random.Random().random``).

    Returns:
        :class:`TryAgain` with the seconds to wait, or :class:`GiveUp`.
    """
    refusal = _refusal(policy, outcome, idempotent)
    if refusal is not None:
        return GiveUp(refusal)
    if tries >= policy.max_attempts:
        return GiveUp(f"{tries} of {policy.max_attempts} tries made")
    retry_after = None if isinstance(outcome, NoAnswer) else outcome.retry_after
    if retry_after is None:
        top = min(policy.max_backoff, policy.backoff * 2 ** (tries - 1))
        wait = top * (1.0 - policy.jitter + policy.jitter * random())
    elif retry_after > policy.max_retry_after:
        return GiveUp(
            f"Retry-After {retry_after:g} s is over {policy.max_retry_after:g} s"
        )
    else:
        wait = retry_after
    if now + wait >= deadline:
        return GiveUp("the wait would end past the call's deadline")
    return TryAgain(wait)


def _refusal(policy: Retry, outcome: Outcome, idempotent: bool) -> str | None:
    """Why *outcome* is never retried, or None when it may be."""
    if isinstance(outcome, NoAnswer):
        if outcome.failure is Failure.FINAL:
            return "a transport failure no retry mends"
        if outcome.failure is Failure.SENT and not idempotent:
            return "a request that may have been processed is not idempotent"
        return None
    if outcome.status not in policy.statuses:
        return f"HTTP {outcome.status} is not retried"
    if isinstance(outcome, Refused) and not idempotent:
        return "a refused request that is not idempotent"
    return None
