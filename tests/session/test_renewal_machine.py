"""The session state machine, driven with plain numbers (no I/O, no clock, no loop)."""

from __future__ import annotations

import math
import pprint
import random
from datetime import datetime, timedelta, timezone

import pytest

from teletracker_async._config import FLEET_JITTER
from teletracker_async._converter import TokenAnswer
from teletracker_async._errors import ServerError
from teletracker_async._session.machine import (
    GIVE_BACK,
    NEED,
    Exchange,
    FleetChoice,
    Lease,
    Refused,
    Renewal,
    Seen,
    SessionMachine,
    Share,
    Start,
    Step,
    Switch,
    Use,
    Wait,
    Zone,
)

EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


def answer(
    lifetime: float = 3600, refresh_days: float | None = 30, token: str = "tok"
) -> TokenAnswer:
    return TokenAnswer(
        success=True,
        guid="g-1",
        token=token,
        token_expiration=EPOCH + timedelta(seconds=lifetime),
        token_lifetime=lifetime,
        refresh_token=f"ref-{token}",
        refresh_token_expiration=(
            None if refresh_days is None else EPOCH + timedelta(days=refresh_days)
        ),
    )


def machine(margin: float = 300, account_id: int | None = None) -> SessionMachine:
    return SessionMachine(
        refresh_margin=margin, account_id=account_id, rng=random.Random(7)
    )


def started(step: Step) -> Exchange:
    assert isinstance(step, Start), step
    return step.exchange


def used(step: Step) -> Lease:
    assert isinstance(step, Use), step
    return step.lease


def logged_in(
    m: SessionMachine,
    now: float,
    lifetime: float = 3600,
    refresh_days: float | None = 30,
    token: str = "tok",
) -> Lease:
    exchange = started(m.plan(now, NEED))
    return m.settle(exchange, answer(lifetime, refresh_days, token), now)


def test_no_session_means_one_login_and_everyone_else_waits() -> None:
    """Before the first login the first caller starts a login; the rest wait for it."""
    m = machine(account_id=4)
    exchange = started(m.plan(0, NEED))
    assert (exchange.kind, exchange.account_id, exchange.forced) == (
        Renewal.LOGIN,
        4,
        False,  # no token to fall back on anyway
    )
    assert m.plan(0, NEED) == Wait(exchange.number)
    assert m.plan(0, Switch(5)) == Wait(exchange.number)
    lease = m.settle(exchange, answer(), 0)
    assert m.plan(1, NEED, waited=exchange.number) == Use(lease)
    assert m.flight is None


def test_zones_of_a_token_life() -> None:
    """USE until expiry - margin, TRY_EARLY until expiry - 5 s, RENEW after."""
    m = machine()
    lease = logged_in(m, 100.0)
    assert (lease.refresh_at, lease.due_at, lease.expires_at) == (3400, 3695, 3700)
    assert lease.fast_until == lease.refresh_at
    assert m.zone(3399.9) is Zone.USE
    assert m.zone(3400) is Zone.TRY_EARLY
    assert m.zone(3694.9) is Zone.TRY_EARLY
    assert m.zone(3695) is Zone.RENEW
    assert m.zone(10**6) is Zone.RENEW


def test_early_window_starts_one_refresh_and_others_use_the_token() -> None:
    """In the early window one caller refreshes and every other caller goes on."""
    m = machine()
    lease = logged_in(m, 0)
    exchange = started(m.plan(3500, NEED))
    assert (exchange.kind, exchange.forced, exchange.refresh_token) == (
        Renewal.REFRESH,
        False,
        "ref-tok",
    )
    assert m.refresh_token_spent
    assert used(m.plan(3500, NEED)) is lease
    assert m.plan(3696, NEED) == Wait(exchange.number)  # hard deadline: wait


def test_margin_is_capped_at_half_the_lifetime() -> None:
    """A 60 s token refreshes from 30 s on, whatever refresh_margin says."""
    m = machine(margin=300)
    lease = logged_in(m, 0.0, lifetime=60)
    assert lease.refresh_at == 30
    assert lease.due_at == 55  # min(5, 30 / 2) = 5 s before expiry
    assert m.zone(29.9) is Zone.USE


def test_zero_margin_renews_at_expiry() -> None:
    """refresh_margin=0: no early window, renew at expiry."""
    m = machine(margin=0)
    lease = logged_in(m, 0.0)
    assert lease.refresh_at == lease.due_at == lease.expires_at == 3600
    assert m.zone(3599.9) is Zone.USE
    assert m.zone(3600) is Zone.RENEW


