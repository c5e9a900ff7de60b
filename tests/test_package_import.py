"""What ``import teletracker_async`` costs: the modules it leaves for first use.

Each check runs in a fresh interpreter (this process imported everything long ago),
all of them in one child, so the slow tier pays for one Python start-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

#: Imported on first use, never by ``import teletracker_async``: httpx's own command
#: line (and what it pulls: click, rich, pygments), the extras' libraries, the
#: command line and server of the ``cli`` extra, the stores a user has not chosen and
#: what shares a session through one.
LEFT_FOR_FIRST_USE = (
    "httpx._main",
    "click",
    "rich",
    "pygments",
    "uvicorn",
    "redis",
    "cryptography",
    "aiohttp",
    "httpx_aiohttp",
    "httpx2",
    "teletracker_async._cli",
    "teletracker_async.testing",
    "teletracker_async.httpx2",
    "teletracker_async._session.fleet",
    "teletracker_async.stores._file",
    "teletracker_async.stores._redis",
)

_CHILD = textwrap.dedent(
    """
    import json, sys
    import teletracker_async
    imported = sorted(
        name for name in json.loads(sys.argv[1])
        if name in sys.modules
    )
    import httpx
    lazy_main = "main" not in vars(httpx)
    from httpx import main
    real = sys.modules.get("httpx._main")
    try:
        main(["--help"], standalone_mode=False)
        help_ran = True
    except Exception as exc:
        help_ran = repr(exc)
    from teletracker_async.stores import FileTokenStore, RedisTokenStore
    print(json.dumps({
        "imported": imported,
        "lazy_main": lazy_main,
        "main_is_httpx_own": real is not None and main is real.main,
        "main_is_attribute": httpx.main is main,
        "help_ran": help_ran,
        "stores": [FileTokenStore.__name__, RedisTokenStore.__name__],
    }))
    """
)


def test_import_leaves_heavy_modules_for_first_use_and_httpx_main_works() -> None:
    """A fresh ``import teletracker_async`` imports none of the modules it does not
    need, and afterwards ``httpx.main`` is still httpx's own command (``--help``
    runs), and the stores still import by name."""
    pytest.importorskip("click")  # httpx's CLI needs the cli extra's click and rich
    pytest.importorskip("rich")
    result = subprocess.run(  # noqa: S603  # this interpreter, our own script
        [sys.executable, "-c", _CHILD, json.dumps(LEFT_FOR_FIRST_USE)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    figures = json.loads(result.stdout.splitlines()[-1])
    assert figures["imported"] == []
    assert figures["lazy_main"] is True
    assert figures["main_is_httpx_own"] is True
    assert figures["main_is_attribute"] is True
    assert figures["help_ran"] is True
    assert "Usage: httpx" in result.stdout
    assert figures["stores"] == ["FileTokenStore", "RedisTokenStore"]
