"""What passes through a door: a request, an answer, and the handler between them.

The doors (:mod:`._doors`) and the rules (:mod:`._rules`) both import this module and
nothing of each other's but :data:`Handler`, so the doors know no API rule.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

__all__ = ["Dropped", "FakeRequest", "FakeResponse", "Handler"]


@attrs.frozen
class FakeRequest:
    """A request as the fake sees it, whichever door it came through."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes = b""


@attrs.frozen
class FakeResponse:
    """The fake's answer: status, headers and a body (JSON unless said otherwise)."""

    status: int
    body: bytes
    headers: Mapping[str, str] = attrs.field(
        factory=lambda: {"content-type": "application/json"}
    )

    @classmethod
    def json(
        cls, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> FakeResponse:
        """An answer whose body is *payload* encoded as JSON.

        Args:
            payload: Anything ``json.dumps`` takes.
            status: The HTTP status.
            headers: More headers; ``content-type`` is ``application/json``.

        Returns:
            The answer.
        """
        merged = {"content-type": "application/json"}
        if headers:
            merged.update(headers)
        return cls(status, json.dumps(payload).encode(), merged)


class Dropped(Exception):  # noqa: N818 - a signal, not an error
    """The fake drops the connection instead of answering."""


#: What a door calls with each request: the fake's rules, or anything that answers.
Handler = Callable[[FakeRequest], Awaitable[FakeResponse]]
