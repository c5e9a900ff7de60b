"""``demo --workers N``: a fleet of processes sharing one session through a store.

The fake is served in its own process; each worker is a fresh Python process (see
:mod:`.fleet_worker`) that runs coroutines against it for a while, and everyone's
counters are gathered. Workers alternate asyncio and trio when trio is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import attrs
import httpx

from teletracker_async._cli.common import (
    DEMO_PASSWORD,
    DEMO_USER,
    EXIT_FAILED,
    EXIT_OK,
    CommandError,
    console,
)
from teletracker_async._cli.fleet_worker import ENV_PASSWORD
from teletracker_async._cli.serve import served_elsewhere
from teletracker_async.stores import StoreStats

if TYPE_CHECKING:
    import rich.console

__all__ = ["WORKER", "FleetRun", "WorkerReport", "available_backends", "run_fleet"]

#: How the fleet starts a worker: the package's own, without faults.
WORKER = (sys.executable, "-m", "teletracker_async._cli.fleet_worker")


def available_backends() -> tuple[str, ...]:
    """asyncio, and trio when it is installed (no extra of this package needs it)."""
    if importlib.util.find_spec("trio") is None:
        return ("asyncio",)
    return ("asyncio", "trio")


@attrs.frozen
class WorkerReport:
    """What one worker process did."""

    pid: int
    backend: str
    ok: int
    failed: Counter[str]
    logins: int
    refreshes: int
    store: StoreStats
    #: The slowest successful request, in seconds (a wait for a renewal shows here).
    max_latency: float = 0.0
    exit_code: int = 0

    @classmethod
    def from_json(cls, line: str, exit_code: int) -> WorkerReport:
        data = json.loads(line)
        return cls(
            pid=data["pid"],
            backend=data["backend"],
            ok=data["ok"],
            failed=Counter(data["failed"]),
            logins=data["logins"],
            refreshes=data["refreshes"],
            store=StoreStats(**data["store"]),
            max_latency=data["max_latency"],
            exit_code=exit_code,
        )


@attrs.frozen
class FleetRun:
    """A whole fleet run: every worker's report and the server's own counters."""

    workers: list[WorkerReport]
    killed: int  # workers that died by SIGKILL (a test's injected fault)
    server: dict[str, int]
    elapsed: float
    lifetime: float

    @property
    def failed(self) -> int:
        return sum(sum(w.failed.values()) for w in self.workers)

    @property
    def ok(self) -> int:
        return sum(w.ok for w in self.workers)

    @property
    def max_latency(self) -> float:
        return max((w.max_latency for w in self.workers), default=0.0)

    def store_calls_per_process_per_lifetime(self) -> float:
        lifetimes = max(self.elapsed / self.lifetime, 1.0)
        calls = sum(w.store.calls for w in self.workers)
        return calls / max(len(self.workers), 1) / lifetimes

    def problems(self) -> list[str]:
        """What a fleet must never do, found in this run."""
        found = []
        if self.failed:
            found.append(f"{self.failed} requests failed")
        if self.server["reuse_attempts"]:
            found.append(f"{self.server['reuse_attempts']} refresh tokens reused")
        if self.server["premature_refreshes"]:
            found.append("a token was refreshed more than once")
        if self.server["max_concurrent_refreshes"] > 1:
            found.append("two refreshes ran at once")
        return found


def run_fleet(
    url: str,
    *,
    username: str,
    password: str,
    store: str,
    workers: int,
    coroutines: int,
    seconds: float,
    lifetime: float,
    backends: Sequence[str] | None = None,
    env: dict[str, str] | None = None,
    during: Callable[[], None] | None = None,
    worker: Sequence[str] = WORKER,
) -> FleetRun:
    """Run *workers* processes against the fake at *url*, sharing *store*.

    *backends* alternate between the workers (default: :func:`available_backends`);
    *worker* is the command that starts one (a test's wraps the package's with its
    faults, set through *env*); *during* runs in this process while they run.
    """
    chosen = tuple(backends or available_backends())
    before = _server_stats(url)  # the fake may have served earlier runs
    started = time.monotonic()
    processes = [
        _start_worker(
            [*worker, "--url", url, "--username", username, "--store", store,
             "--backend", chosen[index % len(chosen)],
             "--coroutines", str(coroutines), "--seconds", repr(seconds)],
            {**os.environ, **(env or {}), ENV_PASSWORD: password},
        )
        for index in range(workers)
    ]  # fmt: skip
    try:
        if during is not None:
            during()
        reports, killed = _collect(processes, seconds + 120)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    elapsed = time.monotonic() - started
    after = _server_stats(url)
    # This run's counts; peaks (max_*) are the server's, since it started.
    server = {
        name: value if name.startswith("max_") else value - before.get(name, 0)
        for name, value in after.items()
    }
    return FleetRun(reports, killed, server, elapsed, lifetime)


def _start_worker(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - a worker module, fixed arguments
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )


def _collect(
    processes: list[subprocess.Popen[str]], timeout: float
) -> tuple[list[WorkerReport], int]:
    """Each worker's report, and how many were killed by SIGKILL."""
    reports: list[WorkerReport] = []
    killed = 0
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        if process.returncode == -signal.SIGKILL:
            killed += 1
            continue
        lines = out.strip().splitlines()
        if process.returncode != 0 or not lines:
            raise RuntimeError(
                f"fleet worker {process.pid} exited with {process.returncode}: "
                f"{_tail(err)}"
            )
        reports.append(WorkerReport.from_json(lines[-1], process.returncode))
    return reports, killed


