"""Faults that moto never produces, injected in front of the store's HTTP transport.

The app talks to a real moto server over HTTP; each hook sits between the store's signed
request and the connection, and answers some calls itself: with an error, with something that
is not DynamoDB, or by delivering the request and then losing the answer.
"""

import io
import json
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiodynamo.sign import Request
from fastapi.testclient import TestClient

from kiusys_app.api.errors import MISCONFIGURED_DETAIL, OUTCOME_UNKNOWN_DETAIL, TRANSIENT_DETAIL
from kiusys_app.api.routes import health
from kiusys_app.config import Settings
from kiusys_app.stores import StoreError, StoreErrorKind
from kiusys_app.stores.dynamodb import DynamoDBStore
from kiusys_app.stores.dynamodb import store as dynamodb_store
from kiusys_app.stores.dynamodb.wire import Answer
from tests.support.app import metric, started_app
from tests.support.aws import KEYS_TABLE, TABLE, create_tables, dynamodb
from tests.support.processes import free_port, moto_server

RECORD = "/v1/routes/AR1133/transactions"
JSON_PROTOCOL = "application/x-amz-json-1.0"

AnswerOf = Callable[[Request], Answer | None]


def error_answer(code: str, status: int = 400, **extra: Any) -> AnswerOf:
    """DynamoDB's error shape: its `__type`, a message, and what else the error carries."""
    body = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": code, **extra}
    return lambda request: Answer(status, JSON_PROTOCOL, json.dumps(body).encode())


def answered(status: int, content_type: str | None, body: str) -> AnswerOf:
    """An answer from whatever sits at the endpoint."""
    return lambda request: Answer(status, content_type, body.encode())


def raises(error: Exception) -> AnswerOf:
    def answer(request: Request) -> Answer:
        raise error

    return answer


def payload(request: Request) -> Any:
    return json.loads(request.body)


class Hook:
    """Answers the first `times` calls of one DynamoDB action itself; counts every call of it.

    With `deliver`, the request first goes on to moto, so it takes effect, and then the hook's
    answer replaces moto's: an answer that was lost on the way back.
    """

    def __init__(
        self, store: Any, action: str, times: int, answer: AnswerOf, *, deliver: bool = False
    ) -> None:
        self.calls = 0
        self.times = times
        self.answer = answer
        self.deliver = deliver
        self._action = action
        self._send = store.wire.transport
        store.wire.transport = self

    async def __call__(self, request: Request, timeout: float) -> Answer:
        if request.headers["X-Amz-Target"].rpartition(".")[2] != self._action:
            return await self._send(request, timeout)
        self.calls += 1
        if self.calls > self.times:
            return await self._send(request, timeout)
        if self.deliver:
            await self._send(request, timeout)
        return self.answer(request) or await self._send(request, timeout)


def store_of(client: TestClient) -> DynamoDBStore:
    return client.app.state.store  # type: ignore[attr-defined,no-any-return]


def errors(kind: str) -> float:
    return metric("kiusys_store_errors_total", kind=kind)


def count(client: TestClient) -> int:
    return int(client.get(RECORD).json()["transactions"])


