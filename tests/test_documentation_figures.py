"""What README.md, docs/ and CHANGELOG.md state agrees with the code and each other."""

from __future__ import annotations

import re
from pathlib import Path

from teletracker_async import Retry

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_the_readme_is_short() -> None:
    """The README introduces; the reference lives in docs/."""
    assert len(text(ROOT / "README.md").splitlines()) <= 300


def test_a_long_retry_after_is_raised_in_the_code_and_every_document() -> None:
    """A Retry-After over ``max_retry_after`` is not waited out: the error is raised.
    No document says it is capped, and the documented default is the code's."""
    default = Retry().max_retry_after
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *DOCS.rglob("*.md")]
    for page in pages:
        for sentence in re.split(r"(?<=[.;])\s", text(page)):
            if "Retry-After" in sentence:
                assert not re.search(r"\bcapped\b", sentence), (page.name, sentence)
    row = re.search(
        r"^\| `max_retry_after` \| `([\d.]+)` \|",
        text(DOCS / "guides" / "data-pullers.md"),
        re.MULTILINE,
    )
    assert row is not None
    assert float(row.group(1)) == default
    assert "the error is raised" in text(ROOT / "CHANGELOG.md")


def test_benchmark_ratios_are_quoted_from_the_generated_report_only() -> None:
    """A ratio (a figure and a multiplication sign) appears in the Benchmarks page's
    included report only, never typed into a page, where a new run would leave it
    stale."""
    ratio = re.compile(r"\b\d+\.\d+\s?\N{MULTIPLICATION SIGN}")
    pages = [ROOT / "README.md", *DOCS.rglob("*.md")]
    typed = [(p.name, m.group()) for p in pages for m in ratio.finditer(text(p))]
    assert typed == []


def test_the_benchmarks_page_includes_the_generated_report() -> None:
    """The figures come from one file: the page includes it rather than copying it."""
    assert '--8<-- "benchmarks/results/latest.md"' in text(DOCS / "benchmarks.md")
    assert (ROOT / "benchmarks" / "results" / "latest.md").is_file()
