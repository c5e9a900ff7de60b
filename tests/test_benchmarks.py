"""Smoke tests that keep the benchmark scripts working (no timing is asserted)."""

from __future__ import annotations

import pytest
from benchmarks import bench_auth

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("stack", ["httpx", "httpx2"])
async def test_bench_auth_runs_at_tiny_size(stack: str) -> None:
    """The per-request benchmark runs on both stacks and reports both figures and
    their ratio."""
    if stack == "httpx2":
        pytest.importorskip("httpx2")
    result = await bench_auth.measure(requests=20, rounds=1, concurrency=2, stack=stack)
    assert set(result) == {"teletracker_us", "static_us", "ratio"}
    assert all(value > 0 for value in result.values())


async def test_stream_workload_runs_at_tiny_size() -> None:
    """The sliding-window workload pulls every record each way and renders its table
    (no timing asserted)."""
    from benchmarks import bench_stream  # noqa: PLC0415

    result = await bench_stream.measure(
        windows=6, concurrency=2, slow_s=0.002, fast_s=0.0, rounds=1
    )
    assert result["slow_windows"] == 1
    names = ("ideal", "stream", "stream_ahead4x", "stream_unbounded", "batches")
    assert all(result[f"{name}_s"] > 0 for name in names)
    table = "\n".join(bench_stream.rows(result))
    assert "| `iter_call_data` (batches) |" in table
    assert "default ahead = 4" in table
    assert bench_stream.rows(None) == []


async def test_suite_workloads_run_at_tiny_size() -> None:
    """Every in-process workload runs and reports its figures (no timing asserted)."""
    from benchmarks import suite  # noqa: PLC0415

    storm = await suite.expiry_storm(coroutines=50, rounds=1)
    assert (storm["refreshes_per_storm"], storm["failed"]) == (1, 0)
    rows = await suite.contended_storms(sizes=(50,), refresh_times=(0.01,))
    assert [r["where"] for r in rows] == ["past deadline", "expired"]
    for row in rows:  # everyone but the refresher waited for the one refresh
        assert (row["refreshes"], row["waited"], row["failed"]) == (1, 49, 0)
    early = await suite.early_window(coroutines=50, refresh_s=0.01)
    assert early["refreshes"] == 1
    assert early["delayed"] <= 1  # at most the refresher itself
    threads = await suite.threads(coroutines=5, expiries=2, refresh_s=0.0)
    assert threads["refreshes_per_expiry_max"] == 1
    assert (threads["logins"], threads["reuse_attempts"], threads["failed"]) == (
        1,
        0,
        0,
    )
    mem = await suite.memory(requests=200, refreshes=2)
    assert mem["refreshes"] == 2
    assert set(mem) >= {"growth_sdk_kib", "growth_total_kib", "peak_rss_growth_kib"}


@pytest.mark.filterwarnings("ignore:The httpx module is deprecated")
def test_loopback_and_peers_run_at_tiny_size() -> None:
    """The socket workloads run end to end against the served fake, peers included."""
    import anyio  # noqa: PLC0415
    from benchmarks import suite  # noqa: PLC0415
    from benchmarks.__main__ import render  # noqa: PLC0415

    lo = anyio.run(suite.loopback, 40, 10, 1, backend="asyncio")
    assert lo["rps_ratio"] > 0
    if suite._has_httpx2():
        lo2 = anyio.run(suite.loopback, 40, 10, 1, "httpx2", backend="asyncio")
        assert (lo2["stack"], lo2["rps_ratio"] > 0) == ("httpx2", True)
    peers = anyio.run(suite.peers, 20, 10, 2.0, backend="asyncio")
    assert set(peers) == {"teletracker_async", "authlib", "httpx_auth"}
    assert peers["teletracker_async"]["reuse_attempts"] == 0
    assert peers["teletracker_async"]["storm_failed"] == 0
    results = {
        "per_request": {"c1": {"ratio": 1.0}, "c100": {"ratio": 1.0}},
        "threads": {
            "loops": "asyncio+trio",
            "coroutines": 1,
            "expiries": 1,
            "logins": 1,
            "refreshes_per_expiry_min": 1,
            "refreshes_per_expiry_max": 1,
            "reuse_attempts": 0,
            "failed": 0,
            "round_s": 0.1,
        },
        "expiry_storm": {
            "coroutines": 1,
            "refreshes_per_storm": 1,
            "failed": 0,
            "ratio": 1.0,
        },
        "early_window": {"not_delayed_share": 1.0},
        "loopback": lo,
        "memory": {
            "requests": 1,
            "refreshes": 1,
            "growth_sdk_kib": 0.0,
            "growth_total_kib": 0.0,
            "peak_rss_growth_kib": 0,
        },
        "peers": peers,
    }
    table = render(results, "test machine", "cmd")
    assert "| teletracker_async |" in table
    assert (
        "**missed**"
        not in table.split("Peers")[0].replace(str(round(lo["rps_ratio"], 3)), "")
        or lo["rps_ratio"] < 0.97
    )


@pytest.mark.anyio
async def test_fleet_cost_workload_runs_at_tiny_size() -> None:
    """The fleet workload's per-request part runs, touches no store per request, and
    renders (the fleet runs themselves are covered by the fleet suite)."""
    from benchmarks import bench_fleet  # noqa: PLC0415

    cost = await bench_fleet.per_request_with_store(requests=50, rounds=1)
    assert cost["ratio"] > 0
    assert cost["store_calls_during"] == 0
    lines = bench_fleet.render({"per_request": cost, "lease_ttl": 30.0})
    assert any("not measured" in line for line in lines)
