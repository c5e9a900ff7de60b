"""Frozen value objects the SDK hands to its users."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

__all__ = ["AuthSession"]


@attrs.frozen(repr=False)
class AuthSession:
    """One bearer session, as the last login or refresh answer described it.

    The two tokens are attributes because code that drives other tools (``curl``, a
    websocket) needs them, but they never appear in ``repr`` or ``str``.

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

    def __repr__(self) -> str:
        return (
            f"AuthSession(guid={self.guid!r}, account_id={self.account_id!r}, "
            f"token_lifetime={self.token_lifetime!r}, "
            f"token_expiration={self.token_expiration.isoformat()!r}, "
            f"obtained_at={self.obtained_at!r}, extra_keys={sorted(self.extra)!r}, "
            "token=<hidden>, refresh_token=<hidden>)"
        )

    __str__ = __repr__
