"""The fault knobs: failures, garbage, delays, drops and gates queued per endpoint,
and the in-flight counts of logins and refreshes."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import anyio
import attrs

from teletracker_async.testing._answers import FakeStats, json_answer, refusal_body
from teletracker_async.testing._clock import FakeGate
from teletracker_async.testing._wire import Dropped, FakeRequest, FakeResponse

__all__ = ["BUILT_IN", "Endpoint", "FaultRules"]

#: The names of the built-in endpoints, as the fault knobs take them. An endpoint
#: added with :meth:`FakeTeletracker.add_endpoint` is named by its path (or ``name=``).
Endpoint = Literal["login", "refresh", "data"]
BUILT_IN = ("login", "refresh", "data")


@attrs.define
class _Fault:
    kind: Literal["status", "delay", "drop", "gate", "garbage"]
    status: int = 500
    body: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    seconds: float = 0.0
    gate: FakeGate | None = None
    content: bytes = b""


class FaultRules:
    """The fault knobs of :class:`FakeTeletracker` and the guard every endpoint's
    work runs under."""

    stats: FakeStats
    _faults: dict[str, deque[_Fault]]
    _latency: dict[str, Callable[[FakeRequest], float]]

    def _push(self, endpoint: str, fault: _Fault, times: int) -> None:
        if endpoint not in self._faults:
            raise ValueError(
                f"endpoint must be one of {tuple(self._faults)}, got {endpoint!r}"
            )
        self._faults[endpoint].extend([fault] * times)

    def fail_next(
        self,
        endpoint: Endpoint | str,
        status: int = 500,
        *,
        times: int = 1,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next *times* requests to *endpoint* with *status* and *body*.

        *endpoint* is ``"login"``, ``"refresh"``, ``"data"`` (the call-data and echo
        endpoints) or the name of an endpoint added with :meth:`add_endpoint`; so
        for every knob below.
        """
        payload = body if body is not None else refusal_body("Injected failure")
        self._push(
            endpoint, _Fault("status", status, payload, dict(headers or {})), times
        )

    def garble_next(
        self, endpoint: Endpoint | str, content: bytes, *, status: int = 200
    ) -> None:
        """Answer the next request to *endpoint* with raw *content* (an HTML page...)."""
        self._push(endpoint, _Fault("garbage", status, content=content), 1)

    def delay_next(
        self, endpoint: Endpoint | str, seconds: float, *, times: int = 1
    ) -> None:
        """Sleep *seconds* (real time) before handling the next requests."""
        self._push(endpoint, _Fault("delay", seconds=seconds), times)

    def set_latency(
        self,
        endpoint: Endpoint | str,
        seconds: Callable[[FakeRequest], float] | None,
    ) -> None:
        """Sleep ``seconds(request)`` (real time) before handling each request to
        *endpoint*, until set to None: a server whose answers take their time, per
        request (a slow report day, say), unlike the one-off :meth:`delay_next`."""
        if endpoint not in self._faults:
            raise ValueError(
                f"endpoint must be one of {tuple(self._faults)}, got {endpoint!r}"
            )
        if seconds is None:
            self._latency.pop(endpoint, None)
        else:
            self._latency[endpoint] = seconds

    def drop_next(self, endpoint: Endpoint | str, *, times: int = 1) -> None:
        """Drop the connection of the next requests without answering."""
        self._push(endpoint, _Fault("drop"), times)

    def pause_next(
        self, endpoint: Endpoint | str, *, after: bool = False, times: int = 1
    ) -> FakeGate:
        """Hold the next *times* requests to *endpoint* at one gate.

        The gate holds them before the server's work, or with ``after=True`` after
        it (the work is done, the answer not yet sent).
        """
        gate = FakeGate(after=after, expected=times)
        self._push(endpoint, _Fault("gate", gate=gate), times)
        return gate

    def clear_faults(self, endpoint: Endpoint | str | None = None) -> None:
        """Forget the faults still queued for *endpoint*, or for every endpoint."""
        if endpoint is None:
            for queue in self._faults.values():
                queue.clear()
        elif endpoint in self._faults:
            self._faults[endpoint].clear()
        else:
            raise ValueError(
                f"endpoint must be one of {tuple(self._faults)}, got {endpoint!r}"
            )

    async def _guarded(
        self,
        endpoint: str,
        request: FakeRequest,
        work: Callable[[FakeRequest], FakeResponse | Awaitable[FakeResponse]],
    ) -> FakeResponse:
        fault = self._faults[endpoint].popleft() if self._faults[endpoint] else None
        self._in_flight(endpoint, +1)
        try:
            if fault is not None:
                self.stats.injected_faults += 1
                if fault.kind == "delay":
                    await anyio.sleep(fault.seconds)
                elif fault.kind == "drop":
                    raise Dropped
                elif fault.kind == "status":
                    return json_answer(fault.body, fault.status, fault.headers)
                elif fault.kind == "garbage":
                    return FakeResponse(
                        fault.status, fault.content, {"content-type": "text/html"}
                    )
                elif fault.gate is not None and not fault.gate.after:
                    await fault.gate._hold()  # noqa: SLF001
            latency = self._latency.get(endpoint)
            if latency is not None:
                await anyio.sleep(latency(request))
            response = work(request)
            if not isinstance(response, FakeResponse):
                response = await response
            if fault is not None and fault.gate is not None and fault.gate.after:
                await fault.gate._hold()  # noqa: SLF001
            return response
        finally:
            self._in_flight(endpoint, -1)

    def _in_flight(self, endpoint: str, change: int) -> None:
        """Track logins and refreshes being handled now, and their peaks."""
        stats = self.stats
        if endpoint == "login":
            stats.concurrent_logins += change
            stats.max_concurrent_logins = max(
                stats.max_concurrent_logins, stats.concurrent_logins
            )
        elif endpoint == "refresh":
            stats.concurrent_refreshes += change
            stats.max_concurrent_refreshes = max(
                stats.max_concurrent_refreshes, stats.concurrent_refreshes
            )