@pytest.fixture
def short_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call budget of 0.3 s, so that a fault that persists gives up quickly."""
    monkeypatch.setattr(dynamodb_store, "CALL_BUDGET_SECONDS", 0.3)


LOST_ANSWERS = {
    "timeout": raises(TimeoutError()),
    "reset": raises(aiohttp.ServerDisconnectedError()),
    "500": error_answer("InternalServerError", status=500),
    "proxy-502": answered(502, "text/html", "<h1>Bad Gateway</h1>"),
}


@pytest.mark.parametrize("lost", LOST_ANSWERS.values(), ids=LOST_ANSWERS.keys())
def test_a_plain_record_whose_answer_is_lost_is_outcome_unknown_and_not_sent_again(
    moto_client: TestClient, lost: AnswerOf
) -> None:
    hook = Hook(store_of(moto_client), "UpdateItem", 1, lost, deliver=True)
    before = errors("outcome_unknown")
    response = moto_client.post(RECORD)
    assert (response.status_code, response.json()) == (503, {"detail": OUTCOME_UNKNOWN_DETAIL})
    assert "Retry-After" not in response.headers, "clients that honour it would send it again"
    assert hook.calls == 1, "a write that may have been applied is never sent again"
    assert count(moto_client) == 1, "delivered once, counted once"
    assert errors("outcome_unknown") == before + 1


@pytest.mark.parametrize("lost", LOST_ANSWERS.values(), ids=LOST_ANSWERS.keys())
def test_a_keyed_record_whose_answer_is_lost_finds_its_own_attempt_and_is_no_replay(
    moto_client: TestClient, lost: AnswerOf
) -> None:
    hook = Hook(store_of(moto_client), "TransactWriteItems", 1, lost, deliver=True)
    replays = metric("kiusys_idempotent_replays_total")
    response = moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    assert hook.calls == 2, "the transaction is sent again: its condition makes that safe"
    assert (response.status_code, response.json()["transactions"]) == (201, 1)
    assert "Idempotent-Replayed" not in response.headers
    assert metric("kiusys_idempotent_replays_total") == replays
    retried = moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    assert (retried.status_code, retried.headers["Idempotent-Replayed"]) == (200, "true")
    assert count(moto_client) == 1


def test_a_keyed_record_lost_on_every_attempt_is_transient_and_its_retry_counts_once(
    moto_client: TestClient, short_budget: None
) -> None:
    hook = Hook(store_of(moto_client), "TransactWriteItems", 99, raises(TimeoutError()))
    hook.deliver = True
    failed = moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    assert (failed.status_code, failed.json()) == (503, {"detail": TRANSIENT_DETAIL})
    assert failed.headers["Retry-After"] == "1", "a keyed retry is safe"
    hook.times = 0
    retried = moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    assert (retried.status_code, retried.headers["Idempotent-Replayed"]) == (200, "true")
    assert count(moto_client) == 1


def test_transaction_conflict_is_retried_and_counts_once(moto_client: TestClient) -> None:
    reasons = [{"Code": "None"}, {"Code": "TransactionConflict", "Message": "conflict"}]
    answer = error_answer("TransactionCanceledException", CancellationReasons=reasons)
    hook = Hook(store_of(moto_client), "TransactWriteItems", 2, answer)
    retried_before = errors("conflict_retried")
    response = moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    assert hook.calls == 3
    assert (response.status_code, response.json()["transactions"]) == (201, 1)
    assert count(moto_client) == 1
    assert errors("conflict_retried") == retried_before + 2


NOT_APPLIED = {
    "throttled": (error_answer("ProvisionedThroughputExceededException"), "throttled"),
    "never-connected": (raises(aiohttp.ConnectionTimeoutError()), "unavailable"),
    # A write to an item that a transaction is writing: refused, and applied nothing.
    "transaction-conflict": (error_answer("TransactionConflictException"), "unavailable"),
}
each_fault_not_applied = pytest.mark.parametrize(
    "fault", NOT_APPLIED.values(), ids=NOT_APPLIED.keys()
)
plain_and_keyed = pytest.mark.parametrize(
    ("action", "headers"),
    [("UpdateItem", {}), ("TransactWriteItems", {"Idempotency-Key": "order-1"})],
    ids=["plain", "keyed"],
)


@each_fault_not_applied
@plain_and_keyed
def test_what_was_not_applied_is_retried_then_succeeds(
    moto_client: TestClient, fault: tuple[AnswerOf, str], action: str, headers: dict[str, str]
) -> None:
    answer, _ = fault
    hook = Hook(store_of(moto_client), action, 2, answer)
    response = moto_client.post(RECORD, headers=headers)
    assert hook.calls == 3
    assert (response.status_code, response.json()["transactions"]) == (201, 1)
    assert count(moto_client) == 1


@each_fault_not_applied
@plain_and_keyed
def test_what_stays_unapplied_is_503_with_retry_after_within_the_budget(
    moto_client: TestClient,
    short_budget: None,
    fault: tuple[AnswerOf, str],
    action: str,
    headers: dict[str, str],
) -> None:
    answer, kind = fault
    hook = Hook(store_of(moto_client), action, 99, answer)
    before = errors(kind)
    started = time.monotonic()
    response = moto_client.post(RECORD, headers=headers)
    elapsed = time.monotonic() - started
    assert (response.status_code, response.json()) == (503, {"detail": TRANSIENT_DETAIL})
    assert response.headers["Retry-After"] == "1"
    assert errors(kind) == before + 1
    assert hook.calls >= 2, "retried before giving up"
    assert elapsed < 0.3 + 0.5, "the budget ends the retries"
    assert count(moto_client) == 0
    hook.times = 0
    assert moto_client.post(RECORD, headers=headers).status_code == 201
    assert count(moto_client) == 1


def test_unprocessed_batch_keys_are_asked_for_again(moto_client: TestClient) -> None:
    moto_client.post(RECORD)
    moto_client.post("/v1/routes/LA0001/transactions")

    def nothing_processed(request: Request) -> Answer:
        asked = payload(request)["RequestItems"]
        body = {"Responses": {TABLE: []}, "UnprocessedKeys": asked}
        return Answer(200, JSON_PROTOCOL, json.dumps(body).encode())

    hook = Hook(store_of(moto_client), "BatchGetItem", 2, nothing_processed)
    response = moto_client.get("/v1/transactions?route=AR1133&route=LA0001&route=G31234")
    assert hook.calls == 3
    assert response.json() == {"AR1133": 1, "LA0001": 1, "G31234": 0}


def test_batch_keys_left_unprocessed_give_503(moto_client: TestClient) -> None:
    def nothing_processed(request: Request) -> Answer:
        body = {"Responses": {}, "UnprocessedKeys": payload(request)["RequestItems"]}
        return Answer(200, JSON_PROTOCOL, json.dumps(body).encode())

    Hook(store_of(moto_client), "BatchGetItem", 99, nothing_processed)
    response = moto_client.get("/v1/transactions?route=AR1133")
    assert response.status_code == 503
    assert "Retry-After" in response.headers


@pytest.mark.parametrize("code", ["AccessDeniedException", "ResourceNotFoundException"])
def test_a_refused_role_or_a_missing_table_is_misconfigured_not_transient(
    moto_client: TestClient, code: str
) -> None:
    moto_client.post(RECORD)  # the route's day is known: the next record is its write alone
    hook = Hook(store_of(moto_client), "UpdateItem", 99, error_answer(code))
    ready = Hook(store_of(moto_client), "GetItem", 99, error_answer(code))
    before = errors("misconfigured")
    response = moto_client.post(RECORD)
    assert (response.status_code, response.json()) == (503, {"detail": MISCONFIGURED_DETAIL})
    assert "Retry-After" not in response.headers, "a retry cannot help"
    assert hook.calls == 1, "nothing is retried"
    assert moto_client.get("/readyz").status_code == 503
    assert ready.calls == 1
    assert errors("misconfigured") == before + 2


def test_an_unknown_4xx_makes_a_proven_pod_unready_and_the_log_names_it(
    moto_client: TestClient, log_output: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DynamoDB's 400s other than throttling need a fix on the client's side: this pod's."""
    monkeypatch.setattr(health, "READINESS_REUSE_SECONDS", 0.0)
    assert moto_client.get("/readyz").status_code == 200, "proven"
    Hook(store_of(moto_client), "GetItem", 99, error_answer("WeirdNewException"))
    answer = moto_client.get("/readyz")
    assert (answer.status_code, answer.json()) == (503, {"detail": MISCONFIGURED_DETAIL})
    (logged,) = [line for line in log_output.getvalue().splitlines() if "misconfigured" in line]
    assert "WeirdNewException" in logged


