"""``demo``: pull call data from a local fake under load, one session, proved.

With ``--workers N`` the load comes from N processes sharing the session through a
token store (:mod:`.fleet`).
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import httpx

from teletracker_async._cli.common import (
    DEMO_PASSWORD,
    DEMO_USER,
    EXIT_FAILED,
    EXIT_OK,
    console,
    require_extras,
)
from teletracker_async._cli.fleet import fleet_demo
from teletracker_async._cli.serve import served_elsewhere
from teletracker_async._client import TeletrackerClient
from teletracker_async._errors import TeletrackerError
from teletracker_async.testing import FakeStats

if TYPE_CHECKING:
    import rich.console

__all__ = ["DemoResult", "demo", "report_demo"]


@attrs.define
class DemoResult:
    """What the demo measured, with the fake's own counters."""

    errors: Counter[str]
    latencies: list[float]  # one per request that succeeded
    elapsed: float
    stats: FakeStats
    lifetime: float
    concurrency: int

    @property
    def ok(self) -> int:
        """Requests that succeeded."""
        return len(self.latencies)

    @property
    def failed(self) -> int:
        """Requests that raised."""
        return sum(self.errors.values())

    def percentile(self, fraction: float) -> float:
        """The latency at *fraction* (0..1) in milliseconds, 0 when nothing ran."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)
        return ordered[max(index, 0)] * 1000

    def problems(self) -> list[str]:
        """Why the demo failed, or nothing when one session held."""
        found = []
        if self.failed:
            found.append(f"{self.failed} requests failed")
        if self.stats.max_concurrent_refreshes > 1 or self.stats.premature_refreshes:
            found.append("a token was refreshed more than once")
        if self.stats.reuse_attempts:
            found.append(f"{self.stats.reuse_attempts} refresh tokens reused")
        return found


async def pull(
    url: str, args: argparse.Namespace, progress: Any, task: Any
) -> DemoResult:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(28)]
    per_worker, extra = divmod(args.requests, args.concurrency)
    limits = httpx.Limits(
        max_connections=args.connections, max_keepalive_connections=args.connections
    )
    async with TeletrackerClient(
        DEMO_USER, DEMO_PASSWORD, base_url=url, limits=limits
    ) as client:

        async def worker(index: int, count: int) -> None:
            for i in range(count):
                day = days[(index + i) % len(days)]
                started = time.perf_counter()
                try:
                    await client.call_data(day, day)
                except TeletrackerError as exc:
                    errors[type(exc).__name__] += 1
                else:
                    latencies.append(time.perf_counter() - started)
                progress.advance(task)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for index in range(args.concurrency):
                tg.start_soon(worker, index, per_worker + (index < extra))
        elapsed = time.perf_counter() - started
        # The server's own counters: what it saw, not what the client believes.
        served = await client.request_json("GET", "/_fake/stats")
    return DemoResult(
        errors=errors,
        latencies=latencies,
        elapsed=elapsed,
        stats=FakeStats(**served["data"]),
        lifetime=args.lifetime,
        concurrency=args.concurrency,
    )


def demo(args: argparse.Namespace) -> int:
    """Run the demo (one process, or a fleet with ``--workers``); the exit code."""
    require_extras()
    if args.workers is not None:
        return fleet_demo(args)
    import rich.progress  # noqa: PLC0415

    err = console(stderr=True)
    out = console(stderr=False)
    err.print(
        f"Serving FakeTeletracker on 127.0.0.1; {args.requests} requests from "
        f"{args.concurrency} coroutines, tokens living {args.lifetime:g} s."
    )
    with (
        served_elsewhere(args.lifetime) as url,
        rich.progress.Progress(
            rich.progress.TextColumn("pulling call data"),
            rich.progress.BarColumn(),
            rich.progress.MofNCompleteColumn(),
            rich.progress.TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task("pull", total=args.requests)
        result = anyio.run(pull, url, args, progress, task, backend="asyncio")
    return report_demo(result, args.connections, out)


def report_demo(result: DemoResult, connections: int, out: rich.console.Console) -> int:
    """Print the demo's table and verdict; the exit code."""
    import rich.table  # noqa: PLC0415

    table = rich.table.Table(title="One session under load", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    stats = result.stats
    rows = [
        ("requests ok", f"{result.ok}"),
        ("requests failed", f"{result.failed}"),
        ("coroutines / connections", f"{result.concurrency} / {connections}"),
        ("logins", f"{stats.logins}"),
        ("refreshes", f"{stats.refreshes}"),
        ("token lifetimes elapsed", f"{result.elapsed / result.lifetime:.1f}"),
        ("tokens refreshed twice", f"{stats.premature_refreshes}"),
        ("most refreshes at once", f"{stats.max_concurrent_refreshes}"),
        ("refresh-token reuse attempts", f"{stats.reuse_attempts}"),
        ("requests refused, then retried", f"{stats.rejected_requests}"),
        ("p50 latency (with queueing)", f"{result.percentile(0.50):.1f} ms"),
        ("p99 latency (with queueing)", f"{result.percentile(0.99):.1f} ms"),
        ("requests per second", f"{(result.ok + result.failed) / result.elapsed:.0f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
    for name, count in sorted(result.errors.items()):
        out.print(f"  {count} x {name}")
    problems = result.problems()
    if problems:
        out.print(f"FAIL: {'; '.join(problems)}")
        return EXIT_FAILED
    out.print(
        f"OK: {result.ok} requests from {result.concurrency} coroutines shared "
        f"{stats.logins} login; {stats.refreshes} refreshes, each token refreshed at "
        "most once (early, at half its life), no refresh token reused."
    )
    return EXIT_OK
