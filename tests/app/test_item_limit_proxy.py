"""The per-item write limit: each item's writes past its rate are throttled, as a partition
throttles them, and nothing throttled is applied (a test clock moves time); and the store behind
it."""

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kiusys_app.stores import RecordResult
from kiusys_app.stores.dynamodb import DynamoDBStore
from tests.app.conftest import Clock
from tests.app.test_contention_proxy import add, count, error_of, key_put
from tests.support.aws import KEYS_TABLE, TABLE, dynamodb
from tests.support.item_limit_proxy import ItemLimitProxy, item_limit_proxy

RATE = 5


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limited(moto_tables: Any, moto_url: str, clock: Clock) -> Iterator[tuple[ItemLimitProxy, Any]]:
    with item_limit_proxy(moto_url, writes_per_second=RATE, clock=clock) as proxy:
        client = dynamodb(proxy.url, attempts=1)  # every refusal shows
        yield proxy, client


THROTTLED = ("ProvisionedThroughputExceededException", None)


def test_one_items_writes_past_its_rate_are_throttled_and_not_applied(
    limited: tuple[ItemLimitProxy, Any], clock: Clock
) -> None:
    proxy, client = limited
    for _ in range(RATE):
        client.update_item(**add("AR1133"))
    assert error_of(client.update_item, **add("AR1133")) == THROTTLED
    client.update_item(**add("LA0001"))  # another item has its own units
    assert count(client, "AR1133") == RATE, "a read passes; the throttled write applied nothing"
    clock.now += 1 / RATE
    client.update_item(**add("AR1133"))  # a unit refilled
    assert error_of(client.update_item, **add("AR1133")) == THROTTLED
    clock.now += 10
    for _ in range(RATE):  # refilled to the rate, no more
        client.update_item(**add("AR1133"))
    assert error_of(client.update_item, **add("AR1133")) == THROTTLED
    assert count(client, "AR1133") == 2 * RATE + 1
    assert proxy.refused == {"ProvisionedThroughputExceededException": 3}
    assert proxy.units == {TABLE: 2 * RATE + 2}


def test_a_transaction_takes_two_units_an_item_and_is_cancelled_whole_when_one_is_short(
    limited: tuple[ItemLimitProxy, Any], clock: Clock
) -> None:
    proxy, client = limited
    client.update_item(**add("AR1133"))
    client.update_item(**add("AR1133"))  # 3 of AR1133's 5 units left
    transaction = [{"Update": add("AR1133")}, {"Put": key_put("order-1")}]
    client.transact_write_items(TransactItems=transaction)  # 1 left
    code, reasons = error_of(
        client.transact_write_items,
        TransactItems=[{"Put": key_put("order-2")}, {"Update": add("AR1133")}],
    )
    assert code == "TransactionCanceledException"
    assert [reason["Code"] for reason in reasons] == ["None", "ThrottlingError"]
    assert count(client, "AR1133") == 3
    order_2 = client.get_item(TableName=KEYS_TABLE, Key={"idempotency-key": {"S": "order-2"}})
    assert "Item" not in order_2, "nothing of the cancelled transaction was applied"
    for _ in range(RATE):  # the cancelled transaction took none of order-2's units
        client.put_item(**key_put("order-2"))
    assert proxy.units == {TABLE: 4, KEYS_TABLE: 2 + RATE}


@pytest.mark.anyio
async def test_the_store_tries_a_throttled_record_again_within_its_budget(
    moto_store: Callable[..., DynamoDBStore], moto_url: str, aws: Any
) -> None:
    """5 records one after another on an item that takes 2 writes a second: the third to fifth
    are throttled and tried again (nothing of them was applied) until a unit refills."""
    with item_limit_proxy(moto_url, writes_per_second=2) as proxy:
        store = moto_store(endpoint_url=proxy.url)
        try:
            counts = [(await store.record("AR1133")).count for _ in range(5)]
        finally:
            await store.aclose()
    assert proxy.refused["ProvisionedThroughputExceededException"] > 0, "the limit bound"
    assert counts == [1, 2, 3, 4, 5]
    assert count(aws, "AR1133") == 5, "each record once"


async def arriving(store: DynamoDBStore, waves: int, each: int) -> list[RecordResult]:
    """`each` records on one route every 10 ms, `waves` times; their outcomes."""
    calls = []
    for _ in range(waves):
        calls += [asyncio.create_task(store.record("AR1133")) for _ in range(each)]
        await asyncio.sleep(0.01)
    return await asyncio.gather(*calls)


@pytest.mark.anyio
async def test_records_waiting_on_one_route_share_a_write_and_pass_the_items_limit(
    moto_store: Callable[..., DynamoDBStore], moto_url: str, aws: Any
) -> None:
    """400 plain records arriving over 1 s on one route whose item takes 20 writes a second:
    those that wait while the route's write is out (or throttled) go as one `ADD n`, so the
    route carries far more records a second than its item takes writes."""
    with item_limit_proxy(moto_url, writes_per_second=20) as proxy:
        store = moto_store(endpoint_url=proxy.url)
        try:
            started = time.monotonic()
            outcomes = await arriving(store, waves=100, each=4)
            took = time.monotonic() - started
        finally:
            await store.aclose()
    writes = proxy.units[TABLE]
    print(f"400 records in {took:.2f} s: {writes} writes, {dict(proxy.refused)}")
    assert sorted(o.count for o in outcomes) == list(range(1, 401)), "distinct counts"
    assert count(aws, "AR1133") == 400, "each record once"
    assert writes <= 20 + 20 * took, "the item's limit held"
    assert 400 / took >= 3 * 20, "the route carried at least 3 x its item's writes a second"
