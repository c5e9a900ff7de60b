"""A stateful, in-process fake of the Teletracker API for tests.

``FakeTeletracker`` keeps users, sessions with rotating refresh tokens, and call
records, and answers the way the real API is documented to. Hand its transport to the
SDK (or to any httpx client)::

    fake = FakeTeletracker(users={"ada": "secret"}, clock=clock)
    async with TeletrackerClient("ada", "secret", transport=fake.transport()) as c:
        ...
    assert fake.stats.logins == 1
    assert [r.path for r in fake.requests] == ["/auth/login", ...]

The package has three parts, as trio's ``testing`` does:

- the API's rules (users, sessions, rotation, endpoints, faults, the requests log):
  :class:`FakeTeletracker`, which answers a plain :class:`FakeRequest` in
  :meth:`FakeTeletracker.handle`;
- the doors to it, which know no rule: :meth:`FakeTeletracker.transport` (an
  in-process httpx transport), :meth:`FakeTeletracker.asgi` (an ASGI app) and
  :meth:`FakeTeletracker.serving` (that app on a loopback port);
- time: :class:`FakeClock` and :class:`FakeGate`.

For tests that mock httpx instead (respx, pytest-httpx, ``httpx.MockTransport``),
:func:`login_answer`, :func:`refresh_answer` and :func:`error_answer` build the API's
answers as ``httpx.Response`` objects, from the same builders as the fake's::

    respx.post(f"{base_url}/auth/login") % login_answer(token="t1")

A pytest plugin (``teletracker_async.testing.pytest_plugin``, loaded by pytest through
its ``pytest11`` entry point, never by this package) offers them as fixtures:
``teletracker_clock``, ``teletracker_fake``, ``teletracker_server``,
``teletracker_make_client`` (a client factory for any async harness) and
``teletracker_client`` (for tests that anyio's plugin runs).

Besides the documented endpoints the fake offers ``POST /echo``, an authenticated
endpoint that answers with the body it got (for tests of request replay), and
``GET /_fake/stats``, the counters as JSON (for a fake served in another process).
"""

from teletracker_async.testing._clock import FakeClock, FakeGate
from teletracker_async.testing._mock_answers import (
    error_answer,
    login_answer,
    refresh_answer,
)
from teletracker_async.testing._rules import (
    Endpoint,
    EndpointHandler,
    FakeStats,
    FakeTeletracker,
    RecordedRequest,
)
from teletracker_async.testing._wire import FakeRequest, FakeResponse

__all__ = [
    "Endpoint",
    "EndpointHandler",
    "FakeClock",
    "FakeGate",
    "FakeRequest",
    "FakeResponse",
    "FakeStats",
    "FakeTeletracker",
    "RecordedRequest",
    "error_answer",
    "login_answer",
    "refresh_answer",
]
