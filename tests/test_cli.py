"""The teletracker-async command, in-process and as a subprocess, on 127.0.0.1 only."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from teletracker_async import TeletrackerClient
from teletracker_async._cli import DemoResult, _CsvSink, _is_loopback, main
from teletracker_async.testing import FakeStats, FakeTeletracker

from .conftest import PASSWORD, USERNAME


@pytest.fixture
def fake() -> FakeTeletracker:  # a real clock: this fake is served over sockets
    return FakeTeletracker(users={USERNAME: (PASSWORD, [1, 2])}, records_per_day=2)


@pytest.fixture
def url(fake: FakeTeletracker) -> Iterator[str]:
    with fake.serving() as base_url:
        yield base_url


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, url: str) -> str:
    monkeypatch.setenv("TELETRACKER_USERNAME", USERNAME)
    monkeypatch.setenv("TELETRACKER_PASSWORD", PASSWORD)
    monkeypatch.setenv("TELETRACKER_BASE_URL", url)
    monkeypatch.delenv("TELETRACKER_ACCOUNT_ID", raising=False)
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def secrets_of(fake: FakeTeletracker) -> set[str]:
    return {PASSWORD, *fake._by_token, *fake._by_refresh, *fake._spent_refresh}


# -- token and verify -----------------------------------------------------------------


def test_token_prints_only_the_token(
    env: str, fake: FakeTeletracker, capsys: pytest.CaptureFixture[str]
) -> None:
    """stdout is exactly one bearer token the server accepts; stderr is clean."""
    code, out, err = run(capsys, "token")
    assert code == 0
    token = out.strip()
    assert out == token + "\n"
    assert token in fake._by_token
    assert PASSWORD not in out + err
    assert token not in err


def test_verify_accepts_and_refuses(
    env: str,
    fake: FakeTeletracker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """verify exits 0 for good credentials and 1 for bad ones, opening no session."""
    assert run(capsys, "verify")[0] == 0
    monkeypatch.setenv("TELETRACKER_PASSWORD", "wrong")
    code, out, err = run(capsys, "verify")
    assert (code, out) == (1, "")
    assert err.strip() == "credentials refused"
    assert fake.stats.logins == 0


def test_password_from_stdin(
    env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--password-stdin reads the first line of standard input."""
    monkeypatch.delenv("TELETRACKER_PASSWORD")
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert run(capsys, "verify", "--password-stdin")[0] == 0


