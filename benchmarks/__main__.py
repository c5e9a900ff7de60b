"""Run the benchmarks, print a Markdown report, write it (and JSON) to results/.

    uv run python -m benchmarks                  # every workload (a long run)
    uv run python -m benchmarks --quick          # every workload at smoke size
    uv run python -m benchmarks --only NAME ...  # some workloads (names below)
    uv run python -m benchmarks --only wires --rounds 1 --cells 30:100:500
                                                 # fewer rounds or cells than its own

Each workload runs in a fresh Python process (``benchmarks._harness``), so none
inherits another's heap or peak memory; the report keeps the order of ``WORKLOADS``.
A full run writes ``results/latest.md`` and ``latest.json``; ``--quick`` and
``--only`` (or ``--rounds``, ``--requests``, ``--cells``) write ``results/quick.*`` /
``results/only.*`` and never touch latest.

Adding a workload is one line in ``WORKLOADS``: a coroutine function taking its
sizes as keywords, a renderer for its figures, and full / quick sizes.

The documentation's Benchmarks page (docs/benchmarks.md) includes
``results/latest.md`` verbatim when the site is built.
``--from-json results/latest.json`` renders a saved run again (after a change to
a renderer) without measuring anything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks import (
    bench_fleet,
    bench_import,
    bench_loopback,
    bench_request_json,
    bench_stream,
    bench_wires,
    render,
    suite,
)
from benchmarks._harness import Workload, run_in_child

RESULTS = Path(__file__).parent / "results"

_CELLS = ((8, 8, 200), (8, 8, 2000), (100, 100, 200), (100, 100, 2000))
_LIMIT_CELLS = ((8, 8, 500), (20, 20, 500), (100, 100, 500), (100, 20, 500))
_QUICK_CELL = ((8, 8, 20),)
_OURS = ("ours", "ours_httpx2_sem")  # the two defaults

WORKLOADS: dict[str, Workload] = {
    "per_request": Workload(suite.per_request, render.per_request, {"requests": 5000, "rounds": 9}, {"requests": 200, "rounds": 1}),
    "request_json": Workload(bench_request_json.both, bench_request_json.render, {}, {"requests": 200, "rounds": 1}),
    "threads": Workload(suite.threads, render.threads, {"coroutines": 250, "expiries": 10}, {"coroutines": 5, "expiries": 2, "refresh_s": 0.0}),
    "expiry_storm": Workload(suite.expiry_storm, render.expiry_storm, {"coroutines": 10_000, "rounds": 3}, {"coroutines": 50, "rounds": 1}),
    "early_window": Workload(suite.early_window, render.early_window, {"coroutines": 10_000}, {"coroutines": 50, "refresh_s": 0.01}),
    "contended_storms": Workload(suite.contended_storms, render.contended_storms, {}, {"sizes": (50,), "refresh_times": (0.01,)}),
    "contended_storms_no_gc": Workload(suite.contended_storms, render.contended_storms, {"sizes": (10_000, 50_000), "refresh_times": (0.05,), "collector": False}, {"sizes": (50,), "refresh_times": (0.01,), "collector": False}),
    "loopback": Workload(bench_loopback.loopback, bench_loopback.render, {"cells": _CELLS, "requests": 1500, "rounds": 3}, {"cells": _QUICK_CELL, "requests": 40, "rounds": 1}),
    "limits": Workload(bench_loopback.loopback, bench_loopback.render, {"cells": _LIMIT_CELLS, "clients": _OURS, "requests": 1500, "rounds": 2}, {"cells": _QUICK_CELL, "clients": _OURS, "requests": 40, "rounds": 1}),
    "limits_30ms": Workload(bench_loopback.loopback, bench_loopback.render, {"cells": _LIMIT_CELLS, "clients": _OURS, "requests": 2000, "rounds": 2, "latency": 0.03}, {"cells": _QUICK_CELL, "clients": _OURS, "requests": 40, "rounds": 1, "latency": 0.03}),
    "wires": Workload(bench_wires.wires, bench_wires.render, {}, {"cells": ((30, 8, 20),), "requests": 40, "rounds": 1}, needs=("aiohttp", "httpx_aiohttp"), timeout=3 * 3600),
    "peers": Workload(suite.peers, render.peers, {"coroutines": 1000, "cost_requests": 300, "lifetime": 6.0}, {"coroutines": 20, "cost_requests": 10, "lifetime": 2.0}, needs=("authlib", "httpx_auth")),
    "memory": Workload(suite.memory, render.memory, {"requests": 100_000, "refreshes": 100}, {"requests": 200, "refreshes": 2}),
    "memory_static": Workload(suite.memory, render.memory, {"requests": 100_000, "refreshes": 100, "static": True}, {"requests": 200, "refreshes": 2, "static": True}),
    "stream": Workload(bench_stream.measure, bench_stream.rows, {}, {"rounds": 1}),
    "import": Workload(bench_import.measure, bench_import.render, {"runs": 15}, {"runs": 1}),
    "fleet": Workload(bench_fleet.workload, bench_fleet.render, {}, {"requests": 200, "rounds": 1, "seconds": 4.0, "lease_ttl": 2.0}),
}  # fmt: skip


def _cell(text: str) -> tuple[float, ...]:
    """A cell of ``--cells``: three numbers joined by colons."""
    try:
        numbers = tuple(float(part) for part in text.split(":"))
    except ValueError:
        numbers = ()
    if len(numbers) != 3:
        raise argparse.ArgumentTypeError(
            f"a cell is A:B:C (three numbers), not {text!r}"
        )
    return tuple(int(n) if n.is_integer() else n for n in numbers)


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"httpx {httpx.__version__}"
    )


def report(results: dict[str, Any], machine: str, command: str) -> str:
    """The Markdown report: each workload's section, in registration order."""
    lines = [f"Machine: {machine}. Reproduce: `{command}`.", ""]
    for name, workload in WORKLOADS.items():
        if name in results:
            lines += [f"### {name}", "", *workload.render(results[name])]
    return "\n".join(lines).rstrip("\n") + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Run the teletracker_async benchmarks."
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke sizes (minutes on 2 cores)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(WORKLOADS),
        metavar="NAME",
        help=f"run only these workloads: {', '.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="where to write the report"
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="PATH",
        help="run nothing: render the report of a saved run (latest.json) again",
    )
    parser.add_argument(
        "--rounds", type=int, metavar="N", help="rounds, for the workloads that take it"
    )
    parser.add_argument(
        "--requests",
        type=int,
        metavar="N",
        help="requests per run, for the workloads that take it",
    )
    parser.add_argument(
        "--cells",
        nargs="+",
        type=_cell,
        metavar="A:B:C",
        help=(
            "cells, for the workloads that take them, in their own order: "
            "wires LATENCY_MS:CONNECTIONS:COROUTINES, loopback and limits "
            "CONNECTIONS:KEEPALIVE:COROUTINES"
        ),
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    given = {
        key: getattr(args, key)
        for key in ("rounds", "requests", "cells")
        if getattr(args, key) is not None
    }
    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text(encoding="utf-8"))
        command = saved.get("command", "uv run python -m benchmarks")
        text = report(saved["results"], saved["machine"], command)
        args.from_json.with_suffix(".md").write_text(text, encoding="utf-8")
        print(text)
        return 0
    names = args.only or list(WORKLOADS)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    failed: list[str] = []
    for name in names:
        workload = WORKLOADS[name]
        if not workload.available():
            print(
                f"{name}: skipped ({', '.join(workload.needs)} not installed)",
                file=sys.stderr,
            )
            continue
        print(f"{name} ...", file=sys.stderr, flush=True)
        begun = time.perf_counter()
        try:
            results[name] = run_in_child(name, args.quick, workload.timeout, given)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            failed.append(name)  # the others still run and are reported
            print(f"{name}: FAILED: {exc}", file=sys.stderr, flush=True)
            continue
        seconds[name] = time.perf_counter() - begun
        print(f"{name}: {seconds[name]:.0f} s", file=sys.stderr, flush=True)
    command = "uv run python -m benchmarks" + (" --quick" if args.quick else "")
    if args.only:
        command += " --only " + " ".join(args.only)
    for key, value in given.items():
        shown = (
            " ".join(":".join(f"{v:g}" for v in cell) for cell in value)
            if key == "cells"
            else value
        )
        command += f" --{key} {shown}"
    text = report(results, machine(), command)
    if failed:
        text += f"\nFailed (see stderr): {', '.join(failed)}.\n"
    print(text)
    out: Path = args.out
    out.mkdir(exist_ok=True)
    # Only a full run of every workload at its own sizes writes latest.
    stem = "quick" if args.quick else "only" if args.only or given else "latest"
    (out / f"{stem}.md").write_text(text, encoding="utf-8")
    payload = {
        "machine": machine(),
        "command": command,
        "seconds": seconds,
        "results": results,
    }
    (out / f"{stem}.json").write_text(
        json.dumps(payload, indent=2) + "\n", encoding="utf-8"
    )
    total = time.perf_counter() - started
    print(
        f"done in {total:.0f} s; written to {out / stem}.md and .json",
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