def _tail(text: str, limit: int = 2000) -> str:
    """The last whole lines of *text* that fit in *limit* characters (a traceback's
    end says what went wrong; a cut through a word says nothing)."""
    kept: list[str] = []
    size = 0
    for line in reversed(text.strip().splitlines()):
        size += len(line) + 1
        if kept and size > limit:
            break
        kept.append(line)
    return "\n".join(reversed(kept))


def _server_stats(url: str, *, patience: float = 10.0) -> dict[str, int]:
    """The served fake's counters; it may still be starting to listen."""
    deadline = time.monotonic() + patience
    while True:
        try:
            answer = httpx.get(f"{url}/_fake/stats", timeout=10)
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            continue
        data: dict[str, int] = answer.json()["data"]
        return data


# -- the command ---------------------------------------------------------------------------


@contextlib.contextmanager
def _fleet_store(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    """The store the demo's fleet shares, as (spec for the workers, description)."""
    kind = args.store or "file"
    if kind == "file":
        with tempfile.TemporaryDirectory(prefix="teletracker-fleet-") as directory:
            yield f"file:{directory}/store", "a file store (flock) in a temp dir"
        return
    if args.redis_url:
        yield args.redis_url, "Redis at the given URL"
        return
    from teletracker_async._cli.local_redis import LocalRedis  # noqa: PLC0415

    try:
        server = LocalRedis()
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    with server:
        yield server.url, f"its own redis-server on {server.socket}"


def fleet_demo(args: argparse.Namespace) -> int:
    """``demo --workers N``: N processes, one session, through a store."""
    err = console(stderr=True)
    coroutines = max(1, args.concurrency // args.workers)
    backends = available_backends()
    with (
        _fleet_store(args) as (store, described),
        served_elsewhere(args.lifetime) as url,
    ):
        err.print(
            f"Serving FakeTeletracker on 127.0.0.1; {args.workers} processes x "
            f"{coroutines} coroutines for {args.seconds:g} s share one session "
            f"through {described}; tokens live {args.lifetime:g} s."
        )
        if "trio" not in backends:
            err.print("trio is not installed: every worker runs asyncio.")
        try:
            run = run_fleet(
                url,
                username=DEMO_USER,
                password=DEMO_PASSWORD,
                store=store,
                workers=args.workers,
                coroutines=coroutines,
                seconds=args.seconds,
                lifetime=args.lifetime,
                backends=backends,
            )
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
    return report_fleet(run, console(stderr=False))


def report_fleet(run: FleetRun, out: rich.console.Console) -> int:
    """Print the fleet's table and verdict; the exit code."""
    import rich.table  # noqa: PLC0415

    server = run.server
    expiries = max(run.elapsed / run.lifetime, 1.0)
    backends = Counter(w.backend for w in run.workers)
    table = rich.table.Table(title="One session, many processes", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("processes (asyncio / trio)", f"{backends['asyncio']} / {backends['trio']}"),
        ("requests ok", f"{run.ok}"),
        ("requests failed", f"{run.failed}"),
        ("logins", f"{server['logins']}"),
        ("refreshes", f"{server['refreshes']}"),
        ("token lifetimes elapsed", f"{expiries:.1f}"),
        ("refreshes per lifetime", f"{server['refreshes'] / expiries:.2f}"),
        ("tokens refreshed twice", f"{server['premature_refreshes']}"),
        ("refresh-token reuse attempts", f"{server['reuse_attempts']}"),
        ("sessions adopted from the store", f"{sum(w.store.adopted for w in run.workers)}"),
        ("store calls per process per lifetime", f"{run.store_calls_per_process_per_lifetime():.1f}"),
    ]  # fmt: skip
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
    problems = run.problems()
    if problems:
        out.print(f"FAIL: {'; '.join(problems)}")
        return EXIT_FAILED
    out.print(
        f"OK: {len(run.workers)} processes shared {server['logins']} login and "
        f"{server['refreshes']} refreshes; no refresh token reused, none refreshed "
        "twice, no request failed."
    )
    return EXIT_OK
