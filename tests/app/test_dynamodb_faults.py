"""Faults that moto never produces, injected with botocore event hooks.

The app talks to a real moto server over HTTP; each hook sits in front of botocore's send.
"""

import json
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import urllib3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ReadTimeoutError
from fastapi.testclient import TestClient

from kiusys_app.api.errors import MISCONFIGURED_DETAIL
from kiusys_app.stores import StoreError, StoreErrorKind
from kiusys_app.stores.dynamodb import DynamoDBStore
from tests.support.app import metric
from tests.support.aws import KEYS_TABLE, REGION, TABLE
from tests.support.processes import free_port

RECORD = "/v1/routes/AR1133/transactions"
# The content type of every successful DynamoDB answer.
JSON_PROTOCOL = {"content-type": "application/x-amz-json-1.0"}


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def error_response(request: AWSPreparedRequest, code: str, **extra: Any) -> AWSResponse:
    body = json.dumps(
        {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": code, **extra}
    )
    return AWSResponse(request.url, 400, {"x-amzn-ErrorType": code}, _Raw(body.encode()))


class Hook:
    """Answers the first `times` calls of one operation itself; counts every call."""

    def __init__(self, client: TestClient, operation: str, times: int, answer: Any) -> None:
        self.calls = 0
        self.times = times
        self.answer = answer
        events = client.app.state.store.client.meta.events  # type: ignore[attr-defined]
        events.register_first(f"before-send.dynamodb.{operation}", self)

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        self.calls += 1
        if self.calls > self.times:
            return None
        return self.answer(request)  # type: ignore[no-any-return]


def time_out_after_sending(request: AWSPreparedRequest) -> None:
    """Deliver the request, so it takes effect, then behave as if the answer never came."""
    urllib3.request(request.method, request.url, body=request.body, headers=dict(request.headers))
    raise ReadTimeoutError(endpoint_url=request.url)


def errors(kind: str) -> float:
    return metric("kiusys_store_errors_total", kind=kind)


def count(client: TestClient) -> int:
    return int(client.get(RECORD).json()["transactions"])


def test_timeout_after_send_then_sdk_retry_counts_once(moto_client: TestClient) -> None:
    hook = Hook(moto_client, "TransactWriteItems", 1, time_out_after_sending)
    response = moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    # botocore retried the transaction; the retry found the key already written.
    assert hook.calls == 2
    assert response.status_code == 200
    assert response.headers["Idempotent-Replayed"] == "true"
    assert count(moto_client) == 1


def test_timeout_on_every_attempt_then_client_retry_counts_once(moto_client: TestClient) -> None:
    hook = Hook(moto_client, "TransactWriteItems", 99, time_out_after_sending)
    failed = moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    assert failed.status_code == 503
    assert failed.headers["Retry-After"].isdigit()
    hook.times = 0
    retried = moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    assert (retried.status_code, retried.headers["Idempotent-Replayed"]) == (200, "true")
    assert count(moto_client) == 1


def test_transaction_conflict_is_retried_and_counts_once(moto_client: TestClient) -> None:
    reasons = [{"Code": "None"}, {"Code": "TransactionConflict", "Message": "conflict"}]
    hook = Hook(
        moto_client,
        "TransactWriteItems",
        2,
        lambda request: error_response(
            request, "TransactionCanceledException", CancellationReasons=reasons
        ),
    )
    retried_before = errors("conflict_retried")
    response = moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    assert hook.calls == 3
    assert (response.status_code, response.json()["transactions"]) == (201, 1)
    assert count(moto_client) == 1
    assert errors("conflict_retried") == retried_before + 2


@pytest.mark.parametrize(
    ("operation", "headers"),
    [("UpdateItem", {}), ("TransactWriteItems", {"Idempotency-Key": "order-1"})],
)
def test_throttling_is_503_with_retry_after_then_succeeds(
    moto_client: TestClient, operation: str, headers: dict[str, str]
) -> None:
    hook = Hook(
        moto_client,
        operation,
        99,
        lambda request: error_response(request, "ProvisionedThroughputExceededException"),
    )
    throttled_before = errors("throttled")
    throttled = moto_client.post(RECORD, headers=headers)
    assert throttled.status_code == 503
    assert errors("throttled") == throttled_before + 1
    assert int(throttled.headers["Retry-After"]) >= 1
    assert hook.calls >= 2, "botocore's standard mode retries throttling before giving up"
    assert count(moto_client) == 0
    hook.times = 0
    assert moto_client.post(RECORD, headers=headers).status_code == 201
    assert count(moto_client) == 1


def test_unprocessed_batch_keys_are_asked_for_again(moto_client: TestClient) -> None:
    moto_client.post(RECORD)
    moto_client.post("/v1/routes/LA0001/transactions")

    def nothing_processed(request: AWSPreparedRequest) -> AWSResponse:
        asked = json.loads(request.body or b"{}")["RequestItems"]
        body = json.dumps({"Responses": {"flights-db": []}, "UnprocessedKeys": asked}).encode()
        return AWSResponse(request.url, 200, JSON_PROTOCOL, _Raw(body))

    hook = Hook(moto_client, "BatchGetItem", 2, nothing_processed)
    response = moto_client.get("/v1/transactions?route=AR1133&route=LA0001&route=G31234")
    assert hook.calls == 3
    assert response.json() == {"AR1133": 1, "LA0001": 1, "G31234": 0}


def test_batch_keys_left_unprocessed_give_503(moto_client: TestClient) -> None:
    def nothing_processed(request: AWSPreparedRequest) -> AWSResponse:
        asked = json.loads(request.body or b"{}")["RequestItems"]
        body = json.dumps({"Responses": {}, "UnprocessedKeys": asked}).encode()
        return AWSResponse(request.url, 200, JSON_PROTOCOL, _Raw(body))

    Hook(moto_client, "BatchGetItem", 99, nothing_processed)
    response = moto_client.get("/v1/transactions?route=AR1133")
    assert response.status_code == 503
    assert "Retry-After" in response.headers


@pytest.mark.parametrize("code", ["AccessDeniedException", "ResourceNotFoundException"])
def test_a_refused_role_or_a_missing_table_is_misconfigured_not_transient(
    moto_client: TestClient, code: str
) -> None:
    hook = Hook(moto_client, "UpdateItem", 99, lambda request: error_response(request, code))
    ready = Hook(moto_client, "GetItem", 99, lambda request: error_response(request, code))
    before = errors("misconfigured")
    response = moto_client.post(RECORD)
    assert (response.status_code, response.json()) == (503, {"detail": MISCONFIGURED_DETAIL})
    assert "Retry-After" not in response.headers, "a retry cannot help"
    assert hook.calls == 1, "nothing is retried"
    assert moto_client.get("/readyz").status_code == 503
    assert ready.calls == 1
    assert errors("misconfigured") == before + 2


def keys_table_reads(answer: Any) -> Any:
    """A GetItem hook for the idempotency-key table only; other reads go to moto."""

    def hook(request: AWSPreparedRequest) -> AWSResponse | None:
        if json.loads(request.body or b"{}")["TableName"] != KEYS_TABLE:
            return None
        return answer(request)  # type: ignore[no-any-return]

    return hook


def test_a_replay_reads_its_key_strongly_consistent(moto_client: TestClient) -> None:
    reads: list[dict[str, Any]] = []
    Hook(moto_client, "GetItem", 99, keys_table_reads(lambda r: reads.append(json.loads(r.body))))
    moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    replay = moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (200, "true")
    (read,) = reads
    assert read["Key"] == {"idempotency-key": {"S": "order-1"}}
    assert read["ConsistentRead"] is True, "an eventually consistent read may miss the key"


def test_a_key_gone_since_its_transaction_failed_is_still_a_replay(
    moto_client: TestClient,
) -> None:
    """The transaction found the key; by the read it had expired: the same route's replay."""
    moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    no_item = keys_table_reads(
        lambda request: AWSResponse(request.url, 200, JSON_PROTOCOL, _Raw(b"{}"))
    )
    Hook(moto_client, "GetItem", 99, no_item)
    replay = moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (200, "true")
    assert replay.json()["transactions"] == 1


async def store_error_of(
    call: Callable[[DynamoDBStore], Awaitable[Any]],
    hooks: dict[str, Callable[..., AWSResponse]],
    **options: Any,
) -> StoreError:
    """The StoreError that `call` raises on a fresh store (moto in-process, or `options`), with
    `hooks` answering in front of botocore's send: operation -> answer."""
    store = DynamoDBStore(
        table_name=TABLE, idempotency_table_name=KEYS_TABLE, region=REGION, **options
    )
    for operation, answer in hooks.items():
        store.client.meta.events.register_first(f"before-send.dynamodb.{operation}", answer)
    try:
        with pytest.raises(StoreError) as failed:
            await call(store)
    finally:
        await store.aclose()
    return failed.value


@pytest.mark.anyio
async def test_unprocessed_keys_are_asked_again_after_a_capped_exponential_backoff(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    asked: list[dict[str, Any]] = []

    def nothing_processed(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        keys = json.loads(request.body or b"{}")["RequestItems"]
        asked.append(keys)
        body = json.dumps({"UnprocessedKeys": keys}).encode()  # and no "Responses" at all
        return AWSResponse(request.url, 200, JSON_PROTOCOL, _Raw(body))

    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # the top of each jitter range
    error = await store_error_of(
        lambda store: store.get_many(["AR1133"]),
        {"BatchGetItem": nothing_processed},
        sleep=slept.append,
    )
    assert (error.kind, error.reason, error.table, error.operation) == (
        StoreErrorKind.UNAVAILABLE,
        "dynamodb: batch keys stayed unprocessed",
        TABLE,
        "batch_get_item",
    )
    assert slept == [0.02, 0.04, 0.08, 0.16, 0.32, 0.5]
    assert all(keys[TABLE]["ConsistentRead"] is True for keys in asked)


@pytest.mark.anyio
async def test_a_refused_batch_read_names_its_table_and_operation(aws: Any) -> None:
    refused = {
        "BatchGetItem": lambda request, **_: error_response(request, "AccessDeniedException")
    }
    error = await store_error_of(lambda store: store.get_many(["AR1133"]), refused)
    assert (error.kind, error.table, error.operation) == (
        StoreErrorKind.MISCONFIGURED,
        TABLE,
        "batch_get_item",
    )
    assert error.reason == "dynamodb: AccessDeniedException: AccessDeniedException"


def bare_error(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
    """DynamoDB's error shape with a type and no message."""
    body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#AccessDeniedException"})
    headers = {"x-amzn-ErrorType": "AccessDeniedException"}
    return AWSResponse(request.url, 400, headers, _Raw(body.encode()))


@pytest.mark.anyio
async def test_store_error_reasons_name_the_code_and_the_message_when_there_is_one(
    aws: Any,
) -> None:
    error = await store_error_of(lambda store: store.get("AR1133"), {"GetItem": bare_error})
    assert error.reason == "dynamodb: AccessDeniedException"


@pytest.mark.anyio
async def test_an_unreachable_endpoint_is_unavailable_with_the_error_named() -> None:
    error = await store_error_of(
        lambda store: store.get("AR1133"), {}, endpoint_url=f"http://127.0.0.1:{free_port()}"
    )
    assert error.kind is StoreErrorKind.UNAVAILABLE
    assert error.reason.startswith(
        "dynamodb: EndpointConnectionError: Could not connect to the endpoint URL"
    )


def test_40_readiness_probes_within_2_s_make_at_most_4_calls_per_table(
    moto_client: TestClient,
) -> None:
    tables: list[str] = []
    Hook(
        moto_client,
        "GetItem",
        99,
        lambda request: tables.append(json.loads(request.body)["TableName"]),
    )
    started = time.monotonic()
    answers = [moto_client.get("/readyz").status_code for _ in range(40)]
    elapsed = time.monotonic() - started
    assert answers == [200] * 40
    calls = {table: tables.count(table) for table in (TABLE, KEYS_TABLE)}
    print(f"40 probes in {elapsed:.2f} s: store calls per table {calls}")
    assert sum(calls.values()) == len(tables), "only the two tables are read"
    assert min(calls.values()) >= 1
    assert max(calls.values()) <= 1 + int(elapsed)


def cancelled(*codes: str) -> Callable[..., AWSResponse]:
    """A TransactWriteItems answer: cancelled, with one reason per item."""

    def answer(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        reasons = [{"Code": code} for code in codes]
        return error_response(request, "TransactionCanceledException", CancellationReasons=reasons)

    return answer


@pytest.mark.anyio
@pytest.mark.parametrize("reason", ["ThrottlingError", "ProvisionedThroughputExceeded"])
async def test_a_keyed_record_cancelled_by_throttling_is_throttled(aws: Any, reason: str) -> None:
    error = await store_error_of(
        lambda store: store.record("AR1133", "order-1"),
        {"TransactWriteItems": cancelled("None", reason)},
    )
    assert (error.kind, error.table, error.operation) == (
        StoreErrorKind.THROTTLED,
        TABLE,
        "transact_write_items",
    )
    assert reason in error.reason


@pytest.mark.anyio
async def test_keyed_record_conflicts_that_persist_are_unavailable(aws: Any) -> None:
    slept: list[float] = []
    error = await store_error_of(
        lambda store: store.record("AR1133", "order-1"),
        {"TransactWriteItems": cancelled("None", "TransactionConflict")},
        sleep=slept.append,
    )
    assert (error.kind, error.reason, error.table, error.operation) == (
        StoreErrorKind.UNAVAILABLE,
        "dynamodb: transaction conflicts persisted",
        TABLE,
        "transact_write_items",
    )
    assert len(slept) == 6, "one backoff after each of the 6 attempts"


@pytest.mark.anyio
async def test_a_keyed_record_cancelled_for_another_reason_is_a_bug(aws: Any) -> None:
    store = DynamoDBStore(table_name=TABLE, idempotency_table_name=KEYS_TABLE, region=REGION)
    store.client.meta.events.register_first(
        "before-send.dynamodb.TransactWriteItems", cancelled("None", "ValidationError")
    )
    try:
        with pytest.raises(
            RuntimeError, match=r"transaction cancelled: \['None', 'ValidationError'\]"
        ):
            await store.record("AR1133", "order-1")
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_a_reason_without_a_code_shows_as_none(aws: Any) -> None:
    """An item that did not fail has no code; the cancellation is reported item by item."""
    reasons = [{}, {"Code": "X"}]
    store = DynamoDBStore(table_name=TABLE, idempotency_table_name=KEYS_TABLE, region=REGION)
    store.client.meta.events.register_first(
        "before-send.dynamodb.TransactWriteItems",
        lambda request, **_: error_response(
            request, "TransactionCanceledException", CancellationReasons=reasons
        ),
    )
    try:
        with pytest.raises(RuntimeError, match=r"transaction cancelled: \['None', 'X'\]$"):
            await store.record("AR1133", "order-1")
    finally:
        await store.aclose()


def test_a_cancellation_without_reasons_is_no_success(moto_client: TestClient) -> None:
    Hook(
        moto_client,
        "TransactWriteItems",
        99,
        lambda request: error_response(request, "TransactionCanceledException"),
    )
    response = moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    assert (response.status_code, response.json()["detail"]) == (500, "internal error")
    assert count(moto_client) == 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("key", "operation", "table", "operation_name"),
    [
        (None, "UpdateItem", TABLE, "update_item"),
        ("order-1", "TransactWriteItems", KEYS_TABLE, "transact_write_items"),
    ],
    ids=["plain", "keyed"],
)
async def test_a_refused_record_names_its_table_and_operation(
    aws: Any, key: str | None, operation: str, table: str, operation_name: str
) -> None:
    refused = {operation: lambda request, **_: error_response(request, "AccessDeniedException")}
    error = await store_error_of(lambda store: store.record("AR1133", key), refused)
    assert (error.kind, error.table, error.operation) == (
        StoreErrorKind.MISCONFIGURED,
        table,
        operation_name,
    )


def answered(status: int, content_type: str, body: str) -> Callable[..., AWSResponse]:
    """An answer from whatever sits at the endpoint."""
    return lambda request, **_: AWSResponse(
        request.url, status, {"content-type": content_type}, _Raw(body.encode())
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (answered(502, "text/html", "<h1>Bad Gateway</h1>"), StoreErrorKind.UNAVAILABLE),
        (answered(404, "text/html", "<h1>Not Found</h1>"), StoreErrorKind.MISCONFIGURED),
        (
            answered(500, "application/x-amz-json-1.0", '{"__type": "x#SomethingNew"}'),
            StoreErrorKind.UNAVAILABLE,
        ),
    ],
    ids=["proxy-502", "proxy-404", "unknown-error-type-500"],
)
async def test_an_answer_is_classified_by_its_status_when_its_type_says_nothing(
    aws: Any, answer: Callable[..., AWSResponse], kind: StoreErrorKind
) -> None:
    error = await store_error_of(lambda store: store.get("AR1133"), {"GetItem": answer})
    assert (error.kind, error.table, error.operation) == (kind, TABLE, "get_item")


@pytest.mark.anyio
async def test_a_reason_keeps_the_whole_message(aws: Any) -> None:
    def refused(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        return error_response(request, "AccessDeniedException", message="not for role XX")

    error = await store_error_of(lambda store: store.get("AR1133"), {"GetItem": refused})
    assert error.reason == "dynamodb: AccessDeniedException: not for role XX"


def test_a_check_reads_strongly_consistent(moto_client: TestClient) -> None:
    reads: list[dict[str, Any]] = []
    Hook(moto_client, "GetItem", 99, lambda request: reads.append(json.loads(request.body)))
    moto_client.get("/v1/routes/AR1133/transactions")
    (read,) = reads
    assert (read["TableName"], read["ConsistentRead"]) == (TABLE, True)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "named"), [({"content-type": "text/html"}, "'text/html'"), ({}, "None")]
)
async def test_a_success_that_is_not_dynamodbs_is_misconfigured(
    aws: Any, headers: dict[str, str], named: str
) -> None:
    def welcome(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        return AWSResponse(request.url, 200, headers, _Raw(b"<h1>Welcome</h1>"))

    error = await store_error_of(lambda store: store.get("AR1133"), {"GetItem": welcome})
    assert (error.kind, error.reason, error.table, error.operation) == (
        StoreErrorKind.MISCONFIGURED,
        f"dynamodb: the endpoint answered {named}, not DynamoDB",
        TABLE,
        "get_item",
    )
