"""The pure retry policy: every retry decision, from plain values."""

from __future__ import annotations

import math
from typing import Any

import pytest

from teletracker_async import Retry
from teletracker_async._call.retry import (
    AuthFailed,
    Failure,
    GiveUp,
    NoAnswer,
    Outcome,
    Refused,
    TryAgain,
    decide,
)

#: No jitter: the backoff is exact, so the figures below are too.
EXACT = Retry(jitter=0.0)


def _decide(
    outcome: Outcome,
    *,
    tries: int = 1,
    idempotent: bool = True,
    policy: Retry = EXACT,
    now: float = 100.0,
    deadline: float = math.inf,
    random: float = 0.5,
) -> TryAgain | GiveUp:
    return decide(
        policy,
        tries,
        outcome,
        idempotent=idempotent,
        now=now,
        deadline=deadline,
        random=lambda: random,
    )


@pytest.mark.parametrize(
    ("outcome", "idempotent", "retried"),
    [
        (NoAnswer(Failure.NOT_SENT), False, True),
        (NoAnswer(Failure.NOT_SENT), True, True),
        (NoAnswer(Failure.IN_FRONT), False, True),
        (NoAnswer(Failure.SENT), True, True),
        (NoAnswer(Failure.SENT), False, False),
        (NoAnswer(Failure.FINAL), True, False),
        (AuthFailed(503), False, True),
        (AuthFailed(429), False, True),
        (AuthFailed(500), True, False),
        (Refused(429), True, True),
        (Refused(502), True, True),
        (Refused(503), True, True),
        (Refused(504), True, True),
        (Refused(503), False, False),
        (Refused(500), True, False),
        (Refused(404), True, False),
    ],
)
def test_what_is_retried(outcome: Outcome, idempotent: bool, retried: bool) -> None:
    """A request is retried when it never left, when its login/refresh failed with
    5xx/429, or when it is idempotent and got no answer or a retryable status."""
    verdict = _decide(outcome, idempotent=idempotent)
    assert isinstance(verdict, TryAgain) is retried


@pytest.mark.parametrize(
    ("tries", "wait"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 8.0), (20, 8.0)],
)
def test_backoff_doubles_up_to_its_cap(tries: int, wait: float) -> None:
    """Without jitter the wait before try n + 1 is backoff * 2**(n - 1), capped."""
    verdict = _decide(
        NoAnswer(Failure.NOT_SENT),
        tries=tries,
        policy=Retry(max_attempts=100, jitter=0.0),
    )
    assert verdict == TryAgain(wait)


@pytest.mark.parametrize(
    ("jitter", "random", "wait"),
    [
        (1.0, 0.0, 0.0),
        (1.0, 0.5, 1.0),
        (1.0, 0.999, 1.998),
        (0.5, 0.0, 1.0),
        (0.5, 0.5, 1.5),
        (0.0, 0.123, 2.0),
    ],
)
def test_jitter_draws_its_share_of_the_backoff(
    jitter: float, random: float, wait: float
) -> None:
    """jitter=1 is full jitter (0 to the backoff); a fraction keeps the rest fixed."""
    policy = Retry(backoff=1.0, jitter=jitter)
    verdict = _decide(Refused(503), tries=2, policy=policy, random=random)
    assert isinstance(verdict, TryAgain)
    assert verdict.wait == pytest.approx(wait)


@pytest.mark.parametrize("outcome", [Refused(429, 7.0), AuthFailed(503, 7.0)])
def test_retry_after_is_waited_exactly(outcome: Outcome) -> None:
    """The server's Retry-After replaces the backoff, without jitter."""
    assert _decide(outcome, policy=Retry(), random=0.0) == TryAgain(7.0)


@pytest.mark.parametrize(
    ("retry_after", "retried"), [(60.0, True), (60.5, False), (0.0, True)]
)
def test_a_retry_after_over_the_cap_gives_up(retry_after: float, retried: bool) -> None:
    """A Retry-After longer than max_retry_after is not slept through."""
    verdict = _decide(Refused(429, retry_after))
    assert isinstance(verdict, TryAgain) is retried


