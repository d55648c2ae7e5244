"""The fault proxy on its own: each fault does to a write what its name says."""

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from tests.support.aws import REGION, TABLE
from tests.support.fault_proxy import FaultProxy, fault_proxy

# Each fault: what the client sees, and whether moto applied the write.
FAULTS = {
    "throttle": ("ProvisionedThroughputExceededException", False),
    "500-before": ("InternalServerError", False),
    "500-after": ("InternalServerError", True),
    "reset-before": (ConnectionClosedError, False),
    "reset-after": (ConnectionClosedError, True),
    "late": (ReadTimeoutError, True),
}


@pytest.fixture
def proxied(moto_tables: Any, moto_url: str) -> Iterator[tuple[FaultProxy, Any]]:
    with fault_proxy(moto_url, seed=0, rate=1.0) as proxy:
        proxy.late_seconds = 1.0
        config = Config(retries={"total_max_attempts": 1}, read_timeout=0.5)
        client = boto3.client("dynamodb", region_name=REGION, endpoint_url=proxy.url, config=config)
        yield proxy, client


def add(client: Any) -> None:
    client.update_item(
        TableName=TABLE,
        Key={"flight-route": {"S": "AR1133"}},
        UpdateExpression="ADD #c :one",
        ExpressionAttributeNames={"#c": "record"},
        ExpressionAttributeValues={":one": {"N": "1"}},
    )


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_answers_as_named_and_applies_only_after(
    proxied: tuple[FaultProxy, Any], moto_tables: Any, fault: str
) -> None:
    proxy, client = proxied
    proxy.draw = lambda: fault  # type: ignore[method-assign]
    seen, applied = FAULTS[fault]
    with pytest.raises((ClientError, ConnectionClosedError, ReadTimeoutError)) as failed:
        add(client)
    if isinstance(seen, str):
        assert isinstance(failed.value, ClientError)
        assert failed.value.response["Error"]["Code"] == seen
    else:
        assert isinstance(failed.value, seen)
    item = moto_tables.get_item(TableName=TABLE, Key={"flight-route": {"S": "AR1133"}})
    assert ("Item" in item) is applied
    assert proxy.injected == {fault: 1}


def test_while_refusing_no_connection_is_accepted(proxied: tuple[FaultProxy, Any]) -> None:
    proxy, client = proxied
    proxy.faulty = False
    proxy.refusing(True)
    with pytest.raises(EndpointConnectionError):
        add(client)
    proxy.refusing(False)
    add(client)
