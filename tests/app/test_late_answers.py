"""Late answers: a delaying proxy in front of moto holds DynamoDB's first answer back 20 s.

The request reaches moto at once and is applied; the store gives up waiting after one
attempt's timeout. What it may do then decides whether a record is counted twice.
"""

from typing import Any

import pytest

from kiusys_app.api.errors import OUTCOME_UNKNOWN_DETAIL
from kiusys_app.config import Settings
from kiusys_app.stores.dynamodb import store as dynamodb_store
from kiusys_app.stores.dynamodb.retry import ATTEMPT_TIMEOUT_SECONDS
from tests.support.app import metric, started_app
from tests.support.aws import TABLE
from tests.support.delaying_proxy import delaying_proxy

HOLD_SECONDS = 20.0


def stored(aws: Any, route: str) -> int:
    """The count in moto itself, read past the proxy and the service."""
    key = {"flight-route": {"S": route}}
    item = aws.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item", {})
    return int(item.get("record", {}).get("N", 0))


def test_a_plain_record_answered_late_is_stored_at_most_once(aws: Any, moto_url: str) -> None:
    with (
        delaying_proxy(moto_url, "UpdateItem", HOLD_SECONDS) as proxy,
        started_app(Settings(store="dynamodb", aws_endpoint_url=proxy.url)) as client,
    ):
        response = client.post("/save-transaction/AR1001")
        assert response.elapsed.total_seconds() < ATTEMPT_TIMEOUT_SECONDS + 1
    assert proxy.actions.count("UpdateItem") == 1, "a write that may have counted is not resent"
    assert stored(aws, "AR1001") == 1, "the proxy delivered it once"
    assert (response.status_code, response.json()) == (503, {"detail": OUTCOME_UNKNOWN_DETAIL})
    assert "Retry-After" not in response.headers


def test_a_first_time_keyed_record_answered_late_is_no_replay(aws: Any, moto_url: str) -> None:
    replays = metric("kiusys_idempotent_replays_total")
    key = {"Idempotency-Key": "order-1"}
    with (
        delaying_proxy(moto_url, "TransactWriteItems", HOLD_SECONDS) as proxy,
        started_app(Settings(store="dynamodb", aws_endpoint_url=proxy.url)) as client,
    ):
        first = client.post("/save-transaction/AR1001", headers=key)
        retried = client.post("/save-transaction/AR1001", headers=key)
    assert proxy.actions.count("TransactWriteItems") == 3, "the late one, its retry, the client's"
    assert (first.status_code, first.json()) == (200, {"AR1001": 1})
    assert "Idempotent-Replayed" not in first.headers, "its own earlier attempt, not a replay"
    assert (retried.status_code, retried.headers["Idempotent-Replayed"]) == (200, "true")
    assert metric("kiusys_idempotent_replays_total") == replays + 1
    assert stored(aws, "AR1001") == 1


def test_the_budget_also_bounds_one_attempt(
    aws: Any, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 0.3 s of budget left, an attempt waits 0.3 s, not its own 2 s."""
    monkeypatch.setattr(dynamodb_store, "CALL_BUDGET_SECONDS", 0.3)
    with (
        delaying_proxy(moto_url, "GetItem", HOLD_SECONDS) as proxy,
        started_app(Settings(store="dynamodb", aws_endpoint_url=proxy.url)) as client,
    ):
        response = client.get("/v1/routes/AR1001/transactions")
    assert response.status_code == 503
    assert response.elapsed.total_seconds() < 1.0
