"""Workload 6: a long report pulled through a sliding window, against skewed latency.

    uv run python -m benchmarks.bench_stream

96 one-day windows, concurrency 8, one answer in ten taking 500 ms and the rest 50 ms
(the answer times are the fake server's, per day). Measured in the same run:

- **ideal**: a plain sliding window of 8 (a semaphore and one task per window,
  records kept in whatever order they arrive, all of them in memory): the floor;
- **stream**: ``stream_call_data`` with its default bound (``ahead`` =
  ``STREAM_AHEAD_PER_REQUEST`` x 8 windows fetched or in flight past the one being
  read), records in date order;
- **stream, ahead 2, 3, 4, 6 x 8** and **unbounded** (``ahead`` = every window): what
  the bound costs under this skew (how the default was chosen), and what the stream
  itself costs over the floor;
- **unordered**: ``ordered=False`` with the default bound, each window handed out
  as it arrives;
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
from teletracker_async._config import STREAM_AHEAD_PER_REQUEST
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


#: The ``ahead`` multiples of ``concurrency`` measured besides the default.
AHEAD_FACTORS = (2, 3, 4, 6)


async def _stream(
    client: TeletrackerClient,
    days: list[date],
    width: int,
    ahead: int | None,
    *,
    ordered: bool = True,
) -> int:
    count = 0
    pull = client.stream_call_data(
        days[0], days[-1], concurrency=width, ahead=ahead, ordered=ordered
    )
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
        "stream_unordered": lambda c: _stream(c, days, width, None, ordered=False),
        "stream_unbounded": lambda c: _stream(c, days, width, windows),
        "batches": lambda c: _batches(c, days, width),
    }
    for factor in AHEAD_FACTORS:
        ahead = factor * width
        pulls[f"stream_ahead{factor}x"] = (
            lambda c, ahead=ahead: _stream(c, days, width, ahead)  # type: ignore[misc]
        )
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
        "default_ahead": STREAM_AHEAD_PER_REQUEST * concurrency,
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
    width = r["concurrency"]
    default = r.get("default_ahead", 2 * width)
    met = "met" if r["stream_unbounded_vs_ideal"] <= 1.1 else "**missed**"
    near = "met" if r["stream_vs_ideal"] <= 1.15 else "**missed**"

    def row(label: str, key: str, goal: str = "", verdict: str = "") -> str:
        return (
            f"| {label} | {r[key + '_s']:.2f} | {r[key + '_vs_ideal']:.3f} "
            f"| {goal} | {verdict} |"
        )

    lines = [
        (
            f"Sliding-window report pull (6.): {r['windows']} one-day windows, "
            f"concurrency {width}, {r['slow_windows']} answers of "
            f"{r['slow_ms']:.0f} ms and the rest {r['fast_ms']:.0f} ms; wall time "
            f"(median of {r['rounds']}) and ratio to an ideal unordered, unbounded "
            "sliding window measured in the same run:"
        ),
        "",
        "| pull | seconds | vs ideal | goal | |",
        "|---|---:|---:|---:|---|",
        (
            "| ideal sliding window (unordered, all in memory) "
            f"| {r['ideal_s']:.2f} | 1.000 | | |"
        ),
        row(
            f"`stream_call_data`, ahead = {r['windows']} (unbounded)",
            "stream_unbounded",
            "≤ 1.1",
            met,
        ),
    ]
    for factor in AHEAD_FACTORS:
        key = f"stream_ahead{factor}x"
        if key + "_s" in r and factor * width != default:
            lines.append(row(f"`stream_call_data`, ahead = {factor * width}", key))
    lines.append(
        row(f"`stream_call_data`, default ahead = {default}", "stream", "≤ 1.15", near)
    )
    if "stream_unordered_s" in r:
        lines.append(
            row(
                f"`stream_call_data`, `ordered=False`, ahead = {default}",
                "stream_unordered",
            )
        )
    lines += [row("`iter_call_data` (batches)", "batches"), ""]
    return lines


def main() -> None:
    result = anyio.run(measure, backend="asyncio")
    print("\n".join(rows(result)))


if __name__ == "__main__":
    main()
