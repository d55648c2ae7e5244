"""Group commit on the embedded store: record calls that wait together share one transaction,
yet each gets its own answer, and none is answered before the commit. Expired keys are pruned
while the store runs."""

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from kiusys_app.metrics import StoreMetrics
from kiusys_app.stores import IdempotencyKeyMismatch, RecordResult, StoreError, StoreErrorKind
from kiusys_app.stores.base import CALL_BUDGET_SECONDS, IDEMPOTENCY_TTL_SECONDS
from kiusys_app.stores.sqlite.store import (
    PRUNE_BATCH,
    PRUNE_INTERVAL_SECONDS,
    SQLiteStore,
    as_store_error,
)
from tests.app.conftest import Clock
from tests.support.app import metric

pytestmark = pytest.mark.anyio


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "counts.sqlite3"


@pytest.fixture
async def store(database: Path, clock: Clock) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(database, clock=clock, observer=StoreMetrics())
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


def commits() -> tuple[float, float]:
    """How many commits the store reported, and how many record calls they held."""
    return (
        metric("kiusys_sqlite_commit_batch_records_count"),
        metric("kiusys_sqlite_commit_batch_records_sum"),
    )


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait, without blocking the loop, until `condition` holds; fail after `timeout`."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def as_one_batch(store: SQLiteStore, calls: list[Coroutine[Any, Any, Any]]) -> list[Any]:
    """Run `calls` as one batch of the writer, whatever the machine's speed: the writer is kept
    inside another call until all of them are queued behind it. Each call's result or error."""
    entered, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        entered.set()
        release.wait(30)

    holding = asyncio.ensure_future(store._writer.call(hold))
    assert await asyncio.to_thread(entered.wait, 10)
    tasks = [asyncio.ensure_future(call) for call in calls]
    await eventually(lambda: store._writer._jobs.qsize() == len(calls))
    release.set()
    await holding
    return await asyncio.gather(*tasks, return_exceptions=True)


def stored_keys(database: Path) -> int:
    with closing(sqlite3.connect(database)) as conn:
        return int(conn.execute("SELECT count(*) FROM idempotency_keys").fetchone()[0])


async def test_waiting_records_share_one_commit_and_each_gets_its_count(
    store: SQLiteStore,
) -> None:
    count_before, records_before = commits()
    results = await as_one_batch(store, [store.record("AR1133") for _ in range(32)])
    assert sorted(result.count for result in results) == list(range(1, 33))
    assert await store.get("AR1133") == 32
    # Two commits: the call that held the writer, then the 32 records together.
    count, records = commits()
    assert (count - count_before, records - records_before) == (2, 33)


async def test_every_call_of_a_batch_runs_inside_its_transaction(store: SQLiteStore) -> None:
    def in_transaction(conn: sqlite3.Connection) -> bool:
        return conn.in_transaction

    inside = await as_one_batch(store, [store._writer.call(in_transaction) for _ in range(4)])
    assert inside == [True] * 4


async def test_no_caller_is_answered_before_the_commit(store: SQLiteStore) -> None:
    events: list[str] = []
    await store._writer.call(lambda conn: conn.set_trace_callback(events.append))

    async def record_then_note() -> RecordResult:
        result = await store.record("AR1133")
        events.append("answered")
        return result

    await as_one_batch(store, [record_then_note() for _ in range(8)])
    await store._writer.call(lambda conn: conn.set_trace_callback(None))
    last_commit = max(i for i, event in enumerate(events) if event == "COMMIT")
    assert events.index("answered") > last_commit
    assert events.count("answered") == 8


