"""The redis-server the store tests and the fleet suite run against: the CLI's
private server, plus what fault tests do to a server (kill, restart from a
snapshot, freeze with SIGSTOP, thaw)."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from teletracker_async._cli.local_redis import LocalRedis, find_redis_server

__all__ = ["RedisServer", "find_redis_server"]


class RedisServer(LocalRedis):
    """One server on a unix socket that fault tests may kill, restart and freeze."""

    @property
    def dump(self) -> Path:
        return self.directory / "dump.rdb"

    def start(self, snapshot: Path | None = None, *, timeout: float = 10.0) -> None:
        """Start it: empty, or with the data of *snapshot* (an RDB file that
        :meth:`snapshot` wrote)."""
        self.dump.unlink(missing_ok=True)
        if snapshot is not None:
            shutil.copyfile(snapshot, self.dump)
        super().start(timeout=timeout)

    def snapshot(self, to: Path) -> Path:
        """Save the data now (``SAVE``) and copy the RDB file to *to*."""
        if self.command("SAVE", timeout=10.0) != b"+OK\r\n":
            raise RuntimeError(f"{self!r} could not SAVE")
        shutil.copyfile(self.dump, to)
        return to

    def kill(self) -> None:
        """``kill -9`` it (no chance to save anything) and reap it."""
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)

    def freeze(self) -> None:
        """``SIGSTOP``: connections stay open, nothing is answered."""
        self.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)

    def stop(self) -> None:
        """Thaw it (a frozen server cannot act on SIGTERM), then stop it."""
        self.thaw()
        super().stop()

    def signal(self, signum: int) -> None:
        """Send *signum* to it, if it runs."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signum)
