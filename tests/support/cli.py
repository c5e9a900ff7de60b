"""Running the ``teletracker-async`` command in a test: in this process (``cli``), or,
for what only a real process shows (signals, terminals, pipes, the entry point), as a
child (``run_child``, in tests marked ``slow``)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Mapping

import attrs
import pytest

from teletracker_async._cli import main

__all__ = ["COMMAND", "Done", "cli", "run_child"]

COMMAND = [sys.executable, "-m", "teletracker_async"]


@attrs.frozen
class Done:
    """What a command run left: its exit code and its two outputs."""

    returncode: int
    stdout: str
    stderr: str


class _Input(io.StringIO):
    """Standard input from a string, a terminal or not."""

    def __init__(self, text: str, *, tty: bool) -> None:
        super().__init__(text)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def cli(
    *argv: str,
    env: Mapping[str, str] | None = None,
    stdin: str = "",
    tty: bool = False,
) -> Done:
    """Run ``main(argv)`` here to its end, as a child with piped streams would run:
    the ``TELETRACKER_*`` variables of *env* (None: this process's), *stdin* as
    standard input (a terminal with *tty*), stdout and stderr captured (never a
    terminal); argparse's exits become exit codes."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        if env is not None:
            for name in os.environ:
                if name.startswith("TELETRACKER_"):
                    patch.delenv(name)
            for name, value in env.items():
                if name.startswith("TELETRACKER_"):
                    patch.setenv(name, value)
        patch.setattr(sys, "stdin", _Input(stdin, tty=tty))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
    return Done(code, out.getvalue(), err.getvalue())


def run_child(
    *argv: str, env: Mapping[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m teletracker_async`` as a real process to its end."""
    return subprocess.run(  # noqa: S603 - our own module
        [*COMMAND, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=None if env is None else dict(env),
        timeout=120,
        check=False,
    )
