"""``serve``: the fake on loopback; and the fake served in a child process for demos."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

from teletracker_async._cli.common import (
    DEMO_PASSWORD,
    DEMO_USER,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    require_extras,
)
from teletracker_async.testing import FakeTeletracker
from teletracker_async.testing._doors import bind_socket, socket_url

__all__ = ["is_loopback", "parse_user", "serve", "served_elsewhere"]


def is_loopback(host: str) -> bool:
    """Whether *host* names this machine only (``localhost``, 127/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_user(spec: str) -> tuple[str, str, list[int]]:
    """``NAME:PASSWORD[:ACCOUNT,...]`` as ``(name, password, accounts)``."""
    name, sep, rest = spec.partition(":")
    password, _, accounts = rest.partition(":")
    if not name or not sep or not password:
        raise argparse.ArgumentTypeError(
            f"expected NAME:PASSWORD[:ACCOUNT,...], got {name!r} and no password"
        )
    try:
        ids = [int(a) for a in accounts.split(",")] if accounts else [1]
    except ValueError:
        raise argparse.ArgumentTypeError(
            "accounts must be integers separated by commas"
        ) from None
    return name, password, ids


def _check_host(host: str, allow_remote: bool) -> None:
    if is_loopback(host):
        return
    if not allow_remote:
        raise CommandError(
            f"{host} is not a loopback address: the fake would be reachable "
            "from other machines. Pass --allow-remote if that is what you want.",
            EXIT_USAGE,
        )
    print(f"warning: serving the fake on {host}, beyond this machine", file=sys.stderr)


def serve(args: argparse.Namespace) -> int:
    """Run the fake until Ctrl-C; the banner comes once the socket listens."""
    require_extras()
    _check_host(args.host, args.allow_remote)
    users = args.user or [(DEMO_USER, DEMO_PASSWORD, [1, 2])]
    fake = FakeTeletracker(token_lifetime=args.lifetime)
    for name, password, accounts in users:
        fake.add_user(name, password, accounts)
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        raise CommandError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror}"
        ) from None
    server = fake.asgi_server()
    print(f"FakeTeletracker listening on {socket_url(sock)} (Ctrl-C stops it)")
    print(f"token lifetime: {args.lifetime:g} s")
    for name, password, accounts in users:
        # These are the fake's own test credentials, chosen on this command line.
        print(f"user: {name}  password: {password}  accounts: {accounts}")
    sys.stdout.flush()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled; stopping is the normal end
    finally:
        sock.close()
    print("stopped")
    return EXIT_OK


@contextlib.contextmanager
def served_elsewhere(
    lifetime: float, user: str = f"{DEMO_USER}:{DEMO_PASSWORD}:1"
) -> Iterator[str]:
    """Serve a fake in a child process (its own core and GIL); yield its URL.

    *user* is ``serve --user``'s ``NAME:PASSWORD:ACCOUNT,...``."""
    command = [
        sys.executable, "-m", "teletracker_async", "serve",
        "--port", "0", "--lifetime", repr(lifetime), "--user", user,
    ]  # fmt: skip
    child = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None  # noqa: S101 - PIPE was asked for
        first = child.stdout.readline()
        found = re.search(r"listening on (\S+)", first)
        if found is None:  # pragma: no cover - the child failed to start
            child.kill()
            _, err = child.communicate(timeout=10)
            raise CommandError(f"the fake server did not start: {err.strip()[-300:]}")
        yield found.group(1)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
        try:
            child.communicate(timeout=10)  # reaps it and closes both pipes
        except subprocess.TimeoutExpired:  # pragma: no cover - it stops on SIGINT
            child.kill()
            child.communicate()
