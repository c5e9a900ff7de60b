"""The ``teletracker-async`` command.

``demo`` and ``serve`` run :class:`FakeTeletracker` as a real HTTP server on loopback;
``verify``, ``token`` and ``call-data`` talk to a real (or served fake) API. The
progress display, tables and the HTTP server come from the ``cli`` extra (rich and
uvicorn); the library itself never imports them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import getpass
import ipaddress
import json
import logging
import math
import os
import re
import secrets
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import anyio
import attrs
import httpx

from teletracker_async._client import TeletrackerClient
from teletracker_async._config import DEFAULT_BASE_URL
from teletracker_async._errors import TeletrackerError
from teletracker_async._reports import CallDataStream
from teletracker_async._session.flow import TeletrackerAuth
from teletracker_async.testing import FakeStats, FakeTeletracker
from teletracker_async.testing._doors import bind_socket, socket_url

if TYPE_CHECKING:
    import rich.console

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEMO_USER, DEMO_PASSWORD = "demo", "demo-password"


class CommandError(Exception):
    """An expected failure: one line on stderr, exit code 1 (or the one given)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def _require_extras() -> None:
    try:
        import rich  # noqa: F401, PLC0415
        import uvicorn  # noqa: F401, PLC0415
    except ImportError as exc:
        raise CommandError(
            f"this command needs the 'cli' extra ({exc.name} is missing): "
            "pip install 'teletracker-async[cli]'"
        ) from None


def _console(*, stderr: bool) -> rich.console.Console:
    _require_extras()
    import rich.console  # noqa: PLC0415

    return rich.console.Console(stderr=stderr, highlight=False)


# -- serving the fake -------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_user(spec: str) -> tuple[str, str, list[int]]:
    name, sep, rest = spec.partition(":")
    password, _, accounts = rest.partition(":")
    if not name or not sep or not password:
        raise argparse.ArgumentTypeError(
            f"expected NAME:PASSWORD[:ACCOUNT,...], got {name!r} and no password"
        )
    try:
        ids = [int(a) for a in accounts.split(",")] if accounts else [1]
    except ValueError:
        raise argparse.ArgumentTypeError(
            "accounts must be integers separated by commas"
        ) from None
    return name, password, ids


def _serve(args: argparse.Namespace) -> int:
    _require_extras()
    if not _is_loopback(args.host):
        if not args.allow_remote:
            raise CommandError(
                f"{args.host} is not a loopback address: the fake would be reachable "
                "from other machines. Pass --allow-remote if that is what you want.",
                EXIT_USAGE,
            )
        print(
            f"warning: serving the fake on {args.host}, beyond this machine",
            file=sys.stderr,
        )
    users = args.user or [(DEMO_USER, DEMO_PASSWORD, [1, 2])]
    fake = FakeTeletracker(token_lifetime=args.lifetime)
    for name, password, accounts in users:
        fake.add_user(name, password, accounts)
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        raise CommandError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror}"
        ) from None
    server = fake.asgi_server()
    print(f"FakeTeletracker listening on {socket_url(sock)} (Ctrl-C stops it)")
    print(f"token lifetime: {args.lifetime:g} s")
    for name, password, accounts in users:
        # These are the fake's own test credentials, chosen on this command line.
        print(f"user: {name}  password: {password}  accounts: {accounts}")
    sys.stdout.flush()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled; stopping is the normal end
    finally:
        sock.close()
    print("stopped")
    return EXIT_OK


# -- demo -------------------------------------------------------------------------------


