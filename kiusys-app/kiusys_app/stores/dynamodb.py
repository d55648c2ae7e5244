"""The DynamoDB store: atomic counters, and exactly-once records through transactions.

A plain record is one `UpdateItem ADD`. A record with an idempotency key is one
`TransactWriteItems` that writes the key (only if it is new or expired) together with the
counter increment, so either both happen or neither does.
"""

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from kiusys_app.metrics import STORE_ERRORS
from kiusys_app.stores.base import (
    IDEMPOTENCY_TTL_SECONDS,
    IdempotencyKeyMismatch,
    RecordResult,
    StoreUnavailable,
    ThreadedCoroutines,
)

# The seed's data model: hash key `flight-route` (S) and the counter `record` (N).
ROUTE_ATTR = "flight-route"
COUNT_ATTR = "record"
# The idempotency table: hash key `idempotency-key` (S), the route it was used for, and the
# epoch second after which DynamoDB's TTL may delete it.
KEY_ATTR = "idempotency-key"
EXPIRES_ATTR = "expires-at"

# Error codes that mean "try again later", never "your request is wrong".
_THROTTLING_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
_TRANSIENT_CODES = _THROTTLING_CODES | frozenset(
    {
        "InternalServerError",
        "ServiceUnavailable",
        "ResourceNotFoundException",
        "TransactionInProgressException",
    }
)
_TRANSIENT_REASONS = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded"})

# Retries of our own, on top of botocore's: cancelled transactions and unprocessed batch keys.
MAX_ATTEMPTS = 6
_BACKOFF_BASE_SECONDS = 0.02
_BACKOFF_CAP_SECONDS = 0.5


def _transient(exc: Exception) -> StoreUnavailable:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        kind = "throttled" if code in _THROTTLING_CODES else "unavailable"
        return StoreUnavailable(f"dynamodb: {code}", kind=kind)
    return StoreUnavailable(f"dynamodb: {type(exc).__name__}")


class DynamoDBStore(ThreadedCoroutines):
    def __init__(
        self,
        *,
        table_name: str,
        idempotency_table_name: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        max_pool_connections: int = 64,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table_name
        self._keys_table = idempotency_table_name
        self._clock = clock
        self._sleep = sleep
        self.client: Any = boto3.session.Session().client(
            "dynamodb",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(
                retries={"mode": "standard"},
                connect_timeout=2,
                read_timeout=5,
                max_pool_connections=max_pool_connections,
            ),
        )

    def _call(self, operation: str, **params: Any) -> Any:
        try:
            return getattr(self.client, operation)(**params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _TRANSIENT_CODES:
                raise _transient(exc) from exc
            raise
        except BotoCoreError as exc:
            raise _transient(exc) from exc

    def _backoff(self, attempt: int) -> None:
        """Full jitter: a random wait up to an exponentially growing, capped ceiling."""
        ceiling = min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2**attempt)
        self._sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter, not cryptography

    def _route_key(self, route: str) -> dict[str, Any]:
        return {ROUTE_ATTR: {"S": route}}

    def _increment(self, route: str) -> dict[str, Any]:
        return {
            "TableName": self._table,
            "Key": self._route_key(route),
            "UpdateExpression": "ADD #count :one",
            "ExpressionAttributeNames": {"#count": COUNT_ATTR},
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }

    def record(self, route: str, idempotency_key: str | None = None) -> RecordResult:
        if idempotency_key is None:
            response = self._call(
                "update_item", **self._increment(route), ReturnValues="UPDATED_NEW"
            )
            return RecordResult(count=int(response["Attributes"][COUNT_ATTR]["N"]))
        for attempt in range(MAX_ATTEMPTS):
            reasons = self._record_once(route, idempotency_key)
            if not reasons:
                return RecordResult(count=self.get(route))
            if reasons[0] == "ConditionalCheckFailed":
                return self._replay(route, idempotency_key)
            if _TRANSIENT_REASONS.intersection(reasons):
                raise StoreUnavailable(f"dynamodb: transaction cancelled {reasons}", "throttled")
            if "TransactionConflict" not in reasons:
                raise RuntimeError(f"transaction cancelled: {reasons}")
            STORE_ERRORS.labels("conflict_retried").inc()
            self._backoff(attempt)
        raise StoreUnavailable("dynamodb: transaction conflicts persisted")

    def _record_once(self, route: str, key: str) -> list[str]:
        """Write the key and the increment in one transaction; the cancellation reasons, if any."""
        now = int(self._clock())
        put_key = {
            "TableName": self._keys_table,
            "Item": {
                KEY_ATTR: {"S": key},
                ROUTE_ATTR: {"S": route},
                EXPIRES_ATTR: {"N": str(now + IDEMPOTENCY_TTL_SECONDS)},
            },
            # TTL deletion lags by up to days, so an expired key is overwritten, not honoured.
            "ConditionExpression": "attribute_not_exists(#key) OR #expires <= :now",
            "ExpressionAttributeNames": {"#key": KEY_ATTR, "#expires": EXPIRES_ATTR},
            "ExpressionAttributeValues": {":now": {"N": str(now)}},
        }
        try:
            self._call(
                "transact_write_items",
                TransactItems=[{"Put": put_key}, {"Update": self._increment(route)}],
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            return [str(r.get("Code", "None")) for r in exc.response.get("CancellationReasons", [])]
        return []

    def _replay(self, route: str, key: str) -> RecordResult:
        response = self._call(
            "get_item",
            TableName=self._keys_table,
            Key={KEY_ATTR: {"S": key}},
            ConsistentRead=True,
        )
        key_route = response.get("Item", {}).get(ROUTE_ATTR, {}).get("S", route)
        if key_route != route:
            raise IdempotencyKeyMismatch(key_route)
        return RecordResult(count=self.get(route), replayed=True)

    def get(self, route: str) -> int:
        response = self._call(
            "get_item",
            TableName=self._table,
            Key=self._route_key(route),
            ConsistentRead=True,
            ProjectionExpression="#count",
            ExpressionAttributeNames={"#count": COUNT_ATTR},
        )
        return int(response.get("Item", {}).get(COUNT_ATTR, {}).get("N", 0))

    def get_many(self, routes: Sequence[str]) -> dict[str, int]:
        counts = dict.fromkeys(routes, 0)
        request: dict[str, Any] = {
            self._table: {
                "Keys": [self._route_key(route) for route in counts],
                "ConsistentRead": True,
                "ProjectionExpression": "#route, #count",
                "ExpressionAttributeNames": {"#route": ROUTE_ATTR, "#count": COUNT_ATTR},
            }
        }
        for attempt in range(MAX_ATTEMPTS):
            response = self._call("batch_get_item", RequestItems=request)
            for item in response.get("Responses", {}).get(self._table, []):
                counts[item[ROUTE_ATTR]["S"]] = int(item[COUNT_ATTR]["N"])
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return counts
            self._backoff(attempt)
        raise StoreUnavailable("dynamodb: batch keys stayed unprocessed")

    def ping(self) -> None:
        # GetItem on a key that never exists: proves the table answers with the app's own rights.
        self._call("get_item", TableName=self._table, Key=self._route_key("-readyz-"))

    def close(self) -> None:
        self.client.close()
