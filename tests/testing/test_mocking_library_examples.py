"""The mocking-libraries page shows its example test files whole, and the suite runs
them (``testpaths`` holds ``docs/examples``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from teletracker_async import testing

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "guides" / "mocking-libraries.md"
EXAMPLES = ROOT / "docs" / "examples"

pytestmark = pytest.mark.skipif(
    not PAGE.exists(), reason="docs/ is not part of this copy (an sdist or a CI copy)"
)


def included_files(page: str) -> list[str]:
    """The files a page includes with a snippet line alone in a ``python`` fence."""
    return re.findall(r'^```python\n--8<-- "([^"\n]+)"\n```$', page, re.MULTILINE)


def test_the_page_includes_every_example_file_whole() -> None:
    """Each docs/examples/test_with_*.py is on the page, included, not copied."""
    examples = sorted(str(p.relative_to(ROOT)) for p in EXAMPLES.glob("test_with_*.py"))
    assert examples == [
        "docs/examples/test_with_pytest_httpx.py",
        "docs/examples/test_with_respx.py",
    ]
    assert sorted(included_files(PAGE.read_text())) == examples


def test_the_suite_collects_the_examples(pytestconfig: pytest.Config) -> None:
    """`uv run pytest` runs the example files as they are shown."""
    assert "docs/examples" in pytestconfig.getini("testpaths")


def test_the_page_explains_each_helper() -> None:
    """Every answer helper of the kit is on the page, with its signature."""
    page = PAGE.read_text()
    for name in ("login_answer", "refresh_answer", "error_answer"):
        assert name in testing.__all__
        assert f"`{name}(" in page