def test_a_store_that_fails_before_the_first_proof_keeps_the_pod_unready_until_it_answers(
    moto_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "READINESS_REUSE_SECONDS", 0.0)
    monkeypatch.setattr(dynamodb_store, "PING_BUDGET_SECONDS", 0.3)
    hook = Hook(store_of(moto_client), "GetItem", 99, error_answer("InternalServerError", 500))
    answers = [moto_client.get("/readyz") for _ in range(3)]
    assert [(a.status_code, a.json()) for a in answers] == [(503, {"detail": TRANSIENT_DETAIL})] * 3
    hook.times = 0  # the store is back
    assert moto_client.get("/readyz").status_code == 200
    hook.times = 99  # and fails again, now for a proven pod
    assert moto_client.get("/readyz").status_code == 200


def denied(action: str, table: str) -> AnswerOf:
    """AccessDenied as IAM words it, for `action` on `table` only; the rest goes to moto."""
    message = (
        "User: arn:aws:sts::123456789012:assumed-role/kiusys-app/pod is not authorized to "
        f"perform: dynamodb:{action} on resource: arn:aws:dynamodb:us-east-1:123456789012:"
        f"table/{table} because no identity-based policy allows the dynamodb:{action} action"
    )
    refuse = error_answer("AccessDeniedException", message=message)
    return lambda request: refuse(request) if payload(request)["TableName"] == table else None


@pytest.mark.parametrize(
    ("action", "table"),
    [("UpdateItem", TABLE), ("PutItem", TABLE), ("PutItem", KEYS_TABLE), ("Query", TABLE)],
)
def test_a_role_that_lost_a_write_right_is_never_ready_and_the_log_names_it(
    moto_client: TestClient,
    log_output: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    table: str,
) -> None:
    """Reads still work, so only the write probe can tell; a pod started so never gets ready."""
    monkeypatch.setattr(health, "READINESS_REUSE_SECONDS", 0.0)
    deny = denied(action, table)
    refused_calls = []

    def counted(request: Request) -> Answer | None:
        answer = deny(request)
        refused_calls.extend([request] if answer else [])
        return answer

    Hook(store_of(moto_client), action, 99, counted)
    assert moto_client.get("/v1/routes/AR1133/transactions").status_code == 200, "reads work"
    answers = [moto_client.get("/readyz") for _ in range(3)]
    assert [(a.status_code, a.json()) for a in answers] == [
        (503, {"detail": MISCONFIGURED_DETAIL})
    ] * 3
    assert len(refused_calls) == 3, "every round tries the writes again until they are proven"
    logged = [json.loads(line) for line in log_output.getvalue().splitlines()]
    refused = [line for line in logged if line.get("store") == "misconfigured"]
    assert {(line["operation"], line["table"]) for line in refused} == {(action, table)}
    assert all(f"dynamodb:{action}" in line["message"] for line in refused)


