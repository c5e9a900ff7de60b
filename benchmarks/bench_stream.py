"""Workload 6: a long report pulled through a sliding window, against skewed latency.

    uv run python -m benchmarks.bench_stream

96 one-day windows, concurrency 8, one answer in ten taking 500 ms and the rest 50 ms
(the answer times are the fake server's, per day). Measured in the same run:

- **ideal**: a plain sliding window of 8 (a semaphore and one task per window,
  records kept in whatever order they arrive, all of them in memory): the floor;
- **stream**: ``stream_call_data`` with its default bound (``ahead`` = 2 x 8
  windows fetched or in flight past the one being read), records in date order;
- **stream, ahead 4 x 8** and **unbounded** (``ahead`` = every window): what the
  bound costs under this skew, and what the stream itself costs over the floor;
- **batches**: ``iter_call_data``, 8 windows at a time, each batch waiting for its
  slowest.

Every figure is a wall time for the whole pull (median of ``rounds``), and a ratio to
the ideal of the same round.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

import anyio

from teletracker_async import TeletrackerClient
from teletracker_async.testing import FakeRequest, FakeTeletracker

__all__ = ["measure", "rows"]

START = date(2026, 1, 1)


async def _ideal(client: TeletrackerClient, days: list[date], width: int) -> int:
    """A plain sliding window: a semaphore and one task per window, any order."""
    gate = anyio.Semaphore(width)
    got: list[Any] = []

    async def one(day: date) -> None:
        async with gate:
            got.extend(await client.call_data(day, day))

    async with anyio.create_task_group() as tg:
        for day in days:
            tg.start_soon(one, day)
    return len(got)


async def _stream(
    client: TeletrackerClient, days: list[date], width: int, ahead: int | None
) -> int:
    count = 0
    pull = client.stream_call_data(days[0], days[-1], concurrency=width, ahead=ahead)
    async with pull as stream:
        async for _ in stream:
            count += 1
    return count


async def _batches(client: TeletrackerClient, days: list[date], width: int) -> int:
    count = 0
    async for _ in client.iter_call_data(days[0], days[-1], concurrency=width):
        count += 1
    return count


async def measure(
    windows: int = 96,
    concurrency: int = 8,
    *,
    slow_share: float = 0.1,
    slow_s: float = 0.5,
    fast_s: float = 0.05,
    rounds: int = 3,
    seed: int = 11,
) -> dict[str, Any]:
    """Time the pulls of the same range; the figures and ratios as a dict."""
    days = [START + timedelta(days=d) for d in range(windows)]
    slow = set(random.Random(seed).sample(days, round(windows * slow_share)))
    fake = FakeTeletracker(users={"bench": "bench-pw"}, records_per_day=24)

    def latency(request: FakeRequest) -> float:
        day = date.fromisoformat(request.query["start_date"])
        return slow_s if day in slow else fast_s

    fake.set_latency("data", latency)
    width = concurrency
    pulls: dict[str, Callable[[TeletrackerClient], Awaitable[int]]] = {
        "ideal": lambda c: _ideal(c, days, width),
        "stream": lambda c: _stream(c, days, width, None),
        "stream_ahead4x": lambda c: _stream(c, days, width, 4 * width),
        "stream_unbounded": lambda c: _stream(c, days, width, windows),
        "batches": lambda c: _batches(c, days, width),
    }
    timings: dict[str, list[float]] = {name: [] for name in pulls}
    async with TeletrackerClient(
        "bench", "bench-pw", transport=fake.transport(), base_url="https://bench.test"
    ) as client:
        await client.session()
        for _ in range(rounds):
            for name, pull in pulls.items():
                started = time.perf_counter()
                count = await pull(client)
                timings[name].append(time.perf_counter() - started)
                if count != windows * fake.records_per_day:
                    raise AssertionError(f"{name}: {count} records")
    result: dict[str, Any] = {
        "windows": windows,
        "concurrency": concurrency,
        "slow_windows": len(slow),
        "slow_ms": slow_s * 1000,
        "fast_ms": fast_s * 1000,
        "rounds": rounds,
    }
    for name, values in timings.items():
        result[f"{name}_s"] = statistics.median(values)
        result[f"{name}_vs_ideal"] = statistics.median(
            t / i for t, i in zip(values, timings["ideal"], strict=True)
        )
    result["batches_vs_stream"] = result["batches_s"] / result["stream_s"]
    return result


def rows(result: dict[str, Any] | None) -> list[str]:
    """The Markdown table of workload 6 (nothing when it was not run)."""
    if not result:
        return []
    r = result
    met = "met" if r["stream_unbounded_vs_ideal"] <= 1.1 else "**missed**"
    return [
        (
            f"Sliding-window report pull (6.): {r['windows']} one-day windows, "
            f"concurrency {r['concurrency']}, {r['slow_windows']} answers of "
            f"{r['slow_ms']:.0f} ms and the rest {r['fast_ms']:.0f} ms; wall time "
            f"(median of {r['rounds']}) and ratio to an ideal unordered, unbounded "
            "sliding window measured in the same run:"
        ),
        "",
        "| pull | seconds | vs ideal | goal | |",
        "|---|---:|---:|---:|---|",
        f"| ideal sliding window (unordered, all in memory) | {r['ideal_s']:.2f} | 1.000 | | |",
        f"| `stream_call_data`, ahead = {r['windows']} (unbounded) | {r['stream_unbounded_s']:.2f} | {r['stream_unbounded_vs_ideal']:.3f} | ≤ 1.1 | {met} |",
        f"| `stream_call_data`, ahead = {4 * r['concurrency']} | {r['stream_ahead4x_s']:.2f} | {r['stream_ahead4x_vs_ideal']:.3f} | | |",
        f"| `stream_call_data`, default ahead = {2 * r['concurrency']} | {r['stream_s']:.2f} | {r['stream_vs_ideal']:.3f} | | |",
        f"| `iter_call_data` (batches) | {r['batches_s']:.2f} | {r['batches_vs_ideal']:.3f} | | |",
        "",
    ]


def main() -> None:
    result = anyio.run(measure, backend="asyncio")
    print("\n".join(rows(result)))


if __name__ == "__main__":
    main()
