"""Per-request cost of TeletrackerAuth on a valid session vs a static-header auth.

Both run through the same AsyncClient over MockTransport, in alternating rounds so that
machine noise hits both alike; the figure is the ratio of medians. ``stack="httpx2"``
measures the httpx2 adapter against a static header on httpx2 the same way.

    uv run python -m benchmarks.bench_auth [--requests N] [--rounds R]
"""

from __future__ import annotations

import argparse
import importlib
import platform
import statistics
import time
from collections.abc import Generator
from typing import Any

import anyio
import httpx

from teletracker_async import TeletrackerAuth
from teletracker_async.testing import FakeTeletracker

BASE = "https://api.teletracker.test"


class StaticBearer(httpx.Auth):
    """The floor: what any auth must at least do, set one header."""

    def __init__(self, token: str) -> None:
        self._value = f"Bearer {token}"

    def auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._value
        yield request


def _static(stack: str, token: str) -> Any:
    """A static-header auth of *stack* (httpx's is StaticBearer)."""
    if stack == "httpx":
        return StaticBearer(token)
    module: Any = importlib.import_module(stack)

    class Static(module.Auth):  # type: ignore[misc]
        def auth_flow(self, request: Any) -> Generator[Any, Any, None]:
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    return Static()


async def _round(auth: Any, requests: int, concurrency: int, stack: str) -> float:
    """Seconds per request for *requests* requests at *concurrency*."""
    module: Any = importlib.import_module(stack)

    def ok(_: Any) -> Any:
        return module.Response(200, json={"success": True, "data": []})

    async with module.AsyncClient(
        auth=auth, transport=module.MockTransport(ok), base_url=BASE
    ) as client:
        per_task = max(1, requests // concurrency)

        async def worker() -> None:
            for _ in range(per_task):
                await client.get("/reports/call-data")

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker)
        return (time.perf_counter() - start) / (per_task * concurrency)


async def _logged_in_auth(stack: str) -> Any:
    fake = FakeTeletracker(users={"bench": "bench-pw"})
    auth = TeletrackerAuth("bench", "bench-pw", base_url=BASE)
    async with httpx.AsyncClient(auth=auth, transport=fake.transport()) as client:
        await client.post(f"{BASE}/echo", content=b"warm")
    if stack == "httpx":
        return auth
    from teletracker_async import httpx2 as adapters  # noqa: PLC0415

    return adapters.TeletrackerAuth.sharing(auth)  # the same session, on httpx2


async def measure(
    requests: int, rounds: int, concurrency: int, stack: str = "httpx"
) -> dict[str, float]:
    """Median seconds per request for both auths on *stack*, and their ratio."""
    auth = await _logged_in_auth(stack)
    static = _static(stack, "static-token")
    ours: list[float] = []
    floor: list[float] = []
    await _round(auth, requests // 10, concurrency, stack)  # warm both paths
    await _round(static, requests // 10, concurrency, stack)
    for _ in range(rounds):
        ours.append(await _round(auth, requests, concurrency, stack))
        floor.append(await _round(static, requests, concurrency, stack))
    ours_med, floor_med = statistics.median(ours), statistics.median(floor)
    return {
        "teletracker_us": ours_med * 1e6,
        "static_us": floor_med * 1e6,
        "ratio": ours_med / floor_med,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, httpx {httpx.__version__}"
    )
    print("| coroutines | TeletrackerAuth µs/req | static header µs/req | ratio |")
    print("|---:|---:|---:|---:|")
    for concurrency in (1, 100):
        result = anyio.run(measure, args.requests, args.rounds, concurrency)
        print(
            f"| {concurrency} | {result['teletracker_us']:.1f} | "
            f"{result['static_us']:.1f} | {result['ratio']:.3f} |"
        )


if __name__ == "__main__":
    main()