def test_the_write_probe_writes_nothing(moto_client: TestClient, moto_tables: Any) -> None:
    assert moto_client.get("/readyz").status_code == 200
    for name in (TABLE, KEYS_TABLE):
        assert moto_tables.scan(TableName=name)["Items"] == []


def test_a_throttled_first_write_proof_keeps_the_pod_unready_and_is_tried_again(
    moto_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "READINESS_REUSE_SECONDS", 0.0)
    monkeypatch.setattr(dynamodb_store, "CALL_BUDGET_SECONDS", 0.3)
    monkeypatch.setattr(dynamodb_store, "PING_BUDGET_SECONDS", 0.3)
    hook = Hook(store_of(moto_client), "PutItem", 99, error_answer("ThrottlingException"))
    assert moto_client.get("/readyz").status_code == 503
    calls = hook.calls
    hook.times = 0  # the throttling is over
    assert moto_client.get("/readyz").status_code == 200
    # The writes were not proven yet, so they are tried again: a put in each table.
    assert hook.calls == calls + 2


def keys_table_reads(answer: AnswerOf) -> AnswerOf:
    """A GetItem answer for the idempotency-key table only; other reads go to moto."""
    return lambda request: answer(request) if payload(request)["TableName"] == KEYS_TABLE else None


def test_a_replay_reads_its_key_strongly_consistent(moto_client: TestClient) -> None:
    reads: list[dict[str, Any]] = []
    read = keys_table_reads(lambda request: reads.append(payload(request)))  # type: ignore[func-returns-value]
    Hook(store_of(moto_client), "GetItem", 99, read)
    moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    replay = moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (200, "true")
    (key_read,) = reads
    assert key_read["Key"] == {"idempotency-key": {"S": "order-1"}}
    assert key_read["ConsistentRead"] is True, "an eventually consistent read may miss the key"


def test_a_key_gone_since_its_transaction_failed_is_still_a_replay(
    moto_client: TestClient,
) -> None:
    """The transaction found the key; by the read it had expired: the same route's replay."""
    moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    no_item = keys_table_reads(answered(200, JSON_PROTOCOL, "{}"))
    Hook(store_of(moto_client), "GetItem", 99, no_item)
    replay = moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (200, "true")
    assert replay.json()["transactions"] == 1


async def store_error_of(
    make: Callable[..., DynamoDBStore],
    call: Callable[[DynamoDBStore], Awaitable[Any]],
    answers: dict[str, AnswerOf],
    **options: Any,
) -> StoreError:
    """The StoreError that `call` raises on a fresh store, with `answers` (action -> answer)
    in front of its transport."""
    store = make(**options)
    for action, answer in answers.items():
        Hook(store, action, 99, answer)
    try:
        with pytest.raises(StoreError) as failed:
            await call(store)
    finally:
        await store.aclose()
    return failed.value


