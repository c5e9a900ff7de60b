"""Loopback throughput and latency against like-for-like floors (workloads 3 and 4).

The fake runs in its own process (``benchmarks._server``); the clients run here, in
alternating rounds, so that machine noise hits them alike. Every client does the
same work per request: GET ``/reports/call-data`` for one day, read the JSON, check
``success``. Clients (``CLIENTS``):

- ``ours``: ``TeletrackerClient.request_json`` on httpx (its FIFO semaphore on);
- ``ours_httpx2`` / ``ours_httpx2_sem``: the same on httpx2, without / with the
  semaphore;
- ``httpx``: plain ``httpx.AsyncClient`` with a static header;
- ``httpx_sem``: the same behind the same FIFO semaphore as ours;
- ``httpx2``: plain ``httpx2.AsyncClient`` with a static header;
- ``aiohttp``: ``aiohttp.ClientSession`` with a static header (the physical
  reference; a dev dependency only).

Each cell (connections, keep-alive connections, coroutines) gets a fresh server.
"""

from __future__ import annotations

import importlib
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import anyio
import httpx

from benchmarks._server import PASSWORD, USER, served
from teletracker_async import TeletrackerAuth, TeletrackerClient
from teletracker_async._call.queue import Queue
from teletracker_async._config import DEFAULT_TIMEOUT

__all__ = ["CLIENTS", "loopback", "pull"]

DAY = {"start_date": "2026-01-01", "end_date": "2026-01-01"}
PATH = "/reports/call-data"
CLIENTS = (
    "ours",
    "ours_httpx2",
    "ours_httpx2_sem",
    "httpx",
    "httpx_sem",
    "httpx2",
    "aiohttp",
)
Call = Callable[[], Awaitable[None]]
_TIMEOUT = {
    "connect": DEFAULT_TIMEOUT.connect,
    "read": DEFAULT_TIMEOUT.read,
    "write": DEFAULT_TIMEOUT.write,
    "pool": DEFAULT_TIMEOUT.pool,
}


def _available(name: str) -> bool:
    module = {"aiohttp": "aiohttp"}.get(name, "httpx2" if "httpx2" in name else "httpx")
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _checked(body: Any) -> None:
    if not (isinstance(body, dict) and body.get("success") is True):
        raise AssertionError(f"unexpected answer: {body!r}"[:200])


async def _client(  # noqa: C901 - one branch per client, flat on purpose
    name: str, url: str, token: str, limits: tuple[int, int], stack: AsyncExitStack
) -> Call:
    """The per-request call of client *name*, its resources on *stack*."""
    conns, keep = limits
    if name.startswith("ours"):
        stack_name = "httpx2" if "httpx2" in name else "httpx"
        module: Any = importlib.import_module(stack_name)
        bearer: Any = TeletrackerAuth
        if stack_name == "httpx2":
            from teletracker_async import httpx2 as adapters  # noqa: PLC0415

            bearer = adapters.TeletrackerAuth
        client = await stack.enter_async_context(
            TeletrackerClient(
                auth=bearer(USER, PASSWORD, base_url=url),
                limits=httpx.Limits(
                    max_connections=conns, max_keepalive_connections=keep
                ),
            )
        )
        link = client._path.link  # noqa: SLF001
        if name == "ours_httpx2_sem":
            handover = link.queue is not None and link.queue.handover
            link.queue = Queue(link.stack, conns, handover)
        elif name == "ours_httpx2":
            link.queue = None

        async def ours() -> None:
            await client.request_json("GET", PATH, params=DAY)

        return ours
    headers = {"Authorization": f"Bearer {token}"}
    if name == "aiohttp":
        import aiohttp  # noqa: PLC0415

        session = await stack.enter_async_context(
            aiohttp.ClientSession(
                url,
                headers=headers,
                connector=aiohttp.TCPConnector(limit=conns, limit_per_host=conns),
            )
        )

        async def via_aiohttp() -> None:
            async with session.get(PATH, params=DAY) as response:
                response.raise_for_status()
                _checked(await response.json())

        return via_aiohttp
    module = importlib.import_module("httpx2" if name == "httpx2" else "httpx")
    plain = await stack.enter_async_context(
        module.AsyncClient(
            base_url=url,
            headers=headers,
            limits=module.Limits(max_connections=conns, max_keepalive_connections=keep),
            # The SDK's timeouts (no pool timeout): 2000 coroutines queued in the
            # pool wait longer than httpx's default 5 s, which is not a failure.
            timeout=module.Timeout(**_TIMEOUT),
        )
    )

    async def via_plain() -> None:
        response = await plain.get(PATH, params=DAY)
        response.raise_for_status()
        _checked(response.json())

    if name != "httpx_sem":
        return via_plain
    slots = anyio.Semaphore(conns, fast_acquire=True)  # the client's 3 lines

    async def via_semaphore() -> None:
        async with slots:
            await via_plain()

    return via_semaphore


