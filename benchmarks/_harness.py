"""The benchmark harness: a registry of workloads, each run in a fresh process.

A workload is a coroutine function that takes its sizes as keyword arguments and
returns JSON-able figures, and a renderer that turns those figures into Markdown
lines. Registering one is one line in ``benchmarks/__main__.py``::

    "stream": Workload(bench_stream.run, render=bench_stream.render, quick={...}),

``python -m benchmarks --only stream`` runs it alone; ``--quick`` runs it at its
smoke size (what ``tests/benchmarks/test_benchmark_smoke.py`` uses); sizes given on
the command line (``--rounds``, ``--requests``, ``--cells``) replace those of the
workloads that take them. Each workload runs in a child
process of its own (``python -m benchmarks._harness NAME``), so that no workload
inherits another's heap, garbage-collector generations or peak resident memory.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

__all__ = ["Workload", "run_here", "run_in_child"]

Figures = Any  # whatever JSON the workload returns


@dataclass(frozen=True)
class Workload:
    """One registered workload.

    Attributes:
        run: The coroutine function; called with ``full`` or ``quick`` as keywords.
        render: Turns its figures into Markdown lines for the report.
        full: Sizes of the full run (the function's defaults when empty).
        quick: Sizes of the smoke run (``--quick`` and the tests).
        needs: Modules that must import for it to run (else it is skipped).
        timeout: Seconds its child process may take before it is stopped.
    """

    run: Callable[..., Awaitable[Figures]]
    render: Callable[[Figures], list[str]]
    full: Mapping[str, Any] = field(default_factory=dict)
    quick: Mapping[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    timeout: float = 900

    def available(self) -> bool:
        return all(
            importlib.util.find_spec(module) is not None for module in self.needs
        )

    def sizes(
        self, quick: bool, given: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Its full or quick sizes, with those of *given* that it takes."""
        sizes = dict(self.quick if quick else self.full)
        sizes.update({k: v for k, v in (given or {}).items() if k in self.takes()})
        return sizes

    def takes(self) -> frozenset[str]:
        """The sizes its coroutine function takes, by keyword."""
        return frozenset(inspect.signature(self.run).parameters)


def run_here(
    workload: Workload, quick: bool, given: Mapping[str, Any] | None = None
) -> Figures:
    """Run *workload* in this process (on asyncio) and return its figures."""
    return anyio.run(_call, workload, quick, given, backend="asyncio")


async def _call(
    workload: Workload, quick: bool, given: Mapping[str, Any] | None
) -> Figures:
    return await workload.run(**workload.sizes(quick, given))


def run_in_child(
    name: str,
    quick: bool,
    timeout: float = 900,
    given: Mapping[str, Any] | None = None,
) -> Figures:
    """Run the registered workload *name* in a fresh Python process, with the sizes
    of *given* that it takes replacing its own."""
    command = [sys.executable, "-m", "benchmarks._harness", name]
    if quick:
        command.append("--quick")
    if given:
        command += ["--sizes", json.dumps(dict(given))]
    done = subprocess.run(  # noqa: S603 - our own module, fixed arguments
        command, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"workload {name} failed (exit {done.returncode}): "
            f"{done.stderr.strip()[-2000:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child_main(argv: list[str]) -> int:
    from benchmarks.__main__ import WORKLOADS  # noqa: PLC0415 - the registry

    name, quick = argv[0], "--quick" in argv[1:]
    given = json.loads(argv[argv.index("--sizes") + 1]) if "--sizes" in argv else None
    print(json.dumps(run_here(WORKLOADS[name], quick, given)))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