async def test_a_database_error_in_one_call_rolls_the_whole_batch_back(
    store: SQLiteStore, database: Path
) -> None:
    def writes_then_fails(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO counters (route, record) VALUES ('ZZ9', 1)")
        raise sqlite3.OperationalError("disk I/O error")

    calls: list[Coroutine[Any, Any, Any]] = [
        store._writer.call(writes_then_fails),
        store.record("AR1133"),
        store.record("LA0001", "key-1"),
    ]
    outcomes = await as_one_batch(store, calls)
    assert [type(outcome) for outcome in outcomes] == [StoreError] * 3, (
        "a database error fails every call of the batch"
    )
    assert await store.get_many(["AR1133", "LA0001", "ZZ9"]) == {"AR1133": 0, "LA0001": 0, "ZZ9": 0}
    assert stored_keys(database) == 0
    assert await store.record("AR1133") == RecordResult(count=1), "the writer keeps serving"


async def test_each_caller_gets_its_own_idempotency_outcome_in_a_shared_batch(
    store: SQLiteStore,
) -> None:
    await store.record("AR1133", "seen-before")
    fresh, replay, mismatch, plain = await as_one_batch(
        store,
        [
            store.record("LA0001", "fresh"),
            store.record("AR1133", "seen-before"),
            store.record("LA0001", "seen-before"),
            store.record("G31234"),
        ],
    )
    assert fresh == RecordResult(count=1)
    assert replay == RecordResult(count=1, replayed=True)
    assert isinstance(mismatch, IdempotencyKeyMismatch)
    assert plain == RecordResult(count=1)
    counts = await store.get_many(["AR1133", "LA0001", "G31234"])
    assert counts == {"AR1133": 1, "LA0001": 1, "G31234": 1}


async def test_reads_do_not_wait_behind_writes(store: SQLiteStore, database: Path) -> None:
    await store.record("AR1133")
    with write_lock(database):
        blocked = asyncio.ensure_future(store.record("AR1133"))
        # Reads behind the blocked write would wait for the lock, held until this block ends.
        assert await asyncio.wait_for(store.get("AR1133"), 10) == 1
        assert await asyncio.wait_for(store.get_many(["AR1133"]), 10) == {"AR1133": 1}
        assert not blocked.done(), "the write is still waiting for the lock"
    await asyncio.wait_for(blocked, timeout=30)
    assert await store.get("AR1133") == 2


async def test_a_record_behind_another_connections_lock_ends_within_the_budget(
    store: SQLiteStore, database: Path
) -> None:
    """Another process holds the write lock past the budget (8 s): plain and keyed records,
    one sent as the wait starts and one later, each end by their budget as "unavailable" (503
    with Retry-After), and nothing of theirs is written."""
    await store.record("AR1133")
    with write_lock(database):
        started = time.monotonic()

        async def record(key: str | None, after: float) -> float:
            await asyncio.sleep(after)
            with pytest.raises(StoreError) as refused:
                await store.record("AR1133", key)
            assert refused.value.kind is StoreErrorKind.UNAVAILABLE
            return time.monotonic() - started - after

        waited = await asyncio.gather(record(None, 0), record("order-1", 0), record(None, 2))
        await asyncio.sleep(8 - (time.monotonic() - started))
    assert max(waited) <= CALL_BUDGET_SECONDS + 0.5, waited
    assert await store.get("AR1133") == 1
    assert stored_keys(database) == 0
    assert await store.record("AR1133", "order-1") == RecordResult(2)


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


def sqlite_error(code: int) -> sqlite3.Error:
    error = sqlite3.OperationalError(f"error {code}")
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (sqlite3.SQLITE_BUSY, StoreErrorKind.UNAVAILABLE),
        (sqlite3.SQLITE_LOCKED, StoreErrorKind.UNAVAILABLE),
        (sqlite3.SQLITE_FULL, StoreErrorKind.UNAVAILABLE),
        (sqlite3.SQLITE_IOERR_WRITE, StoreErrorKind.UNAVAILABLE),  # an extended I/O code
        (sqlite3.SQLITE_BUSY_TIMEOUT, StoreErrorKind.UNAVAILABLE),
        (sqlite3.SQLITE_READONLY, StoreErrorKind.MISCONFIGURED),
        (sqlite3.SQLITE_CORRUPT, StoreErrorKind.MISCONFIGURED),
        (sqlite3.SQLITE_NOTADB, StoreErrorKind.MISCONFIGURED),
        (sqlite3.SQLITE_ERROR, StoreErrorKind.MISCONFIGURED),
    ],
)
async def test_contention_and_io_errors_are_transient_the_rest_misconfigured(
    code: int, kind: StoreErrorKind
) -> None:
    error = as_store_error(sqlite_error(code))
    assert (error.kind, error.reason) == (kind, f"sqlite: error {code}")


async def test_an_error_without_a_code_is_misconfigured() -> None:
    assert as_store_error(sqlite3.ProgrammingError("closed")).kind is StoreErrorKind.MISCONFIGURED


@pytest.mark.parametrize("expired", [0, 1, PRUNE_BATCH - 1, PRUNE_BATCH, PRUNE_BATCH + 1])
async def test_pruning_deletes_every_expired_key_and_says_how_many(
    store: SQLiteStore, database: Path, clock: Clock, expired: int
) -> None:
    await asyncio.gather(*(store.record("AR1133", f"old-{n}") for n in range(expired)))
    clock.now += IDEMPOTENCY_TTL_SECONDS  # no record call after this: no background prune
    assert await store.prune_expired_keys() == expired
    assert stored_keys(database) == 0
    assert await store.prune_expired_keys() == 0


async def test_a_failed_background_prune_is_swallowed_and_tried_again(
    store: SQLiteStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = 0

    async def failing_prune() -> int:
        nonlocal attempts
        attempts += 1
        raise StoreError(StoreErrorKind.UNAVAILABLE, "sqlite: disk I/O error")

    monkeypatch.setattr(store, "prune_expired_keys", failing_prune)
    clock.now += PRUNE_INTERVAL_SECONDS
    await store.record("AR1133")
    assert store._pruning is not None
    await store._pruning  # raises nothing: the failure is kept quiet
    clock.now += PRUNE_INTERVAL_SECONDS
    assert await store.record("AR1133") == RecordResult(count=2)
    await store._pruning
    assert attempts == 2


async def test_a_reused_key_names_the_route_it_was_first_used_for(store: SQLiteStore) -> None:
    await store.record("AR1133", "key-1")
    with pytest.raises(IdempotencyKeyMismatch) as raised:
        await store.record("LA0001", "key-1")
    assert raised.value.key_route == "AR1133"
    assert str(raised.value) == "this Idempotency-Key was already used for route AR1133"
