"""``TeletrackerClient``: typed calls, error mapping, retries and report pulls."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from teletracker_async._auth import BearerFlow, TeletrackerAuth
from teletracker_async._config import (
    BACKOFF_BASE,
    DEFAULT_BASE_URL,
    DEFAULT_LIMITS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    IDEMPOTENT_METHODS,
    MAX_BACKOFF,
    MAX_RETRY_AFTER,
    RETRY_STATUSES,
)
from teletracker_async._converter import (
    CallDataAnswer,
    Envelope,
    decode_json,
    structure,
)
from teletracker_async._credentials import (
    EXCHANGE,
    Credentials,
    check_account_id,
    check_base_url,
    check_positive_int,
    secret_password,
)
from teletracker_async._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TeletrackerError,
    detached,
)
from teletracker_async._models import AuthSession
from teletracker_async._responses import (
    decode_error_body,
    error_for_status,
    parse_retry_after,
)
from teletracker_async._schemes import (
    BasicScheme,
    IntegratorAuth,
    IntegratorScheme,
    TeletrackerBasicAuth,
)
from teletracker_async._stack import HTTPX, Stack, stack_of

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["DEFAULT_LIMITS", "DEFAULT_TIMEOUT", "TeletrackerClient"]

logger = logging.getLogger("teletracker_async")

#: Any of the three schemes, on either stack.
AnyAuth = BearerFlow | BasicScheme | IntegratorScheme
DateLike = date | str


def _as_date(name: str, value: object) -> date:
    if isinstance(value, datetime):
        raise TypeError(f"{name} must be a date, not a datetime (which day is meant?)")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name} must be YYYY-MM-DD, got {value!r}") from None
    raise TypeError(
        f"{name} must be a datetime.date or a 'YYYY-MM-DD' string, "
        f"not {type(value).__name__}"
    )


def _date_range(start: object, end: object) -> tuple[date, date]:
    first, last = _as_date("start_date", start), _as_date("end_date", end)
    if last < first:
        raise ValueError(f"end_date {last} is before start_date {first}")
    return first, last


def _no_answer(
    method: str, path: str, exc: Exception, stack: Stack
) -> APIConnectionError:
    """The SDK's error for a transport failure; timeouts are APITimeoutError.

    Raise it ``from`` the transport error, detached first when that error came
    from a login or refresh: the HTTP stack's frames hold the form it was sending.
    """
    kind = (
        APITimeoutError
        if isinstance(exc, stack.TimeoutException)
        else APIConnectionError
    )
    return kind(
        f"{method} {path}: no answer from Teletracker "
        f"({type(exc).__name__}: {str(exc) or 'no detail'})"
    )


def _failed_request(exc: Exception) -> object:
    try:
        return getattr(exc, "request", None)
    except RuntimeError:  # raised without a request (a custom transport)
        return None


def _bearer_classes(stack: Stack) -> tuple[type[Any], type[Any], type[Any]]:
    """(TeletrackerAuth, TeletrackerBasicAuth, IntegratorAuth) of *stack*."""
    if stack is HTTPX:
        return TeletrackerAuth, TeletrackerBasicAuth, IntegratorAuth
    from teletracker_async import httpx2 as adapters  # noqa: PLC0415 - optional

    return (
        adapters.TeletrackerAuth,
        adapters.TeletrackerBasicAuth,
        adapters.IntegratorAuth,
    )


def _pick_stack(http_client: object, transport: object, auth: object) -> Stack:
    """The one stack *http_client*, *transport* and *auth* agree on (httpx if none)."""
    named: list[tuple[str, Stack]] = []
    for what, obj in (("http_client", http_client), ("transport", transport)):
        if obj is None:
            continue
        stack = stack_of(obj)
        if stack is None:
            raise TypeError(
                f"{what} must come from httpx or httpx2, "
                f"not {type(obj).__module__}.{type(obj).__qualname__}"
            )
        named.append((what, stack))
    if isinstance(auth, Credentials):
        named.append(("auth", auth._stack))  # noqa: SLF001 - the SDK's own classes
    stacks = {stack.name for _, stack in named}
    if len(stacks) > 1:
        said = ", ".join(f"{what} is for {stack.name}" for what, stack in named)
        raise TypeError(
            f"mixed HTTP stacks: {said}. Use one stack throughout: the classes of "
            "teletracker_async work with httpx, those of teletracker_async.httpx2 "
            "with httpx2."
        )
    return named[0][1] if named else HTTPX


def _in_stack(stack: Stack, value: Any, kind: str) -> Any:
    """*value* (an httpx Timeout or Limits, like the defaults) as *stack*'s type."""
    if stack is HTTPX or not isinstance(value, (httpx.Timeout, httpx.Limits)):
        return value
    if isinstance(value, httpx.Timeout):
        return stack.module.Timeout(
            connect=value.connect, read=value.read, write=value.write, pool=value.pool
        )
    return getattr(stack.module, kind)(
        max_connections=value.max_connections,
        max_keepalive_connections=value.max_keepalive_connections,
        keepalive_expiry=value.keepalive_expiry,
    )


