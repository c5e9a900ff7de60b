"""The fake served over loopback in a process of its own (its own core and GIL).

    python -m benchmarks._server [--latency SECONDS]

Prints ``listening on URL`` once it accepts connections; SIGINT stops it. With
``--latency`` every request waits that long (without blocking the server) before
it is handled: a stand-in for the real API's network and server time.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any

import anyio

from teletracker_async.testing import FakeTeletracker
from teletracker_async.testing._doors import (
    asgi_server,
    bind_socket,
    serve_asgi,
    socket_url,
)
from teletracker_async.testing._wire import FakeRequest, FakeResponse

USER, PASSWORD = "bench", "bench-pw"

__all__ = ["PASSWORD", "USER", "served"]


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    fake = FakeTeletracker(users={USER: PASSWORD}, records_per_day=2)
    latency = args.latency

    async def handler(request: FakeRequest) -> FakeResponse:
        if latency:
            await anyio.sleep(latency)
        return await fake.handle(request)

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        await serve_asgi(handler, scope, receive, send)

    sock = bind_socket("127.0.0.1", 0)
    sock.listen(4096)  # connections queue until uvicorn accepts them
    server = asgi_server(app, backlog=4096)
    print(f"listening on {socket_url(sock)}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    sock.close()
    return 0


@contextlib.contextmanager
def served(latency: float = 0.0) -> Iterator[str]:
    """Run the server in a child process; yield its base URL."""
    command = [sys.executable, "-m", "benchmarks._server", "--latency", repr(latency)]
    child = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        found = re.search(r"listening on (\S+)", child.stdout.readline())
        if found is None:
            child.kill()
            _, err = child.communicate(timeout=10)
            raise RuntimeError(f"the benchmark server did not start: {err[-500:]}")
        yield found.group(1)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
        try:
            child.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()


if __name__ == "__main__":
    sys.exit(_main())
