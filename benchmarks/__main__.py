"""Run every benchmark, print a Markdown table, write it (and JSON) to benchmarks/results/.

    uv run python -m benchmarks [--quick]

--quick runs every workload at a small size (a minute, for a sanity check); the
README quotes a full run.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks import bench_fleet, bench_stream, suite

RESULTS = Path(__file__).parent / "results"

FULL: dict[str, dict[str, Any]] = {
    "per_request": {"requests": 5000, "rounds": 9},
    "threads": {"coroutines": 250, "expiries": 10},
    "expiry_storm": {"coroutines": 10_000, "rounds": 3},
    "contended_storms": {},
    "early_window": {"coroutines": 10_000},
    "loopback": {"requests": 3000, "concurrency": 200, "rounds": 3},
    "loopback_httpx2": {"requests": 3000, "concurrency": 200, "rounds": 3},
    "peers": {"coroutines": 1000, "cost_requests": 300, "lifetime": 6.0},
    "memory": {"requests": 100_000, "refreshes": 100},
    "stream": {},
    "fleet": {},
}
QUICK: dict[str, dict[str, Any]] = {
    "per_request": {"requests": 500, "rounds": 3},
    "threads": {"coroutines": 50, "expiries": 4},
    "expiry_storm": {"coroutines": 1000, "rounds": 2},
    "contended_storms": {"sizes": (1000,), "refresh_times": (0.05,)},
    "early_window": {"coroutines": 1000},
    "loopback": {"requests": 400, "concurrency": 50, "rounds": 2},
    "loopback_httpx2": {"requests": 400, "concurrency": 50, "rounds": 2},
    "peers": {"coroutines": 200, "cost_requests": 100, "lifetime": 6.0},
    "memory": {"requests": 10_000, "refreshes": 10},
    "stream": {"rounds": 1},
    "fleet": {"requests": 500, "rounds": 2, "seconds": 5.0},
}


def _check(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _httpx2_rows(results: dict[str, Any]) -> list[str]:
    """The httpx2 side of workloads 1 and 3, when httpx2 was measured."""
    w1, lo, lo2 = (
        results["per_request"],
        results["loopback"],
        results.get("loopback_httpx2"),
    )
    if "httpx2_c1" not in w1 or lo2 is None:
        return [
            "| httpx2 | not installed (Python 3.10 or no extra): not measured | | |"
        ]
    return [
        f"| 1. httpx2: per-request cost, 1 coroutine (vs static header on httpx2) | {w1['httpx2_c1']['ratio']:.3f} | ≤ 1.02 | {_check(w1['httpx2_c1']['ratio'] <= 1.02)} |",
        f"| 1. httpx2: per-request cost, 100 coroutines | {w1['httpx2_c100']['ratio']:.3f} | ≤ 1.02 | {_check(w1['httpx2_c100']['ratio'] <= 1.02)} |",
        f"| 1. µs per request, ours on httpx / on httpx2 (100 coroutines, MockTransport) | {w1['c100']['teletracker_us']:.1f} / {w1['httpx2_c100']['teletracker_us']:.1f} | | |",
        f"| 3. httpx2 loopback: requests/s vs httpx2 + static header | {lo2['rps_ratio']:.3f} | ≥ 0.97 | {_check(lo2['rps_ratio'] >= 0.97)} |",
        f"| 3. requests/s, ours on httpx / ours on httpx2 | {lo['sdk_rps']:.0f} / {lo2['sdk_rps']:.0f} | | |",
        f"| 3. httpx2 loopback p50 / p99 ms (SDK) | {lo2['sdk_p50_ms']:.1f} / {lo2['sdk_p99_ms']:.1f} | | |",
    ]


def _storm_rows(rows: list[dict[str, Any]]) -> list[str]:
    """Workload 2b: storms whose refresh takes time, so that everyone else waits."""
    if not rows:
        return []
    lines = [
        (
            "Storms that contend (2b.): every request at once with a slow refresh; "
            "ratio = storm / (fresh batch + refresh time), goal ≤ 1.1:"
        ),
        "",
        "| coroutines | refresh | token | refreshes | waited | failed | ratio | |",
        "|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r['coroutines']} | {r['refresh_s'] * 1000:.0f} ms | {r['where']} | "
        f"{r['refreshes']} | {r['waited']} | {r['failed']} | {r['ratio']:.3f} | "
        f"{_check(r['ratio'] <= 1.1 and r['refreshes'] == 1 and r['failed'] == 0)} |"
        for r in rows
    ]
    return [*lines, ""]


def render(results: dict[str, Any], machine: str, command: str) -> str:
    """The Markdown report: one table per workload, targets marked met or missed."""
    w1, w2, w3 = (
        results["per_request"],
        results["expiry_storm"],
        results["early_window"],
    )
    lo, mem, peers = results["loopback"], results["memory"], results["peers"]
    th = results["threads"]
    th_label = f"{len(th['loops'].split('+'))} threads x {th['coroutines']} coroutines, own loops ({th['loops']}), {th['expiries']} expiries"
    lines = [
        f"Machine: {machine}. Reproduce: `{command}`.",
        "",
        "| workload | figure | target | |",
        "|---|---:|---:|---|",
        f"| 1. per-request cost, 1 coroutine (vs static header) | {w1['c1']['ratio']:.3f} | ≤ 1.02 | {_check(w1['c1']['ratio'] <= 1.02)} |",
        f"| 1. per-request cost, 100 coroutines | {w1['c100']['ratio']:.3f} | ≤ 1.02 | {_check(w1['c100']['ratio'] <= 1.02)} |",
        f"| 1b. {th_label}: refreshes per expiry (min to max) | {th['refreshes_per_expiry_min']} to {th['refreshes_per_expiry_max']} | 1 | {_check(th['refreshes_per_expiry_min'] == th['refreshes_per_expiry_max'] == 1)} |",
        f"| 1b. same: logins / refresh tokens reused / failed requests | {th['logins']} / {th['reuse_attempts']} / {th['failed']} | 1 / 0 / 0 | {_check((th['logins'], th['reuse_attempts'], th['failed']) == (1, 0, 0))} |",
        f"| 1b. same: median seconds per expiry round | {th['round_s']:.2f} | | |",
        f"| 2. expiry storm, {w2['coroutines']} coroutines: refreshes | {w2['refreshes_per_storm']} | 1 | {_check(w2['refreshes_per_storm'] == 1)} |",
        f"| 2. expiry storm: failed requests | {w2['failed']} | 0 | {_check(w2['failed'] == 0)} |",
        f"| 2. expiry storm: wall time vs fresh token | {w2['ratio']:.3f} | ≤ 1.2 | {_check(w2['ratio'] <= 1.2)} |",
        f"| 2. early window: requests not delayed by the refresh | {w3['not_delayed_share']:.2%} | ≥ 95 % | {_check(w3['not_delayed_share'] >= 0.95)} |",
        f"| 3. loopback, {lo['concurrency']} coroutines: requests/s vs httpx + static header | {lo['rps_ratio']:.3f} | ≥ 0.97 | {_check(lo['rps_ratio'] >= 0.97)} |",
        f"| 3. loopback p50 / p99 ms (SDK) | {lo['sdk_p50_ms']:.1f} / {lo['sdk_p99_ms']:.1f} | | |",
        f"| 3. loopback p50 / p99 ms (httpx) | {lo['httpx_p50_ms']:.1f} / {lo['httpx_p99_ms']:.1f} | | |",
        *_httpx2_rows(results),
        f"| 5. memory growth, {mem['requests']} requests, {mem['refreshes']} refreshes (SDK) | {mem['growth_sdk_kib']:.1f} KiB | < 1024 KiB | {_check(mem['growth_sdk_kib'] < 1024)} |",
        f"| 5. memory growth, everything incl. the fake | {mem['growth_total_kib']:.1f} KiB | | |",
        f"| 5. peak RSS growth | {mem['peak_rss_growth_kib']} KiB | | |",
        "",
        *_storm_rows(results.get("contended_storms", [])),
        *bench_stream.rows(results.get("stream")),
        *_fleet_rows(results.get("fleet")),
        "Peers (4.), each against the fake's OAuth2-shaped `/oauth/token`, same loopback server:",
        "",
        "| client | cost vs static header | expiry storm: refreshes / logins / failed | early window: refreshes / stall ms | refresh-token reuse | tokens refreshed twice |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, p in peers.items():
        lines.append(
            f"| {name} | {p['cost_ratio']:.3f} | {p['storm_refreshes']} / "
            f"{p['storm_logins']} / {p['storm_failed']} | "
            f"{p['early_refreshes']} / {p['early_stall_ms']:.0f} | {p['reuse_attempts']} | "
            f"{p['premature_refreshes']} |"
        )
    return "\n".join(lines) + "\n"


def _fleet_rows(figures: dict[str, Any] | None) -> list[str]:
    """The fleet workload (7.): a token store shared by processes."""
    if figures is None:
        return []
    return [
        "Fleet (7.), processes sharing one session through a token store:",
        "",
        *bench_fleet.render(figures),
        "",
    ]


async def _run(sizes: dict[str, dict[str, Any]], progress: Progress) -> dict[str, Any]:
    workloads: dict[str, Callable[..., Awaitable[Any]]] = {
        "per_request": suite.per_request,
        "threads": suite.threads,
        "expiry_storm": suite.expiry_storm,
        "contended_storms": suite.contended_storms,
        "early_window": suite.early_window,
        "loopback": suite.loopback,
        "loopback_httpx2": functools.partial(suite.loopback, stack="httpx2"),
        "peers": suite.peers,
        "memory": suite.memory,
        "stream": bench_stream.measure,
        "fleet": bench_fleet.workload,
    }
    task = progress.add_task("benchmarks", total=len(workloads))
    results: dict[str, Any] = {}
    for name, workload in workloads.items():
        if "httpx2" in name and not suite._has_httpx2():  # noqa: SLF001
            continue
        progress.update(task, description=name, refresh=True)
        results[name] = await workload(**sizes[name])
        progress.advance(task)
        progress.refresh()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Run the teletracker_async benchmarks."
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, ~1 minute")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"httpx {httpx.__version__}"
    )
    console = Console(stderr=True)
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        # No refresh thread: it would take the GIL in the middle of measurements.
        auto_refresh=False,
    ) as progress:
        results = anyio.run(_run, sizes, progress, backend="asyncio")
    command = "uv run python -m benchmarks" + (" --quick" if args.quick else "")
    report = render(results, machine, command)
    print(report)
    RESULTS.mkdir(exist_ok=True)
    stem = "quick" if args.quick else "latest"
    (RESULTS / f"{stem}.md").write_text(report, encoding="utf-8")
    (RESULTS / f"{stem}.json").write_text(
        json.dumps({"machine": machine, "results": results}, indent=2) + "\n",
        encoding="utf-8",
    )
    console.print(
        f"done in {time.perf_counter() - started:.0f} s; "
        f"written to {RESULTS / stem}.md and .json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