def test_refresh_deadline_is_derived_from_the_server_gap() -> None:
    """refresh_expires_at = expires_at + (refreshTokenExpiration - tokenExpiration)."""
    m = machine()
    lease = logged_in(m, 50.0)
    assert lease.refresh_expires_at == 50 + 30 * 86400
    assert started(m.plan(3600, NEED)).kind is Renewal.REFRESH
    m = machine()
    logged_in(m, 50.0)
    assert started(m.plan(50 + 30 * 86400, NEED)).kind is Renewal.LOGIN


def test_unknown_refresh_deadline_keeps_refreshing() -> None:
    """Without refreshTokenExpiration the refresh token is assumed alive."""
    m = machine()
    lease = logged_in(m, 0.0, refresh_days=None)
    assert lease.refresh_expires_at is None
    assert started(m.plan(10**9, NEED)).kind is Renewal.REFRESH


def test_spent_refresh_token_is_never_handed_out_again() -> None:
    """Once a refresh went out with an unknown outcome, the next renewal logs in."""
    m = machine()
    logged_in(m, 0.0)
    first = started(m.plan(3600, NEED))
    assert first.kind is Renewal.REFRESH
    m.abort(first, 3600)
    second = started(m.plan(3600, NEED))
    assert (second.kind, second.refresh_token) == (Renewal.LOGIN, None)


def test_refused_refresh_turns_into_a_login_in_the_same_flight() -> None:
    """A refused refresh (session revoked) logs in without a second flight."""
    m = machine()
    logged_in(m, 0.0)
    exchange = started(m.plan(3600, NEED))
    m.relogin(exchange)
    assert (exchange.kind, exchange.refresh_token) == (Renewal.LOGIN, None)
    assert m.plan(3600, NEED) == Wait(exchange.number)


def test_generations_count_installs() -> None:
    """Each new session is a new generation."""
    m = machine()
    assert logged_in(m, 0).generation == 1
    assert logged_in(m, 5000).generation == 2
    assert m.generation == 2


def test_failure_backs_off_with_jitter_and_opens_the_fast_path() -> None:
    """A failed early refresh keeps the token, with a jittered backoff that the fast
    path's deadline includes."""
    m = machine()
    logged_in(m, 0.0)
    exchange = started(m.plan(3400, NEED))
    lease = m.fail(exchange, 3400, ServerError(503, "down"))
    assert lease is not None
    assert 3400 + 30 * 0.8 <= m.backoff_until <= 3400 + 30 * 1.2
    assert lease.fast_until == m.backoff_until
    assert m.zone(m.backoff_until - 0.1) is Zone.USE
    assert m.zone(m.backoff_until) is Zone.TRY_EARLY


def test_backoff_never_outlives_the_token() -> None:
    """Past expiry no backoff keeps the old token, and the fast path knows it."""
    m = machine(margin=300)
    logged_in(m, 0.0, lifetime=60)  # margin 30, backoff base 7.5
    exchange = started(m.plan(54.9, NEED))  # early window; backoff >= 6 s
    lease = m.fail(exchange, 54.9, ServerError(503, "down"))
    assert lease is not None
    assert lease.fast_until == lease.expires_at == 60
    assert m.zone(60) is Zone.RENEW


def test_backoff_shrinks_with_short_lifetimes() -> None:
    """The backoff is at most a quarter of the early window."""
    m = machine(margin=300)
    logged_in(m, 0.0, lifetime=60)
    exchange = started(m.plan(30, NEED))
    m.fail(exchange, 30, ServerError(503, "down"))
    assert m.backoff_until <= 30 + 7.5 * 1.2


def test_forced_failure_is_raised_and_shared_only_with_its_waiters() -> None:
    """One attempt, one outcome: those who waited for a failed flight share its
    error; a caller who did not wait for it starts a new attempt."""
    m = machine()
    exchange = started(m.plan(0, NEED))
    error = ServerError(500, "boom")
    assert m.fail(exchange, 0, error) is None  # no valid token: raise
    step = m.plan(0, NEED, waited=exchange.number)
    assert isinstance(step, Share)
    copy = step.failure.raise_copy()
    assert copy is not error
    assert (type(copy), str(copy)) == (ServerError, str(error))
    assert started(m.plan(0, NEED)).number == exchange.number + 1


