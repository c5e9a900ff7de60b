"""The wires: the SDK on each HTTP stack against that stack's floor and raw aiohttp.

A canned server (``benchmarks._server``, the fake answering after ``--latency``)
runs in a process of its own, fresh for each cell. Every contender runs in a fresh
process for every round (``python -m benchmarks.bench_wires NAME URL ...``: one
contender, one cell, one line of JSON), so that none inherits another's heap, pool
or imports; rounds alternate the contenders, each round starting one further along
the list, and the report gives the median [range] of the rounds. Every contender
does the same work per request: GET ``/reports/call-data`` for one day, read the
JSON, check ``success``. Contenders (``CONTENDERS``):

- ``sdk-httpx``: ``TeletrackerClient(limits=httpx.Limits(N, N))``, the default wire;
- ``sdk-httpx2``: the same over ``httpx2.AsyncHTTPTransport(limits=...)``;
- ``sdk-aiohttp``: the same on aiohttp (see ``_sdk_aiohttp``);
- ``floor-httpx`` / ``floor-httpx2``: a plain ``AsyncClient`` of that stack with a
  static ``Authorization: Bearer`` header and no SDK;
- ``floor-httpx-aiohttp``: ``httpx.AsyncClient`` over httpx-aiohttp's
  ``AiohttpTransport``, static header;
- ``raw-aiohttp``: ``aiohttp.ClientSession``, static header (the physical reference).

A cell is (server latency in ms, connections, coroutines). Each run warms up
(connections open, the SDK logged in), then times a fixed number of requests; a run
that takes longer than the cell's timeout is stopped and reported as "did not finish
in X s". Figures per run: requests/s, p50 and p99 latency, and the child's process
CPU time over the timed requests per request.

    uv run python -m benchmarks --only wires
    uv run python -m benchmarks --only wires --rounds 1 --cells 30:100:500 0:8:200
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.to_thread
import httpx

from benchmarks._server import PASSWORD, USER, served
from teletracker_async import TeletrackerClient
from teletracker_async._config import DEFAULT_TIMEOUT

__all__ = ["CELLS", "CONTENDERS", "render", "wires"]

DAY = {"start_date": "2026-01-01", "end_date": "2026-01-01"}
PATH = "/reports/call-data"
CONTENDERS = (
    "sdk-httpx",
    "sdk-httpx2",
    "sdk-aiohttp",
    "floor-httpx",
    "floor-httpx2",
    "floor-httpx-aiohttp",
    "raw-aiohttp",
)
#: Each SDK contender's floor: the same wire with a static header and no SDK.
FLOORS = {
    "sdk-httpx": "floor-httpx",
    "sdk-httpx2": "floor-httpx2",
    "sdk-aiohttp": "floor-httpx-aiohttp",
}
RAW = "raw-aiohttp"
#: (server latency ms, connections, coroutines): the issue's table at 30 ms, and
#: loopback (CPU-bound) at 0 ms.
CELLS = (
    (30, 8, 500),
    (30, 20, 500),
    (30, 100, 500),
    (30, 200, 500),
    (0, 8, 200),
    (0, 100, 200),
)
#: Seconds a child may take beyond its two timed parts (start, imports, closing).
_SLACK = 60.0
Call = Callable[[], Awaitable[None]]
_TIMEOUT = {
    "connect": DEFAULT_TIMEOUT.connect,
    "read": DEFAULT_TIMEOUT.read,
    "write": DEFAULT_TIMEOUT.write,
    "pool": DEFAULT_TIMEOUT.pool,
}


def _modules(name: str) -> tuple[str, ...]:
    """What contender *name* imports."""
    if name == RAW:
        return ("aiohttp",)
    if name.endswith("aiohttp"):
        return ("aiohttp", "httpx_aiohttp")
    return ("httpx2",) if name.endswith("httpx2") else ("httpx",)


def _available(name: str) -> bool:
    return all(importlib.util.find_spec(module) for module in _modules(name))


def _checked(body: Any) -> None:
    if not (isinstance(body, dict) and body.get("success") is True):
        raise AssertionError(f"unexpected answer: {body!r}"[:200])


# -- the child: one contender, one cell ---------------------------------------------


def _sdk_aiohttp(url: str, connections: int) -> TeletrackerClient[Any]:
    """The SDK on aiohttp with its FIFO queue in front, aiohttp's connector sized to
    *connections*: ``TeletrackerClient(wire="aiohttp", limits=...)`` when the client
    accepts ``wire``, else the same client over httpx-aiohttp's ``AiohttpTransport``
    whose ``aiohttp.TCPConnector`` is built here with ``limit=connections``."""
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections
    )
    client_type: Any = TeletrackerClient  # ``wire=`` is not in every version's stubs
    if "wire" in inspect.signature(TeletrackerClient.__init__).parameters:
        built: TeletrackerClient[Any] = client_type(
            USER, PASSWORD, base_url=url, wire="aiohttp", limits=limits
        )
        return built
    import aiohttp  # noqa: PLC0415
    from httpx_aiohttp import AiohttpTransport  # noqa: PLC0415

    transport = AiohttpTransport(
        client=lambda: aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections)
        )
    )
    return TeletrackerClient(
        USER, PASSWORD, base_url=url, transport=transport, limits=limits
    )


def _sdk(name: str, url: str, connections: int) -> TeletrackerClient[Any]:
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections
    )
    if name == "sdk-httpx":
        return TeletrackerClient(USER, PASSWORD, base_url=url, limits=limits)
    if name == "sdk-httpx2":
        import httpx2  # noqa: PLC0415

        transport = httpx2.AsyncHTTPTransport(
            limits=httpx2.Limits(
                max_connections=connections, max_keepalive_connections=connections
            )
        )
        return TeletrackerClient(
            USER, PASSWORD, base_url=url, transport=transport, limits=limits
        )
    return _sdk_aiohttp(url, connections)


def _token(url: str) -> str:
    """A bearer token for the floors, fetched before anything is timed."""
    body = urllib.parse.urlencode({"username": USER, "password": PASSWORD}).encode()
    with urllib.request.urlopen(f"{url}/auth/login", data=body, timeout=30) as answer:  # noqa: S310 - our loopback server
        token: str = json.load(answer)["token"]
    return token


async def _contender(name: str, url: str, connections: int, stack: AsyncExitStack) -> Call:  # fmt: skip
    """The per-request call of contender *name*, its resources on *stack*."""
    if name.startswith("sdk-"):
        client = await stack.enter_async_context(_sdk(name, url, connections))

        async def via_sdk() -> None:
            await client.request_json("GET", PATH, params=DAY)

        return via_sdk
    headers = {"Authorization": f"Bearer {_token(url)}"}
    if name == RAW:
        import aiohttp  # noqa: PLC0415

        session = await stack.enter_async_context(
            aiohttp.ClientSession(
                url,
                headers=headers,
                connector=aiohttp.TCPConnector(
                    limit=connections, limit_per_host=connections
                ),
            )
        )

        async def via_aiohttp() -> None:
            async with session.get(PATH, params=DAY) as response:
                response.raise_for_status()
                _checked(await response.json())

        return via_aiohttp
    module: Any = importlib.import_module(
        "httpx2" if name == "floor-httpx2" else "httpx"
    )
    options: dict[str, Any] = {
        "limits": module.Limits(
            max_connections=connections, max_keepalive_connections=connections
        )
    }
    if name == "floor-httpx-aiohttp":
        import aiohttp  # noqa: PLC0415
        from httpx_aiohttp import AiohttpTransport  # noqa: PLC0415

        options = {
            "transport": AiohttpTransport(
                client=lambda: aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=connections)
                )
            )
        }
    plain = await stack.enter_async_context(
        module.AsyncClient(
            base_url=url,
            headers=headers,
            # The SDK's timeouts (no pool timeout): 500 coroutines queued for
            # 8 connections wait longer than httpx's default 5 s, not a failure.
            timeout=module.Timeout(**_TIMEOUT),
            **options,
        )
    )

    async def via_plain() -> None:
        response = await plain.get(PATH, params=DAY)
        response.raise_for_status()
        _checked(response.json())

    return via_plain


async def _pull(call: Call, requests: int, coroutines: int, latencies: list[float]) -> None:  # fmt: skip
    """*requests* calls from *coroutines* coroutines, each latency appended."""
    per, extra = divmod(requests, coroutines)

    async def worker(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    async with anyio.create_task_group() as tg:
        for index in range(coroutines):
            tg.start_soon(worker, per + (index < extra))


async def _one_run(  # noqa: PLR0917
    name: str,
    url: str,
    connections: int,
    coroutines: int,
    requests: int,
    cutoff_s: float,
) -> dict[str, Any]:
    """Contender *name* in one cell: warm up, then time *requests* requests; each
    part stops after *cutoff_s* seconds (then the run did not finish)."""
    async with AsyncExitStack() as stack:
        call = await _contender(name, url, connections, stack)
        warm: list[float] = []
        with anyio.move_on_after(cutoff_s) as scope:
            await _pull(call, 2 * connections, connections, warm)
        if scope.cancelled_caught:
            return {"finished": False, "done": 0, "timeout_s": cutoff_s}
        latencies: list[float] = []
        cpu, started = time.process_time(), time.perf_counter()
        with anyio.move_on_after(cutoff_s) as scope:
            await _pull(call, requests, coroutines, latencies)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    if scope.cancelled_caught:
        return {"finished": False, "done": len(latencies), "timeout_s": cutoff_s}
    latencies.sort()
    return {
        "finished": True,
        "requests": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "cpu_us": cpu / len(latencies) * 1e6,
    }


def _child_main(argv: list[str]) -> int:
    name, url = argv[0], argv[1]
    connections, coroutines, requests = (int(a) for a in argv[2:5])
    cutoff_s = float(argv[5])
    result = anyio.run(
        _one_run,
        name,
        url,
        connections,
        coroutines,
        requests,
        cutoff_s,
        backend="asyncio",
    )
    print(json.dumps(result))
    return 0


# -- the parent: cells, rounds, contenders --------------------------------------------


def _in_child(  # noqa: PLR0917
    name: str,
    url: str,
    connections: int,
    coroutines: int,
    requests: int,
    cutoff_s: float,
) -> dict[str, Any]:
    """One run of *name* in a fresh process; a child that overruns is killed, one
    that fails is reported with the last line of its error."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench_wires",
        name,
        url,
        str(connections),
        str(coroutines),
        str(requests),
        repr(cutoff_s),
    ]
    try:
        done = subprocess.run(  # noqa: S603 - our own module, fixed arguments
            command,
            capture_output=True,
            text=True,
            timeout=2 * cutoff_s + _SLACK,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"finished": False, "done": None, "timeout_s": cutoff_s}
    if done.returncode != 0:  # reported, and the other runs go on
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return {"finished": False, "error": last[:200], "timeout_s": cutoff_s}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def wires(
    cells: Sequence[Sequence[float]] = CELLS,
    contenders: Sequence[str] = CONTENDERS,
    requests: int = 2000,
    rounds: int = 3,
    cutoff_s: float = 30.0,
) -> dict[str, Any]:
    """Every contender in every cell (latency ms, connections, coroutines), one
    fresh process per contender and round, rounds alternating the contenders; a
    fresh server per cell. A run gets *cutoff_s* seconds for its warm-up and as many
    for its *requests* timed requests (at least one per coroutine)."""
    present = [name for name in contenders if _available(name)]
    rows = []
    for latency_ms, connections, coroutines in cells:
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in present}
        count = max(requests, int(coroutines))
        with served(latency_ms / 1000) as url:
            for index in range(rounds):
                shift = index % len(present) if present else 0
                for name in present[shift:] + present[:shift]:
                    runs[name].append(
                        await anyio.to_thread.run_sync(
                            _in_child,
                            name,
                            url,
                            int(connections),
                            int(coroutines),
                            count,
                            cutoff_s,
                        )
                    )
        rows.append(
            {
                "latency_ms": latency_ms,
                "connections": int(connections),
                "coroutines": int(coroutines),
                "requests": count,
                "runs": runs,
            }
        )
    return {"rounds": rounds, "timeout_s": cutoff_s, "rows": rows}


