"""The DynamoDB store: atomic counters, and exactly-once records through transactions.

A plain record is one `UpdateItem ADD`. A record with an idempotency key is one
`TransactWriteItems` that writes the key (only if it is new or expired) together with the
counter increment, so either both happen or neither does.

Each call is DynamoDB's JSON protocol over aiohttp on the event loop, signed by aiodynamo's
SigV4 signer with keys from botocore's credential chain. This module owns the retries, because
it alone knows which calls a repeat cannot count twice (see `_call`); aiodynamo's own client
loop retries a 500 and a dropped connection, which may repeat an applied write.
"""

import asyncio
import contextlib
import json
import random
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiodynamo.credentials import Key
from aiodynamo.sign import Request, signed_dynamo_request
from yarl import URL

from kiusys_app.stores.aws_credentials import ChainCredentials, CredentialsError
from kiusys_app.stores.base import (
    IDEMPOTENCY_TTL_SECONDS,
    IdempotencyKeyMismatch,
    NullObserver,
    RecordResult,
    StoreError,
    StoreErrorKind,
    StoreObserver,
)

# The seed's data model: hash key `flight-route` (S) and the counter `record` (N).
ROUTE_ATTR = "flight-route"
COUNT_ATTR = "record"
# The idempotency table: hash key `idempotency-key` (S), the route it was used for, the epoch
# second after which DynamoDB's TTL may delete it, and the id of the request that wrote it.
KEY_ATTR = "idempotency-key"
EXPIRES_ATTR = "expires-at"
WRITER_ATTR = "written-by"
# A key that is never written: readiness reads it, and tries writes of it that a condition
# always refuses, to prove each table answers to the service's rights.
PROBE_KEY = "-readyz-"
_NEVER = "attribute_exists(#key) AND attribute_not_exists(#key)"

# Error types that DynamoDB answers before it applies anything, and that ask us to slow down.
_THROTTLING_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
# Error types that no retry gets past: rights, credentials, tables, request shape.
_MISCONFIGURED_CODES = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
        "ResourceNotFoundException",
        "ValidationException",
    }
)
# Server-side failures: the request may or may not have been applied.
_SERVER_ERROR_CODES = frozenset(
    {"InternalServerError", "ServiceUnavailable", "TransactionInProgressException"}
)
_CANCELLED = "TransactionCanceledException"
_CONDITION_FAILED = "ConditionalCheckFailedException"
_THROTTLING_REASONS = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded"})
# Status codes of an answer that is not DynamoDB's (a proxy, a load balancer) that are worth a
# retry; any other foreign answer means the endpoint is wrong.
_TRANSIENT_FOREIGN_STATUSES = frozenset({500, 502, 503, 504})
# DynamoDB answers in its own JSON protocol, errors included.
_CONTENT_TYPE = "application/x-amz-json"

# Every store call ends within this budget, retries and pauses included: well inside the
# server's 20 s drain, so a rollout never cuts a call short, and long enough for several
# backed-off retries of throttling or a refused connection.
CALL_BUDGET_SECONDS = 5.0
# Readiness's budget: under the kubelet's probe timeout (2 s), so that a slow or throttling
# store answers the probe (ready) before the kubelet gives up on it (not ready).
PING_BUDGET_SECONDS = 1.0
# One attempt's ceiling. DynamoDB answers in milliseconds; an attempt this slow is lost.
ATTEMPT_TIMEOUT_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 1.0
# Rounds of cancelled transactions and of unprocessed batch keys.
MAX_ATTEMPTS = 6
_BACKOFF_BASE_SECONDS = 0.02
_BACKOFF_CAP_SECONDS = 0.5
# Connections per process to DynamoDB.
POOL_SIZE = 64


@dataclass(frozen=True, slots=True)
class Answer:
    """What the endpoint answered to one request."""

    status: int
    content_type: str | None
    body: bytes


# Sends one signed request within a timeout (seconds). A test may wrap it to inject faults.
Transport = Callable[[Request, float], Awaitable[Answer]]


class _Failed(Exception):
    """One attempt failed. `maybe_applied`: it was sent, and nothing says it was not applied."""

    def __init__(self, kind: StoreErrorKind, reason: str, *, maybe_applied: bool) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.maybe_applied = maybe_applied


class _ConditionFailed(Exception):
    """A write's condition did not hold, so nothing was written."""


