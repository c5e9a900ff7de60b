"""Every default and tunable of the SDK, in one place.

Two constants with one name are a bug: import from here, never restate a value.
"""

from __future__ import annotations

import functools
import importlib
from typing import Literal

import httpx

__all__ = [
    "BACKOFF_BASE",
    "DEFAULT_BASE_URL",
    "DEFAULT_JITTER",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_REFRESH_MARGIN",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOTAL_TIMEOUT",
    "DEFAULT_WIRE",
    "DUE_MARGIN",
    "ENV_ACCOUNT_ID",
    "ENV_BASE_URL",
    "ENV_PASSWORD",
    "ENV_USERNAME",
    "EXCHANGE_TIMEOUT",
    "FILE_LOCK_MAX_POLL",
    "FILE_LOCK_POLL",
    "FILE_LOCK_TIMEOUT",
    "FLEET_JITTER",
    "FLEET_POLL",
    "FLEET_RETRY",
    "FLEET_WAIT",
    "IDEMPOTENT_METHODS",
    "LEASE_HEARTBEAT",
    "LEASE_RELEASE_TIMEOUT",
    "LEASE_TAKEOVER",
    "LEASE_TTL",
    "MAX_ACCOUNT_ID",
    "MAX_BACKOFF",
    "MAX_RECORD_BYTES",
    "MAX_RETRY_AFTER",
    "POOL_SHARD_SIZE",
    "REDIS_TIMEOUT",
    "RENEWAL_BACKOFF",
    "RETRY_STATUSES",
    "STORE_THREADS",
    "STREAM_AHEAD_PER_REQUEST",
    "WAIT_RECHECK",
    "WIRES",
    "Wire",
    "user_agent",
]

# -- where -------------------------------------------------------------------------
#: The public API root.
DEFAULT_BASE_URL = "https://api.teletracker.net"

# -- the session's timeline (see ``_session/machine.py``) --------------------------------
#: Seconds before expiry at which one request may refresh early (capped at lifetime/2).
DEFAULT_REFRESH_MARGIN = 300.0
#: The hard deadline sits this many seconds before expiry (less for short lifetimes).
DUE_MARGIN = 5.0
#: Pause after a failed renewal while the token is still valid (jittered +-20 %).
RENEWAL_BACKOFF = 30.0
#: A coroutine waiting for a renewal run by another event loop checks this often
#: that the loop running it is still alive (a loop torn down mid-exchange).
WAIT_RECHECK = 0.5

#: Login and refresh requests carry their own timeouts (seconds), whatever client
#: sends them: an exchange that hangs would hold every waiter (and, with a token
#: store, the fleet's renewal lease, which its holder keeps alive meanwhile).
EXCHANGE_TIMEOUT = {"connect": 10.0, "read": 20.0, "write": 20.0, "pool": None}

# -- many processes sharing a session through a token store (``stores``) --------------
#: The renewal lease's time to live (seconds). Short: its holder extends it every
#: :data:`LEASE_HEARTBEAT` while its exchange runs, so a holder that dies or freezes
#: (SIGKILL, SIGSTOP, a stuck event loop) loses it this long after its last beat.
LEASE_TTL = 1.5
#: How often a lease holder extends its lease while its exchange runs (seconds):
#: a third of the TTL, so two beats may be late before the lease runs out.
LEASE_HEARTBEAT = LEASE_TTL / 3
#: The promise the two above keep: another process takes over a dead or frozen
#: holder's lease within this many seconds (the TTL, plus a poll of the store).
LEASE_TAKEOVER = 2.0
#: How long a flight's end waits to release its lease (even when cancelled) before
#: leaving it to run out on its own (seconds).
LEASE_RELEASE_TIMEOUT = 1.0
#: Fraction of the refresh margin by which each process moves its own refresh
#: later, at random, so that a fleet does not reach the store all at once.
FLEET_JITTER = 0.2
#: Early window, another process holds the lease: keep the valid token and look at
#: the store again after about this long (jittered +-20 %).
FLEET_RETRY = 1.0
#: Past the hard deadline, another process holds the lease: look at the store this
#: often (jittered +-50 %) for its new session or a free lease...
FLEET_POLL = 0.1
#: ... for at most this long, then renew privately (its holder, alive and beating,
#: must be stuck in its exchange: longer than an exchange normally takes).
FLEET_WAIT = 35.0
#: RedisTokenStore: seconds to connect, and to wait for any answer, before the store
#: counts as unreachable (a frozen server must cost a TokenStoreError, not a hang).
REDIS_TIMEOUT = 5.0
#: FileTokenStore: how long an operation waits for another process's short mutation
#: lock before it gives up with a TokenStoreError (a frozen process must not hang
#: the fleet), and the first pause between two tries (doubling up to
#: FILE_LOCK_MAX_POLL).
FILE_LOCK_TIMEOUT = 10.0
FILE_LOCK_POLL = 0.001
FILE_LOCK_MAX_POLL = 0.05
#: Every store: a record larger than this many bytes is refused on reading
#: (TokenStoreError, like a corrupt record) rather than loaded into memory. A
#: session's record is a few kilobytes.
MAX_RECORD_BYTES = 1 << 20
#: The file store and the sync Redis client run in worker threads of their own,
#: at most this many at once per event loop: never queued behind the application's
#: blocking calls in anyio's default pool (a lease's heartbeat must keep beating).
STORE_THREADS = 16

