"""What a bearer session goes through, as typed events: the one vocabulary that
listeners, :attr:`TeletrackerAuth.stats <teletracker_async.TeletrackerAuth.stats>`,
logs and tracing are built on.

Pass a listener as ``TeletrackerAuth(..., on_event=print)`` (or
``TeletrackerClient(..., on_event=...)``, or ``auth.add_listener(...)``): it is
called synchronously with each event, after the state change it reports, in the
event loop and thread that made it, and never under a lock that other loops or
threads wait on. A listener that raises is logged once, with its traceback, and the
session goes on. Events are built only while someone listens.

Every event is a frozen attrs class deriving from :class:`SessionEvent`: the
session's guid, its account, its generation and two timestamps. No event holds a
password, a token or a refresh token; an error travels as the SDK's own redacted
error object and its type name.

- :class:`LoggedIn`: a login brought a new session.
- :class:`Refreshed`: a refresh brought a new session, or another process's
  renewal was adopted from the token store.
- :class:`RenewalFailed`: a login or refresh failed, or ended with no answer.
- :class:`RenewalShared`: requests waited for a renewal (once, at its end).
- :class:`RefreshTokenWithheld`: a renewal logs in because the refresh token's last
  use had no known outcome: it is never sent twice.
- :class:`SessionDropped`: the session was dropped (a fork, a revocation, a refused
  token, an account switch).
- :class:`RequestRetried`: a request is tried again after a failure.
- :class:`StoreOperation`: a token store operation ended.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal, TypeAlias

import attrs

from teletracker_async._errors import TeletrackerError

__all__ = [
    "Listener",
    "LoggedIn",
    "RefreshTokenWithheld",
    "Refreshed",
    "RenewalFailed",
    "RenewalShared",
    "RequestRetried",
    "SessionDropped",
    "SessionEvent",
    "SessionStats",
    "StoreOperation",
]


#: Why a renewal logged in (see :attr:`LoggedIn.reason`).
LoginReason: TypeAlias = Literal[
    "first",
    "refresh_refused",
    "refresh_withheld",
    "refresh_expired",
    "account_switch",
    "store",
    "private",
]


#: What follows a failed renewal (see :attr:`RenewalFailed.then`).
Then: TypeAlias = Literal["retry_later", "login", "give_up"]


@attrs.frozen(slots=True, kw_only=True)
class SessionEvent:
    """What every event carries.

    Attributes:
        guid: The session's id on the server (safe to log): the session the event is
            about, or None before the first login.
        account_id: The account the session is for, when one was named.
        generation: The session's number in this process (1 for the first login,
            one more for each new session; 0 before the first).
        at: The auth's clock (monotonic by default) when it happened.
        at_utc: The wall-clock time (UTC) when it happened.
    """

    guid: str | None
    account_id: int | None
    generation: int
    at: float
    at_utc: datetime


@attrs.frozen(slots=True, kw_only=True)
class LoggedIn(SessionEvent):
    """A login brought a new session (the common fields describe it).

    Attributes:
        reason: Why it logged in: ``"first"`` (no session yet), ``"refresh_refused"``
            (the server refused the refresh: session revoked), ``"refresh_withheld"``
            (the refresh token's last use had no known outcome),
            ``"refresh_expired"``, ``"account_switch"``, ``"store"`` (the token
            store held no session to refresh) or ``"private"`` (the store could
            not be used).
        seconds: How long the renewal took, from its start to the new session.
    """

    reason: LoginReason
    seconds: float


@attrs.frozen(slots=True, kw_only=True)
class Refreshed(SessionEvent):
    """A refresh brought a new session (the common fields describe it).

    Attributes:
        by_other_process: Another process renewed and this one adopted its session
            from the token store (no request was sent).
        seconds: How long the renewal took, from its start to the new session.
    """

    by_other_process: bool
    seconds: float


@attrs.frozen(slots=True, kw_only=True)
class RenewalFailed(SessionEvent):
    """A login or refresh failed (the common fields describe the session in use).

    Attributes:
        kind: ``"login"`` or ``"refresh"``.
        error_type: The error's type name (``"ServerError"``), or ``"NoAnswer"``
            when the exchange ended without an answer (cancelled, timed out, the
            connection failed): then its outcome is unknown.
        error: The SDK's (redacted) error, None when there was no answer.
        status_code: The HTTP status of the answer, None without one.
        then: What happens next: ``"retry_later"`` (the valid token goes on, and a
            renewal is tried again at ``retry_at``), ``"login"`` (the same renewal
            logs in now) or ``"give_up"`` (no session from this renewal: its error
            goes to the request that ran it and, after an answer, to the requests
            that waited for it; without an answer, they renew again).
        retry_at: With ``"retry_later"``: when, on the auth's clock.
        seconds: How long the renewal took until it failed.
    """

    kind: Literal["login", "refresh"]
    error_type: str
    error: TeletrackerError | None
    status_code: int | None
    then: Then
    retry_at: float | None
    seconds: float


@attrs.frozen(slots=True, kw_only=True)
class RenewalShared(SessionEvent):
    """Requests waited for one renewal (sent once, at its end, whatever its outcome).

    Attributes:
        waiters: How many requests waited for it (the one renewing not counted).
        seconds: How long the renewal ran: the longest any of them waited.
    """

    waiters: int
    seconds: float


@attrs.frozen(slots=True, kw_only=True)
class RefreshTokenWithheld(SessionEvent):
    """The refresh token was not sent: its last use (a refresh cancelled, timed out,
    or answered with an error) may have spent it, and a refresh token sent twice may
    revoke the session. The renewal logs in instead."""


@attrs.frozen(slots=True, kw_only=True)
class SessionDropped(SessionEvent):
    """The session described by the common fields is no longer used.

    Attributes:
        reason: ``"fork"`` (a forked child drops its parent's session and logs in
            itself), ``"revoked"`` (the server refused its refresh),
            ``"token_refused"`` (the server refused its token on a request) or
            ``"account_switch"`` (a session for another account replaced it).
    """

    reason: Literal["fork", "revoked", "token_refused", "account_switch"]


@attrs.frozen(slots=True, kw_only=True)
class RequestRetried(SessionEvent):
    """A request is tried again (the common fields describe the session in use).

    Attributes:
        method: The request's method.
        path: The request's URL path (no query).
        attempt: The try that failed (1 for the first).
        max_attempts: Tries in all, the first included.
        reason: What failed: ``"HTTP 503"``, a transport error's type name
            (``"ConnectError"``), ``"HTTP 503 from the auth endpoint"``.
        wait: Seconds before the next try.
        on_exchange: The failure was on the login or refresh in front of the
            request (which itself was never sent).
    """

    method: str
    path: str
    attempt: int
    max_attempts: int
    reason: str
    wait: float
    on_exchange: bool


@attrs.frozen(slots=True, kw_only=True)
class StoreOperation(SessionEvent):
    """A token store operation ended.

    Attributes:
        store: The store's class name.
        op: ``"load"``, ``"acquire"``, ``"spend"``, ``"commit"`` or ``"release"``.
        outcome: ``"ok"``, ``"refused"`` (a lease held elsewhere, a record spent
            or committed by another first) or ``"error"`` (the store failed).
        seconds: How long it took, on the auth's clock.
    """

    store: str
    op: str
    outcome: Literal["ok", "refused", "error"]
    seconds: float


#: A listener: called with each event.
Listener: TypeAlias = Callable[[SessionEvent], object]


@attrs.define
class SessionStats:
    """Counters of what a session went through, since the auth was made
    (``auth.stats``, a copy): always on, for health endpoints.

    Attributes:
        logins: Logins that brought a session.
        refreshes: Refreshes that brought a session (this process's own).
        adopted: Sessions another process renewed, adopted from the token store.
        failed_logins: Logins that failed or ended with no answer.
        failed_refreshes: Refreshes that failed or ended with no answer.
        requests_waited: Requests that waited for a renewal.
        refresh_tokens_withheld: Renewals that logged in rather than send a refresh
            token whose last use had no known outcome.
        sessions_dropped: Sessions dropped (see :class:`SessionDropped`).
        retries: Requests tried again.
    """

    logins: int = 0
    refreshes: int = 0
    adopted: int = 0
    failed_logins: int = 0
    failed_refreshes: int = 0
    requests_waited: int = 0
    refresh_tokens_withheld: int = 0
    sessions_dropped: int = 0
    retries: int = 0
