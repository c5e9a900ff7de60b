"""Frozen value objects the SDK hands to its users."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

__all__ = ["AuthSession"]


@attrs.frozen(repr=False)
class AuthSession:
    """One bearer session, as the last login or refresh answer described it.

    The two tokens are attributes because code that drives other tools (``curl``, a
    websocket) needs them, but they never appear in ``repr`` or ``str``.

    Two clocks describe its expiry. The SDK decides on the auth's clock (monotonic
    by default): :attr:`expires_at` and :attr:`refresh_expires_at` are readings of
    it, and :meth:`expires_in` the seconds left on it. For people and other
    processes, :attr:`expires_at_utc` and :attr:`refresh_expires_at_utc` are the
    server's wall-clock claims, in UTC: exact on the server's clock, off by the skew
    between its clock and yours.

    Attributes:
        token: The bearer token sent as ``Authorization: Bearer <token>``.
        refresh_token: The single-use token that renews the session.
        guid: The session's id on the server: safe to log.
        token_expiration: The server's wall-clock claim of expiry. Informational only:
            clocks differ, so the SDK decides with ``expires_at``.
        token_lifetime: Seconds the token lives, counted from ``obtained_at``.
        refresh_token_expiration: The server's wall-clock claim for the refresh token.
        obtained_at: The auth's clock (monotonic by default) when the answer arrived.
        account_id: The account the session was opened for, if one was named.
        extra: Fields of the answer this version of the SDK does not know, kept as-is.
        clock: The clock ``obtained_at`` was read on (the auth's), for
            :meth:`expires_in`.
    """

    token: str
    refresh_token: str
    guid: str
    token_expiration: datetime
    token_lifetime: float
    refresh_token_expiration: datetime | None
    obtained_at: float
    account_id: int | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    _clock: Callable[[], float] = attrs.field(
        default=time.monotonic, eq=False, hash=False, kw_only=True, alias="clock"
    )

    @property
    def expires_at(self) -> float:
        """When the token expires, on the auth's clock: ``obtained_at + lifetime``."""
        return self.obtained_at + self.token_lifetime

    @property
    def refresh_expires_at(self) -> float | None:
        """When the refresh token expires on the auth's clock, or None if unknown.

        Derived from the server's own difference ``refreshTokenExpiration -
        tokenExpiration`` added to :attr:`expires_at`, so that clock skew cancels out.
        """
        if self.refresh_token_expiration is None:
            return None
        gap = self.refresh_token_expiration - self.token_expiration
        return self.expires_at + gap.total_seconds()

    @property
    def expires_at_utc(self) -> datetime:
        """When the token expires by the server's wall clock, in UTC
        (``tokenExpiration``). To know the time left, use :meth:`expires_in`."""
        return self.token_expiration.astimezone(timezone.utc)

    @property
    def refresh_expires_at_utc(self) -> datetime | None:
        """When the refresh token expires by the server's wall clock, in UTC
        (``refreshTokenExpiration``), or None if the server did not say."""
        expiration = self.refresh_token_expiration
        return None if expiration is None else expiration.astimezone(timezone.utc)

    def expires_in(self, now: float | None = None) -> float:
        """Seconds the token has left (negative once expired), on the auth's clock.

        Args:
            now: A reading of the auth's clock; by default it is read now.

        Returns:
            ``expires_at - now``.
        """
        return self.expires_at - (self._clock() if now is None else now)

    def __repr__(self) -> str:
        return (
            f"AuthSession(guid={self.guid!r}, account_id={self.account_id!r}, "
            f"token_lifetime={self.token_lifetime!r}, "
            f"token_expiration={self.token_expiration.isoformat()!r}, "
            f"obtained_at={self.obtained_at!r}, extra_keys={sorted(self.extra)!r}, "
            "token=<hidden>, refresh_token=<hidden>)"
        )

    __str__ = __repr__
