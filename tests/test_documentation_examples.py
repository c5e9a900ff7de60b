"""Every Python block of README.md and docs/ runs as written, against a served fake.

The blocks are found in the Markdown source, and each is run unmodified:

- a block whose first line is a comment naming a test file (``# test_reports.py``) is
  a pytest file: it is written out under that name, with the page's ``# conftest.py``
  blocks, and run by pytest in a bare directory, where only the installed plugins
  (ours, anyio's) help it; every test in it must pass;
- a block preceded by ``<!-- not run: reason -->`` is skipped with that reason, one
  preceded by ``<!-- run by: tests/....py -->`` is run by that module (in a project
  of its own configuration), and a
  block holding only ``--8<--`` lines includes files that are run by their owners;
- any other block is a script: it runs in this process on asyncio and on trio (its
  ``anyio.run`` is pointed at the backend), with ``TELETRACKER_BASE_URL``,
  ``TELETRACKER_USERNAME`` and ``TELETRACKER_PASSWORD`` naming a fake served over HTTP
  with the example user of ``teletracker-async serve``, as the Getting started page
  tells a reader to set them. A script that imports what is not installed here (an
  optional extra, such as httpx2 on Python 3.10) is skipped, naming it.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import anyio
import pytest

from teletracker_async._cli.common import DEMO_PASSWORD, DEMO_USER
from teletracker_async.testing import FakeTeletracker

pytest_plugins = ["pytester"]

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.+?)\s*-->")
RUN_BY = re.compile(r"<!--\s*run by:\s*(\S+?)\s*-->")
TEST_FILE = re.compile(r"#\s*((?:test_\w+|\w+_test)\.py)\s*\n")
CONFTEST = re.compile(r"#\s*conftest\.py\s*\n")


class Block(NamedTuple):
    """One fenced Python block: where it is, its text, and why it is not run."""

    page: Path
    line: int
    code: str
    skip: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def test_file(self) -> str | None:
        found = TEST_FILE.match(self.code)
        return found.group(1) if found else None

    @property
    def conftest(self) -> bool:
        return CONFTEST.match(self.code) is not None


def blocks_of(page: Path) -> list[Block]:
    """The Python blocks of *page*, in order."""
    text = page.read_text(encoding="utf-8")
    found_blocks = []
    for found in FENCE.finditer(text):
        before = text[: found.start()].rstrip("\n").rsplit("\n", 1)[-1]
        code = found.group(1)
        not_run = NOT_RUN.search(before)
        run_by = RUN_BY.search(before)
        skip = None
        if not_run:
            skip = not_run.group(1)
        elif run_by:
            skip = f"run by {run_by.group(1)}, with its own configuration"
        elif all(line.lstrip().startswith("--8<--") for line in code.splitlines()):
            skip = "it includes files, which their owners run"
        line = text.count("\n", 0, found.start()) + 1
        found_blocks.append(Block(page, line, code, skip))
    return found_blocks


BLOCKS = [block for page in PAGES for block in blocks_of(page)]
RUN = [block for block in BLOCKS if block.skip is None and not block.conftest]
SCRIPTS = [pytest.param(b, id=b.where) for b in RUN if b.test_file is None]
TEST_FILES = [pytest.param(b, id=b.where) for b in RUN if b.test_file is not None]
NOT_RUN_BLOCKS = [pytest.param(b, id=b.where) for b in BLOCKS if b.skip is not None]


def test_the_collector_finds_the_pages_blocks() -> None:
    """README.md and the docs pages are read, and their scripts and test files found."""
    pages = {block.page.name for block in BLOCKS}
    assert {"README.md", "getting-started.md", "web-apps.md", "testing.md"} <= pages
    assert len(SCRIPTS) >= 10
    assert len(TEST_FILES) >= 2


def test_every_block_that_defines_tests_is_marked_as_a_test_file() -> None:
    """A block with test functions names its file, or it would run as a script that
    defines tests and calls none of them."""
    unmarked = [
        b.where
        for b in RUN
        if b.test_file is None
        and re.search(r"^(async )?def test_", b.code, re.MULTILINE)
    ]
    assert unmarked == [], "start these blocks with a comment: # test_NAME.py"


def test_every_skipped_block_says_why() -> None:
    """Skipping is visible in the page's source, with a reason."""
    for block in BLOCKS:
        assert block.skip is None or block.skip.strip(), block.where


