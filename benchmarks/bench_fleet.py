"""The fleet workload: what sharing a session through a token store costs.

- Per-request cost of an auth with a store against the same auth without one
  (alternating rounds, ratio of medians): the store is off the request path, so the
  target is <= 1.02.
- Store calls per process per token lifetime, from a fleet of real processes on the
  file store and on Redis (no faults).
- The longest a request waited after a refresher was killed with SIGKILL right after
  the server rotated: a file lease whose holder died is over at once (the kernel
  frees its flock), a Redis lease when its short TTL runs out (``LEASE_TTL``: its
  holder's heartbeat stopped).
- A refresher frozen with SIGSTOP right after the rotation, holding the lease: the
  time until another process took over (its login), and, once the frozen one is
  continued (SIGCONT), its refused commit.

    uv run python -m benchmarks.bench_fleet [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
from tests.support.fleet_worker import (
    ENV_DIE_ONCE,
    ENV_LEASE_TTL,
    ENV_STOP_ONCE,
    WORKER,
    worker_env,
)

from benchmarks.bench_auth import BASE, _round
from teletracker_async import TeletrackerAuth
from teletracker_async._cli.common import DEMO_PASSWORD, DEMO_USER
from teletracker_async._cli.fleet import run_fleet
from teletracker_async._cli.local_redis import LocalRedis, find_redis_server
from teletracker_async._cli.serve import served_elsewhere
from teletracker_async._config import LEASE_TTL
from teletracker_async.stores import MemoryTokenStore
from teletracker_async.testing import FakeTeletracker

__all__ = ["fleet", "per_request_with_store"]


async def _warm(auth: TeletrackerAuth, fake: FakeTeletracker) -> None:
    import httpx  # noqa: PLC0415

    async with httpx.AsyncClient(auth=auth, transport=fake.transport()) as client:
        await client.post(f"{BASE}/echo", content=b"warm")


async def per_request_with_store(
    requests: int = 5000,
    rounds: int = 9,
    concurrency: int = 100,
    *,
    codec: bool = False,
) -> dict[str, float]:
    """Median seconds per request, with a store and without, and their ratio.
    *codec*: the store encrypts its records with a Fernet key (never per request)."""
    fake = FakeTeletracker(users={"bench": "bench-pw"})
    plain = TeletrackerAuth("bench", "bench-pw", base_url=BASE)
    sealer = None
    if codec:
        from cryptography.fernet import Fernet  # noqa: PLC0415 - the crypto extra

        sealer = Fernet(Fernet.generate_key())
    stored = TeletrackerAuth(
        "bench", "bench-pw", base_url=BASE, store=MemoryTokenStore(codec=sealer)
    )
    await _warm(plain, fake)
    await _warm(stored, fake)
    stats = stored.store_stats
    calls_before = 0 if stats is None else stats.calls
    with_store: list[float] = []
    without: list[float] = []
    for _ in range(rounds):
        with_store.append(await _round(stored, requests, concurrency, "httpx"))
        without.append(await _round(plain, requests, concurrency, "httpx"))
    stats = stored.store_stats
    ours, floor = statistics.median(with_store), statistics.median(without)
    return {
        "with_store_us": ours * 1e6,
        "without_us": floor * 1e6,
        "ratio": ours / floor,
        "store_calls_during": float(
            (0 if stats is None else stats.calls) - calls_before
        ),
    }


def _one_fleet(
    url: str,
    store: str,
    seconds: float,
    lifetime: float,
    die: Path | None,
    *,
    lease_ttl: float,
    stop: Path | None = None,
) -> dict[str, Any]:
    env = {} if lease_ttl == LEASE_TTL else {ENV_LEASE_TTL: str(lease_ttl)}
    if die is not None:
        env[ENV_DIE_ONCE] = str(die)
    frozen: dict[str, Any] = {}
    during: Callable[[], None] | None = None
    if stop is not None:
        env[ENV_STOP_ONCE] = str(stop)
        during = _freeze_then_continue(url, stop, frozen)
    run = run_fleet(
        url,
        username=DEMO_USER,
        password=DEMO_PASSWORD,
        store=store,
        workers=6,
        coroutines=10,
        seconds=seconds,
        lifetime=lifetime,
        env=worker_env(env),
        during=during,
        worker=WORKER,
    )
    if frozen:
        (worker,) = [w for w in run.workers if w.pid == frozen["pid"]]
        frozen["refused_commits"] = worker.store.refused_commits
    return {
        **frozen,
        "processes": len(run.workers),
        "killed": run.killed,
        "ok": run.ok,
        "failed": run.failed,
        "logins": run.server["logins"],
        "refreshes": run.server["refreshes"],
        "reuse": run.server["reuse_attempts"],
        "lifetimes": run.elapsed / lifetime,
        "calls_per_process_per_lifetime": run.store_calls_per_process_per_lifetime(),
        "max_wait_s": run.max_latency,
        "problems": run.problems(),
    }


def _logins(url: str) -> int:
    answer = httpx.get(f"{url}/_fake/stats", timeout=5).json()
    return int(answer["data"]["logins"])


def _wait(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the fleet never got there")
        time.sleep(0.005)


def _freeze_then_continue(
    url: str, marker: Path, into: dict[str, Any]
) -> Callable[[], None]:
    """While the fleet runs: once a worker froze itself after a rotation (its pid in
    *marker*), time until another process logged in (the takeover), then SIGCONT."""

    def during() -> None:
        _wait(lambda: marker.exists() and marker.read_text() != "")
        stopped = time.monotonic()
        into["pid"] = int(marker.read_text())
        try:
            logins = _logins(url)
            _wait(lambda: _logins(url) > logins)
            into["takeover_s"] = time.monotonic() - stopped
        finally:
            os.kill(into["pid"], signal.SIGCONT)

    return during


def fleet(
    seconds: float = 12.0, lifetime: float = 4.0, lease_ttl: float = LEASE_TTL
) -> dict[str, Any]:
    """The fleet runs on the file store and on Redis, without and with a killed
    refresher. Redis is skipped (and said so) when no redis-server is installed.
    *lease_ttl* shortens the lease (the smoke run), as ``LEASE_TTL`` by default."""
    results: dict[str, Any] = {"lease_ttl": lease_ttl, "seconds": seconds}
    with tempfile.TemporaryDirectory() as tmp, served_elsewhere(lifetime) as url:
        base = Path(tmp)
        stores: dict[str, Any] = {"file": lambda n: f"file:{base / f'store{n}'}"}
        server = None
        if find_redis_server() is not None:
            server = LocalRedis()
            server.start()
            stores["redis"] = lambda _: server.url
        try:
            for index, (name, spec) in enumerate(stores.items()):
                if server is not None and name == "redis":
                    server.command("FLUSHALL")
                results[name] = _one_fleet(
                    url, spec(index), seconds, lifetime, None, lease_ttl=lease_ttl
                )
                if server is not None and name == "redis":
                    server.command("FLUSHALL")
                # Long enough for a Redis lease to run out after the kill.
                results[f"{name}_killed"] = _one_fleet(
                    url,
                    spec(index + 10),
                    max(seconds, lease_ttl + 3 * lifetime),
                    lifetime,
                    base / f"died-{name}",
                    lease_ttl=lease_ttl,
                )
                if server is not None and name == "redis":
                    server.command("FLUSHALL")
                results[f"{name}_stopped"] = _one_fleet(
                    url,
                    spec(index + 20),
                    max(seconds, lease_ttl + 3 * lifetime),
                    lifetime,
                    None,
                    lease_ttl=lease_ttl,
                    stop=base / f"stopped-{name}",
                )
        finally:
            if server is not None:
                server.close()
    return results


async def workload(
    requests: int = 5000,
    rounds: int = 9,
    seconds: float = 12.0,
    lease_ttl: float = LEASE_TTL,
) -> dict[str, Any]:
    """The harness's entry: per-request cost with a store, then the fleet runs."""
    cost = await per_request_with_store(requests, rounds)
    runs = await anyio.to_thread.run_sync(
        lambda: fleet(seconds=seconds, lease_ttl=lease_ttl)
    )
    return {"per_request": cost, **runs}


