"""call-data, in this process: records as JSON lines or CSV, to stdout or atomically
to a file that a failure or Ctrl-C leaves as it was."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import re
import signal
import stat
import sys
import time
from datetime import date
from pathlib import Path
from typing import IO, Any

import anyio
import pytest

from teletracker_async import CallDataStream
from teletracker_async._cli import export, main
from teletracker_async._cli.export import CsvSink, PlainProgress, atomic_output
from teletracker_async._session.flow import TeletrackerAuth
from teletracker_async.testing import FakeTeletracker
from tests.support.cli import Done, cli


def test_call_data_jsonl_to_stdout(env: dict[str, str], fake: FakeTeletracker) -> None:
    """Records stream out as JSON lines, in date order; the count goes to stderr."""
    done = cli("call-data", "--start", "2026-02-01", "--end", "2026-02-05", env=env)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == 10
    assert records[:2] == fake.records_for(1, date(2026, 2, 1))
    assert records[-2:] == fake.records_for(1, date(2026, 2, 5))
    assert done.stderr == "10 call records\n"


def test_call_data_csv_to_a_file(env: dict[str, str], tmp_path: Path) -> None:
    """CSV goes to --output with a header row; --account-id is honoured."""
    target = tmp_path / "calls.csv"
    done = cli(
        "call-data",
        *("--start", "2026-02-01", "--end", "2026-02-02", "--account-id", "2"),
        *("--format", "csv", "--output", str(target), "--window-days", "2"),
        env=env,
    )
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    with target.open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 4
    assert {row["account_id"] for row in rows} == {"2"}
    assert rows[0]["_extra"] == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls.csv"]


def test_output_replaces_a_file_keeping_its_mode(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A successful export replaces the old file whole, with the old file's mode."""
    target = tmp_path / "calls.jsonl"
    target.write_text("yesterday\n")
    target.chmod(0o640)
    done = cli(
        "call-data", "--start", "2026-02-01", "--end", "2026-02-01",
        "--output", str(target), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(target.read_text().splitlines()) == 2
    assert "yesterday" not in target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls.jsonl"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"TELETRACKER_PASSWORD": "wrong"}, "Invalid username or password"),
        ({"TELETRACKER_BASE_URL": "http://127.0.0.1:9"}, "no answer"),
        ({"TELETRACKER_USERNAME": ""}, "no username"),
    ],
    ids=["refused-login", "unreachable-host", "no-username"],
)
def test_a_failed_export_keeps_the_old_file(
    env: dict[str, str], tmp_path: Path, change: dict[str, str], message: str
) -> None:
    """When the export fails, the existing file is byte-identical and no temp is left."""
    target = tmp_path / "calls.csv"
    old = b"id,when\r\n1,yesterday\r\n"
    target.write_bytes(old)
    done = cli(
        "call-data", "--start", "2026-01-01", "--end", "2026-01-02",
        "--format", "csv", "--output", str(target), env={**env, **change},
    )  # fmt: skip
    assert done.returncode == 1
    assert message in done.stderr
    assert target.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls.csv"]


