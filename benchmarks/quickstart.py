"""Time the README's two commands from a fresh clone, and write the README's figures.

    uv run python -m benchmarks.quickstart            # measure (about 5 minutes)
    uv run python -m benchmarks.quickstart --render   # rewrite the README's sentence

It clones this checkout's HEAD into a temporary folder named ``teletracker_async``,
runs ``uv run teletracker-async demo`` once (installation included: the clone has no
``.venv``) and ``uv run pytest`` ``--runs`` times, and writes the wall times and the
test count to ``results/quickstart.json``. The README's sentence between
``<!-- quickstart:begin -->`` and ``<!-- quickstart:end -->`` is rendered from that
file (``tests/benchmarks/test_quickstart_figures.py`` checks that it is).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent.parent
RESULT = Path(__file__).parent / "results" / "quickstart.json"
README = ROOT / "README.md"
BEGIN, END = "<!-- quickstart:begin -->", "<!-- quickstart:end -->"
_PASSED = re.compile(r"(\d+) passed")


def _timed(command: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - our own commands
        command, cwd=cwd, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return seconds, done.stdout


def _bootstrap(clone: Path) -> None:
    """A first measurement has no figures yet for the README's test to compare: give
    the clone placeholder ones (same tests, same work) so that its run can pass."""
    result = clone / RESULT.relative_to(ROOT)
    if result.exists():
        return
    placeholder = {
        "commit": "none",
        "cores": 0,
        "bytecode": "none",
        "demo_seconds": 0.0,
        "test_seconds": [0.0],
        "tests": 0,
    }
    result.write_text(json.dumps(placeholder), encoding="utf-8")
    readme = clone / "README.md"
    readme.write_text(render(readme.read_text("utf-8"), placeholder), "utf-8")


def measure(runs: int) -> dict[str, Any]:
    """The two commands' wall times from a fresh clone of HEAD."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as scratch:
        clone = Path(scratch) / "teletracker_async"
        subprocess.run(  # noqa: S603
            ["git", "clone", "-q", str(ROOT), str(clone)],  # noqa: S607
            check=True,
        )
        _bootstrap(clone)
        demo, _ = _timed(["uv", "run", "teletracker-async", "demo"], clone)
        tests: list[float] = []
        count = 0
        for _ in range(runs):
            seconds, out = _timed(
                ["uv", "run", "pytest", "-q", "-p", "no:randomly"], clone
            )
            tests.append(round(seconds, 1))
            found = _PASSED.search(out)
            count = int(found.group(1)) if found else 0
    return {
        "commit": commit,
        "cores": os.cpu_count(),
        "bytecode": "not written"
        if os.environ.get("PYTHONDONTWRITEBYTECODE")
        else "written",
        "demo_seconds": round(demo, 1),
        "test_seconds": tests,
        "tests": count,
    }


def sentence(result: dict[str, Any]) -> str:
    """The README's figures, in words."""
    low, high = min(result["test_seconds"]), max(result["test_seconds"])
    runs = len(result["test_seconds"])
    return (
        f"From a fresh clone on a {result['cores']}-core machine, the demo took "
        f"{result['demo_seconds']:.0f} s, installation and bytecode compilation "
        f"included (with the packages already in uv's cache), and the fast tier "
        f"ran {result['tests']} tests in {low:.0f} to {high:.0f} s of wall time "
        f"over {runs} runs (`python -m benchmarks.quickstart`, commit "
        f"{result['commit']}; bytecode {result['bytecode']})."
    )


def render(readme: str, result: dict[str, Any]) -> str:
    """*readme* with its quickstart sentence rendered from *result*."""
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return f"{readme[:start]}\n{sentence(result)}\n{readme[end:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3, help="test runs (default 3)")
    parser.add_argument(
        "--render", action="store_true", help="measure nothing: rewrite the README"
    )
    args = parser.parse_args(argv)
    if not args.render:
        result = measure(args.runs)
        RESULT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    result = json.loads(RESULT.read_text(encoding="utf-8"))
    README.write_text(render(README.read_text(encoding="utf-8"), result), "utf-8")
    print(sentence(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
