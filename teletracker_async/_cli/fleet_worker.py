"""One worker of ``demo --workers N``: a fresh process that shares the session through
a store and counts what it did.

Run as ``python -m teletracker_async._cli.fleet_worker``; the password reaches it in
the environment, never on a command line (``ps`` shows those). Its report is one
JSON line on stdout. Tests that inject faults wrap :func:`work` from outside the
package, with a store factory and a refresh hook of their own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import attrs
import httpx

from teletracker_async._session.flow import TeletrackerAuth
from teletracker_async.stores import TokenStore

__all__ = ["ENV_PASSWORD", "make_store", "parse", "work", "write_report"]

DAY = {"start_date": "2026-01-01", "end_date": "2026-01-01"}
#: The worker reads the password from here.
ENV_PASSWORD = "TELETRACKER_PASSWORD"  # noqa: S105 - a variable name


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


@attrs.define
class _Tally:
    """What the worker's coroutines counted."""

    ok: int = 0
    slowest: float = 0.0
    failed: Counter[str] = attrs.field(factory=Counter)
    renewals: Counter[str] = attrs.field(factory=Counter)


async def _requests(
    client: httpx.AsyncClient, tally: _Tally, deadline: float, pause: float
) -> None:
    """One coroutine: call-data requests until *deadline*."""
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            response = await client.get("/reports/call-data", params=DAY)
        except Exception as exc:  # noqa: BLE001 - counted, by type
            tally.failed[type(exc).__name__] += 1
        else:
            if response.status_code == 200:
                tally.ok += 1
                tally.slowest = max(tally.slowest, time.monotonic() - started)
            else:
                tally.failed[f"HTTP {response.status_code}"] += 1
        await anyio.sleep(pause)


async def work(
    args: argparse.Namespace,
    password: str,
    *,
    store_factory: Callable[[str], TokenStore] = make_store,
    on_refresh: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run ``args.coroutines`` coroutines for ``args.seconds``; the report.

    *on_refresh* runs after each refresh the server answered (a test's fault).
    """
    store = store_factory(args.store)
    auth = TeletrackerAuth(args.username, password, base_url=args.url, store=store)
    tally = _Tally()

    async def on_response(response: httpx.Response) -> None:
        path = response.request.url.path
        if response.status_code == 200 and path in ("/auth/login", "/auth/refresh"):
            tally.renewals[path] += 1
            if path == "/auth/refresh" and on_refresh is not None:
                on_refresh()

    deadline = time.monotonic() + args.seconds
    async with (
        httpx.AsyncClient(
            auth=auth,
            base_url=args.url,
            timeout=httpx.Timeout(60.0),
            limits=httpx.Limits(max_connections=args.coroutines),
            event_hooks={"response": [on_response]},
        ) as client,
        anyio.create_task_group() as tg,
    ):
        for _ in range(args.coroutines):
            tg.start_soon(_requests, client, tally, deadline, args.pause)
    await store.aclose()
    stats = auth.store_stats
    return {
        "pid": os.getpid(),
        "backend": args.backend,
        "ok": tally.ok,
        "failed": dict(tally.failed),
        "logins": tally.renewals["/auth/login"],
        "refreshes": tally.renewals["/auth/refresh"],
        "max_latency": tally.slowest,
        "store": attrs.asdict(stats) if stats is not None else {},
    }


def parse(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, str]:
    """The worker's arguments and the password from ``$TELETRACKER_PASSWORD``."""
    parser = argparse.ArgumentParser(
        prog="python -m teletracker_async._cli.fleet_worker"
    )
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
    return args, password


def write_report(report: dict[str, Any]) -> None:
    """The report as the one JSON line the fleet's runner reads."""
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()


def _main(argv: Sequence[str] | None = None) -> int:
    args, password = parse(argv)
    write_report(anyio.run(work, args, password, backend=args.backend))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
