"""The per-route batches on their own: a stand-in commit that the test holds, answers or breaks.

The DynamoDB store's use of them (transactions, replays, counts) is tests/app/test_keyed_batches.py.
"""

import asyncio
import time

import pytest

from kiusys_app.stores import RecordResult
from kiusys_app.stores.dynamodb.coalescer import Coalescer, Waiting, answer, oldest
from kiusys_app.stores.dynamodb.retry import Budget

pytestmark = pytest.mark.anyio


class Expired(Exception):
    pass


class Commits:
    """A commit that keeps each batch's keys and answers each call with its place in all calls;
    it waits for `release` while `hold` is set, and raises `error` once if given one."""

    def __init__(self, *, hold: bool = False, error: Exception | None = None) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        if not hold:
            self.release.set()
        self.error = error
        self.forget: set[str] = set()

    async def __call__(self, route: str, batch: list[Waiting]) -> None:
        self.batches.append([call.key for call in batch])
        await self.release.wait()
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        answered = sum(map(len, self.batches[:-1]))
        for place, call in enumerate(batch, 1):
            if call.key not in self.forget:
                answer(call, RecordResult(count=answered + place))


def coalescer(commits: Commits, max_batch: int = 99) -> Coalescer:
    return Coalescer(commits, max_batch=max_batch, expired=Expired)


def budget(seconds: float = 5.0) -> Budget:
    return Budget(time.monotonic() + seconds)


async def submit_while_held(batches: Coalescer, commits: Commits, keys: list[str]) -> list[object]:
    """Submit the first key, and the others while its commit is held; every outcome."""
    first = asyncio.create_task(batches.submit("AR1133", keys[0], budget()))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(batches.submit("AR1133", key, budget())) for key in keys[1:]]
    await asyncio.sleep(0.01)
    commits.release.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


async def test_a_quiet_route_commits_the_first_call_at_once_and_the_waiting_ones_together() -> None:
    commits = Commits(hold=True)
    batches = coalescer(commits)
    outcomes = await submit_while_held(batches, commits, ["a", "b", "c"])
    assert commits.batches == [["a"], ["b", "c"]]
    assert outcomes == [RecordResult(1), RecordResult(2), RecordResult(3)]


async def test_a_batch_takes_one_call_per_key_and_at_most_max_batch_calls() -> None:
    commits = Commits(hold=True)
    batches = coalescer(commits, max_batch=2)
    await submit_while_held(batches, commits, ["a", "b", "b", "c", "d"])
    assert commits.batches == [["a"], ["b", "c"], ["b", "d"]]


async def test_what_a_commit_raises_answers_its_calls_and_the_route_goes_on() -> None:
    broken = RuntimeError("a bug in the commit")
    commits = Commits(hold=True, error=broken)
    batches = coalescer(commits)
    outcomes = await submit_while_held(batches, commits, ["a", "b"])
    assert outcomes[0] is broken, "the failed batch's caller gets its error"
    assert outcomes[1] == RecordResult(2), "the next batch has a writer"
    started = time.monotonic()
    assert await batches.submit("AR1133", "c", budget()) == RecordResult(3)
    assert time.monotonic() - started < 0.5, "a later call is committed at once"


async def test_a_call_its_commit_left_unanswered_fails_at_once() -> None:
    commits = Commits()
    commits.forget = {"a"}
    batches = coalescer(commits)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"^the batch's commit left a call unanswered$"):
        await batches.submit("AR1133", "a", budget())
    assert time.monotonic() - started < 0.5, "not at the end of its budget"


async def test_a_call_whose_budget_ends_in_the_queue_is_expired_and_never_committed() -> None:
    commits = Commits(hold=True)
    batches = coalescer(commits)
    first = asyncio.create_task(batches.submit("AR1133", "a", budget()))
    await asyncio.sleep(0.01)
    with pytest.raises(Expired):
        await batches.submit("AR1133", "late", budget(0.05))
    commits.release.set()
    assert await first == RecordResult(1)
    assert await batches.submit("AR1133", "b", budget()) == RecordResult(2)
    assert commits.batches == [["a"], ["b"]], "the expired call was never taken"


async def test_routes_are_batched_apart() -> None:
    commits = Commits(hold=True)
    batches = coalescer(commits)
    calls = [
        asyncio.create_task(batches.submit(route, "a", budget())) for route in ("AR1133", "LA0001")
    ]
    await asyncio.sleep(0.01)
    assert commits.batches == [["a"], ["a"]], "one writer per route, each at once"
    commits.release.set()
    await asyncio.gather(*calls)
    await batches.aclose()


async def test_a_call_taken_into_a_batch_waits_for_its_commit_past_its_own_budget() -> None:
    """The commit runs within its oldest call's budget, so it ends in time; a call taken into it
    may have been applied, and is answered with the commit's outcome, not as expired."""
    commits = Commits(hold=True)
    batches = coalescer(commits)
    call = asyncio.create_task(batches.submit("AR1133", "a", budget(0.05)))
    await asyncio.sleep(0.2)
    assert not call.done(), "taken: it waits for its commit"
    commits.release.set()
    assert await call == RecordResult(1)


async def test_a_batch_commits_within_its_oldest_calls_budget() -> None:
    first, later = budget(1.0), budget(5.0)
    assert oldest([Waiting("b", later, None), Waiting("a", first, None)]) is first  # type: ignore[arg-type]