class _Cancelled(Exception):
    """A transaction was cancelled; `reasons` has one code per item."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(reasons)
        self.reasons = reasons


def _error_of(answer: Answer) -> tuple[str, str, dict[str, Any]] | None:
    """DynamoDB's error type, message and body; None for an answer that is not DynamoDB's.
    The `__type` field marks it, whatever the content type (moto's is `application/json`)."""
    try:
        body = json.loads(answer.body)
        code = str(body["__type"]).rpartition("#")[2]
    except (ValueError, KeyError, TypeError):
        return None
    return code, str(body.get("message") or body.get("Message") or ""), body


def classify(answer: Answer) -> _Failed | _Cancelled | _ConditionFailed | RuntimeError:
    """What a non-200 answer means. A RuntimeError is an error type this service does not know
    for a request DynamoDB refused: only a bug here sends such a request."""
    error = _error_of(answer)
    if error is None:
        reason = f"dynamodb: the endpoint answered {answer.status} {answer.content_type!r}"
        if answer.status in _TRANSIENT_FOREIGN_STATUSES:
            return _Failed(StoreErrorKind.UNAVAILABLE, reason, maybe_applied=True)
        return _Failed(StoreErrorKind.MISCONFIGURED, f"{reason}, not DynamoDB", maybe_applied=False)
    code, message, body = error
    reason = f"dynamodb: {code}: {message}".rstrip(": ")
    if code in _THROTTLING_CODES:
        return _Failed(StoreErrorKind.THROTTLED, reason, maybe_applied=False)
    if code in _MISCONFIGURED_CODES:
        return _Failed(StoreErrorKind.MISCONFIGURED, reason, maybe_applied=False)
    if code == _CONDITION_FAILED:
        return _ConditionFailed(reason)
    if code == _CANCELLED:
        reasons = body.get("CancellationReasons")
        if not reasons:  # one per item, always: without them nothing tells what happened
            return RuntimeError("transaction cancelled without reasons")
        return _Cancelled([str(reason.get("Code", "None")) for reason in reasons])
    if code in _SERVER_ERROR_CODES or answer.status >= 500:
        return _Failed(StoreErrorKind.UNAVAILABLE, reason, maybe_applied=True)
    return RuntimeError(f"{reason} (HTTP {answer.status})")


class DynamoDBStore:
    def __init__(
        self,
        *,
        table_name: str,
        idempotency_table_name: str,
        region: str,
        endpoint_url: str,
        credentials: Callable[[], Awaitable[Key | None]] | None = None,
        tls: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        observer: StoreObserver | None = None,
    ) -> None:
        self._table = table_name
        self._keys_table = idempotency_table_name
        self._region = region
        self._endpoint = URL(endpoint_url)
        self._key = credentials or ChainCredentials().key
        self._tls = tls or ssl.create_default_context()
        self._clock = clock
        self._sleep = sleep
        self._observer = observer or NullObserver()
        self._session: aiohttp.ClientSession | None = None
        self.transport: Transport = self._post
        # Built once: the increment is the same for every route but the key.
        self._increment_params = {
            "TableName": table_name,
            "UpdateExpression": "ADD #count :one",
            "ExpressionAttributeNames": {"#count": COUNT_ATTR},
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }

    async def record(self, route: str, idempotency_key: str | None = None) -> RecordResult:
        deadline = time.monotonic() + CALL_BUDGET_SECONDS
        if idempotency_key is None:
            return await self._record(route, deadline)
        return await self._record_with_key(route, idempotency_key, deadline)

    async def get(self, route: str) -> int:
        return await self._get(route, time.monotonic() + CALL_BUDGET_SECONDS)

    async def get_many(self, routes: Sequence[str]) -> dict[str, int]:
        return await self._get_many(routes, time.monotonic() + CALL_BUDGET_SECONDS)

    async def ping(self, writes: bool = False) -> None:
        # A read of a key that never exists in each table, with the service's own rights; with
        # `writes`, the two writes the service makes, of that key, with a condition that never
        # holds. DynamoDB authorizes a request before it evaluates its condition, so
        # ConditionalCheckFailed proves the right, AccessDenied refuses it, and nothing is
        # written (a failed condition still costs a write unit).
        deadline = time.monotonic() + PING_BUDGET_SECONDS
        probes = ((self._table, ROUTE_ATTR), (self._keys_table, KEY_ATTR))
        for table, key in probes:
            await self._call(
                "GetItem",
                table,
                {"TableName": table, "Key": {key: {"S": PROBE_KEY}}},
                deadline=deadline,
                repeatable=True,
            )
        if not writes:
            return
        never = {"ConditionExpression": _NEVER}
        await self._refused_write(
            "UpdateItem",
            {
                **never,
                "TableName": self._table,
                "Key": {ROUTE_ATTR: {"S": PROBE_KEY}},
                "UpdateExpression": "ADD #count :one",
                "ExpressionAttributeNames": {"#key": ROUTE_ATTR, "#count": COUNT_ATTR},
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            },
            deadline,
        )
        await self._refused_write(
            "PutItem",
            {
                **never,
                "TableName": self._keys_table,
                "Item": {KEY_ATTR: {"S": PROBE_KEY}},
                "ExpressionAttributeNames": {"#key": KEY_ATTR},
            },
            deadline,
        )

    async def _refused_write(self, action: str, payload: dict[str, Any], deadline: float) -> None:
        """A write whose condition never holds: repeatable, as it never applies. Its refusal
        proves the right (so would a success, from a stand-in that ignores conditions)."""
        with contextlib.suppress(_ConditionFailed):
            await self._call(
                action, payload["TableName"], payload, deadline=deadline, repeatable=True
            )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    # One call: its attempts, and what each answer means.

    async def _post(self, request: Request, timeout: float) -> Answer:
        if self._session is None:  # made here, inside the running event loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=POOL_SIZE, ssl=self._tls)
            )
        async with self._session.post(
            request.url,
            data=request.body,
            headers=request.headers,
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=CONNECT_TIMEOUT_SECONDS),
        ) as response:
            body = await response.read()
            return Answer(response.status, response.headers.get("Content-Type"), body)

    async def _attempt(self, action: str, payload: dict[str, Any], timeout: float) -> Any:
        try:
            key = await self._key()
        except CredentialsError as exc:
            raise _Failed(exc.kind, f"dynamodb: {exc.reason}", maybe_applied=False) from None
        if key is None:
            raise _Failed(
                StoreErrorKind.MISCONFIGURED,
                "dynamodb: no AWS credentials found",
                maybe_applied=False,
            )
        request = signed_dynamo_request(
            key=key, payload=payload, action=action, region=self._region, endpoint=self._endpoint
        )
        try:
            answer = await self.transport(request, timeout)
        except aiohttp.ClientConnectorCertificateError as exc:
            # Not the endpoint we trust (or AWS_CA_BUNDLE lacks its CA): no retry helps.
            raise _Failed(
                StoreErrorKind.MISCONFIGURED, f"dynamodb: {exc!r}", maybe_applied=False
            ) from None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # No connection was made, so nothing was sent.
            raise _Failed(
                StoreErrorKind.UNAVAILABLE, f"dynamodb: {exc!r}", maybe_applied=False
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            # A reset, a late or cut answer: the request may have arrived.
            raise _Failed(
                StoreErrorKind.UNAVAILABLE, f"dynamodb: {exc!r}", maybe_applied=True
            ) from None
        if answer.status != 200:
            raise classify(answer)
        if not (answer.content_type or "").startswith(_CONTENT_TYPE):
            raise _Failed(
                StoreErrorKind.MISCONFIGURED,
                f"dynamodb: the endpoint answered {answer.content_type!r}, not DynamoDB",
                maybe_applied=False,
            )
        try:
            return json.loads(answer.body)
        except ValueError:
            raise _Failed(
                StoreErrorKind.MISCONFIGURED,
                "dynamodb: the endpoint answered a body that is not JSON",
                maybe_applied=False,
            ) from None

    async def _call(
        self,
        action: str,
        table: str,
        payload: dict[str, Any],
        *,
        deadline: float,
        repeatable: bool,
    ) -> Any:
        """One DynamoDB call, tried again while that cannot count anything twice and the budget
        lasts. An attempt that was not applied (throttled, never connected) is always tried
        again; one that may have been applied only if the call is `repeatable`: a read, or a
        keyed record, whose condition turns a repeat into a no-op."""
        attempt = 0
        while True:
            timeout = min(ATTEMPT_TIMEOUT_SECONDS, deadline - time.monotonic())
            try:
                return await self._attempt(action, payload, timeout)
            except _Failed as failure:
                kind = failure.kind
                if failure.maybe_applied and not repeatable:
                    kind = StoreErrorKind.OUTCOME_UNKNOWN
                pause = self._backoff(attempt)
                retry = kind in (StoreErrorKind.THROTTLED, StoreErrorKind.UNAVAILABLE)
                if not retry or time.monotonic() + pause >= deadline:
                    raise StoreError(kind, failure.reason, table=table, operation=action) from None
                await self._sleep(pause)
                attempt += 1

    def _backoff(self, attempt: int) -> float:
        """Full jitter: a random wait up to an exponentially growing, capped ceiling."""
        ceiling = min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2**attempt)
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography

    # The store's calls.

    def _increment(self, route: str) -> dict[str, Any]:
        return {**self._increment_params, "Key": {ROUTE_ATTR: {"S": route}}}

    async def _record(self, route: str, deadline: float) -> RecordResult:
        response = await self._call(
            "UpdateItem",
            self._table,
            {**self._increment(route), "ReturnValues": "UPDATED_NEW"},
            deadline=deadline,
            repeatable=False,
        )
        return RecordResult(count=int(response["Attributes"][COUNT_ATTR]["N"]))

    async def _record_with_key(self, route: str, key: str, deadline: float) -> RecordResult:
        # Written with the key: a key found holding it was written by this very request.
        writer = secrets.token_hex(16)
        for attempt in range(MAX_ATTEMPTS):
            try:
                await self._record_once(route, key, writer, deadline)
            except _Cancelled as cancelled:
                reasons = cancelled.reasons
            else:
                return RecordResult(count=await self._get(route, deadline))
            if reasons[0] == "ConditionalCheckFailed":
                return await self._replay(route, key, writer, deadline)
            if _THROTTLING_REASONS.intersection(reasons):
                raise StoreError(
                    StoreErrorKind.THROTTLED,
                    f"dynamodb: transaction cancelled {reasons}",
                    table=self._table,
                    operation="TransactWriteItems",
                )
            if "TransactionConflict" not in reasons:
                raise RuntimeError(f"transaction cancelled: {reasons}")
            self._observer.conflict_retried()
            await self._sleep(self._backoff(attempt))
        raise StoreError(
            StoreErrorKind.UNAVAILABLE,
            "dynamodb: transaction conflicts persisted",
            table=self._table,
            operation="TransactWriteItems",
        )

    async def _record_once(self, route: str, key: str, writer: str, deadline: float) -> None:
        """Write the key and the increment in one transaction; raises _Cancelled if cancelled."""
        now = int(self._clock())
        put_key = {
            "TableName": self._keys_table,
            "Item": {
                KEY_ATTR: {"S": key},
                ROUTE_ATTR: {"S": route},
                EXPIRES_ATTR: {"N": str(now + IDEMPOTENCY_TTL_SECONDS)},
                WRITER_ATTR: {"S": writer},
            },
            # TTL deletion lags by up to days, so an expired key is overwritten, not honoured.
            "ConditionExpression": "attribute_not_exists(#key) OR #expires <= :now",
            "ExpressionAttributeNames": {"#key": KEY_ATTR, "#expires": EXPIRES_ATTR},
            "ExpressionAttributeValues": {":now": {"N": str(now)}},
        }
        await self._call(
            "TransactWriteItems",
            self._keys_table,
            {"TransactItems": [{"Put": put_key}, {"Update": self._increment(route)}]},
            deadline=deadline,
            repeatable=True,
        )

    async def _replay(self, route: str, key: str, writer: str, deadline: float) -> RecordResult:
        response = await self._call(
            "GetItem",
            self._keys_table,
            {"TableName": self._keys_table, "Key": {KEY_ATTR: {"S": key}}, "ConsistentRead": True},
            deadline=deadline,
            repeatable=True,
        )
        item = response.get("Item", {})
        key_route = item.get(ROUTE_ATTR, {}).get("S", route)
        if key_route != route:
            raise IdempotencyKeyMismatch(key_route)
        # This request's own earlier attempt, applied though its answer was lost: not a replay.
        own = item.get(WRITER_ATTR, {}).get("S") == writer
        return RecordResult(count=await self._get(route, deadline), replayed=not own)

    async def _get(self, route: str, deadline: float) -> int:
        response = await self._call(
            "GetItem",
            self._table,
            {
                "TableName": self._table,
                "Key": {ROUTE_ATTR: {"S": route}},
                "ConsistentRead": True,
                "ProjectionExpression": "#count",
                "ExpressionAttributeNames": {"#count": COUNT_ATTR},
            },
            deadline=deadline,
            repeatable=True,
        )
        return int(response.get("Item", {}).get(COUNT_ATTR, {}).get("N", 0))

    async def _get_many(self, routes: Sequence[str], deadline: float) -> dict[str, int]:
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
            response = await self._call(
                "BatchGetItem",
                self._table,
                {"RequestItems": request},
                deadline=deadline,
                repeatable=True,
            )
            for item in response.get("Responses", {}).get(self._table, []):
                counts[item[ROUTE_ATTR]["S"]] = int(item[COUNT_ATTR]["N"])
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return counts
            await self._sleep(self._backoff(attempt))
        raise StoreError(
            StoreErrorKind.UNAVAILABLE,
            "dynamodb: batch keys stayed unprocessed",
            table=self._table,
            operation="BatchGetItem",
        )
