"""Smoke tests that keep the benchmark harness and workloads working.

No timing is asserted: only that each workload runs at its quick size, reports its
figures, counts what must be counted, and renders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from benchmarks.__main__ import WORKLOADS, main, report
from benchmarks._harness import run_here, run_in_child

from benchmarks import bench_auth, bench_wires

#: Benchmark smoke runs are the slow tier: `uv run pytest -m slow`.
pytestmark = pytest.mark.slow


@pytest.mark.anyio
@pytest.mark.parametrize("stack", ["httpx", "httpx2"])
async def test_bench_auth_runs_at_tiny_size(stack: str) -> None:
    """The per-request benchmark runs on both stacks and reports both figures and
    their ratio."""
    if stack == "httpx2":
        pytest.importorskip("httpx2")
    result = await bench_auth.measure(requests=20, rounds=1, concurrency=2, stack=stack)
    assert set(result) == {"teletracker_us", "static_us", "ratio"}
    assert all(value > 0 for value in result.values())


def _check_figures(name: str, figures: Any) -> None:
    """What each workload must count, whatever the timing."""
    if name == "expiry_storm":
        assert (figures["refreshes_per_storm"], figures["failed"]) == (1, 0)
    elif name.startswith("contended_storms"):
        assert [r["where"] for r in figures] == ["past deadline", "expired"]
        for row in figures:  # everyone but the refresher waited for the one refresh
            assert (row["refreshes"], row["waited"], row["failed"]) == (1, 49, 0)
            assert row["parked_ratio"] > 0
    elif name == "early_window":
        assert figures["refreshes"] == 1
        assert figures["delayed"] <= 1  # at most the refresher itself
    elif name == "threads":
        assert figures["refreshes_per_expiry_max"] == 1
        assert (figures["logins"], figures["reuse_attempts"], figures["failed"]) == (
            1,
            0,
            0,
        )
    elif name.startswith(("memory", "limits", "loopback")):
        if name.startswith("memory"):
            assert figures["refreshes"] == (0 if figures["static"] else 2)
        else:
            (row,) = figures["rows"]
            assert all(c["rps"] > 0 for c in row["clients"].values())
    elif name == "peers":
        assert set(figures) == {"teletracker_async", "authlib", "httpx_auth"}
        ours = figures["teletracker_async"]
        assert (ours["reuse_attempts"], ours["storm_failed"]) == (0, 0)
    else:
        _check_more_figures(name, figures)


def _check_more_figures(name: str, figures: Any) -> None:
    if name == "wires":
        (row,) = figures["rows"]
        expected = [n for n in bench_wires.CONTENDERS if bench_wires._available(n)]
        assert list(row["runs"]) == expected
        assert {"sdk-httpx", "sdk-aiohttp", "raw-aiohttp"} <= set(expected)
        for name_, runs in row["runs"].items():
            (run,) = runs
            assert run["finished"], (name_, run)
            assert all(run[k] > 0 for k in ("rps", "p50_ms", "p99_ms", "cpu_us"))
    elif name == "request_json":
        for key in ("c1", "c100"):
            assert figures[key]["ratio"] > 0
            assert figures[key]["same_client_ratio"] > 0
    elif name == "stream":
        names = ("ideal", "stream", "stream_unordered", "stream_unbounded", "batches")
        ahead = tuple(f"stream_ahead{f}x" for f in (2, 3, 4, 6))
        assert all(figures[f"{n}_s"] > 0 for n in names + ahead)
    elif name == "import":
        assert figures["runs"] == 1
        assert figures["teletracker_async"]["median_ms"] > 0
        assert figures["first_call_ms"]["median_ms"] > 0
        assert figures["imports_httpx_cli"] is False
    elif name == "fleet":
        assert figures["per_request"]["store_calls_during"] == 0
        for run in ("file", "redis", "file_killed", "redis_killed"):
            assert (figures[run]["reuse"], figures[run]["failed"]) == (0, 0)


@pytest.mark.filterwarnings("ignore:The httpx module is deprecated")
@pytest.mark.parametrize(
    "name",
    # The fleet workload starts worker processes and a Redis: the fleet suite's run.
    [
        pytest.param(n, marks=pytest.mark.fleet) if n == "fleet" else n
        for n in WORKLOADS
    ],
)
def test_every_workload_runs_at_its_quick_size(name: str) -> None:
    """Each registered workload runs alone at its quick size and renders."""
    workload = WORKLOADS[name]
    if not workload.available():
        pytest.skip(f"needs {workload.needs}")
    figures = run_here(workload, quick=True)
    json.dumps(figures)  # the runner sends it between processes as JSON
    _check_figures(name, figures)
    assert workload.render(figures)
    assert f"### {name}" in report({name: figures}, "test machine", "cmd")


@pytest.mark.anyio
async def test_stream_workload_runs_at_tiny_size() -> None:
    """The sliding-window workload pulls every record each way and renders its table
    (no timing asserted)."""
    from benchmarks import bench_stream  # noqa: PLC0415

    result = await bench_stream.measure(
        windows=6, concurrency=2, slow_s=0.002, fast_s=0.0, rounds=1
    )
    assert result["slow_windows"] == 1
    table = "\n".join(bench_stream.rows(result))
    assert "| `iter_call_data` (batches) |" in table
    assert "default ahead = 8" in table  # STREAM_AHEAD_PER_REQUEST x 2
    assert "`ordered=False`, ahead = 8" in table
    assert bench_stream.rows(None) == []


@pytest.mark.anyio
async def test_fleet_cost_workload_runs_at_tiny_size() -> None:
    """The fleet workload's per-request part touches no store per request, and the
    report says when a store could not be measured."""
    from benchmarks import bench_fleet  # noqa: PLC0415

    cost = await bench_fleet.per_request_with_store(requests=50, rounds=1)
    assert cost["ratio"] > 0
    assert cost["store_calls_during"] == 0
    lines = bench_fleet.render({"per_request": cost, "lease_ttl": 30.0})
    assert any("not measured" in line for line in lines)


def test_runner_runs_a_workload_in_a_child_and_writes_the_report(
    tmp_path: Path,
) -> None:
    """--only NAME --quick runs just that workload in a fresh process, prints and
    writes its report (quick.md / quick.json, never latest)."""
    assert main(["--quick", "--only", "expiry_storm", "--out", str(tmp_path)]) == 0
    written = json.loads((tmp_path / "quick.json").read_text())
    assert list(written["results"]) == ["expiry_storm"]
    assert "### expiry_storm" in (tmp_path / "quick.md").read_text()
    assert not (tmp_path / "latest.md").exists()
    # A saved run renders again without measuring anything.
    (tmp_path / "quick.md").unlink()
    assert main(["--from-json", str(tmp_path / "quick.json")]) == 0
    assert "### expiry_storm" in (tmp_path / "quick.md").read_text()


def test_a_failing_child_names_the_workload() -> None:
    with pytest.raises(RuntimeError, match="workload no_such_workload failed"):
        run_in_child("no_such_workload", quick=True)


def test_wires_reports_a_run_that_did_not_finish_or_failed() -> None:
    """A contender that collapses is reported as such, not as a figure, and its
    ratios are left blank; the others keep their median [range]."""
    done = {
        "finished": True,
        "rps": 100.0,
        "p50_ms": 5.0,
        "p99_ms": 9.0,
        "cpu_us": 300.0,
    }
    slow = {"finished": False, "done": 12, "timeout_s": 30.0}
    failed = {"finished": False, "error": "httpx.ReadError: boom", "timeout_s": 30.0}
    runs = {
        "sdk-httpx": [done, slow, {**done, "rps": 50.0}],
        "floor-httpx": [slow, slow, slow],
        "sdk-aiohttp": [done, failed, done],
        "raw-aiohttp": [done, done, {**done, "rps": 400.0}],
    }
    row = {"latency_ms": 30, "connections": 100, "coroutines": 500, "requests": 2000}
    table = "\n".join(
        bench_wires.render(
            {"rounds": 3, "timeout_s": 30.0, "rows": [{**row, "runs": runs}]}
        )
    )
    assert "| sdk-httpx | 75 [50-100], 1 of 3 did not finish in 30 s |" in table
    assert "| floor-httpx | did not finish in 30 s |" in table
    assert "| sdk-aiohttp | failed in 1 of 3: httpx.ReadError: boom |" in table
    assert "| raw-aiohttp | 100 [100-400] |" in table
    assert "| sdk-httpx / floor-httpx | -; CPU - |" in table
    assert "| sdk-httpx / raw-aiohttp | 0.75 |" in table
    assert "100 x 500, 30 ms" in table


def test_wires_takes_cells_and_contenders_from_the_command_line() -> None:
    """Sizes given to the runner replace the workload's own in its child process."""
    figures = run_in_child(
        "wires",
        quick=True,
        given={"cells": [[0, 4, 10]], "requests": 20, "contenders": ["raw-aiohttp"]},
    )
    (row,) = figures["rows"]
    assert (row["latency_ms"], row["connections"], row["coroutines"]) == (0, 4, 10)
    assert row["requests"] == 20
    assert list(row["runs"]) == ["raw-aiohttp"]


def test_runner_refuses_a_cell_that_is_not_three_numbers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--only", "wires", "--cells", "30:8"])
    assert "a cell is A:B:C (three numbers), not '30:8'" in capsys.readouterr().err
