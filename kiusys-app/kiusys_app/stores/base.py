"""The store interface that both implementations honour."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from anyio import to_thread

# How long an idempotency key is remembered.
IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60


@dataclass(frozen=True, slots=True)
class RecordResult:
    count: int
    replayed: bool = False


class StoreUnavailable(Exception):
    """The store did not answer, or asked us to slow down. Safe to retry.

    `kind` is "throttled" when the store refused for load, "unavailable" otherwise.
    """

    def __init__(self, reason: str, kind: str = "unavailable", retry_after: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.retry_after = retry_after


class IdempotencyKeyMismatch(Exception):
    """An idempotency key was reused for a different route."""

    def __init__(self, key_route: str) -> None:
        super().__init__(f"this Idempotency-Key was already used for route {key_route}")
        self.key_route = key_route


class CounterStore(Protocol):
    """Counts transactions per route.

    The plain methods block and are thread-safe; the `a`-prefixed coroutines do the same for
    callers on an event loop, without blocking it.
    """

    def record(self, route: str, idempotency_key: str | None = None) -> RecordResult:
        """Count one transaction on `route` and return the new count.

        With a key, a repeat of the key for the same route within the TTL counts nothing and
        returns the current count with `replayed=True`; a repeat for another route raises
        IdempotencyKeyMismatch.
        """
        ...

    def get(self, route: str) -> int:
        """The route's count, 0 when it has never been recorded."""
        ...

    def get_many(self, routes: Sequence[str]) -> dict[str, int]:
        """Counts of several distinct routes."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot answer."""
        ...

    def close(self) -> None: ...

    async def arecord(self, route: str, idempotency_key: str | None = None) -> RecordResult: ...

    async def aget(self, route: str) -> int: ...

    async def aget_many(self, routes: Sequence[str]) -> dict[str, int]: ...

    async def aping(self) -> None: ...


class _Blocking(Protocol):
    def record(self, route: str, idempotency_key: str | None = None) -> RecordResult: ...

    def get(self, route: str) -> int: ...

    def get_many(self, routes: Sequence[str]) -> dict[str, int]: ...

    def ping(self) -> None: ...


class ThreadedCoroutines:
    """The coroutines of a store whose client blocks: each call runs in the thread pool."""

    async def arecord(
        self: _Blocking, route: str, idempotency_key: str | None = None
    ) -> RecordResult:
        return await to_thread.run_sync(self.record, route, idempotency_key)

    async def aget(self: _Blocking, route: str) -> int:
        return await to_thread.run_sync(self.get, route)

    async def aget_many(self: _Blocking, routes: Sequence[str]) -> dict[str, int]:
        return await to_thread.run_sync(self.get_many, routes)

    async def aping(self: _Blocking) -> None:
        await to_thread.run_sync(self.ping)
