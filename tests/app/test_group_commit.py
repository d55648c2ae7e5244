"""Group commit on the embedded store: record calls that wait together share one transaction,
yet each gets its own answer, and none is answered before the commit."""

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from kiusys_app.stores import IdempotencyKeyMismatch, RecordResult
from kiusys_app.stores.sqlite import SQLiteStore, _Job
from tests.support.app import metric


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "counts.sqlite3"


@pytest.fixture
def store(database: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(database)
    yield opened
    opened.close()


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


def submit_while_locked(
    database: Path, calls: list[Callable[[], RecordResult]]
) -> list["Future[RecordResult]"]:
    with ThreadPoolExecutor(len(calls)) as pool, write_lock(database):
        futures = [pool.submit(call) for call in calls]
        time.sleep(1.0)
        assert not any(f.done() for f in futures), "nothing is answered before the commit"
    for future in futures:
        future.exception(timeout=30)
    return futures


def test_waiting_records_share_one_commit_and_each_gets_its_count(
    store: SQLiteStore, database: Path
) -> None:
    before = commits()
    futures = submit_while_locked(database, [lambda: store.record("AR1133")] * 32)
    counts = sorted(f.result().count for f in futures)
    assert counts == list(range(1, 33))
    assert store.get("AR1133") == 32
    # The writer took the first call on its own, then all the others in one batch.
    assert commits() - before <= 2


def test_each_caller_gets_its_own_idempotency_outcome_in_a_shared_batch(
    store: SQLiteStore, database: Path
) -> None:
    store.record("AR1133", "seen-before")
    futures = submit_while_locked(
        database,
        [
            lambda: store.record("LA0001", "fresh"),
            lambda: store.record("AR1133", "seen-before"),
            lambda: store.record("LA0001", "seen-before"),
            lambda: store.record("G31234"),
        ],
    )
    fresh, replay, mismatch, plain = futures
    assert fresh.result() == RecordResult(count=1)
    assert replay.result() == RecordResult(count=1, replayed=True)
    assert isinstance(mismatch.exception(), IdempotencyKeyMismatch)
    assert plain.result() == RecordResult(count=1)
    assert store.get_many(["AR1133", "LA0001", "G31234"]) == {"AR1133": 1, "LA0001": 1, "G31234": 1}


def test_reads_do_not_wait_behind_writes(store: SQLiteStore, database: Path) -> None:
    store.record("AR1133")
    with write_lock(database):
        blocked = threading.Thread(target=store.record, args=("AR1133",))
        blocked.start()
        started = time.monotonic()
        assert store.get("AR1133") == 1
        assert store.get_many(["AR1133"]) == {"AR1133": 1}
        assert time.monotonic() - started < 1.0
        assert blocked.is_alive(), "the write is still waiting for the lock"
    blocked.join(timeout=30)
    assert store.get("AR1133") == 2


@pytest.mark.anyio
async def test_coroutines_give_the_same_answers(store: SQLiteStore) -> None:
    assert await store.arecord("AR1133", "k") == RecordResult(count=1)
    assert await store.arecord("AR1133", "k") == RecordResult(count=1, replayed=True)
    with pytest.raises(IdempotencyKeyMismatch):
        await store.arecord("LA0001", "k")
    assert await store.aget("AR1133") == 1
    assert await store.aget_many(["AR1133", "LA0001"]) == {"AR1133": 1, "LA0001": 0}
    await store.aping()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_a_failing_call_fails_alone_and_the_writer_keeps_serving(store: SQLiteStore) -> None:
    def broken(conn: sqlite3.Connection) -> RecordResult:
        raise RuntimeError("a bug in one call")

    future: Future[RecordResult] = Future()
    store._writer.submit(_Job(broken, future))
    assert isinstance(future.exception(timeout=30), RuntimeError)
    assert store.record("AR1133") == RecordResult(count=1)
