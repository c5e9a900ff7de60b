"""The I/O of the fleet protocol: one session shared through a token store.

Every decision is the state machine's (:meth:`SessionMachine.adoptable`,
:meth:`~SessionMachine.fleet_choice`, :meth:`~SessionMachine.defer`); this module
only talks to the store around one flight of the process's single-flight core:

1. :meth:`FleetLink.prepare`, before the exchange: load the record and adopt a
   session another process published (no HTTP call); otherwise take the renewal
   lease, load again, and spend the record (its winner alone refreshes with its
   refresh token) or log in. Lease held elsewhere: keep the valid token and look
   again shortly; past the hard deadline, poll for the holder's session (bounded).
2. :meth:`FleetLink.publish`, with the answer: a fenced commit; refused, adopt the
   winner's record, or keep the fresh session privately.
3. :meth:`FleetLink.done`, whatever happened: release the lease.

Each flight holds its own lease (its holder id names the process and the flight),
short (:data:`LEASE_TTL`) and extended by a heartbeat task on the flight's event
loop while its exchange runs: a holder that dies or freezes (SIGKILL, SIGSTOP, a
stuck or dead loop) stops beating and another process takes over within
:data:`LEASE_TAKEOVER`. A heartbeat that fails changes nothing else: the fenced
commit decides whether a late holder's session is published.

The store is never touched on the request path: only when a renewal is due.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import anyio
import attrs

from teletracker_async._config import (
    FLEET_POLL,
    FLEET_RETRY,
    FLEET_WAIT,
    LEASE_HEARTBEAT,
    LEASE_RELEASE_TIMEOUT,
    LEASE_TTL,
    RENEWAL_BACKOFF,
)
from teletracker_async._converter import TokenAnswer, parse_token_answer
from teletracker_async._errors import ResponseFormatError
from teletracker_async._session.machine import FleetChoice, Seen
from teletracker_async.stores._base import (
    StoreErrors,
    StoreStats,
    TokenCodecError,
    TokenStore,
    TokenStoreError,
    new_write_id,
    store_key,
)

if TYPE_CHECKING:
    from teletracker_async._session.core import SessionCore
    from teletracker_async._session.machine import Exchange, Lease

__all__ = ["FleetLink"]

logger = logging.getLogger("teletracker_async")

T = TypeVar("T")


@attrs.define
class _Held:
    """The renewal lease a flight holds, and the record it may replace."""

    key: str
    fence: int
    holder: str
    expected: str | None = None
    #: Stops the heartbeat (cancelled when the flight ends).
    beat: anyio.CancelScope = attrs.field(factory=anyio.CancelScope)
    #: Set once the heartbeat has stopped, its last store call landed.
    stopped: anyio.Event = attrs.field(factory=anyio.Event)


class FleetLink:
    """One auth's side of a token store.

    ``lease_ttl``, ``heartbeat`` and ``wait_limit`` default to :data:`LEASE_TTL`,
    :data:`LEASE_HEARTBEAT` and :data:`FLEET_WAIT` (the fleet tests change them,
    process-wide).

    Args:
        store: The store.
        core: The auth's process-wide session core.
        base_url, username: With the account, what the record key is derived from.
        clock: The auth's clock.
        errors: ``"login"``: an unreachable store costs at most a private login;
            ``"raise"``: raise :class:`TokenStoreError` instead (for APIs that cap
            sessions).
    """

    lease_ttl: float = LEASE_TTL
    heartbeat: float = LEASE_HEARTBEAT
    wait_limit: float = FLEET_WAIT

    def __init__(
        self,
        store: TokenStore,
        core: SessionCore,
        *,
        base_url: str,
        username: str,
        clock: Callable[[], float],
        errors: StoreErrors,
    ) -> None:
        self.store = store
        self._core = core
        self._base_url = base_url
        self._username = username
        self._clock = clock
        self.errors = errors
        self._held: dict[int, _Held] = {}
        self._pid = -1
        self._holder = ""
        self.stats = StoreStats()

    def __repr__(self) -> str:
        return f"FleetLink(store={self.store!r}, stats={self.stats!r})"

    @property
    def holder(self) -> str:
        """This process's lease holder id (a forked child gets its own)."""
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
            self._holder = f"{socket.gethostname()}/{pid}/{uuid.uuid4().hex[:12]}"
        return self._holder

    def flight_holder(self, exchange: Exchange) -> str:
        """The lease holder id of one flight: two flights of this process (a loop
        that died mid-renewal, then another) never share a lease."""
        return f"{self.holder}/{exchange.number}"

    def key(self, account_id: int | None) -> str:
        return store_key(self._base_url, self._username, account_id)

    # -- 1. before the exchange ---------------------------------------------------------

    async def prepare(self, exchange: Exchange) -> Lease | None:
        """Adopt, wait for, or win the right to renew the shared session.

        Returns the lease to use without any exchange (adopted, or the valid token
        kept while another process renews), or None: run the exchange, whose kind
        (refresh or login) is set.

        Raises:
            TokenStoreError: The store failed and ``errors="raise"``.
        """
        try:
            return await self._prepare(exchange)
        except TokenStoreError as exc:
            self.stats.store_errors += 1
            if self.errors == "raise":
                raise
            if not exchange.forced:
                lease = self._core.defer(exchange, RENEWAL_BACKOFF)
                if lease is not None:
                    logger.warning("%s; keeping the valid token", exc)
                    return lease
            logger.warning("%s; renewing privately", exc)
            self._private(exchange)
            return None

    async def _prepare(self, exchange: Exchange) -> Lease | None:
        key = self.key(exchange.account_id)
        core = self._core
        deadline: float | None = None
        while True:
            _, seen = await self._load(key)
            if core.adoptable(seen, forced=exchange.forced):
                return self._adopt(exchange, seen)
            holder = self.flight_holder(exchange)
            fence = await self._call(
                "acquire", self.store.acquire(key, holder, self.lease_ttl)
            )
            if fence is not None:
                return await self._with_lease(exchange, key, fence, holder)
            # Another process renews. Early, the valid token goes on meanwhile.
            if not exchange.forced:
                lease = core.defer(exchange, FLEET_RETRY * _jitter(0.2))
                if lease is not None:
                    return lease
            now = self._clock()
            if deadline is None:
                deadline = now + self.wait_limit
            elif now >= deadline:
                logger.warning(
                    "the token store's renewal lease has been held elsewhere for "
                    "%.0f s: renewing privately",
                    self.wait_limit,
                )
                self._private(exchange)
                return None
            await anyio.sleep(FLEET_POLL * _jitter(0.5))

    async def _with_lease(
        self, exchange: Exchange, key: str, fence: int, holder: str
    ) -> Lease | None:
        held = self._held[exchange.number] = _Held(key, fence, holder)
        self._start_heartbeat(held)
        write_id, seen = await self._load(key)  # what changed while we asked
        if self._core.adoptable(seen, forced=exchange.forced):
            return self._adopt(exchange, seen)
        held.expected = write_id
        choice = self._core.fleet_choice(exchange, seen)
        if choice is FleetChoice.SPEND:
            assert seen is not None  # noqa: S101 - fleet_choice checked it
            if await self._call("spend", self.store.spend(key, seen.write_id)):
                # Ours alone, fleet-wide: nobody else may send this refresh token.
                self._core.machine.refresh_with(exchange, seen.answer.refresh_token)
            else:
                logger.info("the stored session was spent meanwhile: logging in")
        return None

    def _private(self, exchange: Exchange) -> None:
        """Renew without the store: never with the shared refresh token."""
        self.stats.private_renewals += 1
        exchange.reason = "private"
        self._core.fleet_choice(exchange, None)

    def _adopt(self, exchange: Exchange, seen: Seen | None) -> Lease:
        assert seen is not None  # noqa: S101 - adoptable() checked it
        self.stats.adopted += 1
        logger.info("adopted session %s from the token store", seen.answer.guid)
        return self._core.settle(
            exchange,
            seen.answer,
            expires_at=seen.expires_at,
            write_id=seen.write_id,
            adopted=True,
        )

    # -- 2. with the answer -------------------------------------------------------------

    async def publish(
        self, exchange: Exchange, answer: TokenAnswer, arrived: float
    ) -> Lease:
        """Install the new session, published in the store when the lease allows.

        The record holds the fields of *answer* the SDK uses, re-encoded here: never
        anything else the server said. The payload is no local of this frame (error
        reporters show frame locals): it goes straight to the store.
        """
        held = self._held.get(exchange.number)
        expires_at = arrived + answer.token_lifetime
        if held is None:  # renewed privately
            return self._core.settle(exchange, answer, expires_at=expires_at)
        write_id = new_write_id()
        # Until the store says "refused", the commit may have landed (a lost reply):
        # the session then counts as published, so its refresh token is only ever
        # sent after a spend, never as a private refresh.
        unknown: str | None = write_id
        try:
            written = await self._call(
                "commit",
                self.store.commit(
                    held.key,
                    _encode(answer, exchange.account_id, held.key),
                    write_id=write_id,
                    expected=held.expected,
                    fence=held.fence,
                    lifetime=answer.token_lifetime,
                    age=max(0.0, self._clock() - arrived),
                ),
            )
            if written:
                self.stats.published += 1
                return self._core.settle(
                    exchange, answer, expires_at=expires_at, write_id=write_id
                )
            # A later lease holder published first (our lease ran out): theirs wins.
            self.stats.refused_commits += 1
            unknown = None
            _, seen = await self._load(held.key)
        except TokenCodecError as exc:  # raised before anything was written
            self.stats.store_errors += 1
            logger.warning("%s; keeping the new session, not published", exc)
            unknown, seen = None, None
        except TokenStoreError as exc:
            self.stats.store_errors += 1
            logger.warning("%s; keeping the new session, its publication unknown", exc)
            seen = None
        if self._core.adoptable(seen, forced=False):
            return self._adopt(exchange, seen)
        return self._core.settle(
            exchange, answer, expires_at=expires_at, write_id=unknown
        )

    # -- 3. whatever happened ---------------------------------------------------------

    async def done(self, exchange: Exchange) -> None:
        """Stop the heartbeat and release the flight's lease, if it holds one (even
        when cancelled)."""
        held = self._held.pop(exchange.number, None)
        if held is None:
            return
        held.beat.cancel()
        with (
            anyio.CancelScope(shield=True),
            anyio.move_on_after(LEASE_RELEASE_TIMEOUT),
        ):
            # A beat in a worker thread cannot be cancelled: released before it
            # lands, the lease would be taken again, and left behind.
            await held.stopped.wait()
            try:
                await self._call("release", self.store.release(held.key, held.holder))
            except TokenStoreError as exc:  # it runs out on its own
                logger.warning("%s; the lease will expire", exc)

    # -- the heartbeat ------------------------------------------------------------------

    def _start_heartbeat(self, held: _Held) -> None:
        """Extend *held*'s lease from a task of the running loop until the flight
        ends (:meth:`done`). The exchange itself runs in the HTTP client's hands,
        outside any task group of ours: the task is spawned on the loop (a system
        task on trio), so it beats exactly while the loop runs."""

        async def run() -> None:
            try:
                with held.beat:
                    await self._beat(held)
            finally:
                held.stopped.set()

        # trio first: run as a guest of an asyncio loop (start_guest_run), a trio
        # task sees asyncio's loop running too, and an asyncio task could not
        # enter the trio cancel scope.
        trio = sys.modules.get("trio")
        if trio is not None and trio.lowlevel.in_trio_run():
            trio.lowlevel.spawn_system_task(run, name="teletracker lease heartbeat")
            return
        task = asyncio.get_running_loop().create_task(run())
        _BEATING.add(task)
        task.add_done_callback(_BEATING.discard)

    async def _beat(self, held: _Held) -> None:
        """Extend the lease every :attr:`heartbeat` seconds. A beat that fails is
        tried again at the next one; a lease that ran out (a stalled loop) is taken
        again when nobody else took it meanwhile, under its new fence (the commit's
        write id check still refuses it if another holder published); a lease held
        elsewhere is left alone: the fenced commit decides, never this task."""
        while True:
            await anyio.sleep(self.heartbeat)
            try:
                fence = await self._call(
                    "acquire", self.store.acquire(held.key, held.holder, self.lease_ttl)
                )
            except TokenStoreError as exc:
                logger.warning("%s; the renewal lease may run out", exc)
                continue
            except Exception:  # a third-party store's bug must not end the loop
                logger.exception("the token store failed to extend the renewal lease")
                return
            if fence is None:
                logger.warning(
                    "the renewal lease ran out before its heartbeat (a frozen "
                    "process?) and another process holds it: this one's session "
                    "will not be published over the other's"
                )
                return
            if fence != held.fence:
                # It ran out (a late beat) and nobody took it: a new lease, ours.
                # Keeping the old fence would refuse this flight's own commit.
                logger.warning(
                    "the renewal lease ran out before its heartbeat (a stalled "
                    "event loop?): taken again, nobody else held it"
                )
                held.fence = fence

    # -- the store's answers -------------------------------------------------------------

    async def _call(self, op: str, call: Awaitable[T]) -> T:
        """*call*'s answer (see :meth:`_wrapped`), told to the listeners as a
        ``StoreOperation`` named *op* when someone listens."""
        self.stats.calls += 1
        core = self._core
        if not core.listeners:
            return await self._wrapped(call)
        started = self._clock()
        outcome = "error"
        try:
            result = await self._wrapped(call)
            refused = result is False or (result is None and op != "load")
            outcome = "refused" if refused else "ok"
            return result
        finally:
            core.store_operation(self.store, op, outcome, self._clock() - started)

    async def _wrapped(self, call: Awaitable[T]) -> T:
        """*call*'s answer; anything it raises but a :class:`TokenStoreError` (a
        store that did not wrap its own errors) becomes one, raised once the
        original is gone: its frames (the store's) may hold the payload."""
        try:
            return await call
        except TokenStoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever a third-party store raises
            failure = type(exc).__name__
        name = getattr(call, "__qualname__", "a call")  # a coroutine's: "S.commit"
        raise TokenStoreError(
            f"The token store {self.store!r} failed in {name}: {failure}"
        )

    async def _load(self, key: str) -> tuple[str | None, Seen | None]:
        """The record's write id and its decoded session (None when unusable)."""
        loaded_at = self._clock()
        record = await self._call("load", self.store.load(key))
        if record is None:
            return None, None
        try:
            account_id, answer = _decode(record.payload, key)
        except ResponseFormatError as exc:
            logger.warning("unreadable token store record (%s): renewing over it", exc)
            return record.write_id, None
        remaining = min(record.remaining, answer.token_lifetime)
        return record.write_id, Seen(
            write_id=record.write_id,
            answer=answer,
            account_id=account_id,
            spent=record.spent,
            trusted=record.trusted,
            expires_at=loaded_at + remaining,
        )