# -- the client -----------------------------------------------------------------------
#: Connect fast or fail; give reports a minute; never fail a coroutine merely because
#: it queued behind thousands of others for a pooled connection.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=None)
#: One host, many coroutines: a bounded pool queues them instead of opening
#: thousands of sockets (which the server would meet with 429s). 50, measured with
#: the pools of POOL_SHARD_SIZE (500 coroutines): with 30 ms of server latency the
#: client is CPU-bound from about 20 connections on, and 8 to 200 cost the same CPU
#: per request; with 100 ms, 20 connections served 178 requests/s, 50 404 and 100
#: 599. A web app's light load stays on the few connections it needs (the one freed
#: last is reused first); a puller far from the API gets more than twice what 20
#: serve, without doubling again the burst one process sends.
DEFAULT_LIMITS = httpx.Limits(
    max_connections=50, max_keepalive_connections=50, keepalive_expiry=30.0
)
#: What carries the client's requests (``TeletrackerClient(wire=...)``): httpx's own
#: transport, or aiohttp's sockets under httpx (the ``aiohttp`` extra, asyncio only).
Wire = Literal["httpx", "aiohttp"]
WIRES: tuple[Wire, ...] = ("httpx", "aiohttp")
DEFAULT_WIRE: Wire = "httpx"
#: The client the SDK builds on httpx splits its connections into httpcore pools of
#: at most this many (``_call/pools.py``): httpcore 1.0 scans every connection of a
#: pool for each request it assigns, so its cost per request grows with the pool.
#: Measured (500 coroutines, 30 ms of server latency, 100 connections, 4 runs):
#: against pools of 2, client CPU per request is 25 % less to 5 % more in pools of
#: 1, 10-15 % more of 4, 30-60 % more of 8, about twice as much of 16, and four to
#: eight times as much in one pool of 100. 1 costs least and scans nothing: the
#: SDK's stack of free connections picks the connection, httpcore runs it.
POOL_SHARD_SIZE = 1
#: Retries after the first try (``max_retries=``, the older spelling of ``Retry``).
DEFAULT_MAX_RETRIES = 2
#: Tries of one call, the first included (``Retry.max_attempts``).
DEFAULT_MAX_ATTEMPTS = DEFAULT_MAX_RETRIES + 1
#: Statuses retried (``Retry.statuses``): the API's "slow down" and its gateways'
#: "not now"; a 500 may have done the work, so it is not repeated.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: No deadline for one call and its retries unless the caller sets one (seconds).
DEFAULT_TOTAL_TIMEOUT: float | None = None
#: Full-jitter exponential backoff: uniform(0, min(MAX_BACKOFF, BACKOFF_BASE * 2**n))
#: before retry n + 1 (``Retry.backoff``, ``Retry.max_backoff``, ``Retry.jitter``).
BACKOFF_BASE = 0.5
MAX_BACKOFF = 8.0
#: The share of each backoff drawn at random: 1.0 is full jitter (a fleet refused at
#: once does not come back at once), 0.0 none.
DEFAULT_JITTER = 1.0
#: ``stream_call_data``'s default ``ahead``, per request in flight: windows held or
#: in flight besides the one being read = this x ``concurrency`` (benchmarks: stream).
STREAM_AHEAD_PER_REQUEST = 4
#: A Retry-After longer than this is not slept through: the error is raised with it
#: (``RateLimitError.retry_after`` keeps the server's value, uncapped).
MAX_RETRY_AFTER = 60.0

# -- configuration from the environment (the client and the CLI read the same names) ---
ENV_USERNAME = "TELETRACKER_USERNAME"
ENV_PASSWORD = "TELETRACKER_PASSWORD"  # noqa: S105 - the variable's name, not a secret
ENV_ACCOUNT_ID = "TELETRACKER_ACCOUNT_ID"
ENV_BASE_URL = "TELETRACKER_BASE_URL"
#: The largest account id taken (a signed 64-bit integer, what an id column holds):
#: a bigger one is a typo, refused before it reaches a query string.
MAX_ACCOUNT_ID = 2**63 - 1


@functools.cache
def user_agent(stack: str = "httpx") -> str:
    """``teletracker-async/<version> <stack>/<version>``, e.g. ``httpx/0.28.1``.

    Read from package metadata on first use, per HTTP stack (``httpx`` or ``httpx2``).
    """
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        ours = f"teletracker-async/{version('teletracker-async')}"
    except PackageNotFoundError:  # pragma: no cover - only from a bare checkout
        ours = "teletracker-async"
    module = importlib.import_module(stack)
    return f"{ours} {stack}/{getattr(module, '__version__', 'unknown')}"
