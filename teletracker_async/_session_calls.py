"""The session calls of ``TeletrackerClient`` (a base of it): a session now, an
account switch, a credentials check, each through the client's request path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from teletracker_async._call.answers import read_json
from teletracker_async._models import AuthSession
from teletracker_async._secrets import check_account_id, login_request
from teletracker_async._session.flow import BearerFlow

if TYPE_CHECKING:
    from teletracker_async._call.send import RequestPath

__all__ = ["SessionCalls"]


class SessionCalls:
    """``session()``, ``switch_account()`` and ``verify_credentials()``."""

    _path: RequestPath
    #: The account of a view made by ``for_account``, else None.
    _account_view: int | None

    def _bearer_auth(self, what: str) -> BearerFlow:
        auth = self._path.auth
        if not isinstance(auth, BearerFlow):
            raise TypeError(
                f"{what} needs a bearer session (TeletrackerAuth), "
                f"not {type(auth).__name__}"
            )
        return auth

    async def session(self) -> AuthSession:
        """A valid session now: logs in or refreshes as needed.

        Shares the single-flight rules of the auth flow: concurrent callers and
        requests in flight cause one login or refresh between them.

        Raises:
            TypeError: The client does not use :class:`TeletrackerAuth`.
            TeletrackerError: The login or refresh failed.
        """
        auth = self._bearer_auth("session()")
        return await auth.ensure_session(self._path.link.send_raw)

    async def switch_account(self, account_id: int | None) -> None:
        """Work in another account from now on.

        With bearer sessions this is a new login with ``account_id``: requests
        already sent finish with the old token, later ones use the new one, and a
        request refused with the old account's token is never retried with the new
        one. A refused switch fails only this call; the old session stays.
        With Basic or Integrator auth, later requests carry the new ``account_id``.
        It moves every view that shares this client's session (``with_options``
        views); a :meth:`for_account` view stays on its account and refuses it.

        Raises:
            TypeError, ValueError: A bad account id (Integrator: None is refused),
                or a :meth:`for_account` view.
            AuthenticationError: The user cannot reach that account.
        """
        if self._account_view is not None:
            raise TypeError(
                f"this view works in account {self._account_view} only: use "
                "client.for_account(...) for another account"
            )
        account = check_account_id(account_id)
        auth = self._path.auth
        if isinstance(auth, BearerFlow):
            await auth.switch_account(account, self._path.link.send_raw)
        else:
            auth.use_account(account)

    async def verify_credentials(self) -> bool:
        """Check the credentials with ``auth_only=1``; creates no session.

        Returns:
            True when accepted, False when refused with 401.

        Raises:
            TeletrackerError: Any other answer (400, 403, 5xx...) or no answer.
        """
        path, auth = "/auth/login", self._path.auth
        response = await self._path.send(
            lambda: login_request(auth, auth.account_id, auth_only=True),
            what=("POST", path),
            idempotent=True,
            authenticate=False,
        )
        if response.status_code == 401:
            return False
        read_json("POST", path, response, auth, auth_endpoint=True)
        return True