def test_ctrl_c_during_an_export_keeps_the_old_file(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C once records are being written: exit 130, the temp file removed, the
    old file kept. (tests/cli/test_in_real_processes.py sends a real SIGINT.)"""
    target = tmp_path / "calls.jsonl"
    target.write_bytes(b"old\n")

    async def interrupted(args: Any, auth: TeletrackerAuth, stream: IO[str]) -> int:
        stream.write("{}\n")
        (temp,) = [p async for p in anyio.Path(tmp_path).iterdir() if p != target]
        assert temp.name.startswith(".calls.jsonl.")
        assert temp.name.endswith(".partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_export", interrupted)
    done = cli(
        "call-data", "--start", "2026-01-01", "--end", "2026-01-01",
        "--output", str(target), env=env,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "interrupted\n")
    assert target.read_bytes() == b"old\n"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.skipif(sys.platform == "win32", reason="no SIGTERM between processes")
def test_sigterm_during_an_export_is_handled_as_ctrl_c(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM once records are being written: the CLI's handler (installed only
    while call-data runs, the previous one back after) stops it as Ctrl-C does:
    the temp file removed, the old file kept, exit 143. (tests/cli/
    test_in_real_processes.py sends it from outside, to a real process.)"""
    target = tmp_path / "calls.jsonl"
    target.write_bytes(b"old\n")
    before = signal.getsignal(signal.SIGTERM)
    seen: list[object] = []

    async def terminated(args: Any, auth: TeletrackerAuth, stream: IO[str]) -> int:
        stream.write("{}\n")
        seen.append(signal.getsignal(signal.SIGTERM))
        if seen[0] in (signal.SIG_DFL, signal.SIG_IGN, None, before):
            pytest.fail("no handler of the CLI's: SIGTERM would kill the process")
        signal.raise_signal(signal.SIGTERM)
        await anyio.sleep(60)  # a hang guard: the handler cancels it
        pytest.fail("SIGTERM did not stop the export")  # pragma: no cover

    monkeypatch.setattr(export, "_export", terminated)
    done = cli(
        "call-data", "--start", "2026-01-01", "--end", "2026-01-01",
        "--output", str(target), env=env,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (143, "", "terminated\n")
    assert target.read_bytes() == b"old\n"
    assert list(tmp_path.iterdir()) == [target]
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.skipif(sys.platform == "win32", reason="no SIGTERM between processes")
def test_an_ignored_sigterm_stays_ignored(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parent that ignores SIGTERM for the command (nohup-like) is obeyed: the CLI
    installs no handler of its own then."""
    seen: list[object] = []

    async def look(args: Any, auth: TeletrackerAuth, stream: IO[str]) -> int:
        seen.append(signal.getsignal(signal.SIGTERM))
        return 0

    monkeypatch.setattr(export, "_export", look)
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        done = cli(
            "call-data", "--start", "2026-01-01", "--end", "2026-01-01",
            "--output", str(tmp_path / "calls.jsonl"), env=env,
        )  # fmt: skip
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert done.returncode == 0, done.stderr
    assert seen == [signal.SIG_IGN]


def test_a_sigterm_handler_installed_from_c_is_left_alone(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGTERM handler that Python did not install (getsignal says None) cannot
    be put back once replaced: the CLI leaves it in place instead of failing with
    a TypeError as it restores it."""
    getsignal = signal.getsignal
    replaced: list[int] = []
    setsignal = signal.signal

    def from_c(signum: int) -> object:
        return None if signum == signal.SIGTERM else getsignal(signum)

    def recording(signum: int, handler: Any) -> Any:
        if signum == signal.SIGTERM:
            replaced.append(signum)
        return setsignal(signum, handler)

    async def nothing(args: Any, auth: TeletrackerAuth, stream: IO[str]) -> int:
        return 0

    monkeypatch.setattr(export, "_export", nothing)
    monkeypatch.setattr(signal, "getsignal", from_c)
    monkeypatch.setattr(signal, "signal", recording)
    done = cli(
        "call-data", "--start", "2026-01-01", "--end", "2026-01-01",
        "--output", str(tmp_path / "calls.jsonl"), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert replaced == []


@pytest.mark.parametrize("at", ["open", "mode"])
def test_ctrl_c_while_the_temp_file_is_made_leaves_nothing_behind(
    at: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C just after the temp file was created (before its descriptor was
    returned, or before its mode was set): the temp file is removed, the old file
    kept. (``mkstemp`` left it behind when Ctrl-C came before its name did.)"""
    target = tmp_path / "calls.jsonl"
    target.write_bytes(b"old\n")
    real_open = os.open

    def interrupted_open(*args: Any, **kwargs: Any) -> int:
        fd = real_open(*args, **kwargs)
        if at == "open":
            os.close(fd)
            raise KeyboardInterrupt
        return fd

    monkeypatch.setattr(os, "open", interrupted_open)
    if at == "mode":
        monkeypatch.setattr(stat, "S_IMODE", _interrupt)
    with pytest.raises(KeyboardInterrupt), atomic_output(str(target)):
        pytest.fail("the body must not run")  # pragma: no cover
    assert target.read_bytes() == b"old\n"
    assert list(tmp_path.iterdir()) == [target]


def _interrupt(*args: Any) -> Any:
    raise KeyboardInterrupt


def test_csv_keeps_keys_that_appear_later() -> None:
    """A key the first record lacked lands in _extra as JSON, not in the bin."""
    stream = io.StringIO()
    sink = CsvSink(stream)
    sink.write({"id": 1, "tags": ["a"]})
    sink.write({"id": 2, "tags": None, "new": {"x": 1}})
    lines = stream.getvalue().splitlines()
    assert lines == ["id,tags,_extra", '1,"[""a""]",', '2,,"{""new"": {""x"": 1}}"']


def test_a_reversed_range_is_a_usage_error() -> None:
    """--end before --start is refused before any password is asked for."""
    done = cli(
        "call-data", "--start", "2026-01-03", "--end", "2026-01-02",
        env={k: v for k, v in os.environ.items() if not k.startswith("TELETRACKER_")},
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "error: --end 2026-01-02 is before --start 2026-01-03\n"


@pytest.mark.parametrize("window_days", ["7", "10000000", "1000000000000"])
def test_a_range_to_the_last_day_and_huge_windows_export(
    env: dict[str, str], fake: FakeTeletracker, window_days: str
) -> None:
    """A range ending on 9999-12-31 and windows wider than any range export every
    record (the last window clipped), not a traceback."""
    done = cli(
        "call-data", "--start", "9999-12-20", "--end", "9999-12-31",
        "--window-days", window_days, env=env,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "24 call records\n")
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert records[-2:] == fake.records_for(1, date.max)


def test_unwritable_output(env: dict[str, str], tmp_path: Path) -> None:
    """An output file that cannot be written is one clear line."""
    done = cli(
        "call-data", "--start", "2026-01-01", "--end", "2026-01-01",
        "--output", str(tmp_path / "missing" / "x.jsonl"), env=env,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot write")
    assert done.stderr.count("\n") == 1


def test_output_onto_a_directory(env: dict[str, str], tmp_path: Path) -> None:
    """--output naming a directory fails in one line and leaves no temp file."""
    (tmp_path / "d").mkdir()
    done = cli(
        "call-data", "--start", "2026-01-01", "--end", "2026-01-01",
        "--output", str(tmp_path / "d"), env=env,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot write {tmp_path / 'd'}")
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


#: A quarter of a year, two records a day: more than the stream's buffer, so that
#: the disk fills up while records are still arriving.
QUARTER = ("--start", "2026-01-01", "--end", "2026-03-31")


def _partials(directory: Path) -> list[Path]:
    return list(directory.glob(".*.partial"))


def _on_partials(
    monkeypatch: pytest.MonkeyPatch,
    directory: Path,
    function: str,
    error: int,
) -> None:
    """Make ``os.<function>(fd, ...)`` fail with *error* on the temp files in
    *directory*, as the kernel would on a full disk; on any other fd it works."""
    real = getattr(os, function)

    def failing(fd: int, *rest: Any) -> Any:
        if any(os.path.samestat(os.fstat(fd), p.stat()) for p in _partials(directory)):
            raise OSError(error, os.strerror(error))
        return real(fd, *rest)

    monkeypatch.setattr(os, function, failing)


def _failing(error: int) -> Any:
    def fail(*_: Any) -> Any:
        raise OSError(error, os.strerror(error))

    return fail


@pytest.mark.parametrize(
    ("where", "span", "error"),
    [
        ("write", QUARTER, errno.ENOSPC),  # while records arrive
        ("write", ("--start", "2026-01-01", "--end", "2026-01-01"), errno.ENOSPC),
        ("write", QUARTER, errno.EIO),
        ("fsync", ("--start", "2026-01-01", "--end", "2026-01-01"), errno.ENOSPC),
        ("chmod", ("--start", "2026-01-01", "--end", "2026-01-01"), errno.EPERM),
        ("replace", ("--start", "2026-01-01", "--end", "2026-01-01"), errno.EACCES),
    ],
    ids=["enospc-mid-export", "enospc-at-the-end", "eio", "fsync", "chmod", "rename"],
)
def test_a_failed_write_is_one_line_and_keeps_the_old_file(
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    span: tuple[str, ...],
    error: int,
) -> None:
    """A full disk (ENOSPC, injected), an I/O error, a refused chmod or rename: one
    line naming the file and the reason, exit 1, the old file byte for byte, no
    temp file left. (A traceback before, from the write, the sync or the chmod.)"""
    target = tmp_path / "calls.jsonl"
    target.write_bytes(b"old\n")
    if where in ("write", "fsync"):
        _on_partials(monkeypatch, tmp_path, where, error)
    else:
        monkeypatch.setattr(Path, where, _failing(error))
    done = cli("call-data", *span, "--output", str(target), env=env)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"error: cannot write {target}: {os.strerror(error)}\n"
    assert target.read_bytes() == b"old\n"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="POSIX permissions, which root bypasses",
)
def test_a_read_only_directory_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    """No right to create the temp file beside the target: one line, old file kept."""
    target = tmp_path / "calls.jsonl"
    target.write_bytes(b"old\n")
    tmp_path.chmod(0o500)
    try:
        done = cli(*("call-data", *QUARTER), "--output", str(target), env=env)
    finally:
        tmp_path.chmod(0o700)
    assert done.returncode == 1
    assert done.stderr == f"error: cannot write {target}: Permission denied\n"
    assert target.read_bytes() == b"old\n"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
@pytest.mark.parametrize("to", ["--output", "stdout"])
def test_dev_full_is_one_line_and_stays_a_device(
    env: dict[str, str], to: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """To /dev/full, by --output or as standard output: "cannot write ...: No space
    left on device", exit 1. --output writes a device in place, as the shell's >
    does: renaming a temp file over it would replace the device itself (as root)."""
    if to == "--output":
        done = cli(*("call-data", *QUARTER), "--output", "/dev/full", env=env)
        shown = "/dev/full"
    else:
        with Path("/dev/full").open("w", encoding="utf-8") as full:
            done = _with_stdout(full, monkeypatch, env, "call-data", *QUARTER)
        shown = "standard output"
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"error: cannot write {shown}: No space left on device\n"
    assert stat.S_ISCHR(Path("/dev/full").stat().st_mode)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_a_temp_file_on_a_full_device_is_one_line(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The temp file is made as usual, but its descriptor writes to /dev/full: the
    kernel's own ENOSPC, mid-export. One line, exit 1, old file kept, no temp."""
    target = tmp_path / "calls.jsonl"
    target.write_bytes(b"old\n")
    real_open = os.open

    def onto_a_full_disk(path: Any, flags: int, *rest: Any, **kwargs: Any) -> int:
        fd = real_open(path, flags, *rest, **kwargs)
        if str(path).endswith(".partial"):
            full = real_open("/dev/full", os.O_WRONLY)
            os.dup2(full, fd)
            os.close(full)
        return fd

    monkeypatch.setattr(os, "open", onto_a_full_disk)
    done = cli(*("call-data", *QUARTER), "--output", str(target), env=env)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"error: cannot write {target}: No space left on device\n"
    assert target.read_bytes() == b"old\n"
    assert list(tmp_path.iterdir()) == [target]


def test_a_full_standard_output_is_one_line(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Standard output on a disk that fills up (ENOSPC, injected) is one line naming
    it, exit 1, not a traceback."""
    with (tmp_path / "out.jsonl").open("w", encoding="utf-8") as out:
        real_write = os.write

        def full(fd: int, data: Any) -> int:
            if fd == out.fileno():
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, data)

        monkeypatch.setattr(os, "write", full)
        done = _with_stdout(out, monkeypatch, env, "call-data", *QUARTER)
    assert (done.returncode, done.stdout) == (1, "")
    assert (
        done.stderr == "error: cannot write standard output: No space left on device\n"
    )


def _with_stdout(
    stdout: IO[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *argv: str
) -> Done:
    """``main(argv)`` with *stdout* (a real file) as standard output."""
    for name, value in env.items():
        if name.startswith("TELETRACKER_"):
            monkeypatch.setenv(name, value)
    err = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return Done(code, "", err.getvalue())


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_output_to_a_fifo_writes_into_it(env: dict[str, str], tmp_path: Path) -> None:
    """--output naming a FIFO writes the records into it and leaves it a FIFO (it
    was replaced by a plain file that no reader would ever see)."""
    fifo = tmp_path / "calls.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so writing opens
    try:
        done = cli(
            "call-data", "--start", "2026-01-01", "--end", "2026-01-01",
            "--output", str(fifo), env=env,
        )  # fmt: skip
        got = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(reader, 65536):
                got += chunk
    finally:
        os.close(reader)
    assert done.returncode == 0, done.stderr
    assert len(got.splitlines()) == 2
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert list(tmp_path.iterdir()) == [fifo]


def test_plain_progress_rewrites_one_line() -> None:
    """The plain progress line shows records, windows and an ETA, rewrites itself in
    place, and is wiped when done."""
    stream = io.StringIO()
    progress = PlainProgress(stream)
    progress.close()
    assert stream.getvalue() == ""
    pull = CallDataStream(_no_fetch, [], concurrency=1, ahead=1)
    pull.windows_total, pull.records = 4, 3
    progress.update(pull)  # nothing answered yet: no ETA
    pull.started_at, pull.windows_done = time.monotonic() - 30, 1
    progress.update(pull)  # too soon after the last: not drawn
    progress._last = -math.inf
    progress.update(pull)  # 1 window in 30 s, 3 to go
    pull.started_at, pull.windows_done = time.monotonic() - 3600 * 3, 1
    progress._last = -math.inf
    progress.update(pull)
    progress.close()
    lines = stream.getvalue().split("\r")
    assert lines[1] == "3 call records, 0/4 windows, ETA -:--"
    assert re.fullmatch(r"3 call records, 1/4 windows, ETA 1:(29|30|31)", lines[2])
    assert lines[3].startswith("3 call records, 1/4 windows, ETA 9:")
    assert not lines[4].strip()
    assert len(lines[4]) == max(map(len, lines[1:4]))
    assert lines[5] == ""


async def _no_fetch(_: date, __: date) -> list[dict[str, Any]]:  # pragma: no cover
    raise AssertionError