def test_password_prompt_in_a_terminal(
    env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a password in the environment a terminal user is asked, hidden."""
    monkeypatch.delenv("TELETRACKER_PASSWORD")
    monkeypatch.setattr(sys, "stdin", _Tty())
    asked: list[str] = []

    def getpass(prompt: str) -> str:
        asked.append(prompt)
        return PASSWORD

    monkeypatch.setattr("getpass.getpass", getpass)
    assert run(capsys, "verify", "--username", USERNAME)[0] == 0
    assert asked == [f"Teletracker password for {USERNAME}: "]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


# -- call-data ----------------------------------------------------------------------------


def test_call_data_jsonl_to_stdout(
    env: str, fake: FakeTeletracker, capsys: pytest.CaptureFixture[str]
) -> None:
    """Records stream out as JSON lines, in date order; the count goes to stderr."""
    code, out, err = run(
        capsys, "call-data", "--start", "2026-02-01", "--end", "2026-02-05"
    )
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 10
    assert records[:2] == fake.records_for(1, date(2026, 2, 1))
    assert records[-2:] == fake.records_for(1, date(2026, 2, 5))
    assert err.strip() == "10 call records"


def test_call_data_csv_to_a_file(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CSV goes to --output with a header row; --account-id is honoured."""
    target = tmp_path / "calls.csv"
    code, out, _ = run(
        capsys,
        "call-data",
        "--start",
        "2026-02-01",
        "--end",
        "2026-02-02",
        "--account-id",
        "1",
        "--format",
        "csv",
        "--output",
        str(target),
        "--window-days",
        "2",
    )
    assert (code, out) == (0, "")
    with target.open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 4
    assert rows[0]["account_id"] == "1"
    assert rows[0]["_extra"] == ""


def test_call_data_progress_only_on_a_terminal(
    env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With stderr a terminal a progress line is drawn there; stdout stays records."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, out, err = run(
        capsys, "call-data", "--start", "2026-02-01", "--end", "2026-02-03"
    )
    assert code == 0
    assert len(out.splitlines()) == 6
    assert all(line.startswith("{") for line in out.splitlines())
    assert "6 call records" in err


def test_csv_keeps_keys_that_appear_later() -> None:
    """A key the first record lacked lands in _extra as JSON, not in the bin."""
    stream = io.StringIO()
    sink = _CsvSink(stream)
    sink.write({"id": 1, "tags": ["a"]})
    sink.write({"id": 2, "tags": None, "new": {"x": 1}})
    lines = stream.getvalue().splitlines()
    assert lines == ["id,tags,_extra", '1,"[""a""]",', '2,,"{""new"": {""x"": 1}}"']


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--start", "2026-13-01", "--end", "2026-01-02"],
            "must be dates as YYYY-MM-DD",
        ),
        (["--start", "2026-01-03", "--end", "2026-01-02"], "is before --start"),
    ],
)
def test_call_data_bad_dates(
    env: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Bad dates: one line on stderr, exit 1, nothing on stdout."""
    code, out, err = run(capsys, "call-data", *argv)
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert message in err


def test_unwritable_output(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An output file that cannot be written is one clear line."""
    code, _, err = run(
        capsys,
        "call-data",
        "--start",
        "2026-01-01",
        "--end",
        "2026-01-01",
        "--output",
        str(tmp_path / "missing" / "x.jsonl"),
    )
    assert code == 1
    assert err.startswith("error: cannot write")


# -- error paths ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "argv", "message"),
    [
        ({"TELETRACKER_PASSWORD": "wrong"}, ["token"], "Invalid username or password"),
        ({"TELETRACKER_BASE_URL": "http://127.0.0.1:9"}, ["token"], "no answer"),
        ({"TELETRACKER_BASE_URL": "nope"}, ["token"], "base_url"),
        ({"TELETRACKER_USERNAME": ""}, ["token"], "no username"),
        ({"TELETRACKER_ACCOUNT_ID": "x"}, ["token"], "TELETRACKER_ACCOUNT_ID"),
        ({"TELETRACKER_ACCOUNT_ID": "9"}, ["token"], "cannot access account 9"),
        ({"TELETRACKER_PASSWORD": ""}, ["token"], "no password"),
    ],
)
def test_expected_failures_are_one_line(
    env: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    setup: dict[str, str],
    argv: list[str],
    message: str,
) -> None:
    """Each expected failure prints one line on stderr, exit 1, no traceback."""
    for name, value in setup.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, out, err = run(capsys, *argv)
    assert (code, out) == (1, "")
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert message in err
    assert "Traceback" not in err
    assert PASSWORD not in err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["demo", "--requests", "0"],
        ["call-data"],
        ["serve", "--user", "x"],
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """argparse's usage errors exit 2."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_a_password_is_never_an_argument(capsys: pytest.CaptureFixture[str]) -> None:
    """There is no --password option to leak into shell history."""
    with pytest.raises(SystemExit):
        main(["token", "--password", "x"])
    assert "unrecognized arguments" in capsys.readouterr().err


def test_verbose_log_has_no_secrets(
    env: str, fake: FakeTeletracker, capsys: pytest.CaptureFixture[str]
) -> None:
    """--verbose shows the SDK's log on stderr, never a secret."""
    code, _, err = run(
        capsys, "--verbose", "call-data", "--start", "2026-01-01", "--end", "2026-01-01"
    )
    assert code == 0
    assert "logged in: session" in err
    assert "HTTP Request: POST" in err
    for secret in secrets_of(fake):
        assert secret not in err


