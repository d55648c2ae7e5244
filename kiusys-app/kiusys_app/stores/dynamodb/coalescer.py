"""Per-route batches: calls on one route that arrive while its batch is in flight go out
together as the route's next batch.

Each route has a queue and at most one writer, a task on the event loop that takes what is
waiting and commits it, until nothing is. The first call on a quiet route starts the writer, so
it goes at once. The coalescer answers every caller whatever a commit does: what a commit
raises is the outcome of each of its calls that it left unanswered, and the writer goes on with
the next batch. A commit runs within its oldest call's budget, so it ends before any of its
calls' own. A call whose budget ends before it is taken into a batch is never sent, and is
answered by `expired()`.
"""

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kiusys_app.stores.base import RecordResult
from kiusys_app.stores.dynamodb.retry import Budget


@dataclass(slots=True, eq=False)
class Waiting:
    """A call waiting for its route's batch: its idempotency key (None: a plain record), and
    `writer`, which marks the key it writes; `taken` once it is in a batch."""

    key: str | None
    budget: Budget
    answer: "asyncio.Future[RecordResult]"
    writer: str = ""
    taken: bool = False

    def __post_init__(self) -> None:
        if self.key is not None:  # a plain record writes no key, and needs no random id
            self.writer = secrets.token_hex(16)


# Commits one route's batch, within `oldest(batch)`, and answers each of its calls.
Commit = Callable[[str, list[Waiting]], Awaitable[None]]


class Coalescer:
    """Batches of at most `max_batch` calls per route (None: no bound), one call per key in a
    batch: a second call of a key waits for the first one's answer."""

    def __init__(
        self, commit: Commit, *, max_batch: int | None, expired: Callable[[], Exception]
    ) -> None:
        self._commit = commit
        self._max_batch = max_batch
        self._expired = expired
        self._waiting: dict[str, list[Waiting]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}

    async def submit(self, route: str, key: str | None, budget: Budget) -> RecordResult:
        call = Waiting(key, budget, asyncio.get_running_loop().create_future())
        self._waiting.setdefault(route, []).append(call)
        if route not in self._writers:
            self._writers[route] = asyncio.create_task(self._write(route))
        try:
            async with asyncio.timeout(max(budget.left(), 0)):
                return await asyncio.shield(call.answer)
        except TimeoutError:
            if not call.taken:
                call.answer.cancel()  # it never will be
                raise self._expired() from None
        return await call.answer  # its batch's commit ends within the batch's oldest budget

    async def aclose(self) -> None:
        for writer in list(self._writers.values()):
            writer.cancel()

    async def _write(self, route: str) -> None:
        try:
            while batch := self._take(route):
                try:
                    await self._commit(route, batch)
                except Exception as error:  # each caller gets it: a bug is a 500 there
                    _answer_all(batch, error)
                else:
                    if any(not call.answer.done() for call in batch):
                        _answer_all(
                            batch, RuntimeError("the batch's commit left a call unanswered")
                        )
        finally:
            del self._writers[route]

    def _take(self, route: str) -> list[Waiting]:
        """The route's next batch: the calls waiting, oldest first, one per key."""
        batch: list[Waiting] = []
        later: list[Waiting] = []
        keys: set[str] = set()
        for call in self._waiting.pop(route, []):
            if call.answer.done():  # its caller gave up
                continue
            if call.key in keys or len(batch) == self._max_batch:
                later.append(call)
            else:
                if call.key is not None:
                    keys.add(call.key)
                call.taken = True
                batch.append(call)
        if later:
            self._waiting[route] = later
        return batch


def oldest(batch: list[Waiting]) -> Budget:
    """The budget a batch's commit runs within: the one that ends first."""
    return min((call.budget for call in batch), key=lambda budget: budget.deadline)


def _answer_all(batch: list[Waiting], error: Exception) -> None:
    for call in batch:
        answer(call, error)


def answer(call: Waiting, outcome: RecordResult | Exception) -> None:
    """Hand `call` its outcome, unless it has one or its caller gave up."""
    if call.answer.done():
        return
    if isinstance(outcome, RecordResult):
        call.answer.set_result(outcome)
    else:
        call.answer.set_exception(outcome)
