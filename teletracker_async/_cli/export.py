"""``call-data``: records streamed to stdout or, atomically, to a file."""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import secrets
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import anyio

from teletracker_async._cli.api import resolve_auth
from teletracker_async._cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    console,
    sigterm_as_ctrl_c,
)
from teletracker_async._client import TeletrackerClient
from teletracker_async._reports import CallDataStream
from teletracker_async._session.flow import TeletrackerAuth

__all__ = [
    "CsvSink",
    "PlainProgress",
    "atomic_output",
    "call_data",
    "standard_output",
]


def _cell(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


class CsvSink:
    """CSV whose columns are the first record's keys, plus ``_extra``.

    Records are streamed, so the header cannot grow: keys a later record adds go,
    as JSON, into ``_extra`` rather than being dropped.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._writer = csv.writer(stream)
        self._columns: list[str] | None = None

    def write(self, record: dict[str, Any]) -> None:
        if self._columns is None:
            self._columns = list(record)
            self._writer.writerow([*self._columns, "_extra"])
        extra = {k: v for k, v in record.items() if k not in self._columns}
        row = [_cell(record.get(k)) for k in self._columns]
        self._writer.writerow([*row, json.dumps(extra) if extra else ""])


class _Output(io.RawIOBase):
    """A descriptor written through ``os.write``, whose failure names the output.

    A full disk (``ENOSPC``), an I/O error or a quota ends the command in one line,
    ``cannot write NAME: No space left on device``, raised by the write itself, so
    that no other ``OSError`` (a certificate file, a socket) is taken for one.
    Once a write failed, or the output was given up, later writes (the buffer's
    flush as the stream closes) are dropped: the failure is told once.
    """

    def __init__(self, fd: int, name: str, *, closefd: bool = True) -> None:
        super().__init__()
        self._fd, self._name, self._closefd = fd, name, closefd
        self._dropping = False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, data: Any) -> int:
        if self._dropping:
            return len(memoryview(data))
        try:
            return os.write(self._fd, data)
        except BrokenPipeError:  # the reader left: main's quiet exit 141
            self._dropping = True
            raise
        except OSError as exc:
            self._dropping = True
            raise CommandError(f"cannot write {self._name}: {exc.strerror}") from None

    def give_up(self) -> None:
        """Drop what is still buffered: the command failed or was stopped."""
        self._dropping = True

    def close(self) -> None:
        if not self.closed and self._closefd:
            os.close(self._fd)
        super().close()


@contextlib.contextmanager
def _text(raw: _Output, **options: Any) -> Iterator[IO[str]]:
    """A buffered text stream on *raw*, flushed at the end; on a failure (a full
    disk, Ctrl-C, SIGTERM) what is still buffered is dropped, not written."""
    with io.TextIOWrapper(io.BufferedWriter(raw), **options) as stream:
        try:
            yield stream
            stream.flush()
        except BaseException:
            raw.give_up()
            raise


@contextlib.contextmanager
def standard_output() -> Iterator[IO[str]]:
    """Standard output, whose write errors name it (``_Output``), as sys.stdout is
    set up (encoding, line buffering on a terminal); sys.stdout itself when it has
    no descriptor (a test's or an embedding tool's stream)."""
    stdout = sys.stdout
    try:
        fd = stdout.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation
        yield stdout
        return
    stdout.flush()
    line_buffering = getattr(stdout, "line_buffering", False)
    with _text(
        _Output(fd, "standard output", closefd=False),
        encoding=getattr(stdout, "encoding", None) or "utf-8",
        errors=getattr(stdout, "errors", None),
        line_buffering=line_buffering or getattr(stdout, "write_through", False),
    ) as stream:
        yield stream


@contextlib.contextmanager
def atomic_output(name: str) -> Iterator[IO[str]]:
    """A temporary file next to *name* that replaces it only when all went well.

    The temp file, ``.NAME.XXXXXXXX.partial`` in the same directory, gets the
    existing file's permissions (or the umask's). On success ``os.replace`` swaps
    it in at once; on any failure, Ctrl-C, SIGTERM and a full disk included, it is
    removed and *name* is left exactly as it was. A failed write, sync or rename is
    a :class:`CommandError` naming *name* and the reason.

    A *name* that is not a regular file (``/dev/null``, ``/dev/full``, a FIFO) is
    written in place, as the shell's ``>`` does: renaming over it would replace
    the device or the pipe with a plain file.
    """
    target = Path(name)
    if _special(target):
        with _in_place(name) as stream:
            yield stream
        return
    temp, fd = _new_partial(target)
    try:
        with _text(_Output(fd, name), encoding="utf-8", newline="") as stream:
            try:
                mode = stat.S_IMODE(target.stat().st_mode)
            except OSError:
                umask = os.umask(0)
                os.umask(umask)
                mode = 0o666 & ~umask
            try:
                temp.chmod(mode)
            except OSError as exc:
                raise CommandError(f"cannot write {name}: {exc.strerror}") from None
            yield stream
            stream.flush()
            try:
                os.fsync(fd)  # on disk before it takes the old file's name
            except OSError as exc:
                raise CommandError(f"cannot write {name}: {exc.strerror}") from None
        try:
            temp.replace(target)
        except OSError as exc:
            raise CommandError(f"cannot write {name}: {exc.strerror}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _special(target: Path) -> bool:
    """Whether *target* exists and is neither a regular file nor a directory."""
    try:
        mode = target.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextlib.contextmanager
def _in_place(name: str) -> Iterator[IO[str]]:
    """*name* itself (a device, a FIFO): nothing to keep, nothing to replace."""
    try:
        fd = os.open(name, os.O_WRONLY)
    except OSError as exc:
        raise CommandError(f"cannot write {name}: {exc.strerror}") from None
    with _text(_Output(fd, name), encoding="utf-8", newline="") as stream:
        yield stream


def _new_partial(target: Path) -> tuple[Path, int]:
    """Create ``.NAME.XXXXXXXX.partial`` beside *target* (mode 0600): the path and
    its open descriptor.

    The path is named before the file exists, so a Ctrl-C at any point of the
    creation (even just after ``open`` returned) removes it: ``mkstemp`` would
    leave a file whose name was never returned.
    """
    for _ in range(100):
        temp = target.parent / f".{target.name}.{secrets.token_hex(4)}.partial"
        try:
            return temp, os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        except OSError as exc:
            raise CommandError(f"cannot write {target}: {exc.strerror}") from None
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    raise CommandError(f"cannot write {target}: no free temporary name beside it")


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA -:--"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"ETA {hours}:{minutes:02d}:{secs:02d}"
        if hours
        else f"ETA {minutes}:{secs:02d}"
    )


class PlainProgress:
    """The progress line without rich: records, windows done of all and an ETA,
    rewritten in place a few times a second."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._last = -math.inf
        self._width = 0

    def update(self, stream: CallDataStream) -> None:
        now = time.monotonic()
        if now - self._last >= 0.2:
            self._last = now
            line = (
                f"{stream.records} call records, "
                f"{stream.windows_done}/{stream.windows_total} windows, "
                f"{_eta(stream.eta(now))}"
            )
            self._width = max(self._width, len(line))
            self._stream.write(f"\r{line}")
            self._stream.flush()

    def close(self) -> None:
        if self._width:
            self._stream.write("\r" + " " * self._width + "\r")