def _check_options(max_retries: object, limits: object, sleep: object) -> None:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int):
        raise TypeError("max_retries must be an int")
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries}")
    if not callable(sleep):
        raise TypeError(
            f"sleep must be a coroutine function like anyio.sleep, "
            f"not {type(sleep).__name__}"
        )
    if stack_of(limits) is None or not hasattr(limits, "max_connections"):
        raise TypeError(f"limits must be an httpx.Limits, not {type(limits).__name__}")
    if limits.max_connections is not None and limits.max_connections < 1:
        raise ValueError(
            "limits.max_connections must be at least 1 (or None for no limit), "
            f"got {limits.max_connections}"
        )


class TeletrackerClient:
    """An async client for the Teletracker API, safe to share between coroutines.

    Give either ``username`` and ``password`` (a :class:`TeletrackerAuth` is built) or
    ``auth=`` (a :class:`TeletrackerAuth`, :class:`TeletrackerBasicAuth` or
    :class:`IntegratorAuth`), not both.

    Args:
        username: The Teletracker user name.
        password: The password.
        account_id: The account to work in (with credentials only).
        auth: A ready auth object instead of credentials (from
            ``teletracker_async.httpx2`` for an httpx2 client or transport).
        base_url: The API root; defaults to the auth's, else the public API.
        http_client: Your own ``httpx.AsyncClient`` or ``httpx2.AsyncClient``, with
            its proxies, TLS, event hooks and transport. The SDK adds its auth to each
            request and never closes it: it is yours. Excludes ``transport``,
            ``timeout``, ``limits`` and ``**httpx_options``.
        transport: An httpx or httpx2 transport (``FakeTeletracker().transport()``
            in tests); the client is of the same stack.
        timeout: Timeouts; see :data:`DEFAULT_TIMEOUT`.
        limits: Connection limits; see :data:`DEFAULT_LIMITS`.
        max_retries: Retries after the first try for 429/502/503/504 and transport
            failures; 0 turns retries off.
        sleep: The coroutine used to wait between retries (inject one in tests).
        **httpx_options: Passed to the ``AsyncClient`` it builds (headers, proxy,
            verify...).

    Raises:
        TypeError, ValueError: Bad or conflicting arguments, including objects from
            two HTTP stacks (named in the message).
    """

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        account_id: int | None = None,
        auth: AnyAuth | None = None,
        base_url: str | None = None,
        http_client: Any = None,
        transport: Any = None,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        max_retries: int = DEFAULT_MAX_RETRIES,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
        **httpx_options: Any,
    ) -> None:
        secret = None if password is None else secret_password(password)
        del password  # from here on, no frame that may raise holds it
        stack = _pick_stack(http_client, transport, auth)
        bearer, basic, integrator = _bearer_classes(stack)
        if auth is None:
            if username is None or secret is None:
                raise TypeError(
                    "TeletrackerClient needs username and password, or auth=..."
                )
            auth = bearer(
                username,
                secret.get(),
                account_id=account_id,
                base_url=check_base_url(base_url or DEFAULT_BASE_URL),
            )
        elif username is not None or secret is not None or account_id is not None:
            raise TypeError(
                "give either username/password/account_id or auth=..., not both"
            )
        elif not isinstance(auth, (bearer, basic, integrator)):
            raise TypeError(
                "auth must be a TeletrackerAuth, TeletrackerBasicAuth or "
                f"IntegratorAuth, not {type(auth).__name__}"
            )
        if base_url is not None and check_base_url(base_url) != auth.base_url:
            raise ValueError(
                f"base_url {base_url!r} differs from the auth's {auth.base_url!r}: "
                "the auth sends credentials to its own base_url only"
            )
        base_url = auth.base_url
        _check_options(max_retries, limits, sleep)
        self._stack = stack
        self._base_url = base_url
        self._auth: AnyAuth = auth
        self._max_retries = max_retries
        self._sleep = sleep
        self._rng = random.Random()  # noqa: S311 - jitter, not cryptography
        # Coroutines queue here, not in httpcore's pool: its queue rescans every
        # connection on each change (70 % of the CPU with 2000 waiters, measured),
        # and a request waiting here has not been given a token yet, so a long
        # wait cannot make it arrive with an expired one (or, after
        # switch_account, with the other account's). That is why httpx2 keeps it
        # too, though its pool has no herd to spare (its cost there is measured:
        # benchmarks/bench_loopback.py, ours_httpx2_sem against ours_httpx2).
        self._slots = (
            None
            if limits.max_connections is None or http_client is not None
            else anyio.Semaphore(limits.max_connections, fast_acquire=True)
        )
        self._owns_http = http_client is None
        if http_client is None:
            self._http = stack.module.AsyncClient(
                auth=auth,
                base_url=base_url,
                transport=transport,
                timeout=_in_stack(stack, timeout, "Timeout"),
                limits=_in_stack(stack, limits, "Limits"),
                **httpx_options,
            )
        else:
            given = {
                "transport": transport is not None,
                "timeout": timeout is not DEFAULT_TIMEOUT,
                "limits": limits is not DEFAULT_LIMITS,
                **dict.fromkeys(httpx_options, True),
            }
            if any(given.values()):
                raise TypeError(
                    "http_client= brings its own settings: do not also pass "
                    f"{', '.join(k for k, v in given.items() if v)}"
                )
            if not isinstance(http_client, stack.module.AsyncClient):
                raise TypeError(
                    f"http_client must be an {stack.name}.AsyncClient, "
                    f"not {type(http_client).__name__}"
                )
            self._http = http_client

    def __repr__(self) -> str:
        # Safe on a half-built client: error reporters repr every frame's locals.
        stack = getattr(self, "_stack", None)
        return (
            f"TeletrackerClient(auth={getattr(self, '_auth', None)!r}, "
            f"base_url={getattr(self, '_base_url', None)!r}, "
            f"stack={None if stack is None else stack.name!r})"
        )

    @property
    def http(self) -> Any:
        """The underlying ``httpx.AsyncClient`` (or ``httpx2.AsyncClient``).

        The client's own when it built one; yours when you passed ``http_client``.
        """
        return self._http

    @property
    def auth(self) -> AnyAuth:
        """The auth object every request goes through."""
        return self._auth

    async def __aenter__(self) -> Self:
        if self._owns_http:
            await self._http.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owns_http:
            await self._http.__aexit__(exc_type, exc, tb)

    async def aclose(self) -> None:
        """Close the connection pool, unless it is an ``http_client`` you passed."""
        if self._owns_http:
            await self._http.aclose()

    # -- requests ---------------------------------------------------------------------

    def _url(self, path: str) -> str:
        # Absolute, so that a client you passed in, whatever its base_url, sends to
        # the auth's origin (and the origin check names the path if it is not).
        return f"{self._base_url}{path}" if path.startswith("/") else path

    def _wait(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds before retry number *attempt* + 1, or None to give up."""
        if attempt >= self._max_retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= MAX_RETRY_AFTER else None
        return self._rng.uniform(0, min(MAX_BACKOFF, BACKOFF_BASE * 2**attempt))

    async def _request(self, request: Any, *, authenticate: bool) -> Any:
        auth = self._auth if authenticate else None
        if self._slots is None:
            return await self._http.send(request, auth=auth, follow_redirects=False)
        async with self._slots:
            return await self._http.send(request, auth=auth, follow_redirects=False)

    def _after_no_answer(
        self, exc: Exception, request: Any, attempt: int, may_repeat: bool
    ) -> float:
        """Seconds to wait before retrying a request that got no answer, or raise."""
        stack = self._stack
        failed = _failed_request(exc)
        # Our login/refresh in front of it failed: the request itself never left.
        in_front = failed is not request and bool(
            getattr(failed, "extensions", {}).get(EXCHANGE)
        )
        retryable = (
            in_front
            or isinstance(exc, stack.not_sent)
            or (may_repeat and isinstance(exc, stack.retryable))
        )
        wait = self._wait(attempt, None) if retryable else None
        if wait is None:
            # The login/refresh in front holds the password or a refresh token in
            # the frames of the HTTP stack: keep none of them.
            cause = detached(exc) if in_front else exc
            raise _no_answer(request.method, request.url.path, exc, stack) from cause
        return wait

    async def _send(
        self,
        make: Callable[[], Any],
        *,
        idempotent: bool | None,
        authenticate: bool = True,
    ) -> Any:
        """Send a request that *make* builds (anew for each try) with retries;
        return the last answer, or raise a transport error.

        Redirects are never followed: the API does not redirect, and a login or
        refresh must not be replayed to wherever a ``Location`` points.
        """
        stack = self._stack
        attempt = 0
        while True:
            request = make()
            method = request.method
            may_repeat = (
                method in IDEMPOTENT_METHODS if idempotent is None else idempotent
            )
            wait: float | None
            try:
                response = await self._request(request, authenticate=authenticate)
            except stack.TransportError as exc:
                wait = self._after_no_answer(exc, request, attempt, may_repeat)
                reason = type(exc).__name__
            except stack.DecodingError as exc:
                raise ResponseFormatError(
                    f"The answer to {method} {request.url.path} could not be decoded "
                    f"({exc}).",
                ) from exc
            except stack.RequestError as exc:  # anything else httpx raises for it
                raise APIConnectionError(
                    f"{method} {request.url.path}: {type(exc).__name__}: {exc}"
                ) from exc
            except (ServerError, RateLimitError) as exc:
                # Raised by the auth flow: a login/refresh failed, so the request
                # itself was never processed and any method may be retried.
                wait = (
                    self._wait(attempt, getattr(exc, "retry_after", None))
                    if exc.status_code in RETRY_STATUSES
                    else None
                )
                if wait is None:
                    raise
                reason = f"HTTP {exc.status_code} from the auth endpoint"
            else:
                status = response.status_code
                wait = None
                if may_repeat and status in RETRY_STATUSES:
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                    wait = self._wait(attempt, retry_after)
                if wait is None:
                    return response
                await response.aclose()
                reason = f"HTTP {status}"
            attempt += 1
            logger.debug(
                "retry %d/%d of %s %s in %.2f s after %s",
                attempt,
                self._max_retries,
                method,
                request.url.path,
                wait,
                reason,
            )
            await self._sleep(wait)

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Call an endpoint and return its decoded JSON body.

        Args:
            method: The HTTP method.
            path: The path under the base URL, like ``"/reports/call-data"``.
            params: The query string.
            data: A form body.
            json: A JSON body.
            idempotent: Whether the call may be repeated after a failure. By default
                GET, HEAD, OPTIONS, PUT and DELETE may; pass True to let a POST retry.

        Returns:
            The answer's JSON object (with ``success: true``).

        Raises:
            APIError: The server refused (a subclass per status), or said
                ``success: false``.
            ResponseFormatError: The answer was not a JSON object with ``success``.
            APIConnectionError: No answer (``APITimeoutError`` for timeouts).
        """
        method = method.upper()
        url = self._url(path)
        response = await self._send(
            lambda: self._http.build_request(
                method, url, params=params, data=data, json=json
            ),
            idempotent=idempotent,
        )
        return self._read(method, path, response)

    def _read(
        self,
        method: str,
        path: str,
        response: Any,
        *,
        auth_endpoint: bool = False,
    ) -> Any:
        """The body of a successful answer, or raise the error it stands for.

        The answer is read by :meth:`_outcome`: this frame, which raises, holds no
        body, so an error reporter capturing frame locals finds no echoed secret.
        """
        result = self._outcome(method, path, response, auth_endpoint)
        if isinstance(result, TeletrackerError):
            raise result
        return result

    def _outcome(
        self, method: str, path: str, response: Any, auth_endpoint: bool
    ) -> Any:
        what = f"{method} {path}"
        status = response.status_code
        if not response.is_success:
            return self._refusal(response, what, auth_endpoint, by_status=True)
        try:
            body = decode_json(
                response.content, what=f"answer to {what}", status_code=status
            )
        except ResponseFormatError as exc:
            return detached(exc)
        # The success path by hand: a JSON object with success true is a valid
        # envelope (measured: the converter was 3.7 % of request_json). The strict
        # converter only reads the rest, to say exactly what is wrong.
        if isinstance(body, dict) and body.get("success") is True:
            return body
        try:
            structure(body, Envelope, what=f"answer to {what}", status_code=status)
        except ResponseFormatError as exc:
            return detached(exc)
        # The converter accepts true or false only, and true returned above.
        return self._refusal(response, what, auth_endpoint, by_status=False)

    def _refusal(
        self,
        response: Any,
        what: str,
        auth_endpoint: bool,
        *,
        by_status: bool,
    ) -> APIError:
        status = response.status_code
        # The token it was sent with may be an older one than the auth's current.
        sent = response.request.headers.get("authorization", "").partition(" ")[2]
        body = self._auth.redact(decode_error_body(response.content), also=(sent,))
        refusal = error_for_status(
            status,
            body,
            response.headers,
            what=what,
            auth_endpoint=auth_endpoint,
        )
        if by_status:
            return refusal
        # success: false on a 2xx: the status says nothing, the body says no.
        return APIError(status, refusal.message, refusal.body)

    # -- reports ----------------------------------------------------------------------

    async def call_data(
        self,
        start_date: DateLike,
        end_date: DateLike,
        *,
        account_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Call records between two dates, both included.

        Args:
            start_date: A ``date`` or ``"YYYY-MM-DD"``.
            end_date: A ``date`` or ``"YYYY-MM-DD"``, not before ``start_date``.
            account_id: The account to report on, when not the session's.

        Returns:
            The records as the API sends them (plain dicts).

        Raises:
            ValueError, TypeError: Bad dates or account id (before any request).
            TeletrackerError: As :meth:`request_json`; ``ResponseFormatError`` when
                ``data`` is not a list of objects.
        """
        first, last = _date_range(start_date, end_date)
        return await self._call_data(first, last, check_account_id(account_id))

    async def _call_data(
        self, first: date, last: date, account_id: int | None
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {
            "start_date": first.isoformat(),
            "end_date": last.isoformat(),
        }
        if account_id is not None:
            params["account_id"] = account_id
        path = "/reports/call-data"
        url = self._url(path)
        response = await self._send(
            lambda: self._http.build_request("GET", url, params=params),
            idempotent=None,
        )
        result = self._records(path, response)
        if isinstance(result, TeletrackerError):
            raise result
        return result

    def _records(
        self, path: str, response: Any
    ) -> list[dict[str, Any]] | TeletrackerError:
        body = self._outcome("GET", path, response, auth_endpoint=False)
        if isinstance(body, TeletrackerError):
            return body
        try:
            answer = structure(
                body,
                CallDataAnswer,
                what=f"answer to GET {path}",
                status_code=response.status_code,
            )
        except ResponseFormatError as exc:
            return detached(exc)
        return answer.data

    async def iter_call_data(
        self,
        start_date: DateLike,
        end_date: DateLike,
        *,
        account_id: int | None = None,
        window_days: int = 1,
        concurrency: int = 8,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield call records of a long range in date order, fetching windows at once.

        The range is cut into windows of ``window_days``; up to ``concurrency``
        windows are fetched together, then their records are yielded in order
        before the next batch starts. No task outlives a batch, so breaking out of
        the loop leaves nothing running, and the first error is raised as itself.

        Raises:
            ValueError, TypeError: Bad arguments, before any request.
            TeletrackerError: The first error of a batch; the rest are cancelled.
        """
        first, last = _date_range(start_date, end_date)
        account = check_account_id(account_id)
        step = check_positive_int("window_days", window_days)
        width = check_positive_int("concurrency", concurrency)
        windows: list[tuple[date, date]] = []
        day = first
        while day <= last:
            end = min(day + timedelta(days=step - 1), last)
            windows.append((day, end))
            day = end + timedelta(days=1)
        for batch_start in range(0, len(windows), width):
            batch = windows[batch_start : batch_start + width]
            for records in await self._fetch_batch(batch, account):
                for record in records:
                    yield record

    async def _fetch_batch(
        self, batch: list[tuple[date, date]], account_id: int | None
    ) -> list[list[dict[str, Any]]]:
        results: list[list[dict[str, Any]]] = [[] for _ in batch]
        errors: list[BaseException] = []

        async def fetch(index: int, window: tuple[date, date]) -> None:
            try:
                results[index] = await self._call_data(*window, account_id)
            except TeletrackerError as exc:
                if not errors:
                    errors.append(exc)
                tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            for index, window in enumerate(batch):
                tg.start_soon(fetch, index, window)
        if errors:
            raise errors[0]
        return results

    # -- session ----------------------------------------------------------------------

    def _bearer_auth(self, what: str) -> BearerFlow:
        if not isinstance(self._auth, BearerFlow):
            raise TypeError(
                f"{what} needs a bearer session (TeletrackerAuth), "
                f"not {type(self._auth).__name__}"
            )
        return self._auth

    async def _send_raw(self, request: Any) -> Any:
        try:
            return await self._http.send(
                request, auth=None, stream=True, follow_redirects=False
            )
        except self._stack.TransportError as exc:
            raise _no_answer(
                request.method, request.url.path, exc, self._stack
            ) from detached(exc)

    async def session(self) -> AuthSession:
        """A valid session now: logs in or refreshes as needed.

        Shares the single-flight rules of the auth flow: concurrent callers and
        requests in flight cause one login or refresh between them.

        Raises:
            TypeError: The client does not use :class:`TeletrackerAuth`.
            TeletrackerError: The login or refresh failed.
        """
        auth = self._bearer_auth("session()")
        return await auth.ensure_session(self._send_raw)

    async def switch_account(self, account_id: int | None) -> None:
        """Work in another account from now on.

        With bearer sessions this is a new login with ``account_id``: requests
        already sent finish with the old token, later ones use the new one, and a
        request refused with the old account's token is never retried with the new
        one. A refused switch fails only this call; the old session stays.
        With Basic or Integrator auth, later requests carry the new ``account_id``.

        Raises:
            TypeError, ValueError: A bad account id (Integrator: None is refused).
            AuthenticationError: The user cannot reach that account.
        """
        account = check_account_id(account_id)
        if isinstance(self._auth, BearerFlow):
            await self._auth.switch_account(account, self._send_raw)
        else:
            self._auth.use_account(account)

    async def verify_credentials(self) -> bool:
        """Check the credentials with ``auth_only=1``; creates no session.

        Returns:
            True when accepted, False when refused with 401.

        Raises:
            TeletrackerError: Any other answer (400, 403, 5xx...) or no answer.
        """
        path = "/auth/login"
        response = await self._send(
            lambda: self._auth.login_request(self._auth.account_id, auth_only=True),
            idempotent=True,
            authenticate=False,
        )
        if response.status_code == 401:
            return False
        self._read("POST", path, response, auth_endpoint=True)
        return True
