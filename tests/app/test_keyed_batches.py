"""Keyed records on one route share transactions: a queue per route, one transaction at a time.

The store talks to moto; a recorder in front of its transport keeps each TransactWriteItems it
sends, and can hold the first one back so that others queue up behind it.
"""

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiodynamo.sign import Request

from kiusys_app.stores import IdempotencyKeyMismatch, RecordResult, StoreError, StoreErrorKind
from kiusys_app.stores.dynamodb import store as dynamodb_store
from kiusys_app.stores.dynamodb.store import MAX_KEYS_PER_TRANSACTION, DynamoDBStore
from kiusys_app.stores.dynamodb.wire import Answer
from tests.support.aws import KEYS_TABLE, TABLE

pytestmark = pytest.mark.anyio


class Transactions:
    """Keeps the keys of each TransactWriteItems sent; holds the first `hold` seconds."""

    def __init__(self, store: DynamoDBStore, hold: float = 0.0) -> None:
        self.keys: list[list[str]] = []
        self.increments: list[int] = []
        self.hold = hold
        self._send = store.wire.transport
        store.wire.transport = self

    async def __call__(self, request: Request, timeout: float) -> Answer:
        if request.headers["X-Amz-Target"].endswith(".TransactWriteItems"):
            actions = json.loads(request.body)["TransactItems"]
            update = actions[0]["Update"]
            self.increments.append(int(update["ExpressionAttributeValues"][":by"]["N"]))
            self.keys.append([a["Put"]["Item"]["idempotency-key"]["S"] for a in actions[1:]])
            if len(self.keys) == 1:
                await asyncio.sleep(self.hold)
        return await self._send(request, timeout)


async def record_all(store: DynamoDBStore, keys: list[str], route: str = "AR1133") -> list[Any]:
    """Record the first key, and while its transaction is out, every other one at once; each
    outcome, an exception included."""
    first = asyncio.create_task(store.record(route, keys[0]))
    await asyncio.sleep(0.05)
    rest = await asyncio.gather(
        *(store.record(route, key) for key in keys[1:]), return_exceptions=True
    )
    return [await first, *rest]


async def test_keyed_records_waiting_for_one_route_go_out_in_one_transaction(
    moto_store: Callable[..., DynamoDBStore],
) -> None:
    store = moto_store()
    sent = Transactions(store, hold=0.2)
    try:
        outcomes = await record_all(store, [f"order-{n}" for n in range(20)])
        count = await store.get("AR1133")
    finally:
        await store.aclose()
    assert sent.increments == [1, 19], "the first alone, the 19 that queued behind it together"
    assert [len(keys) for keys in sent.keys] == sent.increments
    assert all(isinstance(o, RecordResult) and not o.replayed for o in outcomes)
    assert outcomes[-1].count == count == 20


async def test_a_transaction_holds_at_most_99_keys_and_the_counters_action(
    moto_store: Callable[..., DynamoDBStore],
) -> None:
    store = moto_store()
    sent = Transactions(store, hold=0.2)
    try:
        outcomes = await record_all(store, [f"order-{n}" for n in range(150)])
        count = await store.get("AR1133")
    finally:
        await store.aclose()
    assert sent.increments == [1, MAX_KEYS_PER_TRANSACTION, 150 - 1 - MAX_KEYS_PER_TRANSACTION]
    assert all(isinstance(outcome, RecordResult) for outcome in outcomes)
    assert count == 150


async def test_two_waiting_records_of_one_key_never_share_a_transaction(
    moto_store: Callable[..., DynamoDBStore],
) -> None:
    store = moto_store()
    sent = Transactions(store, hold=0.2)
    try:
        outcomes = await record_all(store, ["first", "same", "other", "same"])
        count = await store.get("AR1133")
    finally:
        await store.aclose()
    assert all(len(keys) == len(set(keys)) for keys in sent.keys), "DynamoDB refuses that"
    assert sent.keys == [["first"], ["same", "other"], ["same"]]
    assert [o.replayed for o in outcomes] == [False, False, False, True]
    assert count == 3


