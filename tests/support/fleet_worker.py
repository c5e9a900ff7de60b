"""The package's fleet worker with the fault switches the fleet suite and the fleet
benchmark need, set through the environment of each worker process.

Run as ``python -m tests.support.fleet_worker`` (:data:`WORKER`, with :func:`worker_env`
so that the checkout is importable from wherever the worker starts).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import anyio

from teletracker_async._cli import fleet_worker
from teletracker_async._session.fleet import FleetLink
from teletracker_async.stores import TokenStore

__all__ = [
    "ENV_DIE_ONCE",
    "ENV_LEASE_TTL",
    "ENV_STOP_ONCE",
    "ENV_TRUST_ANY_INSTANCE",
    "WORKER",
    "worker_env",
]

#: The first worker to get a refresh answer creates this file and kills itself with
#: SIGKILL (the server rotated; the store never hears of it).
ENV_DIE_ONCE = "TELETRACKER_FLEET_DIE_ONCE"
#: The first worker to get a refresh answer creates this file, writes its pid in it
#: and stops itself with SIGSTOP (frozen mid-exchange, holding the lease, the server
#: rotated): whoever sends it SIGCONT sees what its late commit does.
ENV_STOP_ONCE = "TELETRACKER_FLEET_STOP_ONCE"
#: A different renewal lease (seconds), so that a killed holder's lease runs out
#: within a short test; the bounded wait for a stuck holder shrinks with it.
ENV_LEASE_TTL = "TELETRACKER_FLEET_LEASE_TTL"
#: For the control run only: a Redis store that trusts records from any server run,
#: to show that the instance check is what prevents a reuse.
ENV_TRUST_ANY_INSTANCE = "TELETRACKER_FLEET_TRUST_ANY_INSTANCE"

WORKER = (sys.executable, "-m", "tests.support.fleet_worker")
_CHECKOUT = Path(__file__).resolve().parents[2]


def worker_env(faults: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for :data:`WORKER`: *faults*, and the checkout on the path."""
    path = os.environ.get("PYTHONPATH")
    joined = f"{_CHECKOUT}{os.pathsep}{path}" if path else str(_CHECKOUT)
    return {**(faults or {}), "PYTHONPATH": joined}


def _die_once(marker: str) -> None:
    """SIGKILL this process after a rotation, in the first worker to get here."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        os.kill(os.getpid(), signal.SIGKILL)


def _stop_once(marker: str) -> None:
    """SIGSTOP this process after a rotation, in the first worker to get here."""
    with contextlib.suppress(FileExistsError):
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGSTOP)


def _on_refresh() -> Callable[[], None] | None:
    die_once, stop_once = os.environ.get(ENV_DIE_ONCE), os.environ.get(ENV_STOP_ONCE)
    if die_once:
        return functools.partial(_die_once, die_once)
    if stop_once:
        return functools.partial(_stop_once, stop_once)
    return None


def _store_factory() -> Callable[[str], TokenStore]:
    if os.environ.get(ENV_TRUST_ANY_INSTANCE):
        return functools.partial(fleet_worker.make_store, _check_instance=False)
    return fleet_worker.make_store


def main() -> int:
    args, password = fleet_worker.parse()
    ttl = os.environ.get(ENV_LEASE_TTL)
    if ttl:
        FleetLink.lease_ttl = float(ttl)
        FleetLink.wait_limit = float(ttl) + 5.0
    work = functools.partial(
        fleet_worker.work, store_factory=_store_factory(), on_refresh=_on_refresh()
    )
    fleet_worker.write_report(anyio.run(work, args, password, backend=args.backend))
    return 0


if __name__ == "__main__":
    sys.exit(main())
