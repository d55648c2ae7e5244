"""The retry policy: which failed attempts are tried again, and the budget that ends them.

A call has a budget (5 s for the service's calls). Each attempt gets a positive timeout of at
most ATTEMPT_TIMEOUT_SECONDS and no more than the budget has left; no attempt starts, and no
pause is taken, unless FLOOR_SECONDS would be left for it. So a call ends within its budget,
plus at most the time the event loop takes to notice a timeout.
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kiusys_app.stores.base import StoreError, StoreErrorKind
from kiusys_app.stores.dynamodb.wire import Failed

# One attempt's ceiling. DynamoDB answers in milliseconds; an attempt this slow is lost.
ATTEMPT_TIMEOUT_SECONDS = 2.0
# The least time worth an attempt: a round trip to DynamoDB in the region, with room to spare.
FLOOR_SECONDS = 0.05
_BACKOFF_BASE_SECONDS = 0.02
_BACKOFF_CAP_SECONDS = 0.5

Attempt = Callable[[str, dict[str, Any], float], Awaitable[Any]]
Sleep = Callable[[float], Awaitable[None]]


def backoff(attempt: int) -> float:
    """Full jitter: a random wait up to an exponentially growing, capped ceiling."""
    ceiling = min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2**attempt)
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


@dataclass(slots=True)
class Budget:
    """The time a call has left, read from `clock` (monotonic seconds)."""

    deadline: float
    sleep: Sleep = asyncio.sleep
    clock: Callable[[], float] = time.monotonic

    def left(self) -> float:
        return self.deadline - self.clock()

    def timeout(self) -> float | None:
        """The next attempt's timeout, or None when less than the floor is left."""
        left = self.left()
        return None if left < FLOOR_SECONDS else min(ATTEMPT_TIMEOUT_SECONDS, left)

    async def pause(self, seconds: float) -> bool:
        """Sleep `seconds` if an attempt can still start after it; False, at once, if not."""
        if self.left() - seconds < FLOOR_SECONDS:
            return False
        await self.sleep(seconds)
        return True


async def call(
    attempt: Attempt,
    action: str,
    table: str,
    payload: dict[str, Any],
    *,
    budget: Budget,
    repeatable: bool,
) -> Any:
    """One DynamoDB call, tried again while that cannot count anything twice and the budget
    lasts. An attempt that was not applied (throttled, in conflict, never sent) is always tried
    again; one that may have been applied only if the call is `repeatable`: a read, or a keyed
    record, whose condition turns a repeat into a no-op."""
    failure: Failed | None = None
    tries = 0
    while (timeout := budget.timeout()) is not None:
        try:
            return await attempt(action, payload, timeout)
        except Failed as failed:
            failure = failed
        kind = _kind_of(failure, repeatable)
        retry = kind in (StoreErrorKind.THROTTLED, StoreErrorKind.UNAVAILABLE)
        if not retry or not await budget.pause(backoff(tries)):
            raise StoreError(kind, failure.reason, table=table, operation=action)
        tries += 1
    if failure is None:
        reason = "dynamodb: the call's budget was spent before this request"
        raise StoreError(StoreErrorKind.UNAVAILABLE, reason, table=table, operation=action)
    raise StoreError(_kind_of(failure, repeatable), failure.reason, table=table, operation=action)


def _kind_of(failure: Failed, repeatable: bool) -> StoreErrorKind:
    """A write that may have been applied, and may not be repeated, has an unknown outcome."""
    if failure.maybe_applied and not repeatable:
        return StoreErrorKind.OUTCOME_UNKNOWN
    return failure.kind
