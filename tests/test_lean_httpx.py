"""httpx's command line is left for first use, and nothing else about httpx changes.

The fresh-interpreter side (``import teletracker_async`` first, then ``httpx --help``)
is tests/test_package_import.py; these check the deferral on stand-in modules.
"""

from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path

import httpx
import pytest

from teletracker_async._lean_httpx import defer_cli, import_httpx


def _fallback() -> None:
    """httpx's own stand-in for a missing command line."""


_fallback.__module__ = "httpx"


def _module_like_httpx() -> types.ModuleType:
    """A module shaped as httpx is after its command line failed to import."""
    module = types.ModuleType("httpx")
    module.main = _fallback  # type: ignore[attr-defined]
    module.Client = httpx.Client  # type: ignore[attr-defined]
    return module


def test_an_httpx_imported_before_is_left_as_it_is() -> None:
    """When httpx is already imported, import_httpx returns it and changes none of
    its attributes."""
    before = dict(vars(httpx))
    assert import_httpx() is sys.modules["httpx"]
    assert dict(vars(httpx)) == before


def test_main_is_httpx_own_command_on_first_read() -> None:
    """``main`` is gone from the module's namespace until read; then it is the
    command of ``httpx._main``, kept for the next read, and ``dir`` lists it."""
    pytest.importorskip("click")
    pytest.importorskip("rich")
    module = _module_like_httpx()
    defer_cli(module)
    assert "main" not in vars(module)
    assert "main" in dir(module)
    main = module.main
    assert main is sys.modules["httpx._main"].main
    assert vars(module)["main"] is main


def test_main_is_httpx_fallback_when_its_command_line_cannot_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without click or rich, ``main`` is the stand-in httpx itself defined, as it
    would have been without the deferral."""
    monkeypatch.setitem(sys.modules, "httpx._main", None)
    module = _module_like_httpx()
    defer_cli(module)
    assert module.main is _fallback


def test_other_names_behave_as_before() -> None:
    """Other attributes are untouched, an unknown one is an AttributeError naming it,
    and a module ``__getattr__`` httpx already had still answers."""
    module = _module_like_httpx()
    defer_cli(module)
    assert module.Client is httpx.Client
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = module.nope

    def own(name: str) -> str:
        return f"own {name}"

    with_getattr = _module_like_httpx()
    with_getattr.__getattr__ = own  # type: ignore[method-assign]
    defer_cli(with_getattr)
    assert with_getattr.other == "own other"


def test_an_httpx_whose_main_is_its_command_is_left_alone() -> None:
    """A ``main`` that is not httpx's fallback (the command line imported, or an
    httpx without one) is not deferred."""

    def command() -> None: ...

    module = types.ModuleType("httpx")
    module.main = command  # type: ignore[attr-defined]
    defer_cli(module)
    assert vars(module)["main"] is command
    assert "__getattr__" not in vars(module)
    bare = types.ModuleType("httpx")
    defer_cli(bare)
    assert vars(bare) == vars(types.ModuleType("httpx"))


def _forget_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next ``import httpx`` run its ``__init__`` again (its submodules stay
    imported, so its classes stay the same objects); undone after the test."""
    monkeypatch.delitem(sys.modules, "httpx")
    monkeypatch.delitem(sys.modules, "httpx._main", raising=False)


def test_a_new_httpx_is_imported_without_its_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When httpx is new, its ``__init__`` runs without ``httpx._main``, the block is
    taken away afterwards, and ``main`` is httpx's command on first read."""
    pytest.importorskip("click")
    pytest.importorskip("rich")
    _forget_httpx(monkeypatch)
    module = import_httpx()
    assert module is sys.modules["httpx"]
    assert "httpx._main" not in sys.modules
    assert "main" not in vars(module)
    assert module.Client is httpx.Client
    assert module.main is sys.modules["httpx._main"].main


def test_an_httpx_that_cannot_start_without_its_command_line_gets_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An httpx whose ``__init__`` imports ``httpx._main`` outside a ``try`` imports
    as it would have, command line included."""
    package = tmp_path / "httpx"
    package.mkdir()
    (package / "__init__.py").write_text("from ._main import main\n")
    (package / "_main.py").write_text(
        textwrap.dedent(
            """
            def main():
                return "its own"
            """
        )
    )
    _forget_httpx(monkeypatch)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = import_httpx()
    assert module.__file__ == str(package / "__init__.py")
    assert vars(module)["main"]() == "its own"