#: The asyncio heartbeat tasks running (the loop keeps weak references only).
_BEATING: set[object] = set()


def _jitter(spread: float) -> float:
    return random.uniform(1 - spread, 1 + spread)  # noqa: S311 - jitter, no secret


_VERSION = 1
#: The answer's fields a record keeps (wire names): all the SDK reads of it.
_FIELDS = (
    "success",
    "guid",
    "token",
    "tokenExpiration",
    "tokenLifetime",
    "refreshToken",
    "refreshTokenExpiration",
    "accountId",
)


def _encode(answer: TokenAnswer, account_id: int | None, key: str) -> bytes:
    """A record's payload: the fields of *answer* the SDK uses, re-encoded (an
    unknown field may echo the login form, password included: never stored), the
    account, and the key it is written under (a record copied under another key is
    refused, even encrypted)."""
    fields: dict[str, object] = {
        "success": answer.success,
        "guid": answer.guid,
        "token": answer.token,
        "tokenExpiration": answer.token_expiration.isoformat(),
        "tokenLifetime": answer.token_lifetime,
        "refreshToken": answer.refresh_token,
    }
    if answer.refresh_token_expiration is not None:
        fields["refreshTokenExpiration"] = answer.refresh_token_expiration.isoformat()
    if answer.account_id is not None:
        fields["accountId"] = answer.account_id
    record = {"v": _VERSION, "key": key, "accountId": account_id, "answer": fields}
    return json.dumps(record, separators=(",", ":")).encode()


def _decode(payload: bytes, key: str) -> tuple[int | None, TokenAnswer]:
    what = "token store record"
    try:
        record = json.loads(payload)
    except (ValueError, RecursionError):
        raise ResponseFormatError(f"The {what} is not JSON.") from None
    if not isinstance(record, dict) or record.get("v") != _VERSION:
        raise ResponseFormatError(f"The {what} is not a version {_VERSION} record.")
    if record.get("key", key) != key:  # older records hold no key
        raise ResponseFormatError(f"The {what} was written under another key.")
    account_id = record.get("accountId")
    if account_id is not None and (
        isinstance(account_id, bool) or not isinstance(account_id, int)
    ):
        raise ResponseFormatError(f"The {what} has a bad accountId.")
    answer = record.get("answer")
    if isinstance(answer, dict):  # an older record holds the answer as it came
        answer = {name: answer[name] for name in _FIELDS if name in answer}
    parsed = parse_token_answer(json.dumps(answer).encode(), what=what, status_code=200)
    return account_id, parsed