# -- Markdown ----------------------------------------------------------------------------


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if run["finished"]]
    return statistics.median(values) if values else None


def _spread(runs: list[dict[str, Any]], key: str, digits: int = 0) -> str:
    """Median [min-max] of the finished runs, and how many did not finish."""
    values = sorted(run[key] for run in runs if run["finished"])
    missing = len(runs) - len(values)
    timeout = next((run["timeout_s"] for run in runs if not run["finished"]), 0)
    error = next((run["error"] for run in runs if "error" in run), None)
    if error is not None:
        return f"failed in {missing} of {len(runs)}: {error}"
    if not values:
        return f"did not finish in {timeout:.0f} s"
    text = f"{statistics.median(values):,.{digits}f}".replace(",", " ")
    if len(values) > 1:
        text += f" [{values[0]:,.{digits}f}-{values[-1]:,.{digits}f}]".replace(",", " ")
    if missing:
        text += f", {missing} of {len(runs)} did not finish in {timeout:.0f} s"
    return text


def _label(row: dict[str, Any]) -> str:
    return f"{row['connections']} x {row['coroutines']}, {row['latency_ms']:g} ms"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def render(result: dict[str, Any]) -> list[str]:
    """Requests/s, p50 / p99 and CPU per request for each contender (rows) in each
    cell (columns), then the SDK against its wire's floor and all against raw
    aiohttp."""
    rows = result["rows"]
    if not rows:
        return []
    names = list(rows[0]["runs"])
    header = "| connections x coroutines, latency | " + " | ".join(
        _label(row) for row in rows
    )
    rule = "|---" + "|---:" * len(rows) + "|"

    def table(title: str, cell: Callable[[list[dict[str, Any]]], str]) -> list[str]:
        body = [
            f"| {name} | " + " | ".join(cell(row["runs"][name]) for row in rows) + " |"
            for name in names
        ]
        return [title, "", header + " |", rule, *body, ""]

    def latency(runs: list[dict[str, Any]]) -> str:
        p50, p99 = _median(runs, "p50_ms"), _median(runs, "p99_ms")
        return "-" if p50 is None or p99 is None else f"{p50:.0f} / {p99:.0f}"

    lines = [
        (
            f"Wires: requests/s, median [range] of {result['rounds']} alternating "
            "rounds, each contender in a fresh process per round; a canned server in "
            "its own process, fresh per cell; the requests of a run: "
            + ", ".join(f"{row['requests']}" for row in rows)
            + " (by cell)."
        ),
        "",
        *table("Requests/s:", lambda runs: _spread(runs, "rps")),
        *table("p50 / p99 latency, ms (medians):", latency),
        *table(
            "Client CPU per request, µs (process CPU of the child over the timed requests):",
            lambda runs: _spread(runs, "cpu_us"),
        ),
    ]
    pairs = [
        (sdk, floor) for sdk, floor in FLOORS.items() if {sdk, floor} <= set(names)
    ]
    against = [name for name in names if name != RAW] if RAW in names else []
    if pairs or against:
        lines += [
            (
                "Ratios of medians: the SDK over its wire's floor (requests/s; CPU "
                "per request), and each contender's requests/s over raw aiohttp's:"
            ),
            "",
            header + " |",
            rule,
        ]
        for sdk, floor in pairs:
            lines.append(
                f"| {sdk} / {floor} | "
                + " | ".join(
                    f"{_ratio(_median(r['runs'][sdk], 'rps'), _median(r['runs'][floor], 'rps'))}; "
                    f"CPU {_ratio(_median(r['runs'][sdk], 'cpu_us'), _median(r['runs'][floor], 'cpu_us'))}"
                    for r in rows
                )
                + " |"
            )
        for name in against:
            lines.append(
                f"| {name} / {RAW} | "
                + " | ".join(
                    _ratio(
                        _median(r["runs"][name], "rps"), _median(r["runs"][RAW], "rps")
                    )
                    for r in rows
                )
                + " |"
            )
        lines.append("")
    return lines


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
