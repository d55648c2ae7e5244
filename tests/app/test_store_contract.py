"""One contract, two stores: SQLite on a temp file and DynamoDB on moto's in-process mock."""

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from kiusys_app.stores import (
    CounterStore,
    IdempotencyKeyMismatch,
    RecordResult,
    StoreError,
    StoreErrorKind,
)
from kiusys_app.stores.base import IDEMPOTENCY_TTL_SECONDS
from kiusys_app.stores.sqlite import SQLiteStore
from tests.app.conftest import Clock
from tests.support.aws import KEYS_TABLE, TABLE

pytestmark = pytest.mark.anyio


async def test_unknown_route_counts_zero(store: CounterStore) -> None:
    assert await store.get("LA0001") == 0


async def test_record_increments_and_returns_the_new_count(store: CounterStore) -> None:
    assert [(await store.record("AR1133")).count for _ in range(5)] == [1, 2, 3, 4, 5]
    assert await store.get("AR1133") == 5
    assert await store.get("LA0001") == 0


async def test_get_many_returns_every_asked_route(store: CounterStore) -> None:
    await store.record("AR1133")
    await store.record("AR1133")
    await store.record("G31234")
    counts = await store.get_many(["AR1133", "LA0001", "G31234"])
    assert counts == {"AR1133": 2, "LA0001": 0, "G31234": 1}


async def test_get_many_pages_through_a_full_batch(store: CounterStore) -> None:
    routes = [f"AB{n:04d}" for n in range(100)]
    await store.record(routes[-1])
    counts = await store.get_many(routes)
    assert len(counts) == 100
    assert counts[routes[-1]] == 1
    assert sum(counts.values()) == 1


async def test_first_use_of_a_key_counts_once(store: CounterStore) -> None:
    await store.record("AR1133")
    assert await store.record("AR1133", "key-1") == RecordResult(count=2, replayed=False)


async def test_replay_counts_nothing_and_returns_the_current_count(store: CounterStore) -> None:
    await store.record("AR1133", "key-1")
    await store.record("AR1133")
    assert await store.record("AR1133", "key-1") == RecordResult(count=2, replayed=True)
    assert await store.get("AR1133") == 2


async def test_key_reused_for_another_route_is_refused_and_changes_nothing(
    store: CounterStore,
) -> None:
    await store.record("AR1133", "key-1")
    with pytest.raises(IdempotencyKeyMismatch, match="AR1133"):
        await store.record("LA0001", "key-1")
    assert await store.get_many(["AR1133", "LA0001"]) == {"AR1133": 1, "LA0001": 0}
    assert (await store.record("AR1133", "key-1")).replayed


async def test_key_counts_again_after_it_expires(store: CounterStore, clock: Clock) -> None:
    await store.record("AR1133", "key-1")
    clock.now += IDEMPOTENCY_TTL_SECONDS - 1
    assert (await store.record("AR1133", "key-1")).replayed
    clock.now += 1
    assert await store.record("AR1133", "key-1") == RecordResult(count=2, replayed=False)
    assert (await store.record("LA0001", "key-2")).count == 1


async def test_distinct_keys_each_count(store: CounterStore) -> None:
    results = [await store.record("AR1133", f"key-{n}") for n in range(3)]
    assert [r.count for r in results] == [1, 2, 3]
    assert not any(r.replayed for r in results)


async def test_ping_answers_while_both_tables_do(store: CounterStore) -> None:
    assert await store.ping() is None


@pytest.mark.parametrize("table", ["counters", "idempotency keys"])
async def test_ping_fails_as_misconfigured_when_either_table_is_gone(
    store: CounterStore, table: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if isinstance(store, SQLiteStore):
        with closing(sqlite3.connect(tmp_path / "counts.sqlite3")) as conn:
            conn.execute(f"DROP TABLE {'counters' if table == 'counters' else 'idempotency_keys'}")
    else:
        aws = request.getfixturevalue("aws")
        aws.delete_table(TableName=TABLE if table == "counters" else KEYS_TABLE)
    with pytest.raises(StoreError) as failed:
        await store.ping()
    assert failed.value.kind is StoreErrorKind.MISCONFIGURED
    if not isinstance(store, SQLiteStore):  # DynamoDB's errors name the table they came from
        assert failed.value.table == (TABLE if table == "counters" else KEYS_TABLE)


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
async def test_concurrent_uses_of_one_key_count_once(store: CounterStore) -> None:
    # moto's in-process DynamoDB is not thread-safe; the exactness suite covers DynamoDB.
    results = await asyncio.gather(*(store.record("AR1133", "shared-key") for _ in range(16)))
    assert await store.get("AR1133") == 1
    assert sorted(r.replayed for r in results) == [False] + [True] * 15
