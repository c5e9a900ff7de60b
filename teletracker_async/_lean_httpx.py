"""Import httpx without its command line, which this package never uses.

httpx's ``__init__`` imports ``httpx._main`` (the ``httpx`` command: click, rich and
pygments) whenever those are installed, which the ``cli`` extra, FastAPI's
``standard`` extra and typer all do: a sixth to a third of ``import
teletracker_async`` (the ``import`` benchmark workload). When this package is
the first to import httpx, :func:`import_httpx` makes that one import of
``httpx._main`` fail as a missing click would (``None`` in ``sys.modules``), takes the
block away, and gives httpx a module ``__getattr__`` that imports the real
``httpx._main`` the first time ``httpx.main`` is read: ``httpx.main``,
``from httpx import main`` and the ``httpx`` script get the very object they got
before, on first use. When httpx was imported before, nothing is touched; an httpx
whose ``__init__`` cannot start without ``httpx._main`` is imported again, unblocked.
The block lasts as long as httpx's own first import: another thread importing
``httpx._main`` in that instant would find it missing, as without click.

The package's ``__init__`` imports this module first, so every way into the package
goes through it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType

__all__ = ["defer_cli", "import_httpx"]

_CLI = "httpx._main"


def import_httpx() -> ModuleType:
    """Import httpx, leaving its command line for first use when httpx is new.

    Returns:
        The ``httpx`` module.
    """
    if "httpx" in sys.modules or _CLI in sys.modules:
        import httpx  # noqa: PLC0415

        return httpx
    sys.modules[_CLI] = None  # type: ignore[assignment]  # the documented import block
    try:
        import httpx  # noqa: PLC0415
    except ImportError:
        blocked = True  # an httpx that cannot start without its command line
    else:
        blocked = False
    finally:
        if _CLI in sys.modules and sys.modules[_CLI] is None:
            del sys.modules[_CLI]
    if blocked:
        import httpx  # noqa: PLC0415

        return httpx
    defer_cli(httpx)
    return httpx


def defer_cli(httpx: ModuleType) -> None:
    """Replace the ``main`` httpx defined for a missing command line by a module
    ``__getattr__`` that imports ``httpx._main`` on first read, and falls back to that
    same ``main`` when the command line's libraries cannot be imported."""
    namespace = vars(httpx)
    fallback = namespace.get("main")
    if fallback is None or getattr(fallback, "__module__", None) != "httpx":
        return  # an httpx that does not import its command line at start-up
    previous: Callable[[str], object] | None = namespace.get("__getattr__")

    def __getattr__(name: str) -> object:  # noqa: N807  # the module protocol's name
        if name == "main":
            main: object
            try:
                from httpx._main import main  # noqa: PLC0415
            except ImportError:  # what httpx itself does without click or rich
                main = fallback
            namespace["main"] = main
            return main
        if previous is not None:
            return previous(name)
        raise AttributeError(f"module 'httpx' has no attribute {name!r}")

    def __dir__() -> list[str]:  # noqa: N807
        return sorted({*namespace, "main"})

    del namespace["main"]
    namespace["__getattr__"] = __getattr__
    namespace["__dir__"] = __dir__


import_httpx()
