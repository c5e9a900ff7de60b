"""``python -m teletracker_async``: the same as the ``teletracker-async`` command."""

from teletracker_async._cli import main

raise SystemExit(main())