@attrs.define
class DemoResult:
    """What the demo measured, with the fake's own counters."""

    errors: Counter[str]
    latencies: list[float]  # one per request that succeeded
    elapsed: float
    stats: FakeStats
    lifetime: float
    concurrency: int

    @property
    def ok(self) -> int:
        """Requests that succeeded."""
        return len(self.latencies)

    @property
    def failed(self) -> int:
        """Requests that raised."""
        return sum(self.errors.values())

    def percentile(self, fraction: float) -> float:
        """The latency at *fraction* (0..1) in milliseconds, 0 when nothing ran."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)
        return ordered[max(index, 0)] * 1000

    def problems(self) -> list[str]:
        """Why the demo failed, or nothing when one session held."""
        found = []
        if self.failed:
            found.append(f"{self.failed} requests failed")
        if self.stats.max_concurrent_refreshes > 1 or self.stats.premature_refreshes:
            found.append("a token was refreshed more than once")
        if self.stats.reuse_attempts:
            found.append(f"{self.stats.reuse_attempts} refresh tokens reused")
        return found


async def _pull(
    url: str, args: argparse.Namespace, progress: Any, task: Any
) -> DemoResult:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(28)]
    per_worker, extra = divmod(args.requests, args.concurrency)
    limits = httpx.Limits(
        max_connections=args.connections, max_keepalive_connections=args.connections
    )
    async with TeletrackerClient(
        DEMO_USER, DEMO_PASSWORD, base_url=url, limits=limits
    ) as client:

        async def worker(index: int, count: int) -> None:
            for i in range(count):
                day = days[(index + i) % len(days)]
                started = time.perf_counter()
                try:
                    await client.call_data(day, day)
                except TeletrackerError as exc:
                    errors[type(exc).__name__] += 1
                else:
                    latencies.append(time.perf_counter() - started)
                progress.advance(task)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for index in range(args.concurrency):
                tg.start_soon(worker, index, per_worker + (index < extra))
        elapsed = time.perf_counter() - started
        # The server's own counters: what it saw, not what the client believes.
        served = await client.request_json("GET", "/_fake/stats")
    return DemoResult(
        errors=errors,
        latencies=latencies,
        elapsed=elapsed,
        stats=FakeStats(**served["data"]),
        lifetime=args.lifetime,
        concurrency=args.concurrency,
    )


@contextlib.contextmanager
def _served_elsewhere(
    lifetime: float, user: str = f"{DEMO_USER}:{DEMO_PASSWORD}:1"
) -> Iterator[str]:
    """Serve a fake in a child process (its own core and GIL); yield its URL.

    *user* is ``serve --user``'s ``NAME:PASSWORD:ACCOUNT,...``."""
    command = [
        sys.executable,
        "-m",
        "teletracker_async",
        "serve",
        "--port",
        "0",
        "--lifetime",
        repr(lifetime),
        "--user",
        user,
    ]
    child = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None  # noqa: S101 - PIPE was asked for
        first = child.stdout.readline()
        found = re.search(r"listening on (\S+)", first)
        if found is None:  # pragma: no cover - the child failed to start
            child.kill()
            _, err = child.communicate(timeout=10)
            raise CommandError(f"the fake server did not start: {err.strip()[-300:]}")
        yield found.group(1)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
        try:
            child.communicate(timeout=10)  # reaps it and closes both pipes
        except subprocess.TimeoutExpired:  # pragma: no cover - it stops on SIGINT
            child.kill()
            child.communicate()


