"""What every command shares: exit codes, the expected-failure exception, the extras."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import rich.console

__all__ = [
    "DEMO_PASSWORD",
    "DEMO_USER",
    "EXIT_BROKEN_PIPE",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "CommandError",
    "Terminated",
    "console",
    "require_extras",
    "sigterm_as_ctrl_c",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: What a shell reports for a command stopped by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130
#: What a shell reports for a command killed by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141
#: What a shell reports for a command ended by SIGTERM (128 + 15).
EXIT_TERMINATED = 143
DEMO_USER, DEMO_PASSWORD = "demo", "demo-password"


class CommandError(Exception):
    """An expected failure: one line on stderr, exit code 1 (or the one given)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class Terminated(Exception):  # noqa: N818 - a signal, not an error
    """SIGTERM ended the command, its clean-up done (exit 143)."""


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM, while this runs, stops the command as Ctrl-C does, then Terminated.

    Without it SIGTERM kills the process where it stands, and ``call-data
    --output`` leaves its ``.partial`` file behind. The handler delivers Ctrl-C:
    whatever SIGINT handler is in place runs (inside an event loop, the runner's,
    which cancels the main task so that every ``finally`` runs; outside one,
    ``KeyboardInterrupt``). A second SIGTERM is a second Ctrl-C. Only the CLI
    installs it, only in the main thread, never where SIGTERM is ignored, and not
    on Windows (no SIGTERM reaches a process there); the previous handler is back
    when this ends.
    """
    if (
        sys.platform == "win32"
        or threading.current_thread() is not threading.main_thread()
        # Ignored, or a handler installed from C (getsignal: None) that could not
        # be put back afterwards.
        or signal.getsignal(signal.SIGTERM) in (signal.SIG_IGN, None)
    ):
        yield
        return
    received = False

    def on_sigterm(_signum: int, frame: FrameType | None) -> None:
        nonlocal received
        received = True
        ctrl_c = signal.getsignal(signal.SIGINT)
        if not callable(ctrl_c):  # SIGINT ignored or default: no handler to run
            raise KeyboardInterrupt
        ctrl_c(signal.SIGINT, frame)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    except (KeyboardInterrupt, asyncio.CancelledError):
        # On Python 3.10, anyio's runner lets the main task's CancelledError out
        # instead of KeyboardInterrupt (see main).
        if received:
            raise Terminated from None
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def require_extras() -> None:
    """Fail in one line when the ``cli`` extra (rich, uvicorn) is not installed."""
    try:
        import rich  # noqa: F401, PLC0415
        import uvicorn  # noqa: F401, PLC0415
    except ImportError as exc:
        raise CommandError(
            f"this command needs the 'cli' extra ({exc.name} is missing): "
            "pip install 'teletracker-async[cli]'"
        ) from None


def console(*, stderr: bool) -> rich.console.Console:
    """A rich console on stdout or stderr (the ``cli`` extra)."""
    require_extras()
    import rich.console  # noqa: PLC0415

    return rich.console.Console(stderr=stderr, highlight=False)