class _RichProgress:
    """The progress bar drawn by rich (the ``cli`` extra), erased when done."""

    def __init__(self) -> None:
        import rich.progress  # noqa: PLC0415

        self._progress = rich.progress.Progress(
            rich.progress.TextColumn("{task.fields[records]} call records"),
            rich.progress.BarColumn(),
            rich.progress.MofNCompleteColumn(),
            rich.progress.TextColumn("windows"),
            rich.progress.TimeElapsedColumn(),
            rich.progress.TextColumn("ETA"),
            rich.progress.TimeRemainingColumn(),
            console=console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task("records", total=None, records=0)
        self._progress.start()

    def update(self, stream: CallDataStream) -> None:
        self._progress.update(
            self._task,
            completed=stream.windows_done,
            total=stream.windows_total,
            records=stream.records,
        )

    def close(self) -> None:
        self._progress.stop()


def _progress() -> PlainProgress | _RichProgress | None:
    """A progress line on stderr when it is a terminal: rich's, or a plain one."""
    if not sys.stderr.isatty():
        return None
    try:
        import rich  # noqa: F401, PLC0415
    except ImportError:
        return PlainProgress(sys.stderr)
    return _RichProgress()


async def _export(
    args: argparse.Namespace, auth: TeletrackerAuth, stream: IO[str]
) -> int:
    """Stream the records to *stream* (a sliding window of requests); the count."""
    csv_sink = CsvSink(stream) if args.format == "csv" else None
    progress = _progress()
    try:
        async with (
            TeletrackerClient(auth=auth) as client,
            client.stream_call_data(
                args.start,
                args.end,
                account_id=args.account_id,
                window_days=args.window_days,
                concurrency=args.concurrency,
            ) as records,
        ):
            async for record in records:
                if csv_sink is not None:
                    csv_sink.write(record)
                else:
                    stream.write(json.dumps(record, separators=(",", ":")) + "\n")
                if progress is not None:
                    progress.update(records)
    finally:
        if progress is not None:
            progress.close()
    stream.flush()
    return records.records


def call_data(args: argparse.Namespace) -> int:
    if args.end < args.start:
        raise CommandError(
            f"--end {args.end} is before --start {args.start}", EXIT_USAGE
        )
    auth = resolve_auth(args)
    with sigterm_as_ctrl_c():  # kill's SIGTERM cleans up too, exit 143
        if args.output is None or args.output == "-":
            with standard_output() as stream:
                count = anyio.run(_export, args, auth, stream)
        else:
            with atomic_output(args.output) as stream:
                count = anyio.run(_export, args, auth, stream)
    print(f"{count} call records", file=sys.stderr)
    return EXIT_OK
