"""A private ``redis-server`` (or ``valkey-server``) on a unix socket, for
``demo --workers N --store redis`` without ``--redis-url``.

No TCP port, no persistence, output to ``/dev/null`` (a server that inherits a
captured pipe hangs whoever waits for the pipe to close), stopped by PID.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["ENV_BINARY", "LocalRedis", "find_redis_server"]

#: Where to look first: a path to redis-server or valkey-server.
ENV_BINARY = "TELETRACKER_TEST_REDIS_SERVER"


def find_redis_server() -> str | None:
    """``$TELETRACKER_TEST_REDIS_SERVER``, else redis-server or valkey-server on PATH."""
    given = os.environ.get(ENV_BINARY)
    if given:
        return given
    return shutil.which("redis-server") or shutil.which("valkey-server")


class LocalRedis:
    """One server process on a unix socket in its own temporary directory.

    Args:
        binary: The server executable (default: :func:`find_redis_server`).
        directory: Where its socket lives; a new temporary directory by default,
            removed by :meth:`close`.
    """

    def __init__(
        self, binary: str | None = None, directory: str | os.PathLike[str] | None = None
    ) -> None:
        found = binary or find_redis_server()
        if found is None:
            raise FileNotFoundError(
                "no redis-server or valkey-server found on PATH (or in "
                f"${ENV_BINARY}): install one, or use --store file"
            )
        self.binary = found
        self._owned = directory is None
        self.directory = Path(
            directory or tempfile.mkdtemp(prefix="teletracker-redis-")
        )
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        self.socket = self.directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r}, pid={self.pid})"

    def start(self, *, timeout: float = 10.0) -> None:
        """Start it, empty, and wait until it answers PING."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"{self!r} is running already")
        self.socket.unlink(missing_ok=True)
        command = [
            self.binary,
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--dbfilename", "dump.rdb",
            "--save", "",
            "--appendonly", "no",
        ]  # fmt: skip
        self.process = subprocess.Popen(  # noqa: S603 - a fixed command line
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.binary} exited with {self.process.returncode} at start"
                )
            if time.monotonic() > deadline:
                self.process.kill()
                self.process.wait(timeout=10)
                raise TimeoutError(f"{self.binary} did not answer within {timeout} s")
            time.sleep(0.02)

    def ping(self) -> bool:
        """Whether it answers PING now (a raw RESP exchange: no client needed)."""
        return self.command("PING") == b"+PONG\r\n"

    def command(self, *words: str, timeout: float = 2.0) -> bytes | None:
        """Send one command and return the first chunk of its raw answer."""
        request = f"*{len(words)}\r\n".encode()
        for word in words:
            data = word.encode()
            request += b"$%d\r\n%s\r\n" % (len(data), data)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(timeout)
                conn.connect(str(self.socket))
                conn.sendall(request)
                return conn.recv(65536)
        except OSError:
            return None

    def stop(self) -> None:
        """Stop it by PID: SIGTERM, then SIGKILL if it lingers."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - it stops on SIGTERM
            process.kill()
            process.wait(timeout=10)

    def close(self) -> None:
        """Stop it and remove its directory (when it made one)."""
        self.stop()
        if self._owned:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