@pytest.mark.anyio
async def test_unprocessed_keys_are_asked_again_after_a_capped_exponential_backoff(
    moto_store: Callable[..., DynamoDBStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    asked: list[dict[str, Any]] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    def nothing_processed(request: Request) -> Answer:
        keys = payload(request)["RequestItems"]
        asked.append(keys)
        body = json.dumps({"UnprocessedKeys": keys}).encode()  # and no "Responses" at all
        return Answer(200, JSON_PROTOCOL, body)

    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # the top of each jitter range
    error = await store_error_of(
        moto_store,
        lambda store: store.get_many(["AR1133"]),
        {"BatchGetItem": nothing_processed},
        sleep=sleep,
    )
    assert (error.kind, error.reason, error.table, error.operation) == (
        StoreErrorKind.UNAVAILABLE,
        "dynamodb: batch keys stayed unprocessed",
        TABLE,
        "BatchGetItem",
    )
    # 6 rounds, a pause between each two, none after the last.
    assert len(asked) == 6
    assert slept == [0.02, 0.04, 0.08, 0.16, 0.32]
    assert all(keys[TABLE]["ConsistentRead"] is True for keys in asked)


@pytest.mark.anyio
async def test_a_refused_batch_read_names_its_table_and_operation(
    moto_store: Callable[..., DynamoDBStore],
) -> None:
    refused = {"BatchGetItem": error_answer("AccessDeniedException")}
    error = await store_error_of(moto_store, lambda store: store.get_many(["AR1133"]), refused)
    assert (error.kind, error.table, error.operation) == (
        StoreErrorKind.MISCONFIGURED,
        TABLE,
        "BatchGetItem",
    )
    assert error.reason == "dynamodb: AccessDeniedException: AccessDeniedException"


@pytest.mark.anyio
async def test_store_error_reasons_name_the_code_and_the_message_when_there_is_one(
    moto_store: Callable[..., DynamoDBStore],
) -> None:
    body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#AccessDeniedException"})
    bare = {"GetItem": answered(400, JSON_PROTOCOL, body)}
    error = await store_error_of(moto_store, lambda store: store.get("AR1133"), bare)
    assert error.reason == "dynamodb: AccessDeniedException"


@pytest.mark.anyio
async def test_an_unreachable_endpoint_is_unavailable_and_retried_within_the_budget(
    moto_store: Callable[..., DynamoDBStore], short_budget: None
) -> None:
    store = moto_store(endpoint_url=f"http://127.0.0.1:{free_port()}")
    attempts = Hook(store, "GetItem", 0, raises(AssertionError("never answered here")))
    started = time.monotonic()
    with pytest.raises(StoreError) as failed:
        await store.get("AR1133")
    await store.aclose()
    assert time.monotonic() - started < 0.3 + 0.5
    assert failed.value.kind is StoreErrorKind.UNAVAILABLE
    assert failed.value.reason.startswith("dynamodb: ClientConnectorError(")
    assert attempts.calls >= 2, "nothing was sent, so it is tried again"


@pytest.mark.anyio
async def test_no_credentials_is_misconfigured(moto_store: Callable[..., DynamoDBStore]) -> None:
    async def nothing() -> None:
        return None

    error = await store_error_of(moto_store, lambda store: store.ping(), {}, credentials=nothing)
    assert (error.kind, error.reason) == (
        StoreErrorKind.MISCONFIGURED,
        "dynamodb: no AWS credentials found",
    )


def test_40_readiness_probes_within_2_s_make_at_most_4_calls_per_table(
    moto_client: TestClient,
) -> None:
    tables: list[str] = []
    read = lambda request: tables.append(payload(request)["TableName"])  # type: ignore[func-returns-value]  # noqa: E731
    Hook(store_of(moto_client), "GetItem", 99, read)
    started = time.monotonic()
    answers = [moto_client.get("/readyz").status_code for _ in range(40)]
    elapsed = time.monotonic() - started
    assert answers == [200] * 40
    calls = {table: tables.count(table) for table in (TABLE, KEYS_TABLE)}
    print(f"40 probes in {elapsed:.2f} s: store calls per table {calls}")
    assert sum(calls.values()) == len(tables), "only the two tables are read"
    assert min(calls.values()) >= 1
    assert max(calls.values()) <= 1 + int(elapsed)


def cancelled(*codes: str) -> AnswerOf:
    """A TransactWriteItems answer: cancelled, with one reason per item."""
    reasons = [{"Code": code} for code in codes]
    return error_answer("TransactionCanceledException", CancellationReasons=reasons)


@pytest.mark.anyio
@pytest.mark.parametrize("reason", ["ThrottlingError", "ProvisionedThroughputExceeded"])
async def test_a_keyed_record_cancelled_by_throttling_is_retried_then_throttled(
    moto_store: Callable[..., DynamoDBStore], reason: str, short_budget: None
) -> None:
    error = await store_error_of(
        moto_store,
        lambda store: store.record("AR1133", "order-1"),
        {"TransactWriteItems": cancelled("None", reason)},
    )
    assert (error.kind, error.table, error.operation) == (
        StoreErrorKind.THROTTLED,
        TABLE,
        "TransactWriteItems",
    )
    assert reason in error.reason


@pytest.mark.anyio
async def test_keyed_record_conflicts_that_persist_are_retried_until_the_budget_ends(
    moto_store: Callable[..., DynamoDBStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]  # monotonic seconds, moved by the pauses only
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # the top of each jitter range
    error = await store_error_of(
        moto_store,
        lambda store: store.record("AR1133", "order-1"),
        {"TransactWriteItems": cancelled("None", "TransactionConflict")},
        sleep=sleep,
        monotonic=lambda: now[0],
    )
    assert (error.kind, error.reason, error.table, error.operation) == (
        StoreErrorKind.UNAVAILABLE,
        "dynamodb: transaction conflicts persisted",
        TABLE,
        "TransactWriteItems",
    )
    assert slept == [0.02, 0.04, 0.08, 0.16, 0.32] + [0.5] * 8, "until a pause would end it"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("reasons", "message"),
    [
        ([{"Code": "None"}, {"Code": "ValidationError"}], r"\['None', 'ValidationError'\]$"),
        # An item that did not fail has no code; the cancellation is reported item by item.
        ([{}, {"Code": "X"}], r"\['None', 'X'\]$"),
        # Nothing explains it: sent again, it would be cancelled again and again.
        ([{"Code": "None"}, {"Code": "None"}], r"\['None', 'None'\]$"),
        ([{"Code": "TransactionConflict"}], r"\['TransactionConflict'\]$"),  # 1 for 2 actions
        (None, "^transaction cancelled without reasons$"),
    ],
    ids=["another-reason", "no-code", "none-explains", "too-few", "no-reasons"],
)
async def test_a_keyed_record_cancelled_for_another_reason_is_a_bug(
    moto_store: Callable[..., DynamoDBStore], reasons: Any, message: str
) -> None:
    store = moto_store()
    extra = {} if reasons is None else {"CancellationReasons": reasons}
    Hook(store, "TransactWriteItems", 99, error_answer("TransactionCanceledException", **extra))
    try:
        with pytest.raises(RuntimeError, match=message):
            await store.record("AR1133", "order-1")
    finally:
        await store.aclose()


def test_a_cancellation_without_reasons_is_no_success(moto_client: TestClient) -> None:
    answer = error_answer("TransactionCanceledException")
    Hook(store_of(moto_client), "TransactWriteItems", 99, answer)
    response = moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    assert (response.status_code, response.json()["detail"]) == (500, "internal error")
    assert count(moto_client) == 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("key", "action", "table"),
    [(None, "UpdateItem", TABLE), ("order-1", "TransactWriteItems", KEYS_TABLE)],
    ids=["plain", "keyed"],
)
async def test_a_refused_record_names_its_table_and_operation(
    moto_store: Callable[..., DynamoDBStore], key: str | None, action: str, table: str
) -> None:
    refused = {action: error_answer("AccessDeniedException")}
    error = await store_error_of(moto_store, lambda store: store.record("AR1133", key), refused)
    assert (error.kind, error.table, error.operation) == (
        StoreErrorKind.MISCONFIGURED,
        table,
        action,
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (answered(502, "text/html", "<h1>Bad Gateway</h1>"), StoreErrorKind.UNAVAILABLE),
        (answered(404, "text/html", "<h1>Not Found</h1>"), StoreErrorKind.MISCONFIGURED),
        (answered(500, JSON_PROTOCOL, '{"__type": "x#SomethingNew"}'), StoreErrorKind.UNAVAILABLE),
    ],
    ids=["proxy-502", "proxy-404", "unknown-error-type-500"],
)
async def test_an_answer_is_classified_by_its_status_when_its_type_says_nothing(
    moto_store: Callable[..., DynamoDBStore], short_budget: None, answer: AnswerOf, kind: Any
) -> None:
    error = await store_error_of(moto_store, lambda store: store.get("AR1133"), {"GetItem": answer})
    assert (error.kind, error.table, error.operation) == (kind, TABLE, "GetItem")


