"""call-data, in this process: records as JSON lines or CSV, to stdout or atomically
to a file that a failure or Ctrl-C leaves as it was."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import stat
import time
from datetime import date
from pathlib import Path
from typing import IO, Any

import anyio
import pytest

from teletracker_async import CallDataStream
from teletracker_async._cli import export
from teletracker_async._cli.export import CsvSink, PlainProgress, atomic_output
from teletracker_async._session.flow import TeletrackerAuth
from teletracker_async.testing import FakeTeletracker
from tests.support.cli import cli


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
