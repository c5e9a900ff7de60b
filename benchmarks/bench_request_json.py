"""Per-call cost of ``TeletrackerClient.request_json`` against its floors.

The floor is what a user would write by hand with the same auth: ``client.get`` on a
plain ``httpx.AsyncClient``, ``.json()`` and a check that ``success`` is true. The
like-for-like floor is the same by hand on the client the SDK built (``ours.http``),
which keeps no cookie from an answer: the difference between the two floors is httpx's
cookie jar, and ours against the second is the client around the request alone (its
queue, cancellation check, retry loop, error mapping and envelope check). All run over
``MockTransport`` (no sockets) on one logged-in ``TeletrackerAuth``, with the SDK's
default limits, in rounds of rotating order (each in every position in turn); the
figures are ratios of medians.

    uv run python -m benchmarks.bench_request_json
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx

from teletracker_async import DEFAULT_LIMITS, TeletrackerAuth, TeletrackerClient
from teletracker_async.testing import FakeTeletracker

__all__ = ["measure", "render"]

BASE = "https://api.teletracker.test"
PATH = "/reports/call-data"
BODY = {"success": True, "data": [{"id": 1, "duration": 42}]}


def _answer(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=BODY)


async def _seconds_per_call(
    call: Callable[[], Awaitable[Any]], requests: int, concurrency: int
) -> float:
    per_task = max(1, requests // concurrency)

    async def worker() -> None:
        for _ in range(per_task):
            await call()

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return (time.perf_counter() - start) / (per_task * concurrency)


async def _auth() -> TeletrackerAuth:
    """An auth with a live session (logged in against the fake once)."""
    fake = FakeTeletracker(users={"bench": "bench-pw"})
    auth = TeletrackerAuth("bench", "bench-pw", base_url=BASE)
    async with httpx.AsyncClient(auth=auth, transport=fake.transport()) as client:
        await client.get(f"{BASE}/echo")
    return auth


async def measure(
    requests: int = 5000, rounds: int = 9, concurrency: int = 100
) -> dict[str, float]:
    """Median µs per call of ours and of both floors, and the ratios."""
    auth = await _auth()
    transport = httpx.MockTransport(_answer)
    async with (
        TeletrackerClient(auth=auth, transport=transport) as ours,
        httpx.AsyncClient(
            auth=auth, transport=transport, base_url=BASE, limits=DEFAULT_LIMITS
        ) as plain,
    ):

        async def via_sdk() -> Any:
            return await ours.request_json("GET", PATH)

        def by_hand(client: httpx.AsyncClient) -> Callable[[], Awaitable[Any]]:
            async def call() -> Any:
                # An absolute URL: the fastest way by hand (a path joined to the
                # client's base_url costs a few µs more, which would flatter ours).
                response = await client.get(BASE + PATH)
                response.raise_for_status()
                body = response.json()
                if not (isinstance(body, dict) and body.get("success") is True):
                    raise ValueError("not a success")
                return body

            return call

        runs: list[tuple[list[float], Callable[[], Awaitable[Any]]]] = [
            ([], via_sdk),
            ([], by_hand(plain)),
            ([], by_hand(ours.http)),  # type: ignore[arg-type]  # httpx, not httpx2
        ]
        for _, call in runs:
            await call()
        for index in range(rounds):
            # Each runs in every position in turn: what runs later inherits the
            # garbage (and the collections) of what ran before it.
            shift = index % len(runs)
            for times, call in runs[shift:] + runs[:shift]:
                times.append(await _seconds_per_call(call, requests, concurrency))
    ours_s, floor_s, same_s = (statistics.median(times) for times, _ in runs)
    return {
        "concurrency": concurrency,
        "sdk_us": ours_s * 1e6,
        "floor_us": floor_s * 1e6,
        "same_client_us": same_s * 1e6,
        "ratio": ours_s / floor_s,
        "same_client_ratio": ours_s / same_s,
    }


async def both(requests: int = 5000, rounds: int = 9) -> dict[str, Any]:
    """At 1 coroutine and at 100."""
    return {
        "c1": await measure(requests // 5, rounds, 1),
        "c100": await measure(requests, rounds, 100),
    }


def render(figures: dict[str, Any]) -> list[str]:
    lines = [
        (
            "`request_json` against `get` + `.json()` + a `success` check by hand, "
            "same auth, `MockTransport`, ratio of medians; by hand on a plain "
            "`httpx.AsyncClient` (the floor), and on the client the SDK built, which "
            "keeps no cookie jar (like for like: the client around the request alone):"
        ),
        "",
        (
            "| coroutines | request_json µs | by hand µs | ratio | goal | | "
            "by hand, SDK's client µs | ratio |"
        ),
        "|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for key in ("c1", "c100"):
        f = figures[key]
        met = "met" if f["ratio"] <= 1.03 else "**missed**"
        lines.append(
            f"| {f['concurrency']} | {f['sdk_us']:.1f} | {f['floor_us']:.1f} | "
            f"{f['ratio']:.3f} | ≤ 1.03 | {met} | {f['same_client_us']:.1f} | "
            f"{f['same_client_ratio']:.3f} |"
        )
    return [*lines, ""]


if __name__ == "__main__":
    print("\n".join(render(anyio.run(both, backend="asyncio"))))