def render(figures: dict[str, Any]) -> list[str]:
    """Markdown lines for the fleet workload."""
    cost = figures["per_request"]
    lines = [
        "| measure | value | target |",
        "|---|---:|---:|",
        f"| per-request cost with a store / without (100 coroutines) | {cost['ratio']:.3f} | ≤ 1.02 |",
        f"| store calls during the measured requests | {cost['store_calls_during']:.0f} | 0 |",
    ]  # fmt: skip
    for store in ("file", "redis"):
        run = figures.get(store)
        killed = figures.get(f"{store}_killed")
        if run is None or killed is None:
            lines.append(f"| {store} store | not measured (no server) | |")
            continue
        lines += [
            f"| {store}: 6 processes x 10 coroutines, {run['lifetimes']:.1f} token lifetimes: logins / refreshes / reuse / failed | {run['logins']} / {run['refreshes']} / {run['reuse']} / {run['failed']} | 1 / ≈ 1 per (lifetime - margin) / 0 / 0 |",
            f"| {store}: store calls per process per lifetime | {run['calls_per_process_per_lifetime']:.1f} | |",
            f"| {store}: refresher killed after the rotation: logins / reuse / failed | {killed['logins']} / {killed['reuse']} / {killed['failed']} | 2 / 0 / 0 |",
            f"| {store}: longest request wait after the kill | {killed['max_wait_s']:.1f} s | ≤ 2 s |",
        ]  # fmt: skip
        stopped = figures.get(f"{store}_stopped")
        if stopped is not None:
            lines += [
                f"| {store}: refresher frozen (SIGSTOP) after the rotation: takeover (its login) / longest request wait | {stopped['takeover_s']:.1f} s / {stopped['max_wait_s']:.1f} s | ≤ 2 s |",
                f"| {store}: the frozen one continued (SIGCONT): refused commits / logins / reuse / failed | {stopped['refused_commits']} / {stopped['logins']} / {stopped['reuse']} / {stopped['failed']} | 1 / 2 / 0 / 0 |",
            ]  # fmt: skip
    lines.append("")
    lines.append(
        f"Lease TTL {figures['lease_ttl']:g} s, extended by its holder's heartbeat; "
        "tokens live 4 s. A killed holder's file lease ends at once (the kernel "
        "frees its flock); a Redis lease, or a frozen holder's, runs out after its TTL."
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    size = (500, 3) if args.quick else (5000, 9)
    cost = anyio.run(lambda: per_request_with_store(*size))
    print(json.dumps({"per_request": cost}, indent=2))
    print(json.dumps(fleet(seconds=6.0 if args.quick else 12.0), indent=2))


if __name__ == "__main__":
    main()
