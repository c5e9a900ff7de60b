"""The settings one call runs with, which a view may change: checked once, here."""

from __future__ import annotations

import math
from typing import Any, Final, cast

import attrs
import httpx

from teletracker_async._call.retry import DEFAULT_RETRY, Retry
from teletracker_async._http import HTTPX, Stack, TimeoutLike

__all__ = [
    "NOT_GIVEN",
    "CallOptions",
    "NotGiven",
    "TimeoutArg",
    "check_timeout",
    "check_total_timeout",
    "in_stack",
]


class NotGiven:
    """The type of :data:`NOT_GIVEN`: None is a value (no timeout, no deadline)."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


#: "Not given": None is a value (no timeout, no deadline).
NOT_GIVEN: Final = NotGiven()

#: A timeout as callers give it: a ``Timeout`` of either stack, seconds, or None.
TimeoutArg = httpx.Timeout | TimeoutLike | float | None


def in_stack(stack: Stack, value: Any, kind: str) -> Any:
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


def check_timeout(stack: Stack, value: object) -> TimeoutLike:
    """*value* as *stack*'s ``Timeout``: a Timeout of either stack, seconds, or None.

    Raises:
        TypeError: Anything else.
    """
    if isinstance(value, httpx.Timeout):
        converted: TimeoutLike = in_stack(stack, value, "Timeout")
        return converted
    if isinstance(value, stack.module.Timeout):
        return value  # type: ignore[no-any-return]
    if value is None or (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    ):
        return stack.module.Timeout(value)  # type: ignore[no-any-return]
    raise TypeError(
        f"timeout must be an httpx.Timeout, a number of seconds >= 0 or None, "
        f"not {value!r}"
    )


def check_total_timeout(value: object) -> float | None:
    """None (no deadline) or a positive, finite number of seconds.

    Raises:
        TypeError, ValueError: Anything else.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"total_timeout must be a number of seconds or None, "
            f"not {type(value).__name__}"
        )
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"total_timeout must be a positive number, got {value}")
    return float(value)


def _check_retry(_instance: object, _attribute: object, value: object) -> None:
    if not isinstance(value, Retry):
        raise TypeError(
            f"retry must be a teletracker_async.Retry, not {type(value).__name__}"
        )


def _check_total(_instance: object, _attribute: object, value: Any) -> None:
    check_total_timeout(value)


@attrs.frozen
class CallOptions:
    """What a view may change: per-call settings."""

    #: The stack's Timeout, or None for the HTTP client's own.
    timeout: TimeoutLike | None = None
    retry: Retry = attrs.field(default=DEFAULT_RETRY, validator=_check_retry)
    total_timeout: float | None = attrs.field(default=None, validator=_check_total)

    def evolve(
        self,
        stack: Stack,
        *,
        timeout: object = NOT_GIVEN,
        retry: object = NOT_GIVEN,
        max_retries: object = NOT_GIVEN,
        total_timeout: object = NOT_GIVEN,
    ) -> CallOptions:
        """These settings with those given changed, each checked.

        Raises:
            TypeError, ValueError: A bad setting, or both *retry* and *max_retries*.
        """
        changes: dict[str, Any] = {}
        if not isinstance(timeout, NotGiven):
            changes["timeout"] = check_timeout(stack, timeout)
        if not isinstance(retry, NotGiven) and not isinstance(max_retries, NotGiven):
            raise TypeError("give retry= or max_retries=, not both")
        if not isinstance(retry, NotGiven):
            changes["retry"] = retry
        elif not isinstance(max_retries, NotGiven):
            changes["retry"] = attrs.evolve(
                self.retry,
                max_attempts=Retry.of_max_retries(
                    cast("int", max_retries)
                ).max_attempts,
            )
        if not isinstance(total_timeout, NotGiven):
            changes["total_timeout"] = check_total_timeout(total_timeout)
        return attrs.evolve(self, **changes) if changes else self