@pytest.mark.anyio
async def test_a_reason_keeps_the_whole_message(moto_store: Callable[..., DynamoDBStore]) -> None:
    refused = error_answer("AccessDeniedException", message="not for role XX")
    error = await store_error_of(
        moto_store, lambda store: store.get("AR1133"), {"GetItem": refused}
    )
    assert error.reason == "dynamodb: AccessDeniedException: not for role XX"


def test_a_check_reads_strongly_consistent(moto_client: TestClient) -> None:
    reads: list[dict[str, Any]] = []
    read = lambda request: reads.append(payload(request))  # type: ignore[func-returns-value]  # noqa: E731
    Hook(store_of(moto_client), "GetItem", 99, read)
    moto_client.get("/v1/routes/AR1133/transactions")
    (key_read,) = reads
    assert (key_read["TableName"], key_read["ConsistentRead"]) == (TABLE, True)


@pytest.mark.anyio
@pytest.mark.parametrize(("content_type", "named"), [("text/html", "'text/html'"), (None, "None")])
async def test_a_success_that_is_not_dynamodbs_is_misconfigured(
    moto_store: Callable[..., DynamoDBStore], content_type: str | None, named: str
) -> None:
    welcome = {"GetItem": answered(200, content_type, "<h1>Welcome</h1>")}
    error = await store_error_of(moto_store, lambda store: store.get("AR1133"), welcome)
    assert (error.kind, error.reason, error.table, error.operation) == (
        StoreErrorKind.MISCONFIGURED,
        f"dynamodb: the endpoint answered {named}, not DynamoDB",
        TABLE,
        "GetItem",
    )


