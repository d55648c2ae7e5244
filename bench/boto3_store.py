"""`make bench`'s baseline: the DynamoDB store as it was before it moved to aiohttp.

boto3 on the store's own thread pool, with botocore's standard retry mode. It is kept only to
be measured beside the current store in one run; nothing in the service uses it.
"""

import asyncio
import random
import ssl
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.parsers import ResponseParserError

from kiusys_app.stores.base import (
    IDEMPOTENCY_TTL_SECONDS,
    IdempotencyKeyMismatch,
    NullObserver,
    RecordResult,
    StoreError,
    StoreErrorKind,
    StoreObserver,
)

T = TypeVar("T")

# The seed's data model: hash key `flight-route` (S) and the counter `record` (N).
ROUTE_ATTR = "flight-route"
COUNT_ATTR = "record"
# The idempotency table: hash key `idempotency-key` (S), the route it was used for, and the
# epoch second after which DynamoDB's TTL may delete it.
KEY_ATTR = "idempotency-key"
EXPIRES_ATTR = "expires-at"
# A key that is never written: readiness reads it to prove each table answers.
PROBE_KEY = "-readyz-"

# Error codes that mean "try again later", never "your request is wrong".
_THROTTLING_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
_UNAVAILABLE_CODES = frozenset(
    {"InternalServerError", "ServiceUnavailable", "TransactionInProgressException"}
)
# Error codes that no retry gets past: rights, credentials, tables, request shape.
_MISCONFIGURED_CODES = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "ResourceNotFoundException",
        "ValidationException",
    }
)
_THROTTLING_REASONS = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded"})
# Status codes of an answer that is not DynamoDB's (a proxy, a load balancer) that are worth a
# retry; any other foreign answer means the endpoint is wrong.
_TRANSIENT_FOREIGN_STATUSES = frozenset({500, 502, 503, 504})
# DynamoDB answers every successful call in its own JSON protocol.
_CONTENT_TYPE = "application/x-amz-json"

# Retries of our own, on top of botocore's: cancelled transactions and unprocessed batch keys.
MAX_ATTEMPTS = 6
_BACKOFF_BASE_SECONDS = 0.02
_BACKOFF_CAP_SECONDS = 0.5

# Threads and connections per process: a record holds one for a round trip of a few ms.
POOL_SIZE = 8


