"""Smoke tests that keep the benchmark scripts working (no timing is asserted)."""

from __future__ import annotations

import pytest
from benchmarks import bench_auth

pytestmark = pytest.mark.anyio


async def test_bench_auth_runs_at_tiny_size() -> None:
    """The per-request benchmark runs and reports both figures and their ratio."""
    result = await bench_auth.measure(requests=20, rounds=1, concurrency=2)
    assert set(result) == {"teletracker_us", "static_us", "ratio"}
    assert all(value > 0 for value in result.values())
