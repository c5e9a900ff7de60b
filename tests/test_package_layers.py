"""The package's modules use each other through their public names only.

The layer order itself (one way down, no cycles) is import-linter's contract in
pyproject.toml, which .ci/run checks with ``lint-imports``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import teletracker_async

PACKAGE = Path(teletracker_async.__file__).parent


def test_no_module_imports_another_modules_private_name() -> None:
    """``from teletracker_async.x import _name`` is reaching into another module:
    each module offers what others may use under a public name (its ``__all__``)."""
    reaches = [
        f"{path.relative_to(PACKAGE)}:{node.lineno} imports {alias.name} "
        f"from {node.module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom)
        and (node.module or "").startswith("teletracker_async")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert reaches == []