async def test_a_key_already_written_is_answered_as_a_replay_and_the_rest_are_sent_again(
    moto_store: Callable[..., DynamoDBStore],
) -> None:
    store = moto_store()
    try:
        await store.record("AR1133", "seen")
        await store.record("LA0001", "elsewhere")
        sent = Transactions(store, hold=0.2)
        outcomes = await record_all(store, ["first", "new-1", "seen", "elsewhere", "new-2"])
        count = await store.get("AR1133")
    finally:
        await store.aclose()
    # Cancelled for "seen" and "elsewhere" (their conditions), then sent without them.
    assert sent.keys == [["first"], ["new-1", "seen", "elsewhere", "new-2"], ["new-1", "new-2"]]
    first, new_1, seen, elsewhere, new_2 = outcomes
    assert [o.replayed for o in (first, new_1, seen, new_2)] == [False, False, True, False]
    assert isinstance(elsewhere, IdempotencyKeyMismatch)
    assert elsewhere.key_route == "LA0001"
    assert count == 1 + 3
    assert seen.count == count


async def test_a_cancellation_for_throttling_is_retried_like_any_throttling(
    moto_store: Callable[..., DynamoDBStore],
) -> None:
    store = moto_store()
    throttled = {"__type": "x#TransactionCanceledException"}
    throttled["CancellationReasons"] = [{"Code": "ThrottlingError"}, {"Code": "None"}]  # type: ignore[assignment]
    calls = 0
    send = store.wire.transport

    async def once_throttled(request: Request, timeout: float) -> Answer:
        nonlocal calls
        if request.headers["X-Amz-Target"].endswith(".TransactWriteItems"):
            calls += 1
            if calls == 1:
                return Answer(400, "application/x-amz-json-1.0", json.dumps(throttled).encode())
        return await send(request, timeout)

    store.wire.transport = once_throttled
    try:
        outcome = await store.record("AR1133", "order-1")
    finally:
        await store.aclose()
    assert (calls, outcome) == (2, RecordResult(count=1))


async def test_a_record_whose_budget_ends_while_it_waits_is_never_sent(
    moto_store: Callable[..., DynamoDBStore], aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = moto_store()
    sent = Transactions(store, hold=1.0)
    try:
        first = asyncio.create_task(store.record("AR1133", "first"))
        await asyncio.sleep(0.1)
        monkeypatch.setattr(dynamodb_store, "CALL_BUDGET_SECONDS", 0.3)
        late = asyncio.create_task(store.record("AR1133", "late"))
        await asyncio.sleep(0)  # queued behind `first`, before the next one
        monkeypatch.setattr(dynamodb_store, "CALL_BUDGET_SECONDS", 5.0)
        after = asyncio.create_task(store.record("AR1133", "after"))
        started = time.monotonic()
        with pytest.raises(StoreError) as failed:
            await late
        took = time.monotonic() - started
        assert (await first).count == 1
        assert (await after).count == 2, "the records queued behind it go on"
        count = await store.get("AR1133")
    finally:
        await store.aclose()
    error = failed.value
    assert (error.kind, error.reason, error.table, error.operation) == (
        StoreErrorKind.UNAVAILABLE,
        "dynamodb: the record's budget ended before its transaction was sent",
        KEYS_TABLE,
        "TransactWriteItems",
    ), "a keyed retry is safe"
    assert took < 0.3 + 0.2, "at its own deadline, not at the end of the transaction before it"
    assert sent.keys == [["first"], ["after"]]
    assert count == 2
    assert "Item" not in aws.get_item(TableName=KEYS_TABLE, Key={"idempotency-key": {"S": "late"}})


async def test_records_committed_but_not_counted_get_the_count_reads_error(
    moto_store: Callable[..., DynamoDBStore], aws: Any
) -> None:
    store = moto_store()
    sent = Transactions(store)
    refused = {"__type": "x#AccessDeniedException", "message": "no GetItem"}

    async def no_count(request: Request, timeout: float) -> Answer:
        # Refused after the transaction: the read of the route's day before it is answered.
        if request.headers["X-Amz-Target"].endswith(".GetItem") and sent.keys:
            return Answer(400, "application/x-amz-json-1.0", json.dumps(refused).encode())
        return await sent(request, timeout)

    store.wire.transport = no_count
    try:
        outcomes = await asyncio.gather(
            *(store.record("AR1133", key) for key in ("one", "two")), return_exceptions=True
        )
    finally:
        await store.aclose()
    assert [(o.kind, o.operation) for o in outcomes] == [  # type: ignore[union-attr]
        (StoreErrorKind.MISCONFIGURED, "GetItem")
    ] * 2
    assert sent.keys == [["one", "two"]]
    item = aws.get_item(TableName=TABLE, Key={"flight-route": {"S": "AR1133"}})["Item"]
    assert item["record"]["N"] == "2", "written: a retry of each key is a replay"