def test_abort_backs_off_early_tries_and_shares_nothing() -> None:
    """An unknown outcome pauses early tries while the token is valid; waiters plan
    again instead of sharing an error."""
    m = machine()
    lease = logged_in(m, 0.0)
    exchange = started(m.plan(3400, NEED))
    m.abort(exchange, 3400)
    assert m.backoff_until > 3400
    assert used(m.plan(3401, NEED, waited=exchange.number)) == m.lease
    assert m.lease is not None
    assert m.lease.generation == lease.generation


def test_abort_after_settle_changes_nothing() -> None:
    """The exchange's ``finally`` aborts unconditionally: after a settle, a no-op."""
    m = machine()
    exchange = started(m.plan(0, NEED))
    m.settle(exchange, answer(), 0)
    m.abort(exchange, 0)
    assert m.backoff_until == -math.inf
    assert m.flight is None


def test_install_clears_failure_backoff_and_suspicion() -> None:
    """A new session starts clean."""
    m = machine()
    logged_in(m, 0.0)
    exchange = started(m.plan(3400, NEED))
    m.fail(exchange, 3400, ServerError(503, "down"))
    m.suspect_generation(1)
    lease = logged_in(m, 5000)
    assert m.backoff_until == -math.inf
    assert m.last_failure is None
    assert m.suspect is None
    assert lease.fast_until == lease.refresh_at


def test_refusal_of_the_current_token_forces_one_shared_renewal() -> None:
    """A refused current token starts one forced renewal; other refusals of the
    same generation wait for it, then use the new token."""
    m = machine()
    lease = logged_in(m, 0.0)
    refused = Refused(lease.generation, None)
    exchange = started(m.plan(10, refused))
    assert exchange.forced
    assert m.plan(10, refused) == Wait(exchange.number)
    new = m.settle(exchange, answer(token="t2"), 11)
    assert used(m.plan(11, refused, waited=exchange.number)) is new


def test_refusals_renew_at_most_once_per_generation() -> None:
    """A refusal of an old generation retries with the newer token; a refusal of the
    newer token renews once more: never a storm, never stuck."""
    m = machine()
    first = logged_in(m, 0.0)
    renewal = started(m.plan(10, Refused(first.generation, None)))
    second = m.settle(renewal, answer(token="t2"), 10)
    assert used(m.plan(11, Refused(first.generation, None))) is second
    assert isinstance(m.plan(11, Refused(second.generation, None)), Start)


def test_refusal_is_never_retried_with_another_accounts_token() -> None:
    """After a switch, a refusal of the old account's token is given back."""
    m = machine(account_id=1)
    old = logged_in(m, 0.0)
    switch = started(m.plan(1, Switch(2)))
    assert (switch.kind, switch.account_id, switch.switch) == (Renewal.LOGIN, 2, True)
    m.settle(switch, answer(token="b"), 1)
    assert m.account_id == 2
    assert m.plan(2, Refused(old.generation, 1)) is GIVE_BACK


def test_refused_switch_is_the_switchers_alone() -> None:
    """A failed switch records no shared failure and no backoff: waiters renew for
    their own account."""
    m = machine(account_id=1)
    logged_in(m, 0.0)
    switch = started(m.plan(3600, Switch(7)))
    assert m.plan(3600, NEED) == Wait(switch.number)
    assert m.fail(switch, 3600, ServerError(403, "no")) is None
    assert m.last_failure is None
    assert m.backoff_until == -math.inf
    own = started(m.plan(3600, NEED, waited=switch.number))
    assert (own.kind, own.account_id) == (Renewal.REFRESH, 1)


def test_suspect_generation_closes_the_fast_path() -> None:
    """A refused, unreplayable request makes the next request renew first."""
    m = machine()
    lease = logged_in(m, 0.0)
    m.suspect_generation(lease.generation)
    assert m.lease is not None
    assert m.lease.fast_until == -math.inf
    assert m.zone(1) is Zone.RENEW
    assert isinstance(m.plan(1, NEED), Start)
    m.suspect_generation(99)  # an old generation: ignored
    assert m.suspect == lease.generation


def test_forget_drops_the_session_for_a_forked_child() -> None:
    """After a fork the child owns no session and no flight: it logs in."""
    m = machine(account_id=3)
    logged_in(m, 0.0)
    started(m.plan(3600, NEED))
    m.forget()
    exchange = started(m.plan(3600, NEED))
    assert (exchange.kind, exchange.account_id) == (Renewal.LOGIN, 3)