# The error table of docs/api.md, fault by fault: what a record answers, and what readiness says
# once the pod has proven itself (a misconfigured store, or an error type this service does not
# know on a 4xx, takes the pod out of the load balancer).
ERROR_TABLE = {
    "throttling": (error_answer("ThrottlingException"), 503, TRANSIENT_DETAIL, 200),
    "access-denied": (error_answer("AccessDeniedException"), 503, MISCONFIGURED_DETAIL, 503),
    "missing-table": (error_answer("ResourceNotFoundException"), 503, MISCONFIGURED_DETAIL, 503),
    "foreign-endpoint": (
        answered(404, "text/html", "<h1>Not Found</h1>"),
        503,
        MISCONFIGURED_DETAIL,
        503,
    ),
    "unknown-error-type": (error_answer("WeirdNewException"), 500, "internal error", 503),
    "unknown-5xx-type": (
        error_answer("WeirdNewException", status=500),
        503,
        OUTCOME_UNKNOWN_DETAIL,
        200,
    ),
    "html-200": (answered(200, "text/html", "<h1>Welcome</h1>"), 503, MISCONFIGURED_DETAIL, 503),
    "not-json-200": (answered(200, JSON_PROTOCOL, "{not json"), 503, MISCONFIGURED_DETAIL, 503),
}