def classify(exc: Exception) -> StoreErrorKind | None:
    """The kind of a botocore error; None for one that only a bug in this service can cause."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _THROTTLING_CODES:
            return StoreErrorKind.THROTTLED
        if code.isdigit():  # botocore found no DynamoDB error type: someone else answered
            if status in _TRANSIENT_FOREIGN_STATUSES:
                return StoreErrorKind.UNAVAILABLE
            return StoreErrorKind.MISCONFIGURED
        if code in _MISCONFIGURED_CODES:
            return StoreErrorKind.MISCONFIGURED
        if code in _UNAVAILABLE_CODES or status >= 500:
            return StoreErrorKind.UNAVAILABLE
        return None
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | NoRegionError):
        return StoreErrorKind.MISCONFIGURED
    if isinstance(exc, ResponseParserError):
        return StoreErrorKind.MISCONFIGURED
    if isinstance(exc, ConnectionError | HTTPClientError):
        return StoreErrorKind.UNAVAILABLE
    if isinstance(exc, BotoCoreError):  # credential refresh and other client-side failures
        return StoreErrorKind.UNAVAILABLE
    return None


def _reason(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"dynamodb: {error.get('Code')}: {error.get('Message', '')}".rstrip(": ")
    return f"dynamodb: {type(exc).__name__}: {exc}"


class Boto3Store:
    def __init__(
        self,
        *,
        table_name: str,
        idempotency_table_name: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        pool_size: int = POOL_SIZE,
        validate_parameters: bool = True,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        observer: StoreObserver | None = None,
        tls: ssl.SSLContext | None = None,  # the current store's; the bench's endpoint is HTTP
    ) -> None:
        self._table = table_name
        self._keys_table = idempotency_table_name
        self._clock = clock
        self._sleep = sleep
        self._observer = observer or NullObserver()
        self._executor = ThreadPoolExecutor(pool_size, thread_name_prefix="dynamodb")
        self.client: Any = boto3.session.Session().client(
            "dynamodb",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(
                retries={"mode": "standard"},
                connect_timeout=2,
                read_timeout=5,
                max_pool_connections=pool_size,
                # botocore's check of each request's shape; turning it off saved no CPU that
                # `make bench` could measure, so it stays on (see the README, "Performance").
                parameter_validation=validate_parameters,
            ),
        )
        # Built once: the increment is the same for every route but the key.
        self._increment_params = {
            "TableName": table_name,
            "UpdateExpression": "ADD #count :one",
            "ExpressionAttributeNames": {"#count": COUNT_ATTR},
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }

    # Coroutines: each runs its blocking counterpart on the store's own threads.

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(function, *args))

    async def record(self, route: str, idempotency_key: str | None = None) -> RecordResult:
        if idempotency_key is None:
            return await self._run(self._record, route)
        return await self._run(self._record_with_key, route, idempotency_key)

    async def get(self, route: str) -> int:
        return await self._run(self._get, route)

    async def get_many(self, routes: Sequence[str]) -> dict[str, int]:
        return await self._run(self._get_many, routes)

    async def ping(self, writes: bool = False) -> None:
        await self._run(self._ping)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=True)
        self.client.close()

    # Blocking calls, on the store's threads.

    def _call(self, operation: str, table: str, **params: Any) -> Any:
        """One DynamoDB call; a failure becomes a StoreError of its kind, or passes as a bug."""
        try:
            response = getattr(self.client, operation)(**params)
        except (ClientError, BotoCoreError, ResponseParserError) as exc:
            kind = classify(exc)
            if kind is None:
                raise
            raise StoreError(kind, _reason(exc), table=table, operation=operation) from exc
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        if not headers.get("content-type", "").startswith(_CONTENT_TYPE):
            raise StoreError(
                StoreErrorKind.MISCONFIGURED,
                f"dynamodb: the endpoint answered {headers.get('content-type')!r}, not DynamoDB",
                table=table,
                operation=operation,
            )
        return response

    def _backoff(self, attempt: int) -> None:
        """Full jitter: a random wait up to an exponentially growing, capped ceiling."""
        ceiling = min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2**attempt)
        self._sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter, not cryptography

    def _increment(self, route: str) -> dict[str, Any]:
        return {**self._increment_params, "Key": {ROUTE_ATTR: {"S": route}}}

    def _record(self, route: str) -> RecordResult:
        response = self._call(
            "update_item", self._table, **self._increment(route), ReturnValues="UPDATED_NEW"
        )
        return RecordResult(count=int(response["Attributes"][COUNT_ATTR]["N"]))

    def _record_with_key(self, route: str, key: str) -> RecordResult:
        for attempt in range(MAX_ATTEMPTS):
            reasons = self._record_once(route, key)
            if not reasons:
                return RecordResult(count=self._get(route))
            if reasons[0] == "ConditionalCheckFailed":
                return self._replay(route, key)
            if _THROTTLING_REASONS.intersection(reasons):
                raise StoreError(
                    StoreErrorKind.THROTTLED,
                    f"dynamodb: transaction cancelled {reasons}",
                    table=self._table,
                    operation="transact_write_items",
                )
            if "TransactionConflict" not in reasons:
                raise RuntimeError(f"transaction cancelled: {reasons}")
            self._observer.conflict_retried()
            self._backoff(attempt)
        raise StoreError(
            StoreErrorKind.UNAVAILABLE,
            "dynamodb: transaction conflicts persisted",
            table=self._table,
            operation="transact_write_items",
        )

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
                self._keys_table,
                TransactItems=[{"Put": put_key}, {"Update": self._increment(route)}],
            )
        except ClientError as exc:  # a cancellation is no StoreError: _call passes it on
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons")
            if not reasons:  # one per item, always: without them nothing tells what happened
                raise RuntimeError("transaction cancelled without reasons") from exc
            return [str(reason.get("Code", "None")) for reason in reasons]
        return []

    def _replay(self, route: str, key: str) -> RecordResult:
        response = self._call(
            "get_item",
            self._keys_table,
            TableName=self._keys_table,
            Key={KEY_ATTR: {"S": key}},
            ConsistentRead=True,
        )
        key_route = response.get("Item", {}).get(ROUTE_ATTR, {}).get("S", route)
        if key_route != route:
            raise IdempotencyKeyMismatch(key_route)
        return RecordResult(count=self._get(route), replayed=True)

    def _get(self, route: str) -> int:
        response = self._call(
            "get_item",
            self._table,
            TableName=self._table,
            Key={ROUTE_ATTR: {"S": route}},
            ConsistentRead=True,
            ProjectionExpression="#count",
            ExpressionAttributeNames={"#count": COUNT_ATTR},
        )
        return int(response.get("Item", {}).get(COUNT_ATTR, {}).get("N", 0))

    def _get_many(self, routes: Sequence[str]) -> dict[str, int]:
        counts = dict.fromkeys(routes, 0)
        request: dict[str, Any] = {
            self._table: {
                "Keys": [{ROUTE_ATTR: {"S": route}} for route in counts],
                "ConsistentRead": True,
                "ProjectionExpression": "#route, #count",
                "ExpressionAttributeNames": {"#route": ROUTE_ATTR, "#count": COUNT_ATTR},
            }
        }
        for attempt in range(MAX_ATTEMPTS):
            response = self._call("batch_get_item", self._table, RequestItems=request)
            for item in response.get("Responses", {}).get(self._table, []):
                counts[item[ROUTE_ATTR]["S"]] = int(item[COUNT_ATTR]["N"])
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return counts
            self._backoff(attempt)
        raise StoreError(
            StoreErrorKind.UNAVAILABLE,
            "dynamodb: batch keys stayed unprocessed",
            table=self._table,
            operation="batch_get_item",
        )

    def _ping(self) -> None:
        # A read of a key that never exists in each table, with the service's own rights.
        self._call(
            "get_item", self._table, TableName=self._table, Key={ROUTE_ATTR: {"S": PROBE_KEY}}
        )
        self._call(
            "get_item",
            self._keys_table,
            TableName=self._keys_table,
            Key={KEY_ATTR: {"S": PROBE_KEY}},
        )