def test_reprs_hide_every_secret() -> None:
    """Lease, Exchange, Failure and the machine show no token in repr or pprint."""
    m = machine()
    logged_in(m, 0.0, token="tok-secret")
    exchange = started(m.plan(3600, NEED))
    assert exchange.refresh_token == "ref-tok-secret"
    m.fail(exchange, 3600, ServerError(500, "x"))
    texts = [repr(m), pprint.pformat(m), repr(exchange), repr(m.last_failure)]
    texts.append(pprint.pformat(m.lease))
    for text in texts:
        assert "tok-secret" not in text
    with pytest.raises(TypeError):
        vars(m)  # slotted: nothing to dump


# -- a session shared through a token store --------------------------------------------


def fleet_machine(margin: float = 300) -> SessionMachine:
    return SessionMachine(refresh_margin=margin, rng=random.Random(7), fleet=True)


def seen(
    write_id: str = "w2",
    *,
    expires_at: float = 3600,
    spent: bool = False,
    trusted: bool = True,
    account_id: int | None = None,
    refresh_days: float | None = 30,
) -> Seen:
    return Seen(
        write_id=write_id,
        answer=answer(refresh_days=refresh_days, token=write_id),
        account_id=account_id,
        spent=spent,
        trusted=trusted,
        expires_at=expires_at,
    )


def test_fleet_exchanges_log_in_until_the_store_says_otherwise() -> None:
    """With a store, the machine never hands out its own copy of a shared refresh
    token: the exchange is a login until fleet_choice or refresh_with change it."""
    m = fleet_machine()
    first = started(m.plan(0, NEED))
    lease = m.settle(first, answer(), 0, write_id="w1")
    assert lease.write_id == "w1"
    exchange = started(m.plan(3599, NEED))
    assert exchange.kind is Renewal.LOGIN
    assert exchange.refresh_token is None
    assert not m.refresh_token_spent


def test_fleet_refresh_deadlines_are_jittered_within_the_margin() -> None:
    """Each settle moves refresh_at later by up to FLEET_JITTER of the margin."""
    deadlines = set()
    for seed in range(20):
        m = SessionMachine(refresh_margin=300, rng=random.Random(seed), fleet=True)
        lease = m.settle(started(m.plan(0, NEED)), answer(), 0)
        assert 3300 <= lease.refresh_at <= 3300 + 300 * FLEET_JITTER
        deadlines.add(lease.refresh_at)
    assert len(deadlines) == 20


def test_adoptable_records() -> None:
    """Adopt only a trusted record of this account that is not the session in use
    and is young enough (forced: valid before its own hard deadline)."""
    m = fleet_machine()
    m.settle(started(m.plan(0, NEED)), answer(), 0, write_id="w1")
    now = 3400.0
    assert m.adoptable(seen(expires_at=7000), now, forced=False)
    assert not m.adoptable(None, now, forced=False)
    assert not m.adoptable(seen("w1", expires_at=7000), now, forced=False)  # ours
    assert not m.adoptable(seen(expires_at=7000, trusted=False), now, forced=False)
    assert not m.adoptable(seen(expires_at=7000, account_id=2), now, forced=False)
    # In its own early window: renew it rather than adopt it...
    assert not m.adoptable(seen(expires_at=now + 100), now, forced=False)
    # ...unless our token was refused: any valid different token beats none.
    assert m.adoptable(seen(expires_at=now + 100), now, forced=True)
    assert not m.adoptable(seen(expires_at=now + 4), now, forced=True)


def test_fleet_choice_spends_a_live_record_or_logs_in() -> None:
    """The lease holder spends a trusted, unspent, live record; a spent, untrusted,
    dead or foreign one means a login (with a published session in use, whose
    refresh token is the store's)."""
    m = fleet_machine()
    m.settle(started(m.plan(0, NEED)), answer(), 0, write_id="w1")
    now = 3599.0
    for record, choice in [
        (seen("w1", expires_at=3600), FleetChoice.SPEND),
        (seen("w1", expires_at=3600, spent=True), FleetChoice.LOGIN),
        (seen("w1", expires_at=3600, trusted=False), FleetChoice.LOGIN),
        (seen("w1", expires_at=3600, account_id=2), FleetChoice.LOGIN),
        (seen("w1", expires_at=-30 * 86400), FleetChoice.LOGIN),  # refresh expired
        (seen("w1", expires_at=3600, refresh_days=None), FleetChoice.SPEND),
        (None, FleetChoice.LOGIN),
    ]:
        exchange = started(m.plan(now, NEED))
        assert m.fleet_choice(exchange, record, now) is choice, record
        assert exchange.kind is Renewal.LOGIN  # SPEND changes it only once won
        m.abort(exchange, now)
        m.backoff_until = -math.inf


