"""The ``teletracker-async`` command.

``demo`` and ``serve`` run :class:`FakeTeletracker` as a real HTTP server on loopback;
``verify``, ``token`` and ``call-data`` talk to a real (or served fake) API. The
progress display, tables and the HTTP server come from the ``cli`` extra (rich and
uvicorn); the library itself never imports them.

- :mod:`.app` ``main``: parse, run, map failures to exit codes
- :mod:`.parser` the grammar; :mod:`.common` exit codes and the extras check
- :mod:`.api` credentials, ``verify``, ``token``; :mod:`.export` ``call-data``
- :mod:`.serve` ``serve``; :mod:`.demo` ``demo``; :mod:`.fleet` and
  :mod:`.fleet_worker` ``demo --workers N``; :mod:`.local_redis` its redis-server
"""

from teletracker_async._cli.app import main

__all__ = ["main"]
