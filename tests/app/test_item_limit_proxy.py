"""The per-item write limit: each item's writes past its rate are throttled, as a partition
throttles them, and nothing throttled is applied (a test clock moves time); and the store behind
it."""

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from kiusys_app.stores import RecordResult
from kiusys_app.stores.dynamodb import DynamoDBStore
from tests.app.conftest import Clock
from tests.app.test_contention_proxy import add, count, error_of, key_put
from tests.support.aws import KEYS_TABLE, REGION, TABLE
from tests.support.item_limit_proxy import ItemLimitProxy, item_limit_proxy

RATE = 5


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limited(moto_tables: Any, moto_url: str, clock: Clock) -> Iterator[tuple[ItemLimitProxy, Any]]:
    with item_limit_proxy(moto_url, writes_per_second=RATE, clock=clock) as proxy:
        client = boto3.client(
            "dynamodb",
            region_name=REGION,
            endpoint_url=proxy.url,
            config=Config(retries={"total_max_attempts": 1}),  # every refusal shows
        )
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
async def test_the_store_behind_the_limit_retries_throttled_records_and_counts_each_once(
    moto_store: Callable[..., DynamoDBStore], moto_url: str, aws: Any
) -> None:
    """50 plain records at once on one route whose item takes 20 writes a second (20 at once,
    then 1.5 s for the rest): the store tries each throttled one again within its 5 s budget,
    as nothing of it was applied."""
    with item_limit_proxy(moto_url, writes_per_second=20) as proxy:
        store = moto_store(endpoint_url=proxy.url)
        try:
            outcomes = await asyncio.gather(
                *(store.record("AR1133") for _ in range(50)), return_exceptions=True
            )
        finally:
            await store.aclose()
    acknowledged = [o.count for o in outcomes if isinstance(o, RecordResult)]
    print(f"{len(acknowledged)} acknowledged, {proxy.refused} throttled on the way")
    assert proxy.refused["ProvisionedThroughputExceededException"] > 0, "the limit bound"
    assert [o for o in outcomes if not isinstance(o, RecordResult)] == []
    assert sorted(acknowledged) == list(range(1, 51)), "distinct counts"
    assert count(aws, "AR1133") == 50, "each record once"