@pytest.mark.parametrize(
    ("max_attempts", "tries", "retried"),
    [(1, 1, False), (2, 1, True), (2, 2, False), (3, 2, True), (3, 3, False)],
)
def test_max_attempts_counts_the_first_try(
    max_attempts: int, tries: int, retried: bool
) -> None:
    """max_attempts is the number of tries in all: 1 means no retry."""
    policy = Retry(max_attempts=max_attempts, jitter=0.0)
    verdict = _decide(NoAnswer(Failure.NOT_SENT), tries=tries, policy=policy)
    assert isinstance(verdict, TryAgain) is retried


@pytest.mark.parametrize(
    ("now", "deadline", "retried"),
    [(100.0, 100.6, True), (100.0, 100.5, False), (100.0, 100.4, False)],
)
def test_a_wait_that_would_cross_the_deadline_gives_up(
    now: float, deadline: float, retried: bool
) -> None:
    """The call's total deadline: a wait ending at or past it gives up now."""
    verdict = _decide(Refused(503), now=now, deadline=deadline)
    assert isinstance(verdict, TryAgain) is retried


def test_a_retry_after_past_the_deadline_gives_up() -> None:
    """Retry-After counts against the deadline like a backoff."""
    assert isinstance(_decide(Refused(429, 5.0), deadline=104.0), GiveUp)
    assert _decide(Refused(429, 5.0), deadline=106.0) == TryAgain(5.0)


def test_statuses_are_the_policys() -> None:
    """Only the policy's statuses are retried, for answers and auth failures."""
    policy = Retry(statuses=frozenset({500}), jitter=0.0)
    assert isinstance(_decide(Refused(500), policy=policy), TryAgain)
    assert isinstance(_decide(AuthFailed(500), policy=policy), TryAgain)
    assert isinstance(_decide(Refused(503), policy=policy), GiveUp)


def test_give_up_says_why() -> None:
    """Each GiveUp names its reason (for logs)."""
    assert "not idempotent" in _decide(Refused(503), idempotent=False).reason  # type: ignore[union-attr]
    assert "3 of 3" in _decide(Refused(503), tries=3).reason  # type: ignore[union-attr]
    assert "deadline" in _decide(Refused(503), deadline=100.1).reason  # type: ignore[union-attr]


def test_no_random_draw_when_not_needed() -> None:
    """The random source is read only for a backoff, never for a refusal or a
    Retry-After (so that the jitter's sequence does not depend on them)."""
    draws: list[int] = []

    def random() -> float:
        draws.append(1)
        return 0.5

    for outcome in (Refused(503, 1.0), Refused(404), NoAnswer(Failure.FINAL)):
        decide(
            Retry(),
            1,
            outcome,
            idempotent=True,
            now=0,
            deadline=math.inf,
            random=random,
        )
    assert draws == []


def test_max_retries_builds_the_same_policy() -> None:
    """Retry.of_max_retries(n) is Retry(max_attempts=n + 1)."""
    assert Retry.of_max_retries(0) == Retry(max_attempts=1)
    assert Retry.of_max_retries(2) == Retry()
    assert Retry().max_retries == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_attempts": 0}, ValueError, "max_attempts must be >= 1"),
        ({"max_attempts": 2.0}, TypeError, "max_attempts must be an int"),
        ({"max_attempts": True}, TypeError, "max_attempts must be an int"),
        ({"backoff": -1}, ValueError, "backoff must be a finite number >= 0"),
        ({"backoff": math.inf}, ValueError, "backoff"),
        ({"backoff": "1"}, TypeError, "backoff must be a number of seconds"),
        ({"max_backoff": math.nan}, ValueError, "max_backoff"),
        ({"jitter": 1.5}, ValueError, "jitter must be between 0.0 and 1.0"),
        ({"jitter": True}, TypeError, "jitter must be a number"),
        ({"statuses": 503}, TypeError, "statuses must be a frozenset"),
        ({"statuses": {"503"}}, TypeError, "statuses must hold ints"),
        ({"statuses": {200}}, ValueError, "error statuses"),
        ({"max_retry_after": -5}, ValueError, "max_retry_after"),
    ],
)
def test_bad_fields_get_clear_errors(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Every field is checked, and the message names it."""
    with pytest.raises(error, match=match):
        Retry(**kwargs)


def test_statuses_accept_any_collection() -> None:
    """A set, list or tuple of statuses becomes a frozenset."""
    assert Retry(statuses=[503, 429]).statuses == frozenset({429, 503})
