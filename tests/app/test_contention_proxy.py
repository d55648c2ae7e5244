"""The contention layer on its own: while a transaction is in flight, DynamoDB's conflict rules."""

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.aws import KEYS_TABLE, TABLE, dynamodb
from tests.support.contention_proxy import ContentionProxy, contention_proxy

HOLD = 0.6


@pytest.fixture
def proxied(moto_tables: Any, moto_url: str) -> Iterator[tuple[ContentionProxy, Any]]:
    with contention_proxy(moto_url, hold=HOLD) as proxy:
        client = dynamodb(proxy.url, attempts=1)  # every refusal shows
        yield proxy, client


def add(route: str) -> dict[str, Any]:
    return {
        "TableName": TABLE,
        "Key": {"flight-route": {"S": route}},
        "UpdateExpression": "ADD #c :one",
        "ExpressionAttributeNames": {"#c": "record"},
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }


def key_put(key: str) -> dict[str, Any]:
    return {"TableName": KEYS_TABLE, "Item": {"idempotency-key": {"S": key}}}


def error_of(call: Any, **kwargs: Any) -> tuple[str, Any]:
    with pytest.raises(ClientError) as failed:
        call(**kwargs)
    response = failed.value.response
    return response["Error"]["Code"], response.get("CancellationReasons")


def count(client: Any, route: str) -> int:
    item = client.get_item(TableName=TABLE, Key={"flight-route": {"S": route}}).get("Item")
    return int(item["record"]["N"]) if item else 0


def test_writes_to_the_items_of_a_transaction_in_flight_are_refused_and_not_applied(
    proxied: tuple[ContentionProxy, Any],
) -> None:
    proxy, client = proxied
    transaction = threading.Thread(
        target=client.transact_write_items,
        kwargs={"TransactItems": [{"Update": add("AR1133")}, {"Put": key_put("order-1")}]},
    )
    transaction.start()
    time.sleep(HOLD / 3)
    assert error_of(client.update_item, **add("AR1133")) == ("TransactionConflictException", None)
    assert error_of(client.put_item, **key_put("order-1")) == ("TransactionConflictException", None)
    code, reasons = error_of(
        client.transact_write_items,
        TransactItems=[{"Put": key_put("order-2")}, {"Update": add("AR1133")}],
    )
    assert code == "TransactionCanceledException"
    assert [reason["Code"] for reason in reasons] == ["None", "TransactionConflict"]
    client.update_item(**add("LA0001"))  # another item: no conflict
    assert count(client, "AR1133") == 0, "a read passes, and sees what was committed"
    transaction.join()
    assert count(client, "AR1133") == 1, "the refused writes applied nothing"
    client.update_item(**add("AR1133"))  # the transaction is over: no conflict
    assert count(client, "AR1133") == 2
    assert (
        client.get_item(TableName=KEYS_TABLE, Key={"idempotency-key": {"S": "order-2"}}).get("Item")
        is None
    )
    assert proxy.refused == {"TransactionConflictException": 2, "TransactionCanceledException": 1}
    assert proxy.committed == 1
