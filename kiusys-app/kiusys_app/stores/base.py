"""The store interface that both implementations honour, and the errors they raise."""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

# How long an idempotency key is remembered.
IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60
# Every store call ends within this budget, retries, pauses and waits for a lock included: well
# inside the server's 20 s drain, so a rollout never cuts a call short, and long enough for
# several backed-off retries of throttling or a refused connection.
CALL_BUDGET_SECONDS = 5.0


# What a usage call answers: per route, each day (YYYY-MM-DD) that counted something, and its count.
Usage = dict[str, dict[str, int]]


def day_of(timestamp: float) -> str:
    """The UTC day of an epoch second, as YYYY-MM-DD: the day a record applied then counts in."""
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


@dataclass(frozen=True, slots=True)
class RecordResult:
    count: int
    replayed: bool = False


class StoreErrorKind(StrEnum):
    """Why a store call failed, which decides what a caller may do about it."""

    # Transient: the store asked us to slow down. A retry after a pause will do.
    THROTTLED = "throttled"
    # Transient: a timeout, a lost connection, a server-side error. A retry will do.
    UNAVAILABLE = "unavailable"
    # Retrying cannot help: missing rights or tables, or an endpoint that is not the store.
    MISCONFIGURED = "misconfigured"
    # A write was sent, and no answer says whether it was applied (a timeout after sending, a
    # reset, a 500). Only a write with an idempotency key may be sent again.
    OUTCOME_UNKNOWN = "outcome_unknown"


class StoreError(Exception):
    """A store call failed. `reason` and `table` are for the operator's log, not for clients."""

    def __init__(
        self,
        kind: StoreErrorKind,
        reason: str,
        *,
        table: str | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.table = table
        self.operation = operation


class IdempotencyKeyMismatch(Exception):
    """An idempotency key was reused for a different route."""

    def __init__(self, key_route: str) -> None:
        super().__init__(f"this Idempotency-Key was already used for route {key_route}")
        self.key_route = key_route


class StoreObserver(Protocol):
    """What a store reports as it works, for metrics; the stores know nothing of Prometheus."""

    def conflict_retried(self) -> None:
        """A transaction was cancelled by a concurrent one and is tried again."""

    def batch_committed(self, size: int) -> None:
        """`size` record calls shared one transaction and one commit."""


class NullObserver:
    def conflict_retried(self) -> None:
        pass

    def batch_committed(self, size: int) -> None:
        pass


class CounterStore(Protocol):
    """Counts transactions per route. Every call is a coroutine; none blocks the event loop."""

    async def record(self, route: str, idempotency_key: str | None = None) -> RecordResult:
        """Count one transaction on `route` and return the new count.

        With a key, a repeat of the key for the same route within the TTL counts nothing and
        returns the current count with `replayed=True`; a repeat for another route raises
        IdempotencyKeyMismatch.
        """
        ...

    async def get(self, route: str) -> int:
        """The route's count, 0 when it has never been recorded."""
        ...

    async def get_many(self, routes: Sequence[str]) -> dict[str, int]:
        """Counts of several distinct routes."""
        ...

    async def routes_of(self, airline: str) -> list[str]:
        """Every route of `airline` that was ever recorded, sorted; found without a scan."""
        ...

    async def usage(self, routes: Sequence[str], first: str, last: str) -> Usage:
        """Per distinct route, the days from `first` to `last` (inclusive, YYYY-MM-DD) on which
        it counted something, each with its count. Every record counts in the UTC day on which
        the store applied it, and a route's days always add up to its count (`get`)."""
        ...

    async def ping(self, writes: bool = False) -> None:
        """Raise StoreError unless every table answers reads with the service's own rights;
        with `writes`, its writes too, without changing anything."""
        ...

    async def aclose(self) -> None: ...