def test_every_block_run_elsewhere_names_a_test_that_reads_its_page() -> None:
    """``<!-- run by: tests/....py -->`` names a test module that exists and reads
    the block's page, so that the block is run, not merely said to be."""
    for page in PAGES:
        for found in RUN_BY.finditer(page.read_text(encoding="utf-8")):
            runner = ROOT / found.group(1)
            assert runner.is_file(), f"{page.name}: {found.group(1)} does not exist"
            assert page.name in runner.read_text(encoding="utf-8"), runner


@pytest.fixture(scope="module")
def served_fake() -> Iterator[FakeTeletracker]:
    """The fake of ``teletracker-async serve``, served over HTTP, and the environment
    that the Try it locally page sets, for every script of the module."""
    fake = FakeTeletracker(users={DEMO_USER: (DEMO_PASSWORD, [1, 2])})
    with fake.serving() as url, pytest.MonkeyPatch.context() as env:
        env.setenv("TELETRACKER_BASE_URL", url)
        env.setenv("TELETRACKER_USERNAME", DEMO_USER)
        env.setenv("TELETRACKER_PASSWORD", DEMO_PASSWORD)
        env.delenv("TELETRACKER_ACCOUNT_ID", raising=False)
        yield fake


#: Extras that this interpreter cannot install (httpx2 needs Python 3.11).
NOT_FOR_THIS_PYTHON = {"httpx2"} if sys.version_info < (3, 11) else set()


def skip_unless_importable(code: str) -> None:
    """Skip when the block imports a top-level module that is not installed here."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots = [node.module.split(".")[0]]
        else:
            continue
        for root in roots:
            if importlib.util.find_spec(root) is None:  # pragma: no cover - an extra
                if os.environ.get("CI") and root not in NOT_FOR_THIS_PYTHON:
                    # CI installs every extra this Python can have: never skip there.
                    pytest.fail(f"the block imports {root}, which is not installed")
                pytest.skip(f"the block imports {root}, not installed here")


@pytest.mark.parametrize(
    # The scripts as written run on asyncio (anyio.run's default); the slow tier runs
    # each on trio as well.
    "backend",
    ["asyncio", pytest.param("trio", marks=pytest.mark.slow)],
)
@pytest.mark.parametrize("block", SCRIPTS)
def test_scripts_run_as_written(
    block: Block,
    backend: str,
    served_fake: FakeTeletracker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The block is a valid script (no top-level ``await``) that runs to its end on
    this backend against the served fake."""
    code = compile(block.code, block.where, "exec")
    skip_unless_importable(block.code)
    run = anyio.run

    def on_this_backend(func: Callable[..., Any], *args: Any, **_: Any) -> Any:
        return run(func, *args, backend=backend)

    monkeypatch.setattr(anyio, "run", on_this_backend)
    exec(code, {"__name__": "__main__"})  # noqa: S102 - the documentation's own code


@pytest.mark.parametrize("block", TEST_FILES)
@pytest.mark.slow  # a pytest child per block
def test_test_files_pass_as_written(block: Block, pytester: pytest.Pytester) -> None:
    """The test file passes in a bare project with the package installed."""
    skip_unless_importable(block.code)
    conftests = [
        b.code for b in blocks_of(block.page) if b.conftest and b.line < block.line
    ]
    if conftests:
        pytester.makeconftest("\n".join(conftests))
    name = block.test_file
    assert name is not None
    pytester.makepyfile(**{name.removesuffix(".py"): block.code})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    # anyio's own anyio_backend may run each test on more than one backend.
    assert outcomes.get("passed", 0) >= block.code.count("def test_"), (
        result.stdout.str()
    )
    assert set(outcomes) <= {"passed", "seconds"}, result.stdout.str()


@pytest.mark.parametrize("block", NOT_RUN_BLOCKS)
def test_blocks_marked_not_run_are_reported(block: Block) -> None:
    """A block the pages mark as not run shows in the test report, with its reason."""
    assert block.skip is not None
    pytest.skip(f"{block.where}: {block.skip}")