def test_fleet_choice_refreshes_a_private_session_once() -> None:
    """A session this process renewed privately (unpublished) is refreshed with its
    own refresh token, handed out once."""
    m = fleet_machine()
    m.settle(started(m.plan(0, NEED)), answer(token="private"), 0)  # no write id
    exchange = started(m.plan(3599, NEED))
    assert m.fleet_choice(exchange, None, 3599) is FleetChoice.PRIVATE_REFRESH
    assert exchange.kind is Renewal.REFRESH
    assert exchange.refresh_token == "ref-private"
    m.abort(exchange, 3599)
    m.backoff_until = -math.inf
    again = started(m.plan(3599, NEED))
    assert m.fleet_choice(again, None, 3599) is FleetChoice.LOGIN  # spent


def test_switch_always_logs_in() -> None:
    """An account switch is a login whatever the store holds."""
    m = fleet_machine()
    m.settle(started(m.plan(0, NEED)), answer(), 0, write_id="w1")
    exchange = started(m.plan(10, Switch(2)))
    assert m.fleet_choice(exchange, seen("w1"), 10) is FleetChoice.LOGIN


def test_defer_keeps_the_token_until_its_hard_deadline_only() -> None:
    """Deferring to another process's renewal ends the flight and keeps the valid
    token for a while (never past its hard deadline); past it, the flight stays."""
    m = fleet_machine()
    lease = m.settle(started(m.plan(0, NEED)), answer(), 0, write_id="w1")
    exchange = started(m.plan(lease.refresh_at, NEED))
    kept = m.defer(exchange, lease.refresh_at, 1.0)
    assert kept is not None
    assert flight_of(m) is None
    assert kept.fast_until == pytest.approx(lease.refresh_at + 1.0)
    assert isinstance(m.plan(lease.refresh_at + 0.5, NEED), Use)
    late = started(m.plan(lease.due_at, NEED))
    assert m.defer(late, lease.due_at, 1.0) is None
    assert flight_of(m) is late
    assert not m.usable(lease.due_at)


def flight_of(m: SessionMachine) -> Exchange | None:
    return m.flight


def test_a_switch_adopts_a_record_of_the_account_it_switches_to() -> None:
    """During an account switch, the record to adopt is the new account's."""
    m = fleet_machine()
    m.settle(started(m.plan(0, NEED)), answer(), 0, write_id="w1")
    started(m.plan(10, Switch(2)))
    assert m.adoptable(seen("w9", expires_at=3000, account_id=2), 10, forced=True)
    assert not m.adoptable(seen("w9", expires_at=3000), 10, forced=True)


def test_replan_after_waiting_gives_what_plan_gives() -> None:
    """A waiter's next step after its flight (SessionCore.replan, which skips the
    lock when the new token serves) is the machine's own answer in every case."""
    from teletracker_async._session.core import SessionCore  # noqa: PLC0415

    now = [100.0]
    core = SessionCore(machine(), lambda: now[0])
    m = core.machine
    first = started(core.plan(NEED))
    assert core.replan(NEED, first.number) == Wait(first.number)  # still in flight
    lease = core.settle(first, answer())
    # The renewal brought a token: use it (the lock-free path).
    assert core.replan(NEED, first.number) == Use(lease)
    assert m.plan(now[0], NEED, first.number) == Use(lease)
    # A refused request's waiter goes through plan: a newer token to retry with.
    assert core.replan(Refused(lease.generation - 1, None), first.number) == Use(lease)
    # In the early window the fast path does not serve: plan decides (one refresh).
    now[0] = lease.refresh_at + 1
    early = started(core.replan(NEED, first.number))
    assert core.replan(NEED, first.number) == Use(lease)  # others go on meanwhile
    core.abort(early)
    # Past expiry everyone waits, and a failed renewal is shared with its waiters.
    now[0] = lease.expires_at + 1
    second = started(core.replan(NEED, first.number))
    assert core.replan(NEED, first.number) == Wait(second.number)
    error = ServerError(503, "down")
    assert core.fail(second, error) is None
    shared = core.replan(NEED, second.number)
    assert isinstance(shared, Share)
    assert shared.failure.error is error
    # ... but not with a caller that waited for an older flight: it starts anew.
    assert started(core.replan(NEED, first.number)).number == second.number + 1
