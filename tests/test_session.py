"""The session state machine, driven with plain numbers (no I/O, no clock)."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

import pytest

from teletracker_async._converter import TokenAnswer
from teletracker_async._exceptions import ServerError
from teletracker_async._session import Decision, Renewal, SessionMachine

EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


def answer(lifetime: float = 3600, refresh_days: float | None = 30) -> TokenAnswer:
    return TokenAnswer(
        success=True,
        guid="g-1",
        token="tok",
        token_expiration=EPOCH + timedelta(seconds=lifetime),
        token_lifetime=lifetime,
        refresh_token="ref",
        refresh_token_expiration=(
            None if refresh_days is None else EPOCH + timedelta(days=refresh_days)
        ),
    )


def machine(margin: float = 300) -> SessionMachine:
    return SessionMachine(refresh_margin=margin, rng=random.Random(7))


def test_no_session_means_renew_by_login() -> None:
    """Before the first login every request must wait for a login."""
    m = machine()
    assert m.decide(0) is Decision.RENEW
    assert m.renewal(0) is Renewal.LOGIN
    assert m.valid(0) is None


def test_zones_of_a_token_life() -> None:
    """USE until expiry - margin, TRY_EARLY until expiry - 5 s, RENEW after."""
    m = machine()
    lease = m.install(answer(), 100.0, None)
    assert (lease.refresh_at, lease.due_at, lease.expires_at) == (3400, 3695, 3700)
    assert m.decide(3399.9) is Decision.USE
    assert m.decide(3400) is Decision.TRY_EARLY
    assert m.decide(3694.9) is Decision.TRY_EARLY
    assert m.decide(3695) is Decision.RENEW
    assert m.decide(10**6) is Decision.RENEW
    assert m.renewal(3695) is Renewal.REFRESH


def test_margin_is_capped_at_half_the_lifetime() -> None:
    """A 60 s token refreshes from 30 s on, whatever refresh_margin says."""
    m = machine(margin=300)
    lease = m.install(answer(lifetime=60), 0.0, None)
    assert lease.refresh_at == 30
    assert lease.due_at == 60 - 5
    short = m.install(answer(lifetime=2), 0.0, None)
    assert (short.refresh_at, short.due_at) == (1, 1.5)


def test_zero_margin_renews_at_expiry() -> None:
    """refresh_margin=0 means no early window at all."""
    m = machine(margin=0)
    lease = m.install(answer(), 0.0, None)
    assert lease.refresh_at == lease.due_at == lease.expires_at == 3600
    assert m.decide(3599) is Decision.USE
    assert m.decide(3600) is Decision.RENEW


def test_refresh_deadline_is_derived_from_the_server_gap() -> None:
    """refresh_expires_at = local expiry + (refreshTokenExpiration - tokenExpiration)."""
    m = machine()
    lease = m.install(answer(lifetime=3600, refresh_days=1), 50.0, 7)
    assert lease.refresh_expires_at == pytest.approx(50 + 86400)
    assert lease.session.account_id == 7
    assert m.renewal(50 + 86400 - 1) is Renewal.REFRESH
    assert m.renewal(50 + 86400) is Renewal.LOGIN


def test_unknown_refresh_deadline_keeps_refreshing() -> None:
    """Without refreshTokenExpiration the SDK refreshes and lets the server decide."""
    m = machine()
    m.install(answer(refresh_days=None), 0.0, None)
    assert m.lease is not None
    assert m.lease.refresh_expires_at is None
    assert m.renewal(10**9) is Renewal.REFRESH


def test_spent_refresh_token_is_never_offered_again() -> None:
    """Once sent, a refresh token is spent until a new pair is installed."""
    m = machine()
    m.install(answer(), 0.0, None)
    m.spend_refresh_token()
    assert m.renewal(3700) is Renewal.LOGIN
    m.abort(3700.0)
    assert m.renewal(3700) is Renewal.LOGIN
    m.install(answer(), 3700.0, None)
    assert m.renewal(7300) is Renewal.REFRESH


def test_generations_count_installs() -> None:
    """Every new token pair is a new generation."""
    m = machine()
    first = m.install(answer(), 0.0, None)
    second = m.install(answer(), 10.0, None)
    assert (first.generation, second.generation) == (1, 2)
    assert m.lease is second


def test_failure_backs_off_with_jitter_while_token_is_valid() -> None:
    """A failed renewal pauses early tries for ~30 s, but never past expiry."""
    m = machine()
    m.install(answer(), 100.0, None)  # expires at 3700, due at 3695
    m.fail(3400.0, lambda: ServerError(503, "down"))
    assert 3400 + 24 <= m.backoff_until <= 3400 + 36
    assert m.decide(3410) is Decision.USE
    assert m.decide(m.backoff_until) is Decision.TRY_EARLY
    m.fail(3690.0, lambda: ServerError(503, "down"))
    assert m.decide(3695) is Decision.USE  # past the hard deadline, still backing off
    assert m.decide(3700) is Decision.RENEW  # expired: no backoff can help


def test_backoff_shrinks_with_short_lifetimes() -> None:
    """A 2 s token retries within its own early window, not 30 s later."""
    m = machine()
    m.install(answer(lifetime=2), 0.0, None)
    m.fail(1.0, lambda: ServerError(503, "down"))
    assert m.backoff_until < 1.5


def test_failure_is_shared_only_with_those_who_waited() -> None:
    """failure_since() returns a failure only to coroutines that saw it start."""
    m = machine()
    seen = m.finished_attempts
    m.fail(0.0, lambda: ServerError(500, "x"))
    failure = m.failure_since(seen)
    assert failure is not None
    assert isinstance(failure.make_error(), ServerError)
    assert failure.make_error() is not failure.make_error()  # one per raiser
    assert m.failure_since(m.finished_attempts) is None
    m.abort(0.0)  # an abandoned attempt teaches nothing: waiters try themselves
    assert m.failure_since(seen) is None


def test_abort_backs_off_early_tries_too() -> None:
    """An early refresh lost to the network pauses early tries like a failure."""
    m = machine()
    m.install(answer(), 0.0, None)
    m.spend_refresh_token()
    m.abort(3400.0)
    assert m.decide(3401) is Decision.USE
    assert m.decide(3600) is Decision.RENEW


def test_install_clears_failure_and_backoff() -> None:
    """A new session wipes the last failure and the backoff."""
    m = machine()
    m.install(answer(), 0.0, None)
    m.fail(3400.0, lambda: ServerError(500, "x"))
    m.install(answer(), 3401.0, None)
    assert m.last_failure is None
    assert m.backoff_until == -math.inf


def test_confirmed_rejections_are_per_generation_and_status() -> None:
    """A 403 proved real for one generation says nothing of 401 or of the next."""
    m = machine()
    m.confirm_rejection(403, 2)
    assert m.rejection_confirmed(403, 2)
    assert not m.rejection_confirmed(401, 2)
    assert not m.rejection_confirmed(403, 3)


def test_suspect_generation_forces_renewal() -> None:
    """A refused token we could not retry makes the next request renew first."""
    m = machine()
    lease = m.install(answer(), 0.0, None)
    m.suspect_generation(lease.generation)
    assert m.decide(1.0) is Decision.RENEW
    m.install(answer(), 2.0, None)
    assert m.decide(3.0) is Decision.USE


def test_lease_repr_hides_tokens() -> None:
    """Neither the lease nor the session shows a token."""
    m = machine()
    lease = m.install(answer(), 0.0, None)
    for text in (repr(lease), repr(lease.session), str(lease.session)):
        assert "tok" not in text.replace("token", "")
        assert "ref" not in text.replace("refresh", "")