async def pull(call: Call, requests: int, concurrency: int) -> dict[str, float]:
    """*requests* calls from *concurrency* coroutines: requests/s, p50 and p99 ms."""
    latencies: list[float] = []
    per, extra = divmod(requests, concurrency)

    async def worker(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for index in range(concurrency):
            tg.start_soon(worker, per + (index < extra))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


@contextmanager
def _server(latency: float) -> Iterator[str]:
    with served(latency) as url:
        yield url


async def _cell(  # noqa: PLR0917
    url: str,
    clients: tuple[str, ...],
    limits: tuple[int, int],
    coroutines: int,
    requests: int,
    rounds: int,
) -> dict[str, dict[str, float]]:
    async with httpx.AsyncClient(base_url=url) as raw:
        login = await raw.post(
            "/auth/login", data={"username": USER, "password": PASSWORD}
        )
        token = login.json()["token"]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in clients}
    async with AsyncExitStack() as stack:
        calls = {
            name: await _client(name, url, token, limits, stack) for name in clients
        }
        for call in calls.values():  # warm: connections open, sessions logged in
            await pull(call, 200, min(coroutines, 200))
        for _ in range(rounds):
            for name, call in calls.items():
                runs[name].append(await pull(call, requests, coroutines))
    return {
        name: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        for name, rs in runs.items()
    }


async def loopback(
    cells: tuple[tuple[int, int, int], ...] = (
        (8, 8, 200),
        (8, 8, 2000),
        (100, 100, 200),
        (100, 100, 2000),
    ),
    clients: tuple[str, ...] = CLIENTS,
    requests: int = 3000,
    rounds: int = 3,
    latency: float = 0.0,
) -> dict[str, Any]:
    """Every client in every cell (connections, keep-alive, coroutines), each cell
    against a fresh server in its own process with *latency* per request."""
    present = tuple(name for name in clients if _available(name))
    rows = []
    for conns, keep, coroutines in cells:
        with _server(latency) as url:
            figures = await _cell(
                url,
                present,
                (conns, keep),
                coroutines,
                max(requests, coroutines),
                rounds,
            )
        rows.append(
            {
                "connections": conns,
                "keepalive": keep,
                "coroutines": coroutines,
                "clients": figures,
            }
        )
    return {
        "latency_ms": latency * 1000,
        "requests": requests,
        "rounds": rounds,
        "rows": rows,
    }


# -- Markdown ---------------------------------------------------------------------------

#: (ours, floor) pairs reported as ratios, when both were measured.
PAIRS = (
    ("ours", "httpx"),
    ("ours", "httpx_sem"),
    ("ours_httpx2", "httpx2"),
    ("ours_httpx2_sem", "httpx2"),
    ("ours_httpx2_sem", "aiohttp"),
    ("ours_httpx2_sem", "ours"),  # which stack to pick (both defaults)
)


def render(result: dict[str, Any]) -> list[str]:
    """Requests/s per client, then ours/floor for rps, p50 and p99 per cell."""
    rows = result["rows"]
    if not rows:
        return []
    names = list(rows[0]["clients"])
    lat = (
        f", {result['latency_ms']:.0f} ms server latency"
        if result["latency_ms"]
        else ""
    )
    lines = [
        (
            f"Loopback{lat}: requests/s (median of {result['rounds']} alternating "
            f"rounds of {result['requests']} requests; p50 / p99 ms below):"
        ),
        "",
        "| connections (keep-alive) x coroutines | " + " | ".join(names) + " |",
        "|---" + "|---:" * len(names) + "|",
    ]
    for row in rows:
        cell = f"{row['connections']} ({row['keepalive']}) x {row['coroutines']}"
        lines.append(
            f"| {cell} | "
            + " | ".join(f"{row['clients'][n]['rps']:.0f}" for n in names)
            + " |"
        )
        lines.append(
            "| p50 / p99 ms | "
            + " | ".join(
                f"{row['clients'][n]['p50_ms']:.0f} / {row['clients'][n]['p99_ms']:.0f}"
                for n in names
            )
            + " |"
        )
    pairs = [(a, b) for a, b in PAIRS if a in names and b in names]
    if pairs:
        lines += [
            "",
            (
                "Ours / floor, as requests/s ratio (≥ 1 is faster) and p50 / p99 "
                "latency ratios (≤ 1 is faster):"
            ),
            "",
            "| connections (keep-alive) x coroutines | "
            + " | ".join(f"{a} / {b}" for a, b in pairs)
            + " |",
            "|---" + "|---:" * len(pairs) + "|",
        ]
        for row in rows:
            c = row["clients"]
            lines.append(
                f"| {row['connections']} ({row['keepalive']}) x {row['coroutines']} | "
                + " | ".join(
                    f"{c[a]['rps'] / c[b]['rps']:.2f} (p50 {c[a]['p50_ms'] / c[b]['p50_ms']:.2f}, "
                    f"p99 {c[a]['p99_ms'] / c[b]['p99_ms']:.2f})"
                    for a, b in pairs
                )
                + " |"
            )
    return [*lines, ""]
