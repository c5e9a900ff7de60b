"""A fleet of processes sharing one session through a token store.

Used by ``teletracker-async demo --workers N`` and by the fleet test suite: the
fake is served in its own process, each worker is a fresh Python process (asyncio
and trio alternate) that runs coroutines against it for a while, and everyone's
counters are gathered. The workers are this module's ``__main__``; the password
reaches them in the environment, never on a command line (``ps`` shows those).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import attrs
import httpx

from teletracker_async._session.fleet import FleetLink
from teletracker_async._session.flow import TeletrackerAuth
from teletracker_async.stores import StoreStats, TokenStore

__all__ = ["FleetRun", "WorkerReport", "make_store", "run_fleet"]

DAY = {"start_date": "2026-01-01", "end_date": "2026-01-01"}
#: The worker reads the password from here.
ENV_PASSWORD = "TELETRACKER_PASSWORD"  # noqa: S105 - a variable name
#: Fault injection: the first worker to get a refresh answer creates this file and
#: kills itself with SIGKILL (the server rotated; the store never hears of it).
ENV_DIE_ONCE = "TELETRACKER_FLEET_DIE_ONCE"
#: For tests only: a shorter renewal lease (seconds), so that a killed holder's
#: lease runs out within a short test; exchange timeouts shrink with it.
ENV_LEASE_TTL = "TELETRACKER_FLEET_LEASE_TTL"
#: For the fleet suite's control run only: a Redis store that trusts records from
#: any server run, to show that the instance check is what prevents a reuse.
ENV_TRUST_ANY_INSTANCE = "TELETRACKER_FLEET_TRUST_ANY_INSTANCE"


def make_store(spec: str, **options: Any) -> TokenStore:
    """A store from ``file:PATH``, ``redis://...``, ``rediss://...`` or ``unix://...``."""
    from teletracker_async import stores  # noqa: PLC0415

    if spec.startswith("file:"):
        return stores.FileTokenStore(spec.removeprefix("file:"))
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return stores.RedisTokenStore(spec, **options)
    raise ValueError(
        f"a store is file:PATH, redis://..., rediss://... or unix://..., not {spec!r}"
    )


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
    killed: int  # workers that died by SIGKILL (the injected fault)
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
    backends: Sequence[str] = ("asyncio", "trio"),
    env: dict[str, str] | None = None,
    during: Callable[[], None] | None = None,
) -> FleetRun:
    """Run *workers* processes against the fake at *url*, sharing *store*.

    *during* runs in this process while the workers run (fault injection).
    """
    command = [sys.executable, "-m", "teletracker_async._fleet_demo"]
    child_env = {**os.environ, **(env or {}), ENV_PASSWORD: password}
    before = _server_stats(url)  # the fake may have served earlier runs
    started = time.monotonic()

    def argv(index: int) -> list[str]:
        return [
            *command,
            "--url", url,
            "--username", username,
            "--store", store,
            "--backend", backends[index % len(backends)],
            "--coroutines", str(coroutines),
            "--seconds", repr(seconds),
        ]  # fmt: skip

    processes = [
        subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            argv(index),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env,
            text=True,
        )
        for index in range(workers)
    ]
    reports: list[WorkerReport] = []
    killed = 0
    try:
        if during is not None:
            during()
        for process in processes:
            out, err = process.communicate(timeout=seconds + 120)
            if process.returncode == -signal.SIGKILL:
                killed += 1
                continue
            lines = out.strip().splitlines()
            if process.returncode != 0 or not lines:
                raise RuntimeError(
                    f"fleet worker {process.pid} exited with {process.returncode}: "
                    f"{err.strip()[-2000:]}"
                )
            reports.append(WorkerReport.from_json(lines[-1], process.returncode))
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


# -- the worker -------------------------------------------------------------------------


def _shorten_lease(ttl: float) -> None:
    """Tests only: a renewal lease of *ttl* seconds (a killed holder's runs out
    within a short test), and the bounded wait for a stuck one with it."""
    FleetLink.lease_ttl = ttl
    FleetLink.wait_limit = ttl + 5.0


async def _work(args: argparse.Namespace, password: str) -> dict[str, Any]:
    options = (
        {"_check_instance": False} if os.environ.get(ENV_TRUST_ANY_INSTANCE) else {}
    )
    store = make_store(args.store, **options)
    auth = TeletrackerAuth(args.username, password, base_url=args.url, store=store)
    counts: Counter[str] = Counter()
    die_once = os.environ.get(ENV_DIE_ONCE)

    async def on_response(response: httpx.Response) -> None:
        path = response.request.url.path
        if response.status_code == 200 and path in ("/auth/login", "/auth/refresh"):
            counts[path] += 1
            if path == "/auth/refresh" and die_once:
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(die_once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                    os.kill(os.getpid(), signal.SIGKILL)  # after the rotation

    ok = 0
    slowest = 0.0
    failed: Counter[str] = Counter()
    deadline = time.monotonic() + args.seconds
    async with httpx.AsyncClient(
        auth=auth,
        base_url=args.url,
        timeout=httpx.Timeout(60.0),
        limits=httpx.Limits(max_connections=args.coroutines),
        event_hooks={"response": [on_response]},
    ) as client:

        async def loop() -> None:
            nonlocal ok, slowest
            while time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    response = await client.get("/reports/call-data", params=DAY)
                except Exception as exc:  # noqa: BLE001 - counted, by type
                    failed[type(exc).__name__] += 1
                else:
                    if response.status_code == 200:
                        ok += 1
                        slowest = max(slowest, time.monotonic() - started)
                    else:
                        failed[f"HTTP {response.status_code}"] += 1
                await anyio.sleep(args.pause)

        async with anyio.create_task_group() as tg:
            for _ in range(args.coroutines):
                tg.start_soon(loop)
    await store.aclose()
    stats = auth.store_stats
    return {
        "pid": os.getpid(),
        "backend": args.backend,
        "ok": ok,
        "failed": dict(failed),
        "logins": counts["/auth/login"],
        "refreshes": counts["/auth/refresh"],
        "max_latency": slowest,
        "store": attrs.asdict(stats) if stats is not None else {},
    }


def _worker_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m teletracker_async._fleet_demo")
    parser.add_argument("--url", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--coroutines", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pause", type=float, default=0.05)
    args = parser.parse_args(argv)
    password = os.environ.get(ENV_PASSWORD)
    if not password:
        parser.error(f"the password goes in ${ENV_PASSWORD}")
    ttl = os.environ.get(ENV_LEASE_TTL)
    if ttl:
        _shorten_lease(float(ttl))
    report = anyio.run(_work, args, password, backend=args.backend)
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main())
