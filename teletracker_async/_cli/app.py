"""``main``: parse, run one command, turn its expected failures into exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence

import httpx

from teletracker_async._cli.common import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    CommandError,
    Terminated,
)
from teletracker_async._cli.parser import parse_args
from teletracker_async._errors import TeletrackerError

__all__ = ["main"]

#: Each HTTP stack logs under its own name: whichever is in use is heard.
_LOGGERS = (
    ("teletracker_async", logging.DEBUG),
    ("httpx", logging.INFO),
    ("httpx2", logging.INFO),
)


@contextlib.contextmanager
def _verbose_logging(verbose: bool) -> Iterator[None]:
    """The SDK's and the HTTP stack's logs on stderr for one run, then as before
    (``main`` may run many times in one process: tests, embedding tools)."""
    if not verbose:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    loggers = [(logging.getLogger(name), level) for name, level in _LOGGERS]
    before = [logger.level for logger, _ in loggers]
    for logger, level in loggers:
        logger.setLevel(level)
        logger.addHandler(handler)
    try:
        yield
    finally:
        for (logger, _), level in zip(loggers, before, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = parse_args(argv)
    try:
        with _verbose_logging(args.verbose):
            return int(args.func(args))
    except Terminated:
        print("terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except TeletrackerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (KeyboardInterrupt, asyncio.CancelledError):
        # Ctrl-C. On Python 3.10, anyio's runner answers it by cancelling the main
        # task and, without Task.uncancel, lets that CancelledError out instead of
        # KeyboardInterrupt; nothing else cancels a run from outside.
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as Unix tools do. What is
        # still buffered for stdout goes to /dev/null, not to a second error at exit.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except httpx.HTTPError as exc:  # pragma: no cover - the client wraps these
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
