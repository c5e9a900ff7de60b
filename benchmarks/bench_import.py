"""What ``import teletracker_async`` costs, in fresh processes, with this environment's
extras.

Each round starts one fresh interpreter per contender, in turn (so a noisy machine
hits them alike): an empty one, ``import httpx`` as installed (its command line
included when click, rich and pygments are), ``import httpx`` without its command
line (the floor: what the SDK cannot avoid), ``import teletracker_async``, and the
same import followed by a login and a first call on the in-process fake (which pays
whatever the package left for first use), and the import again with its bytecode
cached. Where ``PYTHONDONTWRITEBYTECODE`` is set (this project's CI and dev machines)
an editable install compiles the package's ~6 700 lines at every start; a wheel
installed by pip, or any install that may write ``__pycache__``, does not: that last
contender writes its bytecode under a temporary ``PYTHONPYCACHEPREFIX`` once, before
the rounds. Wall time is measured from here, interpreter start-up included; the
figures are medians [range].

    uv run python -m benchmarks --only import
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any

import anyio.to_thread

from benchmarks.render import check

__all__ = ["EXTRAS_MODULES", "TARGET_MS", "measure", "render"]

#: The goal for ``import teletracker_async`` with every extra installed.
TARGET_MS = 350

#: The libraries the extras (and the web stacks users bring) install, reported so
#: that a figure says what environment it was measured in.
EXTRAS_MODULES = (
    "click",
    "rich",
    "pygments",
    "uvicorn",
    "redis",
    "cryptography",
    "httpx2",
    "aiohttp",
    "httpx_aiohttp",
)

_FIRST_CALL = """
import time
started = time.perf_counter()
import teletracker_async
imported = time.perf_counter()
import anyio
from teletracker_async.testing import FakeTeletracker

async def main():
    fake = FakeTeletracker(users={"bench": "bench-pw"})
    auth = teletracker_async.TeletrackerAuth(
        "bench", "bench-pw", base_url="https://api.teletracker.test"
    )
    async with teletracker_async.TeletrackerClient(
        auth=auth, transport=fake.transport()
    ) as client:
        began = time.perf_counter()
        await client.call_data("2026-01-01", "2026-01-01")
        return time.perf_counter() - began

first = anyio.run(main)
print((imported - started) * 1000, first * 1000)
"""

CONTENDERS = {
    "bare": "pass",
    "httpx": "import httpx",
    "httpx_no_cli": "import sys; sys.modules['httpx._main'] = None; import httpx",
    "teletracker_async": "import teletracker_async",
    "first_call": _FIRST_CALL,
    "teletracker_async_cached": "import teletracker_async",
}


def _run(code: str, env: Mapping[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - this interpreter, our own code
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return time.perf_counter() - started, done.stdout


def _measure(runs: int) -> dict[str, Any]:
    walls: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    first_calls: list[float] = []
    with tempfile.TemporaryDirectory() as prefix:
        cached = {
            **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
            "PYTHONPYCACHEPREFIX": prefix,
        }
        _run(CONTENDERS["teletracker_async_cached"], cached)  # writes the bytecode
        for _ in range(runs):
            for name, code in CONTENDERS.items():
                env = cached if name.endswith("_cached") else None
                wall, out = _run(code, env)
                walls[name].append(wall * 1000)
                if name == "first_call":
                    first_calls.append(float(out.split()[1]))
    _, cli = _run("import sys, teletracker_async; print('httpx._main' in sys.modules)")
    figures: dict[str, Any] = {name: _summary(values) for name, values in walls.items()}
    figures["first_call_ms"] = _summary(first_calls)
    figures["runs"] = runs
    figures["installed"] = [
        module
        for module in EXTRAS_MODULES
        if importlib.util.find_spec(module) is not None
    ]
    figures["imports_httpx_cli"] = cli.strip() == "True"
    return figures


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": statistics.median(values),
        "min_ms": min(values),
        "max_ms": max(values),
    }


async def measure(runs: int = 15) -> dict[str, Any]:
    """Median [range] wall time of each contender over *runs* alternating rounds."""
    return await anyio.to_thread.run_sync(_measure, runs)


def _cell(s: dict[str, float]) -> str:
    return f"{s['median_ms']:.0f} [{s['min_ms']:.0f}–{s['max_ms']:.0f}]"  # noqa: RUF001


def render(r: dict[str, Any]) -> list[str]:
    ours = r["teletracker_async"]["median_ms"]
    installed = ", ".join(r["installed"]) or "none of the extras' libraries"
    return [
        f"Import cost: fresh processes, {r['runs']} alternating rounds, wall ms "
        f"(interpreter start-up included), median [range]; installed: {installed}. "
        "httpx imports its own command line whenever click, rich and pygments are "
        "installed; `import teletracker_async` leaves it for first use"
        + (" (**not** in this run)." if r["imports_httpx_cli"] else "."),
        "",
        "| process | wall ms | target | |",
        "|---|---:|---:|---|",
        f"| `python -c pass` | {_cell(r['bare'])} | | |",
        f"| `import httpx`, as installed | {_cell(r['httpx'])} | | |",
        f"| `import httpx` without its command line (the floor) | {_cell(r['httpx_no_cli'])} | | |",
        f"| `import teletracker_async` | {_cell(r['teletracker_async'])} | ≤ {TARGET_MS} | {check(ours <= TARGET_MS)} |",
        f"| `import teletracker_async`, a login and a first call on the in-process fake | {_cell(r['first_call'])} | | |",
        f"| the first call alone, login included (measured in the child) | {_cell(r['first_call_ms'])} | | |",
        f"| `import teletracker_async`, bytecode cached (as a wheel installed by pip) | {_cell(r['teletracker_async_cached'])} | | |",
        "",
    ]
