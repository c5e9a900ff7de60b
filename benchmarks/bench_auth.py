"""Per-request cost of TeletrackerAuth on a valid session vs a static-header auth.

Both run through the same httpx.AsyncClient over httpx.MockTransport, in alternating
rounds so that machine noise hits both alike; the figure is the ratio of medians.

    uv run python -m benchmarks.bench_auth [--requests N] [--rounds R]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Generator

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


def _ok(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"success": True, "data": []})


async def _round(auth: httpx.Auth, requests: int, concurrency: int) -> float:
    """Seconds per request for *requests* requests at *concurrency*."""
    async with httpx.AsyncClient(
        auth=auth, transport=httpx.MockTransport(_ok), base_url=BASE
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


async def _logged_in_auth() -> TeletrackerAuth:
    fake = FakeTeletracker(users={"bench": "bench-pw"})
    auth = TeletrackerAuth("bench", "bench-pw", base_url=BASE)
    async with httpx.AsyncClient(auth=auth, transport=fake.transport()) as client:
        await client.post(f"{BASE}/echo", content=b"warm")
    return auth


async def measure(requests: int, rounds: int, concurrency: int) -> dict[str, float]:
    """Median seconds per request for both auths, and their ratio."""
    auth = await _logged_in_auth()
    static = StaticBearer("static-token")
    ours: list[float] = []
    floor: list[float] = []
    await _round(auth, requests // 10, concurrency)  # warm both paths
    await _round(static, requests // 10, concurrency)
    for _ in range(rounds):
        ours.append(await _round(auth, requests, concurrency))
        floor.append(await _round(static, requests, concurrency))
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