def test_missing_extra_is_explained(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the cli extra, serve and demo say what to install."""
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    code, _, err = run(capsys, "serve", "--port", "0")
    assert code == 1
    assert "pip install 'teletracker-async[cli]'" in err


# -- serve ---------------------------------------------------------------------------------


def test_serve_refuses_a_public_address_without_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Binding beyond loopback needs --allow-remote (usage error otherwise)."""
    code, _, err = run(capsys, "serve", "--host", "0.0.0.0")  # noqa: S104
    assert code == 2
    assert "--allow-remote" in err


def test_loopback_detection() -> None:
    """localhost, 127/8 and ::1 are loopback; anything else is not."""
    assert all(_is_loopback(h) for h in ("localhost", "127.0.0.1", "127.9.9.9", "::1"))
    assert not any(_is_loopback(h) for h in ("0.0.0.0", "10.0.0.1", "example.com"))  # noqa: S104


def test_serve_reports_a_taken_port(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A port already in use is one clear line, exit 1."""
    port = url.rsplit(":", 1)[1]
    code, _, err = run(capsys, "serve", "--port", port)
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err


@pytest.fixture
def served_command() -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "teletracker_async",
            "serve",
            "--port",
            "0",
            "--lifetime",
            "60",
            "--user",
            "alice:alice-pw:3,4",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    banner = [child.stdout.readline() for _ in range(3)]
    yield child, banner
    if child.poll() is None:  # pragma: no cover - the test stops it
        child.kill()
        child.wait()


@pytest.mark.anyio
async def test_serve_answers_the_sdk_over_real_sockets(
    served_command: tuple[subprocess.Popen[str], list[str]],
) -> None:
    """`serve` on 127.0.0.1 is reached by the SDK; Ctrl-C stops it cleanly."""
    child, banner = served_command
    base_url = banner[0].split("listening on ")[1].split()[0]
    assert banner[1:] == [
        "token lifetime: 60 s\n",
        "user: alice  password: alice-pw  accounts: [3, 4]\n",
    ]
    assert base_url.startswith("http://127.0.0.1:")
    async with TeletrackerClient("alice", "alice-pw", base_url=base_url) as client:
        assert await client.verify_credentials()
        records = await client.call_data("2026-01-01", "2026-01-03")
        await client.switch_account(4)
        other = await client.call_data("2026-01-01", "2026-01-01")
        stats = await client.request_json("GET", "/_fake/stats")
    assert len(records) == 3 * 24
    assert {r["account_id"] for r in records} == {3}
    assert {r["account_id"] for r in other} == {4}
    assert stats["data"]["logins"] == 2
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=20)
    assert child.returncode == 0
    assert out.endswith("stopped\n")
    assert "Traceback" not in err


@pytest.mark.anyio
async def test_served_fake_drops_connections_for_real(
    fake: FakeTeletracker, url: str
) -> None:
    """A dropped connection through the ASGI door surfaces as a transport error."""
    fake.drop_next("data")
    async with TeletrackerClient(
        USERNAME, PASSWORD, base_url=url, max_retries=0
    ) as client:
        await client.session()
        with pytest.raises(Exception, match="no answer from Teletracker"):
            await client.call_data("2026-01-01", "2026-01-01")
        assert len(await client.call_data("2026-01-01", "2026-01-01")) == 2


# -- demo --------------------------------------------------------------------------------------


def test_demo_proves_one_session(capsys: pytest.CaptureFixture[str]) -> None:
    """A small demo: every request ok, one login, refreshes, no reuse, exit 0."""
    code, out, err = run(
        capsys,
        "demo",
        "--requests",
        "400",
        "--concurrency",
        "200",
        "--lifetime",
        "0.6",
        "--connections",
        "4",
    )
    assert code == 0, out + err
    rows = dict(_rows(out))
    assert rows["requests ok"] == "400"
    assert rows["requests failed"] == "0"
    assert rows["logins"] == "1"
    assert int(rows["refreshes"]) >= 1
    assert rows["tokens refreshed twice"] == "0"
    assert rows["most refreshes at once"] in {"0", "1"}
    assert rows["refresh-token reuse attempts"] == "0"
    assert "OK: 400 requests from 200 coroutines shared 1 login" in out
    assert "demo-password" not in err


def _rows(table: str) -> Iterator[tuple[str, str]]:
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 2 and cells[0]:
            yield cells[0], cells[1]


def test_demo_verdict_names_each_problem() -> None:
    """The demo fails on failed requests, double refreshes and reuse, and says so."""
    result = DemoResult(
        errors=Counter({"ServerError": 2}),
        latencies=[0.001 * i for i in range(1, 101)],
        elapsed=1.0,
        stats=FakeStats(premature_refreshes=1, reuse_attempts=3),
        lifetime=1.0,
        concurrency=5,
    )
    assert result.problems() == [
        "2 requests failed",
        "a token was refreshed more than once",
        "3 refresh tokens reused",
    ]
    assert result.percentile(0.5) == pytest.approx(50)
    assert result.percentile(0.99) == pytest.approx(99)
    result.latencies = []
    assert result.percentile(0.5) == 0


def test_python_dash_m_runs_the_command() -> None:
    """`python -m teletracker_async --help` works like the console script."""
    done = subprocess.run(
        [sys.executable, "-m", "teletracker_async", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "demo" in done.stdout
    assert "call-data" in done.stdout
