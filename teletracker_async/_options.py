"""The client's settings, checked once (arguments, then the environment), and what
they build: the auth, the HTTP client and the request path's shared link.

Which auth class fits a stack is decided here, where both are known: the stack
module knows no auth class, and the auth flow knows no client.
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import attrs

from teletracker_async._call.options import CallOptions, check_timeout, in_stack
from teletracker_async._call.pools import client_class
from teletracker_async._call.queue import Queue
from teletracker_async._call.send import Link
from teletracker_async._config import (
    DEFAULT_BASE_URL,
    DEFAULT_LIMITS,
    DEFAULT_TIMEOUT,
    DEFAULT_WIRE,
    ENV_ACCOUNT_ID,
    ENV_BASE_URL,
    ENV_PASSWORD,
    ENV_USERNAME,
    WIRES,
    Wire,
    user_agent,
)
from teletracker_async._http import HTTPX, HTTPClient, Request, Stack, stack_of
from teletracker_async._secrets import (
    EXCHANGE,
    Credentials,
    Secret,
    check_base_url,
    parse_account_id,
    secret_password,
)
from teletracker_async._session.core import check_listeners
from teletracker_async._session.flow import BearerFlow, TeletrackerAuth
from teletracker_async._session.schemes import (
    BasicScheme,
    IntegratorAuth,
    IntegratorScheme,
    TeletrackerBasicAuth,
)

__all__ = [
    "OWN_OPTIONS",
    "AnyAuth",
    "ClientOptions",
    "account_id_from_env",
    "auth_for",
    "base_url_from_env",
    "credentials_from_env",
    "pick_stack",
    "wire_transport",
]

#: Any of the three schemes, on either stack.
AnyAuth = BearerFlow | BasicScheme | IntegratorScheme

#: TeletrackerClient's own keyword arguments (for the message about a typo).
OWN_OPTIONS = (
    "username",
    "password",
    "account_id",
    "auth",
    "base_url",
    "http_client",
    "transport",
    "timeout",
    "total_timeout",
    "limits",
    "max_retries",
    "retry",
    "sleep",
    "wire",
)
#: Headers of a login or refresh that the client's own ``headers=`` never replace.
_EXCHANGE_OWN_HEADERS = frozenset(
    {"content-type", "content-length", "transfer-encoding", "host", "authorization"}
)


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


def pick_stack(http_client: object, transport: object, auth: object) -> Stack:
    """The one stack *http_client*, *transport* and *auth* agree on (httpx if none).

    Raises:
        TypeError: An object of no stack, or objects of two.
    """
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


def credentials_from_env(
    username: str | None,
    secret: Secret | None,
    account_id: int | None,
    base_url: str | None,
) -> tuple[str, Secret, int | None, str]:
    """Fill what was not given from ``TELETRACKER_*``; explicit arguments win.

    Raises:
        TypeError: No username or no password, naming each missing one.
        ValueError: ``TELETRACKER_ACCOUNT_ID`` or ``TELETRACKER_BASE_URL`` is set
            to something that is not an account id or an http(s) URL.
    """
    if username is None:
        username = os.environ.get(ENV_USERNAME) or None
    if secret is None:
        from_env = os.environ.get(ENV_PASSWORD)
        secret = secret_password(from_env) if from_env else None
        del from_env
    if username is None or secret is None:
        missing = [
            f"{what} (argument {what}= or ${variable})"
            for what, given, variable in (
                ("username", username, ENV_USERNAME),
                ("password", secret, ENV_PASSWORD),
            )
            if given is None
        ]
        raise TypeError(
            "TeletrackerClient needs username and password, or auth=...: missing "
            + " and ".join(missing)
        )
    if account_id is None:
        account_id = account_id_from_env()
    if base_url is None:
        base_url = base_url_from_env() or DEFAULT_BASE_URL
    return username, secret, account_id, base_url


def account_id_from_env() -> int | None:
    """``$TELETRACKER_ACCOUNT_ID``, or None when it is not set.

    Set, it must be an account id: set but empty is an error too, not "unset" (a
    script's ``TELETRACKER_ACCOUNT_ID=$ACCOUNT`` with ``$ACCOUNT`` forgotten).

    Raises:
        ValueError: Naming the variable: not 1 to ``MAX_ACCOUNT_ID`` in ASCII digits.
    """
    text = os.environ.get(ENV_ACCOUNT_ID)
    if text is None:
        return None
    try:
        return parse_account_id(text)
    except ValueError as exc:
        raise ValueError(f"${ENV_ACCOUNT_ID} {exc}") from None


def base_url_from_env() -> str | None:
    """``$TELETRACKER_BASE_URL``, checked, or None when it is not set.

    Set but empty is an error, not the production default: the user meant a server.

    Raises:
        ValueError: Naming the variable: not an http(s) URL with a host, no query.
    """
    text = os.environ.get(ENV_BASE_URL)
    return None if text is None else check_base_url(text, f"${ENV_BASE_URL}")


def _check_sleep(_instance: object, _attribute: object, value: object) -> None:
    if not callable(value):
        raise TypeError(
            f"sleep must be a coroutine function like anyio.sleep, "
            f"not {type(value).__name__}"
        )


def _check_limits(_instance: object, _attribute: object, value: Any) -> None:
    if stack_of(value) is None or not hasattr(value, "max_connections"):
        raise TypeError(f"limits must be an httpx.Limits, not {type(value).__name__}")
    if value.max_connections is not None and value.max_connections < 1:
        raise ValueError(
            "limits.max_connections must be at least 1 (or None for no limit), "
            f"got {value.max_connections}"
        )


def _check_http_client(instance: ClientOptions, _attribute: object, value: Any) -> None:
    if value is None:
        return
    given = {
        "transport": instance.transport is not None,
        "timeout": instance.timeout is not DEFAULT_TIMEOUT,
        "limits": instance.limits is not DEFAULT_LIMITS,
    }
    if any(given.values()):
        raise TypeError(
            "http_client= brings its own settings: do not also pass "
            f"{', '.join(k for k, v in given.items() if v)}"
        )
    stack = instance.stack
    if not isinstance(value, stack.module.AsyncClient):
        raise TypeError(
            f"http_client must be an {stack.name}.AsyncClient, "
            f"not {type(value).__name__}"
        )


def _check_httpx_options(
    instance: ClientOptions, _attribute: object, options: Mapping[str, Any]
) -> None:
    """Refuse an option ``AsyncClient`` does not take, now rather than at first use."""
    stack = instance.stack
    accepted = [
        name
        for name in inspect.signature(stack.module.AsyncClient.__init__).parameters
        if name != "self" and name not in OWN_OPTIONS
    ]
    unknown = [name for name in options if name not in accepted]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, [*OWN_OPTIONS, *accepted], n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise TypeError(
        f"TeletrackerClient got unexpected keyword argument(s) {', '.join(hints)}. "
        f"Its own: {', '.join(OWN_OPTIONS)}; passed on to "
        f"{stack.name}.AsyncClient: {', '.join(accepted)}."
    )


def _check_auth(instance: ClientOptions, _attribute: object, value: Any) -> None:
    classes = _bearer_classes(instance.stack)
    if not isinstance(value, classes):
        raise TypeError(
            "auth must be a TeletrackerAuth, TeletrackerBasicAuth or "
            f"IntegratorAuth, not {type(value).__name__}"
        )


#: AsyncClient options that the aiohttp wire cannot honour.
_NOT_ON_AIOHTTP = ("proxy", "mounts", "http2")


def _check_wire(instance: ClientOptions, _attribute: object, value: object) -> None:
    if value not in WIRES:
        raise ValueError(
            f"wire must be one of {', '.join(map(repr, WIRES))}, not {value!r}"
        )
    if value == "httpx":
        return
    given = [
        name
        for name, obj in (
            ("transport", instance.transport),
            ("http_client", instance.http_client),
        )
        if obj is not None
    ]
    if given:
        raise TypeError(
            f"wire={value!r} builds its own transport: do not also pass "
            f"{' or '.join(given)}"
        )
    uncarried = [name for name in _NOT_ON_AIOHTTP if instance.httpx_options.get(name)]
    if uncarried:
        raise TypeError(
            f"wire={value!r} cannot carry {', '.join(uncarried)}: httpx would send "
            "around aiohttp (a proxy or mounts) or aiohttp has none (HTTP/2); "
            "use wire='httpx' for them"
        )
    if instance.stack is not HTTPX:
        raise TypeError(
            f"wire={value!r} runs under httpx: use the auth classes of "
            "teletracker_async, not those of teletracker_async.httpx2"
        )


def wire_transport(wire: Wire, limits: Any, options: Mapping[str, Any]) -> object:
    """The transport of *wire* (None for httpx's own), sized from *limits*.

    Raises:
        ImportError: The wire's extra is not installed, naming it.
    """
    if wire == "httpx":
        return None
    try:
        from teletracker_async._aiohttp_wire import AiohttpWire  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError(
            "wire='aiohttp' needs aiohttp and httpx-aiohttp: "
            "pip install 'teletracker-async[aiohttp]'"
        ) from exc
    tls = {k: options[k] for k in ("verify", "cert", "trust_env") if k in options}
    return AiohttpWire(limits=limits, **tls)


@attrs.frozen
class ClientOptions:
    """Everything a ``TeletrackerClient`` is built from, each field checked.

    Made by the client's constructor once :func:`auth_for` has the auth; the
    fields are checked in order, so a later check may read an earlier field.
    """

    stack: Stack
    auth: AnyAuth = attrs.field(validator=_check_auth)
    transport: object = None
    timeout: object = DEFAULT_TIMEOUT
    limits: Any = attrs.field(default=DEFAULT_LIMITS, validator=_check_limits)
    http_client: Any = attrs.field(default=None, validator=_check_http_client)
    call: CallOptions = attrs.field(factory=CallOptions)
    sleep: Callable[[float], Awaitable[object]] = attrs.field(
        default=anyio.sleep, validator=_check_sleep
    )
    httpx_options: Mapping[str, Any] = attrs.field(
        factory=dict, validator=_check_httpx_options
    )
    #: What carries the requests; its transport replaces ``transport`` (None) once
    #: every field is checked.
    wire: Wire = attrs.field(default=DEFAULT_WIRE, validator=_check_wire)

    def __attrs_post_init__(self) -> None:
        if self.wire != DEFAULT_WIRE:
            built = wire_transport(self.wire, self.limits, self.httpx_options)
            object.__setattr__(self, "transport", built)  # frozen: set once, here

    def link(self) -> Link:
        """The HTTP client (built, or the one given), its queue and its loop."""
        stack, given = self.stack, self.http_client
        if given is None:
            http, ua = self._build_http(), None
        else:
            # Your own client keeps its headers; only its library default
            # User-Agent is replaced, so that the API can tell the SDK's traffic.
            http, ua = given, given.headers.get("user-agent", "")
        headers = (
            {"User-Agent": user_agent(stack.name)}
            if ua is not None and (not ua or ua.startswith(f"python-{stack.name}/"))
            else None
        )
        connections = self.limits.max_connections
        queue = None
        if connections is not None and given is None:
            handover = stack.hand_over and (
                self.transport is None
                or isinstance(self.transport, stack.module.AsyncHTTPTransport)
            )
            queue = Queue(stack, connections, handover)
        return Link(
            stack=stack,
            base_url=self.auth.base_url,
            http=http,
            owns_http=given is None,
            queue=queue,
            sleep=self.sleep,
            request_headers=headers,
        )

    def _build_http(self) -> HTTPClient:
        """The AsyncClient the client owns: the SDK's User-Agent (unless yours in
        ``headers=``), your ``headers=`` on the login and refresh too, and on httpx
        its connections in small pools (``_call/pools.py``)."""
        stack, options = self.stack, dict(self.httpx_options)
        module = stack.module
        given = module.Headers(options.pop("headers", None))
        headers = module.Headers({"User-Agent": user_agent(stack.name)})
        headers.update(given)
        hooks = dict(options.pop("event_hooks", None) or {})
        if given:

            async def exchange_headers(request: Request) -> None:
                # Login and refresh requests are built by the auth, which knows no
                # client: they get the client's own headers here, never replacing
                # what the exchange needs (its body's type, its host).
                if request.extensions.get(EXCHANGE):
                    for key, value in given.multi_items():
                        if key.lower() not in _EXCHANGE_OWN_HEADERS:
                            request.headers[key] = value

            hooks["request"] = [exchange_headers, *hooks.get("request", ())]
        http: HTTPClient = client_class(stack)(
            auth=self.auth,
            base_url=self.auth.base_url,
            transport=self.transport,
            timeout=check_timeout(stack, self.timeout),
            limits=in_stack(stack, self.limits, "Limits"),
            headers=headers,
            event_hooks=hooks,
            **options,
        )
        return http


def auth_for(
    stack: Stack,
    auth: object,
    *,
    username: str | None,
    secret: Secret | None,
    account_id: int | None,
    base_url: str | None,
    store: object,
    store_errors: str,
    on_event: object = None,
) -> AnyAuth:
    """The auth given, or one built from the credentials (and the environment).

    Raises:
        TypeError, ValueError: Missing, bad or conflicting arguments.
    """
    if auth is None:
        username, secret, account_id, url = credentials_from_env(
            username, secret, account_id, base_url
        )
        bearer: type[BearerFlow] = _bearer_classes(stack)[0]
        return bearer(
            username,
            secret.get(),
            account_id=account_id,
            base_url=check_base_url(url),
            store=store,  # type: ignore[arg-type]
            store_errors=store_errors,  # type: ignore[arg-type]
            on_event=on_event,  # type: ignore[arg-type]
        )
    if username is not None or secret is not None or account_id is not None:
        raise TypeError(
            "give either username/password/account_id or auth=..., not both"
        )
    if store is not None or store_errors != "login":
        raise TypeError(
            "store= and store_errors= configure the auth the client builds: "
            "with auth=..., pass them to TeletrackerAuth(...) instead"
        )
    if not isinstance(auth, _bearer_classes(stack)):
        raise TypeError(
            "auth must be a TeletrackerAuth, TeletrackerBasicAuth or "
            f"IntegratorAuth, not {type(auth).__name__}"
        )
    given: AnyAuth = auth
    if on_event is not None:
        if not isinstance(given, BearerFlow):
            raise TypeError(
                "on_event needs a TeletrackerAuth: a basic or integrator auth has "
                "no session to tell about"
            )
        for listener in check_listeners(on_event):
            given.add_listener(listener)
    if base_url is not None and check_base_url(base_url) != given.base_url:
        raise ValueError(
            f"base_url {base_url!r} differs from the auth's {given.base_url!r}: "
            "the auth sends credentials to its own base_url only"
        )
    return given