def _demo(args: argparse.Namespace) -> int:
    _require_extras()
    if args.workers > 1 or args.store is not None:
        return _fleet_demo(args)
    import rich.progress  # noqa: PLC0415

    err = _console(stderr=True)
    out = _console(stderr=False)
    err.print(
        f"Serving FakeTeletracker on 127.0.0.1; {args.requests} requests from "
        f"{args.concurrency} coroutines, tokens living {args.lifetime:g} s."
    )
    with (
        _served_elsewhere(args.lifetime) as url,
        rich.progress.Progress(
            rich.progress.TextColumn("pulling call data"),
            rich.progress.BarColumn(),
            rich.progress.MofNCompleteColumn(),
            rich.progress.TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task("pull", total=args.requests)
        result = anyio.run(_pull, url, args, progress, task, backend="asyncio")
    return _report(result, args.connections, out)


def _report(result: DemoResult, connections: int, out: rich.console.Console) -> int:
    """Print the demo's table and verdict; the exit code."""
    import rich.table  # noqa: PLC0415

    table = rich.table.Table(title="One session under load", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    stats = result.stats
    rows = [
        ("requests ok", f"{result.ok}"),
        ("requests failed", f"{result.failed}"),
        ("coroutines / connections", f"{result.concurrency} / {connections}"),
        ("logins", f"{stats.logins}"),
        ("refreshes", f"{stats.refreshes}"),
        ("token lifetimes elapsed", f"{result.elapsed / result.lifetime:.1f}"),
        ("tokens refreshed twice", f"{stats.premature_refreshes}"),
        ("most refreshes at once", f"{stats.max_concurrent_refreshes}"),
        ("refresh-token reuse attempts", f"{stats.reuse_attempts}"),
        ("requests refused, then retried", f"{stats.rejected_requests}"),
        ("p50 latency (with queueing)", f"{result.percentile(0.50):.1f} ms"),
        ("p99 latency (with queueing)", f"{result.percentile(0.99):.1f} ms"),
        ("requests per second", f"{(result.ok + result.failed) / result.elapsed:.0f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
    for name, count in sorted(result.errors.items()):
        out.print(f"  {count} x {name}")
    problems = result.problems()
    if problems:
        out.print(f"FAIL: {'; '.join(problems)}")
        return EXIT_FAILED
    out.print(
        f"OK: {result.ok} requests from {result.concurrency} coroutines shared "
        f"{stats.logins} login; {stats.refreshes} refreshes, each token refreshed at "
        "most once (early, at half its life), no refresh token reused."
    )
    return EXIT_OK


@contextlib.contextmanager
def _fleet_store(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    """The store the demo's fleet shares, as (spec for the workers, description)."""
    kind = args.store or "file"
    if kind == "file":
        with tempfile.TemporaryDirectory(prefix="teletracker-fleet-") as directory:
            yield f"file:{directory}/store", "a file store (flock) in a temp dir"
        return
    if args.redis_url:
        yield args.redis_url, "Redis at the given URL"
        return
    from teletracker_async._redis_server import RedisServer  # noqa: PLC0415

    try:
        server = RedisServer()
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    with server:
        yield server.url, f"its own redis-server on {server.socket}"


def _fleet_demo(args: argparse.Namespace) -> int:
    """``demo --workers N``: N processes, one session, through a store."""
    from teletracker_async._fleet_demo import run_fleet  # noqa: PLC0415

    err = _console(stderr=True)
    out = _console(stderr=False)
    coroutines = max(1, args.concurrency // args.workers)
    with (
        _fleet_store(args) as (store, described),
        _served_elsewhere(args.lifetime) as url,
    ):
        err.print(
            f"Serving FakeTeletracker on 127.0.0.1; {args.workers} processes x "
            f"{coroutines} coroutines for {args.seconds:g} s share one session "
            f"through {described}; tokens live {args.lifetime:g} s."
        )
        try:
            run = run_fleet(
                url,
                username=DEMO_USER,
                password=DEMO_PASSWORD,
                store=store,
                workers=args.workers,
                coroutines=coroutines,
                seconds=args.seconds,
                lifetime=args.lifetime,
            )
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
    return _fleet_report(run, out)


def _fleet_report(run: Any, out: rich.console.Console) -> int:
    import rich.table  # noqa: PLC0415

    server = run.server
    expiries = max(run.elapsed / run.lifetime, 1.0)
    table = rich.table.Table(title="One session, many processes", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("processes (asyncio / trio)", _backends(run)),
        ("requests ok", f"{run.ok}"),
        ("requests failed", f"{run.failed}"),
        ("logins", f"{server['logins']}"),
        ("refreshes", f"{server['refreshes']}"),
        ("token lifetimes elapsed", f"{expiries:.1f}"),
        ("refreshes per lifetime", f"{server['refreshes'] / expiries:.2f}"),
        ("tokens refreshed twice", f"{server['premature_refreshes']}"),
        ("refresh-token reuse attempts", f"{server['reuse_attempts']}"),
        (
            "sessions adopted from the store",
            f"{sum(w.store.adopted for w in run.workers)}",
        ),
        (
            "store calls per process per lifetime",
            f"{run.store_calls_per_process_per_lifetime():.1f}",
        ),
    ]
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
    problems = run.problems()
    if problems:
        out.print(f"FAIL: {'; '.join(problems)}")
        return EXIT_FAILED
    out.print(
        f"OK: {len(run.workers)} processes shared {server['logins']} login and "
        f"{server['refreshes']} refreshes; no refresh token reused, none refreshed "
        "twice, no request failed."
    )
    return EXIT_OK


def _backends(run: Any) -> str:
    backends = Counter(w.backend for w in run.workers)
    return f"{backends['asyncio']} / {backends['trio']}"


# -- commands against an API ----------------------------------------------------------


def _auth(args: argparse.Namespace) -> TeletrackerAuth:
    """The credentials, resolved before any event loop starts.

    The password prompt runs here, outside the loop: Ctrl-C stops it at the first
    press, and Ctrl-D ends it with one line instead of a traceback.
    """
    username = args.username or os.environ.get("TELETRACKER_USERNAME")
    if not username:
        raise CommandError("no username: pass --username or set TELETRACKER_USERNAME")
    password = os.environ.get("TELETRACKER_PASSWORD")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not password:
        if not sys.stdin.isatty():
            raise CommandError(
                "no password: set TELETRACKER_PASSWORD, pipe it with "
                "--password-stdin, or run in a terminal to be asked"
            )
        try:
            password = getpass.getpass(f"Teletracker password for {username}: ")
        except EOFError:
            print(file=sys.stderr)  # end the prompt's line
            raise CommandError("no password given (end of input)") from None
    if not password:
        raise CommandError("the password is empty")
    account = args.account_id
    if account is None and os.environ.get("TELETRACKER_ACCOUNT_ID"):
        try:
            account = int(os.environ["TELETRACKER_ACCOUNT_ID"])
        except ValueError:
            raise CommandError("TELETRACKER_ACCOUNT_ID must be an integer") from None
    base_url = (
        args.base_url or os.environ.get("TELETRACKER_BASE_URL") or DEFAULT_BASE_URL
    )
    try:
        return TeletrackerAuth(
            username, password, account_id=account, base_url=base_url
        )
    except (TypeError, ValueError) as exc:
        raise CommandError(str(exc)) from None


def _verify(args: argparse.Namespace) -> int:
    auth = _auth(args)

    async def verify() -> bool:
        async with TeletrackerClient(auth=auth) as client:
            return await client.verify_credentials()

    accepted = anyio.run(verify)
    print(
        "credentials accepted" if accepted else "credentials refused", file=sys.stderr
    )
    return EXIT_OK if accepted else EXIT_FAILED


def _token(args: argparse.Namespace) -> int:
    auth = _auth(args)

    async def token() -> str:
        async with TeletrackerClient(auth=auth) as client:
            return (await client.session()).token

    # The one place a token is printed: stdout, on request, for the user's shell.
    print(anyio.run(token))
    return EXIT_OK


def _cell(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


class _CsvSink:
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


@contextlib.contextmanager
def _atomic_output(name: str) -> Iterator[IO[str]]:
    """A temporary file next to *name* that replaces it only when all went well.

    The temp file, ``.NAME.XXXXXXXX.partial`` in the same directory, gets the
    existing file's permissions (or the umask's). On success ``os.replace`` swaps
    it in at once; on any failure, Ctrl-C included, it is removed and *name* is
    left exactly as it was.
    """
    target = Path(name)
    temp, fd = _new_partial(target)
    try:
        with open(fd, "w", encoding="utf-8", newline="") as stream:  # noqa: PTH123
            try:
                mode = stat.S_IMODE(target.stat().st_mode)
            except OSError:
                umask = os.umask(0)
                os.umask(umask)
                mode = 0o666 & ~umask
            temp.chmod(mode)
            yield stream
            stream.flush()
            os.fsync(stream.fileno())  # on disk before it takes the old file's name
        try:
            temp.replace(target)
        except OSError as exc:
            raise CommandError(f"cannot write {name}: {exc.strerror}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


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


class _PlainProgress:
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
            console=_console(stderr=True),
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


def _progress() -> _PlainProgress | _RichProgress | None:
    """A progress line on stderr when it is a terminal: rich's, or a plain one."""
    if not sys.stderr.isatty():
        return None
    try:
        import rich  # noqa: F401, PLC0415
    except ImportError:
        return _PlainProgress(sys.stderr)
    return _RichProgress()


async def _export(
    args: argparse.Namespace, auth: TeletrackerAuth, stream: IO[str]
) -> int:
    """Stream the records to *stream* (a sliding window of requests); the count."""
    csv_sink = _CsvSink(stream) if args.format == "csv" else None
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


def _call_data(args: argparse.Namespace) -> int:
    if args.end < args.start:
        raise CommandError(
            f"--end {args.end} is before --start {args.start}", EXIT_USAGE
        )
    auth = _auth(args)
    if args.output is None or args.output == "-":
        count = anyio.run(_export, args, auth, sys.stdout)
    else:
        with _atomic_output(args.output) as stream:
            count = anyio.run(_export, args, auth, stream)
    print(f"{count} call records", file=sys.stderr)
    return EXIT_OK


# -- the parser ---------------------------------------------------------------------------


def _positive(kind: type[int | float]) -> Any:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0 or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {port}")
    return port


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def _day(text: str) -> date:
    """``YYYY-MM-DD`` and nothing else, on every Python.

    ``date.fromisoformat`` also takes ``20260101`` and ``2026-W01-1`` from 3.11 on.
    """
    try:
        if _DAY.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}")


class _NoPasswordArgument(argparse.Action):
    """``--password`` is refused, and its value is never repeated in the message."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,  # noqa: ARG002
        values: Any,  # noqa: ARG002 - the password: never shown
        option_string: str | None = None,  # noqa: ARG002
    ) -> None:
        parser.error(
            "a password is never a command-line argument (shell history, ps): set "
            "TELETRACKER_PASSWORD, pipe it with --password-stdin, or answer the prompt"
        )


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where the help text says it in words."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default is None or action.required:
            return text
        return super()._get_help_string(action)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("teletracker-async")
    except PackageNotFoundError:  # pragma: no cover - a source tree, not installed
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    verbose_help = (
        "show the SDK's debug log and the HTTP stack's request lines (httpx or "
        "httpx2) on stderr (no secrets)"
    )
    parser = argparse.ArgumentParser(
        prog="teletracker-async",
        description="The Teletracker SDK's command line: a demo, a fake server, and "
        "calls to the API.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--verbose", action="store_true", help=verbose_help)
    # --verbose after the subcommand too; SUPPRESS keeps it from undoing one before.
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument(
        "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, **options: Any) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            parents=[common],
            formatter_class=_HelpFormatter,
            allow_abbrev=False,
            **options,
        )

    demo = command(
        "demo", "pull call data from a local fake under load: one session, proved"
    )
    demo.set_defaults(func=_demo)
    demo.add_argument(
        "--requests", type=_positive(int), default=15_000, help="requests to send"
    )
    demo.add_argument(
        "--concurrency",
        type=_positive(int),
        default=2_000,
        help="coroutines sending them, sharing one client",
    )
    demo.add_argument(
        "--connections",
        type=_positive(int),
        default=8,
        help="the client's connection pool (loopback needs few; see the README)",
    )
    demo.add_argument(
        "--lifetime",
        type=_positive(float),
        default=3.0,
        help="token lifetime in seconds (short, so that tokens expire under load)",
    )
    demo.add_argument(
        "--workers",
        type=_positive(int),
        default=1,
        help="processes sharing one session through --store (the coroutines are "
        "split between them)",
    )
    demo.add_argument(
        "--store",
        choices=("file", "redis"),
        default=None,
        help="with --workers: the token store (default file; redis starts its own "
        "redis-server unless --redis-url is given)",
    )
    demo.add_argument(
        "--redis-url",
        default=None,
        help="with --store redis: an existing Redis (default: start a private "
        "redis-server)",
    )
    demo.add_argument(
        "--seconds",
        type=_positive(float),
        default=12.0,
        help="with --workers: how long the fleet runs",
    )

    serve = command("serve", "run the fake Teletracker on loopback")
    serve.set_defaults(func=_serve)
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    serve.add_argument(
        "--port", type=_port, default=8000, help="0 to 65535; 0 picks a free port"
    )
    serve.add_argument(
        "--lifetime",
        type=_positive(float),
        default=3600.0,
        help="token lifetime in seconds",
    )
    serve.add_argument(
        "--user",
        action="append",
        type=_parse_user,
        metavar="NAME:PASSWORD[:ACCOUNTS]",
        help=f"a fake user (repeatable); default {DEMO_USER}:{DEMO_PASSWORD}:1,2",
    )
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (the fake has no real security)",
    )

    def api_command(name: str, help_text: str) -> argparse.ArgumentParser:
        api = command(
            name,
            help_text,
            epilog="Credentials: TELETRACKER_USERNAME, TELETRACKER_PASSWORD, "
            "TELETRACKER_ACCOUNT_ID, TELETRACKER_BASE_URL; without a password in "
            "the environment you are asked for it (it is never an argument).",
        )
        api.add_argument("--username", help="default: $TELETRACKER_USERNAME")
        api.add_argument(
            "--base-url",
            help=f"default: $TELETRACKER_BASE_URL, else {DEFAULT_BASE_URL}",
        )
        api.add_argument(
            "--account-id",
            type=_positive(int),
            help="default: $TELETRACKER_ACCOUNT_ID, else the user's default account",
        )
        api.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of standard input "
            "(default: $TELETRACKER_PASSWORD, else a prompt)",
        )
        api.add_argument(
            "--password", nargs="?", action=_NoPasswordArgument, help=argparse.SUPPRESS
        )
        return api

    api_command(
        "verify", "check the credentials (exit 0 when accepted, 1 if not)"
    ).set_defaults(func=_verify)
    api_command(
        "token", "log in and print a bearer token, nothing else, to stdout"
    ).set_defaults(func=_token)
    call_data = api_command("call-data", "stream call records as JSON lines or CSV")
    call_data.set_defaults(func=_call_data)
    call_data.add_argument(
        "--start", required=True, type=_day, metavar="YYYY-MM-DD", help="first day"
    )
    call_data.add_argument(
        "--end",
        required=True,
        type=_day,
        metavar="YYYY-MM-DD",
        help="last day (included)",
    )
    call_data.add_argument(
        "--format", choices=["jsonl", "csv"], default="jsonl", help="output format"
    )
    call_data.add_argument(
        "--output",
        metavar="FILE",
        help="write to FILE, replacing it only once every record is in (a temp "
        "file beside it, removed on failure); default: standard output",
    )
    call_data.add_argument(
        "--window-days",
        type=_positive(int),
        default=1,
        help="days fetched per request",
    )
    call_data.add_argument(
        "--concurrency",
        type=_positive(int),
        default=8,
        help="requests in flight at once",
    )
    return parser


def _configure_logging(verbose: bool) -> None:
    if not verbose:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    # Each HTTP stack logs under its own name: whichever is in use is heard.
    for name, level in (
        ("teletracker_async", logging.DEBUG),
        ("httpx", logging.INFO),
        ("httpx2", logging.INFO),
    ):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.addHandler(handler)


#: What a shell reports for a command killed by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return int(args.func(args))
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
        return 130
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