@pytest.mark.parametrize(
    ("answer", "status", "detail", "ready"), ERROR_TABLE.values(), ids=ERROR_TABLE.keys()
)
def test_each_fault_of_the_error_table_is_answered_as_documented(
    moto_client: TestClient,
    short_budget: None,
    answer: AnswerOf,
    status: int,
    detail: str,
    ready: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(health, "READINESS_REUSE_SECONDS", 0.0)
    assert moto_client.get("/readyz").status_code == 200, "proven"
    moto_client.post(RECORD)  # the route's day is known: the next record is its write alone
    for action in ("UpdateItem", "GetItem"):
        Hook(store_of(moto_client), action, 99, answer)
    response = moto_client.post(RECORD)
    assert (response.status_code, response.json()["detail"]) == (status, detail)
    assert moto_client.get("/readyz").status_code == ready


@pytest.mark.parametrize("fault", ["refused-connection", "no-credentials"])
def test_a_refused_connection_or_no_credentials_is_answered_as_documented(
    request: pytest.FixtureRequest, short_budget: None, fault: str
) -> None:
    if fault == "refused-connection":
        settings = Settings(store="dynamodb", aws_endpoint_url=f"http://127.0.0.1:{free_port()}")
        expected, ready = TRANSIENT_DETAIL, {"detail": TRANSIENT_DETAIL}  # nothing proven yet
    else:
        request.getfixturevalue("no_credentials")
        settings = Settings(store="dynamodb", aws_endpoint_url=request.getfixturevalue("moto_url"))
        expected, ready = MISCONFIGURED_DETAIL, {"detail": MISCONFIGURED_DETAIL}
    with started_app(settings) as client:
        response = client.post(RECORD)
        assert (response.status_code, response.json()["detail"]) == (503, expected)
        assert client.get("/readyz").json() == ready


def test_an_https_endpoint_is_verified_against_aws_ca_bundle(
    tmp_path: Path, log_output: io.StringIO
) -> None:
    """What `make local-aws` then `make run` do: moto over HTTPS with a CA of its own."""
    with moto_server(cert_dir=tmp_path) as emulator:
        assert emulator.ca_bundle is not None
        create_tables(dynamodb(emulator.url, verify=str(emulator.ca_bundle)))
        trusted = Settings(
            store="dynamodb", aws_endpoint_url=emulator.url, aws_ca_bundle=emulator.ca_bundle
        )
        with started_app(trusted) as client:
            assert client.post(RECORD).json()["transactions"] == 1
        with started_app(Settings(store="dynamodb", aws_endpoint_url=emulator.url)) as client:
            refused = client.post(RECORD)
    assert (refused.status_code, refused.json()["detail"]) == (503, MISCONFIGURED_DETAIL)
    (logged,) = [
        line for line in map(json.loads, log_output.getvalue().splitlines()) if "error" in line
    ]
    assert logged["error"].startswith("dynamodb: ClientConnectorCertificateError(")


READS = {
    "check": ("GetItem", "/v1/routes/AR1133/transactions"),
    "batch": ("BatchGetItem", "/v1/transactions?route=AR1133"),
    "readiness": ("GetItem", "/readyz"),
}


@pytest.mark.parametrize(
    "fault",
    [error_answer("ThrottlingException"), raises(TimeoutError())],
    ids=["throttled", "answer-lost"],
)
@pytest.mark.parametrize(("action", "path"), READS.values(), ids=READS.keys())
def test_a_read_is_read_again_after_any_transient_fault(
    moto_client: TestClient, fault: AnswerOf, action: str, path: str
) -> None:
    """A read counts nothing, so even an answer lost after sending is asked again."""
    hook = Hook(store_of(moto_client), action, 1, fault, deliver=True)
    assert moto_client.get(path).status_code == 200
    assert hook.calls >= 2


def test_a_replays_key_read_is_read_again_after_its_answer_is_lost(
    moto_client: TestClient,
) -> None:
    moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    lost = keys_table_reads(raises(TimeoutError()))
    Hook(store_of(moto_client), "GetItem", 1, lost, deliver=True)
    replay = moto_client.post(RECORD, headers={"Idempotency-Key": "order-1"})
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (200, "true")


REASONS = {
    "proxy-502": (
        answered(502, "text/html", "<h1>Bad Gateway</h1>"),
        StoreErrorKind.UNAVAILABLE,
        "dynamodb: the endpoint answered 502 'text/html'",
    ),
    "proxy-404": (
        answered(404, "text/html", "<h1>Not Found</h1>"),
        StoreErrorKind.MISCONFIGURED,
        "dynamodb: the endpoint answered 404 'text/html', not DynamoDB",
    ),
    "throttled": (
        error_answer("ThrottlingException"),
        StoreErrorKind.THROTTLED,
        "dynamodb: ThrottlingException: ThrottlingException",
    ),
    "in-a-transaction": (
        error_answer("TransactionConflictException"),
        StoreErrorKind.UNAVAILABLE,
        "dynamodb: TransactionConflictException: TransactionConflictException",
    ),
    "500": (
        error_answer("InternalServerError", status=500),
        StoreErrorKind.UNAVAILABLE,
        "dynamodb: InternalServerError: InternalServerError",
    ),
    "answer-lost": (raises(TimeoutError()), StoreErrorKind.UNAVAILABLE, "dynamodb: TimeoutError()"),
    "html-200": (
        answered(200, "text/html", "<h1>Welcome</h1>"),
        StoreErrorKind.MISCONFIGURED,
        "dynamodb: the endpoint answered 'text/html', not DynamoDB",
    ),
    "not-json-200": (
        answered(200, JSON_PROTOCOL, "{not json"),
        StoreErrorKind.MISCONFIGURED,
        "dynamodb: the endpoint answered a body that is not JSON",
    ),
    # The type without its namespace, and the message under the other spelling AWS uses.
    "bare-type": (
        answered(400, JSON_PROTOCOL, '{"__type": "AccessDeniedException", "Message": "no"}'),
        StoreErrorKind.MISCONFIGURED,
        "dynamodb: AccessDeniedException: no",
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize(("answer", "kind", "reason"), REASONS.values(), ids=REASONS.keys())
async def test_each_failure_has_its_kind_and_a_reason_that_names_it(
    moto_store: Callable[..., DynamoDBStore],
    short_budget: None,
    answer: AnswerOf,
    kind: StoreErrorKind,
    reason: str,
) -> None:
    error = await store_error_of(moto_store, lambda store: store.get("AR1133"), {"GetItem": answer})
    assert (error.kind, error.reason) == (kind, reason)


@pytest.mark.anyio
async def test_an_unknown_error_type_is_a_bug_that_names_it(
    moto_store: Callable[..., DynamoDBStore],
) -> None:
    store = moto_store()
    Hook(store, "GetItem", 99, error_answer("WeirdNewException"))
    try:
        with pytest.raises(RuntimeError) as failed:
            await store.get("AR1133")
    finally:
        await store.aclose()
    assert str(failed.value) == "dynamodb: WeirdNewException: WeirdNewException (HTTP 400)"


@pytest.mark.anyio
async def test_a_refused_replay_read_names_the_key_table(
    moto_store: Callable[..., DynamoDBStore],
) -> None:
    store = moto_store()
    await store.record("AR1133", "order-1")
    Hook(store, "GetItem", 99, keys_table_reads(error_answer("AccessDeniedException")))
    try:
        with pytest.raises(StoreError) as failed:
            await store.record("AR1133", "order-1")
    finally:
        await store.aclose()
    assert (failed.value.table, failed.value.operation) == (KEYS_TABLE, "GetItem")


@pytest.mark.anyio
async def test_retries_back_off_exponentially_from_20_ms(
    moto_store: Callable[..., DynamoDBStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # the top of each jitter range
    store = moto_store(sleep=sleep)
    Hook(store, "GetItem", 4, error_answer("ThrottlingException"))
    try:
        assert await store.get("AR1133") == 0
    finally:
        await store.aclose()
    assert slept == [0.02, 0.04, 0.08, 0.16]
