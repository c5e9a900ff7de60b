"""What every command shares: exit codes, the expected-failure exception, the extras."""

from __future__ import annotations

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
    "EXIT_USAGE",
    "CommandError",
    "console",
    "require_extras",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: What a shell reports for a command stopped by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130
#: What a shell reports for a command killed by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141
DEMO_USER, DEMO_PASSWORD = "demo", "demo-password"


class CommandError(Exception):
    """An expected failure: one line on stderr, exit code 1 (or the one given)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


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
