"""The session rules: logins, refreshes with rotating refresh tokens and reuse
detection, and the checks of a caller's bearer, Basic or Integrator credentials."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Literal

import attrs

from teletracker_async.testing._answers import (
    FakeStats,
    json_answer,
    read_form,
    refusal,
    token_answer,
)
from teletracker_async.testing._wire import FakeRequest, FakeResponse

__all__ = ["SessionRules", "User"]


@attrs.define
class User:
    password: str
    account_ids: tuple[int, ...]
    integrator: bool = False


@attrs.define
class _Session:
    guid: str
    username: str
    account_id: int
    refresh_token: str
    refresh_expires: float
    issued_at: float = 0.0  # when the current token was issued
    revoked: bool = False


@attrs.define
class _Bearer:
    session: _Session
    expires: float


class SessionRules:
    """The session rules of :class:`FakeTeletracker`, and what tests read of them."""

    stats: FakeStats
    clock: Callable[[], float]
    token_lifetime: float
    refresh_token_lifetime: float
    expired_status: Literal[401, 403]
    wall_clock_skew: float
    account_id_in_answers: bool
    _users: dict[str, User]
    _sessions: dict[str, _Session]
    _by_token: dict[str, _Bearer]
    _by_refresh: dict[str, _Session]
    _spent_refresh: dict[str, _Session]
    _wall_origin: float
    _clock_origin: float

    def expire_sessions(self) -> None:
        """Make every bearer token expire now (refresh tokens stay valid)."""
        now = self.clock()
        for bearer in self._by_token.values():
            bearer.expires = min(bearer.expires, now)

    def revoke_sessions(self) -> None:
        """Kill every session server-side: tokens and refresh tokens stop working."""
        for session in self._sessions.values():
            session.revoked = True

    # -- what tests read ----------------------------------------------------------------

    @property
    def live_sessions(self) -> int:
        """Sessions neither revoked nor past their refresh token's expiry."""
        now = self.clock()
        return sum(
            1
            for s in self._sessions.values()
            if not s.revoked and now < s.refresh_expires
        )

    def issued_secrets(self) -> frozenset[str]:
        """Every bearer token and refresh token the fake has handed out, spent or not.

        For leak tests: none of them should appear in your logs or output.
        """
        return frozenset({*self._by_token, *self._by_refresh, *self._spent_refresh})

    def token_deadlines(self) -> dict[str, float]:
        """Each bearer token issued, with the ``clock`` time it expires (or expired)."""
        return {token: bearer.expires for token, bearer in self._by_token.items()}

    def wall_time(self) -> datetime:
        """The server's wall clock: it moves with ``clock`` and is skewed on purpose."""
        elapsed = self.clock() - self._clock_origin
        return datetime.fromtimestamp(
            self._wall_origin + elapsed + self.wall_clock_skew, tz=timezone.utc
        )

    def _issue(self, session: _Session) -> str:
        token = str(uuid.uuid4())
        session.issued_at = self.clock()
        self._by_token[token] = _Bearer(
            session, session.issued_at + self.token_lifetime
        )
        return token

    def _new_session(self, username: str, account_id: int) -> tuple[_Session, str]:
        session = _Session(
            guid=str(uuid.uuid4()),
            username=username,
            account_id=account_id,
            refresh_token=str(uuid.uuid4()),
            refresh_expires=self.clock() + self.refresh_token_lifetime,
        )
        self._sessions[session.guid] = session
        self._by_refresh[session.refresh_token] = session
        return session, self._issue(session)

    def _token_answer(self, session: _Session, token: str) -> FakeResponse:
        return token_answer(
            guid=session.guid,
            token=token,
            refresh_token=session.refresh_token,
            token_lifetime=self.token_lifetime,
            refresh_token_lifetime=self.refresh_token_lifetime,
            issued_at=self.wall_time(),
            account_id=session.account_id if self.account_id_in_answers else None,
        )

    def _login(self, request: FakeRequest) -> FakeResponse:
        form = read_form(request)
        if isinstance(form, FakeResponse):
            self.stats.failed_logins += 1
            return form
        missing = [k for k in ("username", "password") if not form.get(k)]
        if missing:
            self.stats.failed_logins += 1
            return refusal(
                400,
                f"Missing required variables: {', '.join(missing)}",
                missing=missing,
            )
        user = self._users.get(form["username"])
        if user is None or user.password != form["password"]:
            self.stats.failed_logins += 1
            return refusal(401, "Invalid username or password")
        account_id = user.account_ids[0]
        if form.get("account_id"):
            try:
                account_id = int(form["account_id"])
            except ValueError:
                self.stats.failed_logins += 1
                return refusal(400, "account_id must be an integer", missing=[])
            if account_id not in user.account_ids:
                self.stats.failed_logins += 1
                return refusal(403, f"User cannot access account {account_id}")
        if form.get("auth_only") == "1":
            self.stats.auth_only_checks += 1
            return json_answer({"success": True}, 200)
        self.stats.logins += 1
        return self._token_answer(*self._new_session(form["username"], account_id))

    def _refresh(self, request: FakeRequest) -> FakeResponse:
        form = read_form(request)
        if isinstance(form, FakeResponse):
            self.stats.failed_refreshes += 1
            return form
        old = form.get("refresh_token")
        if not old:
            self.stats.failed_refreshes += 1
            return refusal(
                400,
                "Missing required variables: refresh_token",
                missing=["refresh_token"],
            )
        reused = self._spent_refresh.get(old)
        if reused is not None:
            # OAuth practice: a used refresh token coming back revokes the session.
            self.stats.reuse_attempts += 1
            self.stats.failed_refreshes += 1
            reused.revoked = True
            return refusal(401, "Refresh token already used; session revoked")
        session = self._by_refresh.get(old)
        now = self.clock()
        if session is None or session.revoked or now >= session.refresh_expires:
            self.stats.failed_refreshes += 1
            return refusal(401, "Invalid or expired refresh token")
        del self._by_refresh[old]
        self._spent_refresh[old] = session
        if now - session.issued_at < self.token_lifetime / 2:
            self.stats.premature_refreshes += 1
        # The old bearer token stays valid until its own expiry: requests already in
        # flight with it must not fail.
        session.refresh_token = str(uuid.uuid4())
        session.refresh_expires = now + self.refresh_token_lifetime
        self._by_refresh[session.refresh_token] = session
        self.stats.refreshes += 1
        return self._token_answer(session, self._issue(session))

    def _caller(self, request: FakeRequest) -> int | FakeResponse:
        """The account a data request acts on, or the refusal it gets."""
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and credential:
            answer = self._check_bearer(request, credential)
        elif scheme in ("basic", "integrator") and credential:
            answer = self._check_password(request, scheme, credential)
        else:
            answer = refusal(401, "Authentication required")
        if isinstance(answer, FakeResponse):
            self.stats.rejected_requests += 1
        return answer

    def _check_bearer(self, request: FakeRequest, token: str) -> int | FakeResponse:
        bearer = self._by_token.get(token)
        if bearer is None or bearer.session.revoked:
            return refusal(401, "Invalid token")
        if self.clock() >= bearer.expires:
            return refusal(self.expired_status, "Token expired")
        account = bearer.session.account_id
        asked = request.query.get("account_id")
        if asked is not None and asked != str(account):
            return refusal(403, f"This session belongs to account {account}")
        return account

    def _check_password(
        self, request: FakeRequest, scheme: str, credential: str
    ) -> int | FakeResponse:
        try:
            username, _, password = (
                base64.b64decode(credential, validate=True).decode().partition(":")
            )
        except (ValueError, UnicodeDecodeError):
            return refusal(401, f"Malformed {scheme.title()} credentials")
        user = self._users.get(username)
        if user is None or user.password != password:
            return refusal(401, "Invalid username or password")
        if scheme == "integrator" and not user.integrator:
            return refusal(403, "User is not an integrator")
        asked = request.query.get("account_id")
        if asked is None:
            if scheme == "integrator":
                return refusal(
                    400,
                    "Missing required variables: account_id",
                    missing=["account_id"],
                )
            # The documented hazard: without account_id the API picks an account.
            return user.account_ids[0]
        if not asked.isdigit() or int(asked) not in user.account_ids:
            return refusal(403, f"User cannot access account {asked}")
        return int(asked)
