"""Markdown for the figures of each workload in ``suite`` (one function per workload).

Every renderer takes the JSON its workload returned and gives Markdown lines; the
runner joins them in registration order. Targets are marked met or **missed**.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "check",
    "contended_storms",
    "early_window",
    "expiry_storm",
    "memory",
    "peers",
    "per_request",
    "threads",
]


def check(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _table(rows: list[str]) -> list[str]:
    return ["| workload | figure | target | |", "|---|---:|---:|---|", *rows, ""]


def per_request(r: dict[str, Any]) -> list[str]:
    rows = [
        f"| 1. per-request cost, 1 coroutine (vs static header) | {r['c1']['ratio']:.3f} | ≤ 1.02 | {check(r['c1']['ratio'] <= 1.02)} |",
        f"| 1. per-request cost, 100 coroutines | {r['c100']['ratio']:.3f} | ≤ 1.02 | {check(r['c100']['ratio'] <= 1.02)} |",
    ]
    if "httpx2_c1" in r:
        rows += [
            f"| 1. httpx2: per-request cost, 1 coroutine (vs static header on httpx2) | {r['httpx2_c1']['ratio']:.3f} | ≤ 1.02 | {check(r['httpx2_c1']['ratio'] <= 1.02)} |",
            f"| 1. httpx2: per-request cost, 100 coroutines | {r['httpx2_c100']['ratio']:.3f} | ≤ 1.02 | {check(r['httpx2_c100']['ratio'] <= 1.02)} |",
            f"| 1. µs per request, ours on httpx / on httpx2 (100 coroutines, MockTransport) | {r['c100']['teletracker_us']:.1f} / {r['httpx2_c100']['teletracker_us']:.1f} | | |",
        ]
    return [
        "Per-request cost (1.), `MockTransport`, ratio of medians:",
        "",
        *_table(rows),
    ]


def threads(th: dict[str, Any]) -> list[str]:
    label = (
        f"{len(th['loops'].split('+'))} threads x {th['coroutines']} coroutines, "
        f"own loops ({th['loops']}), {th['expiries']} expiries"
    )
    ok = (th["logins"], th["reuse_attempts"], th["failed"]) == (1, 0, 0)
    return _table(
        [
            f"| 1b. {label}: refreshes per expiry (min to max) | {th['refreshes_per_expiry_min']} to {th['refreshes_per_expiry_max']} | 1 | {check(th['refreshes_per_expiry_min'] == th['refreshes_per_expiry_max'] == 1)} |",
            f"| 1b. same: logins / refresh tokens reused / failed requests | {th['logins']} / {th['reuse_attempts']} / {th['failed']} | 1 / 0 / 0 | {check(ok)} |",
            f"| 1b. same: median seconds per expiry round | {th['round_s']:.2f} | | |",
        ]
    )


def expiry_storm(w2: dict[str, Any]) -> list[str]:
    return _table(
        [
            f"| 2. expiry storm, {w2['coroutines']} coroutines: refreshes | {w2['refreshes_per_storm']} | 1 | {check(w2['refreshes_per_storm'] == 1)} |",
            f"| 2. expiry storm: failed requests | {w2['failed']} | 0 | {check(w2['failed'] == 0)} |",
            f"| 2. expiry storm: wall time vs fresh token | {w2['ratio']:.3f} | ≤ 1.2 | {check(w2['ratio'] <= 1.2)} |",
        ]
    )


def early_window(w3: dict[str, Any]) -> list[str]:
    share = w3["not_delayed_share"]
    return _table(
        [
            f"| 2. early window, {w3['coroutines']} coroutines: requests not delayed by the refresh | {share:.2%} | ≥ 95 % | {check(share >= 0.95)} |"
        ]
    )


def contended_storms(rows: list[dict[str, Any]]) -> list[str]:
    """Workload 2b: storms whose refresh takes time, so that everyone else waits."""
    if not rows:
        return []
    lines = [
        (
            "Storms that contend (2b.): every request at once with a slow refresh. "
            "vs parked = storm / the same requests with a static header parked on one "
            "event for the refresh time (goal ≤ 1.1); vs fresh = storm / (fresh batch "
            "+ refresh time), which leaves out the cost of parking N coroutines:"
        ),
        "",
        "| coroutines | refresh | token | refreshes | waited | failed | vs parked | vs fresh | |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r['coroutines']} | {r['refresh_s'] * 1000:.0f} ms | {r['where']} | "
        f"{r['refreshes']} | {r['waited']} | {r['failed']} | "
        f"{r['parked_ratio']:.3f} | {r['ratio']:.3f} | "
        f"{check(r['parked_ratio'] <= 1.1 and r['refreshes'] == 1 and r['failed'] == 0 and r['waited'] == r['coroutines'] - 1)} |"
        for r in rows
    ]
    return [*lines, ""]


def memory(mem: dict[str, Any]) -> list[str]:
    who = "static header" if mem.get("static") else "SDK"
    rows = [
        f"| 5. memory growth, {mem['requests']} requests, {mem['refreshes']} refreshes ({who}; tracemalloc, by file) | {mem['growth_sdk_kib']:.1f} KiB | < 1024 KiB | {check(mem['growth_sdk_kib'] < 1024)} |",
        f"| 5. same, everything incl. the fake | {mem['growth_total_kib']:.1f} KiB | | |",
        f"| 5. peak RSS growth ({who}, fresh process) | {mem['peak_rss_growth_kib']} KiB | | |",
    ]
    if mem.get("static"):
        rows = rows[1:]  # the static floor has no SDK allocations to count
    return _table(rows)


def peers(peers: dict[str, Any]) -> list[str]:
    lines = [
        "Peers (4.), each against an OAuth2-shaped `/oauth/token` that the benchmark puts in front of the fake (`benchmarks/_oauth.py`), same loopback server:",
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
    return [*lines, ""]
