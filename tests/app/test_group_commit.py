"""Group commit on the embedded store: record calls that wait together share one transaction,
yet each gets its own answer, and none is answered before the commit. Expired keys are pruned
while the store runs."""

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from kiusys_app.stores import IdempotencyKeyMismatch, RecordResult
from kiusys_app.stores.base import IDEMPOTENCY_TTL_SECONDS
from kiusys_app.stores.sqlite import PRUNE_BATCH, PRUNE_INTERVAL_SECONDS, SQLiteStore
from tests.app.conftest import Clock
from tests.support.app import metric

pytestmark = pytest.mark.anyio


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "counts.sqlite3"


@pytest.fixture
async def store(database: Path, clock: Clock) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(database, clock=clock)
    yield opened
    await opened.aclose()


@contextmanager
def write_lock(database: Path) -> Iterator[None]:
    """Another process's long transaction: holds the file's write lock until the block ends."""
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def commits() -> float:
    return metric("kiusys_sqlite_commit_batch_records_count")


async def run_while_locked(
    database: Path, calls: list[Coroutine[Any, Any, RecordResult]]
) -> list["asyncio.Task[RecordResult]"]:
    with write_lock(database):
        tasks = [asyncio.ensure_future(call) for call in calls]
        await asyncio.sleep(1.0)
        assert not any(task.done() for task in tasks), "nothing is answered before the commit"
    await asyncio.wait(tasks, timeout=30)
    return tasks


def stored_keys(database: Path) -> int:
    with closing(sqlite3.connect(database)) as conn:
        return int(conn.execute("SELECT count(*) FROM idempotency_keys").fetchone()[0])


async def test_waiting_records_share_one_commit_and_each_gets_its_count(
    store: SQLiteStore, database: Path
) -> None:
    before = commits()
    tasks = await run_while_locked(database, [store.record("AR1133") for _ in range(32)])
    assert sorted(task.result().count for task in tasks) == list(range(1, 33))
    assert await store.get("AR1133") == 32
    # The writer took the first call on its own, then all the others in one batch.
    assert commits() - before <= 2


async def test_each_caller_gets_its_own_idempotency_outcome_in_a_shared_batch(
    store: SQLiteStore, database: Path
) -> None:
    await store.record("AR1133", "seen-before")
    fresh, replay, mismatch, plain = await run_while_locked(
        database,
        [
            store.record("LA0001", "fresh"),
            store.record("AR1133", "seen-before"),
            store.record("LA0001", "seen-before"),
            store.record("G31234"),
        ],
    )
    assert fresh.result() == RecordResult(count=1)
    assert replay.result() == RecordResult(count=1, replayed=True)
    assert isinstance(mismatch.exception(), IdempotencyKeyMismatch)
    assert plain.result() == RecordResult(count=1)
    counts = await store.get_many(["AR1133", "LA0001", "G31234"])
    assert counts == {"AR1133": 1, "LA0001": 1, "G31234": 1}


async def test_reads_do_not_wait_behind_writes(store: SQLiteStore, database: Path) -> None:
    await store.record("AR1133")
    with write_lock(database):
        blocked = asyncio.ensure_future(store.record("AR1133"))
        started = time.monotonic()
        assert await store.get("AR1133") == 1
        assert await store.get_many(["AR1133"]) == {"AR1133": 1}
        assert time.monotonic() - started < 1.0
        assert not blocked.done(), "the write is still waiting for the lock"
    await asyncio.wait_for(blocked, timeout=30)
    assert await store.get("AR1133") == 2


async def test_a_failing_call_fails_alone_and_the_writer_keeps_serving(store: SQLiteStore) -> None:
    def broken(conn: sqlite3.Connection) -> RecordResult:
        raise RuntimeError("a bug in one call")

    with pytest.raises(RuntimeError, match="a bug in one call"):
        await store._writer.call(broken)
    assert await store.record("AR1133") == RecordResult(count=1)


async def test_expired_keys_are_pruned_while_the_store_runs(
    store: SQLiteStore, database: Path, clock: Clock
) -> None:
    old = PRUNE_BATCH * 2 + 10
    await asyncio.gather(*(store.record("AR1133", f"old-{n}") for n in range(old)))
    clock.now += PRUNE_INTERVAL_SECONDS
    await store.record("AR1133", "fresh")  # due: a prune starts, and finds nothing expired
    assert store._pruning is not None
    await store._pruning
    assert stored_keys(database) == old + 1

    clock.now += IDEMPOTENCY_TTL_SECONDS - PRUNE_INTERVAL_SECONDS + 1
    await store.record("LA0001")  # due again: the old keys have expired, the fresh one has not
    await store._pruning
    assert stored_keys(database) == 1
    assert (await store.record("AR1133", "fresh")).replayed
    assert await store.get_many(["AR1133", "LA0001"]) == {"AR1133": old + 1, "LA0001": 1}
