"""One contract, two stores: SQLite on a temp file and DynamoDB on moto's in-process mock."""

import threading

import pytest

from kiusys_app.stores import CounterStore, IdempotencyKeyMismatch, RecordResult
from kiusys_app.stores.base import IDEMPOTENCY_TTL_SECONDS
from tests.app.conftest import Clock


def test_unknown_route_counts_zero(store: CounterStore) -> None:
    assert store.get("LA0001") == 0


def test_record_increments_and_returns_the_new_count(store: CounterStore) -> None:
    assert [store.record("AR1133").count for _ in range(5)] == [1, 2, 3, 4, 5]
    assert store.get("AR1133") == 5
    assert store.get("LA0001") == 0


def test_get_many_returns_every_asked_route(store: CounterStore) -> None:
    store.record("AR1133")
    store.record("AR1133")
    store.record("G31234")
    assert store.get_many(["AR1133", "LA0001", "G31234"]) == {"AR1133": 2, "LA0001": 0, "G31234": 1}


def test_get_many_pages_through_a_full_batch(store: CounterStore) -> None:
    routes = [f"AB{n:04d}" for n in range(100)]
    store.record(routes[-1])
    counts = store.get_many(routes)
    assert len(counts) == 100
    assert counts[routes[-1]] == 1
    assert sum(counts.values()) == 1


def test_first_use_of_a_key_counts_once(store: CounterStore) -> None:
    store.record("AR1133")
    assert store.record("AR1133", "key-1") == RecordResult(count=2, replayed=False)


def test_replay_counts_nothing_and_returns_the_current_count(store: CounterStore) -> None:
    store.record("AR1133", "key-1")
    store.record("AR1133")
    assert store.record("AR1133", "key-1") == RecordResult(count=2, replayed=True)
    assert store.get("AR1133") == 2


def test_key_reused_for_another_route_is_refused_and_changes_nothing(store: CounterStore) -> None:
    store.record("AR1133", "key-1")
    with pytest.raises(IdempotencyKeyMismatch, match="AR1133"):
        store.record("LA0001", "key-1")
    assert store.get_many(["AR1133", "LA0001"]) == {"AR1133": 1, "LA0001": 0}
    assert store.record("AR1133", "key-1").replayed


def test_key_counts_again_after_it_expires(store: CounterStore, clock: Clock) -> None:
    store.record("AR1133", "key-1")
    clock.now += IDEMPOTENCY_TTL_SECONDS - 1
    assert store.record("AR1133", "key-1").replayed
    clock.now += 1
    assert store.record("AR1133", "key-1") == RecordResult(count=2, replayed=False)
    assert store.record("LA0001", "key-2").count == 1


def test_distinct_keys_each_count(store: CounterStore) -> None:
    results = [store.record("AR1133", f"key-{n}") for n in range(3)]
    assert [r.count for r in results] == [1, 2, 3]
    assert not any(r.replayed for r in results)


def test_ping_answers(store: CounterStore) -> None:
    store.ping()


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_concurrent_uses_of_one_key_count_once(store: CounterStore) -> None:
    # moto's in-process DynamoDB is not thread-safe; the exactness suite covers DynamoDB.
    barrier = threading.Barrier(16)
    results: list[RecordResult] = []

    def send() -> None:
        barrier.wait()
        results.append(store.record("AR1133", "shared-key"))

    threads = [threading.Thread(target=send) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get("AR1133") == 1
    assert sorted(r.replayed for r in results) == [False] + [True] * 15
