"""The README's quickstart figures are rendered from the last measured run, never
typed: ``python -m benchmarks.quickstart`` writes both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import quickstart

ROOT = Path(__file__).parents[2]


def test_the_readme_states_the_measured_quickstart_figures() -> None:
    """The README's sentence between the quickstart markers is the rendering of
    benchmarks/results/quickstart.json, word for word."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    result = json.loads(quickstart.RESULT.read_text(encoding="utf-8"))
    assert quickstart.render(readme, result) == readme
    assert quickstart.sentence(result) in readme


def test_the_sentence_gives_the_range_of_the_runs() -> None:
    """Lowest and highest test runs, the demo, the count and the commit."""
    result = {
        "commit": "abc1234",
        "cores": 2,
        "bytecode": "not written",
        "demo_seconds": 37.6,
        "test_seconds": [58.2, 52.4, 55.0],
        "tests": 1300,
    }
    text = quickstart.sentence(result)
    assert "demo took 38 s" in text
    assert "1300 tests in 52 to 58 s" in text
    assert "over 3 runs" in text
    assert "abc1234" in text


def test_a_readme_without_the_markers_is_an_error() -> None:
    """Rendering never guesses where the sentence goes."""
    with pytest.raises(ValueError, match="substring not found"):
        quickstart.render("# no markers\n", {})
