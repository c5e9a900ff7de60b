"""Every Python block in the README runs, against the fake.

How a block is run depends on what it is:

- a block that defines ``test_`` functions is a test file: it is written out as it
  stands and run by pytest in a bare directory, where only the installed plugins
  (ours, anyio's) help it; every test in it must pass;
- any other block is a program: it runs as it stands, on asyncio and on trio (its
  ``anyio.run`` is pointed at the backend), with a top-level ``await`` allowed as in
  the README's fragments. The one substitution: an ``httpx.AsyncClient`` (or
  ``httpx2.AsyncClient``) built without a transport, as in the blocks that would reach
  api.teletracker.net, gets one into the fake, and the fake knows the users those
  blocks log in as (:data:`README_USERS`). A block that imports what is not installed
  here (an optional extra, such as httpx2 on Python 3.10) is skipped, naming it.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from teletracker_async.testing import FakeTeletracker

pytest_plugins = ["pytester"]

README = Path(__file__).parent.parent / "README.md"
#: The credentials the README's examples use, with the accounts they name.
README_USERS = {
    "ada@example.com": ("s3cret", [1234]),
    "ada": ("s3cret", [1234]),
}


def python_blocks() -> list[Any]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    for found in re.finditer(r"^```python\n(.*?)^```$", text, re.MULTILINE | re.DOTALL):
        line = text.count("\n", 0, found.start()) + 1
        blocks.append(pytest.param(found.group(1), id=f"README.md:{line}"))
    return blocks


BLOCKS = python_blocks()


def test_the_readme_has_the_blocks_it_should() -> None:
    """The extractor finds the README's examples, test files and programs alike."""
    tests = [b for b in BLOCKS if "def test_" in b.values[0]]
    assert len(tests) == 1
    assert len(BLOCKS) >= 4


def test_the_web_app_guide_runs_here() -> None:
    """The FastAPI guide is among the program blocks, and its imports are dev
    dependencies, so that it is run rather than skipped."""
    guides = [b for b in BLOCKS if "LifespanManager(app)" in b.values[0]]
    assert len(guides) == 1
    for module in ("fastapi", "starlette", "asgi_lifespan"):
        assert importlib.util.find_spec(module) is not None, module


@pytest.fixture
def readme_fake(monkeypatch: pytest.MonkeyPatch) -> FakeTeletracker:
    """A fake for the blocks, handed to every AsyncClient built without a transport."""
    fake = FakeTeletracker(users=README_USERS, records_per_day=2)
    fake.add_user("partner", "s3cret", [1234], integrator=True)
    into_the_fake(monkeypatch, httpx.AsyncClient, fake.transport)
    if importlib.util.find_spec("httpx2") is not None:  # pragma: no cover - an extra
        import httpx2  # noqa: PLC0415

        into_the_fake(
            monkeypatch, httpx2.AsyncClient, lambda: httpx2.ASGITransport(app=fake.asgi)
        )
    return fake


def into_the_fake(
    monkeypatch: pytest.MonkeyPatch, client: type, transport: Callable[[], Any]
) -> None:
    """Make *client* use *transport* whenever it is built without one."""
    original: Callable[..., None] = client.__init__  # type: ignore[misc]

    def with_the_fake(self: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("transport") is None:
            kwargs["transport"] = transport()
        original(self, *args, **kwargs)

    monkeypatch.setattr(client, "__init__", with_the_fake)


def skip_unless_importable(block: str) -> None:
    """Skip when the block imports a top-level module that is not installed here."""
    for node in ast.walk(ast.parse(block)):
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots = [node.module.split(".")[0]]
        else:
            continue
        for root in roots:
            if importlib.util.find_spec(root) is None:  # pragma: no cover - an extra
                pytest.skip(f"the block imports {root}, not installed here")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("block", [b for b in BLOCKS if "def test_" not in b.values[0]])
def test_program_blocks_run(
    block: str,
    backend: str,
    readme_fake: FakeTeletracker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The block runs to its end on this backend, without reaching the network."""
    skip_unless_importable(block)
    run = anyio.run

    def on_this_backend(func: Callable[..., Any], *args: Any, **_: Any) -> Any:
        return run(func, *args, backend=backend)

    monkeypatch.setattr(anyio, "run", on_this_backend)
    code = compile(block, str(README), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    if code.co_flags & inspect.CO_COROUTINE:

        async def top_level() -> None:
            await eval(code, namespace)  # noqa: S307 - the README's own code

        on_this_backend(top_level)
    else:
        exec(code, namespace)  # noqa: S102 - the README's own code


@pytest.mark.parametrize("block", [b for b in BLOCKS if "def test_" in b.values[0]])
@pytest.mark.slow  # a pytest child per block
def test_test_file_blocks_pass_as_written(
    block: str, pytester: pytest.Pytester
) -> None:
    """The README's test file passes in a bare project with the package installed."""
    skip_unless_importable(block)
    pytester.makepyfile(test_readme_example=block)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    # anyio's own anyio_backend may run each test on more than one backend.
    assert outcomes.get("passed", 0) >= block.count("def test_"), result.stdout.str()
    assert set(outcomes) <= {"passed", "seconds"}, result.stdout.str()
