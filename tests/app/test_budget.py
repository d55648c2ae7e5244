"""Every store call ends within its budget (5 s), whatever DynamoDB, the pool or the credentials
do; no attempt starts with a timeout <= 0; and a call that waited for a pooled connection and
never got one was never sent."""

import asyncio
import json
import random
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiodynamo.credentials import Key
from aiodynamo.sign import Request
from yarl import URL

from kiusys_app.stores import StoreError, StoreErrorKind
from kiusys_app.stores.dynamodb import retry as dynamodb_retry
from kiusys_app.stores.dynamodb import store as dynamodb_store
from kiusys_app.stores.dynamodb.retry import ATTEMPT_TIMEOUT_SECONDS, FLOOR_SECONDS, Budget
from kiusys_app.stores.dynamodb.store import CALL_BUDGET_SECONDS, COUNT_ATTR, DynamoDBStore
from kiusys_app.stores.dynamodb.wire import Answer, Failed
from tests.app.conftest import Clock
from tests.support.aws import TABLE
from tests.support.delaying_proxy import delaying_proxy

pytestmark = pytest.mark.anyio

# The budget, and what the event loop may take beyond it to notice a timeout.
ENDS_WITHIN = CALL_BUDGET_SECONDS + 0.5
# A budget for the tests that wait it out in real time.
SHORT_BUDGET = 1.0

Call = Callable[[DynamoDBStore], Awaitable[Any]]
CALLS: dict[str, Call] = {
    "plain-record": lambda store: store.record("AR1133"),
    "keyed-record": lambda store: store.record("AR1133", "order-1"),
    "check": lambda store: store.get("AR1133"),
    "check-many": lambda store: store.get_many(["AR1133", "LA0001"]),
}


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A server that accepts connections, reads, and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


async def outcome_and_time(store: DynamoDBStore, call: Call) -> tuple[object, float]:
    started = time.monotonic()
    try:
        outcome: object = await call(store)
    except StoreError as error:
        outcome = error.kind
    return outcome, time.monotonic() - started


@pytest.mark.slow  # the whole 5 s budget, in real time
async def test_against_an_endpoint_that_never_answers_every_call_ends_within_the_budget(
    moto_store: Callable[..., DynamoDBStore], silent_endpoint: str
) -> None:
    store = moto_store(endpoint_url=silent_endpoint)
    try:
        results = await asyncio.gather(*(outcome_and_time(store, call) for call in CALLS.values()))
    finally:
        await store.aclose()
    outcomes = dict(zip(CALLS, results, strict=True))
    print({name: f"{kind} in {took:.2f} s" for name, (kind, took) in outcomes.items()})
    assert {name: kind for name, (kind, _) in outcomes.items()} == {
        # A route new to the store reads its day first: that read is what never ends, retried,
        # and the write is never sent (tests/app/test_late_answers.py: a write sent once and
        # answered late is "outcome unknown", never sent again).
        "plain-record": StoreErrorKind.UNAVAILABLE,
        "keyed-record": StoreErrorKind.UNAVAILABLE,
        "check": StoreErrorKind.UNAVAILABLE,
        "check-many": StoreErrorKind.UNAVAILABLE,
    }
    assert max(took for _, took in results) < ENDS_WITHIN
    assert outcomes["check"][1] > CALL_BUDGET_SECONDS - ATTEMPT_TIMEOUT_SECONDS, "retried"


class LateUnprocessed:
    """Answers every BatchGetItem `delay` seconds late, with every key unprocessed."""

    def __init__(self, store: DynamoDBStore, delay: float) -> None:
        self.rounds = 0
        self.delay = delay
        store.wire.transport = self

    async def __call__(self, request: Request, timeout: float) -> Answer:
        self.rounds += 1
        await asyncio.sleep(min(self.delay, timeout))
        if self.delay > timeout:
            raise TimeoutError
        keys = json.loads(request.body)["RequestItems"]
        return Answer(
            200, "application/x-amz-json-1.0", json.dumps({"UnprocessedKeys": keys}).encode()
        )


@pytest.mark.slow  # the whole 5 s budget, in real time
async def test_six_rounds_of_unprocessed_keys_answered_late_end_within_the_budget(
    moto_store: Callable[..., DynamoDBStore],
) -> None:
    store = moto_store()
    rounds = LateUnprocessed(store, delay=0.9)  # 6 rounds: 5.4 s, and the pauses between
    started = time.monotonic()
    with pytest.raises(StoreError) as failed:
        await store.get_many(["AR1133"])
    took = time.monotonic() - started
    await store.aclose()
    print(f"{rounds.rounds} rounds in {took:.2f} s: {failed.value.reason}")
    assert failed.value.kind is StoreErrorKind.UNAVAILABLE
    assert took < ENDS_WITHIN


class LostAfterTimeout:
    """A transport whose every attempt is lost after its whole timeout, on `clock`."""

    def __init__(self, clock: "FakeClock") -> None:
        self.clock = clock
        self.timeouts: list[float] = []

    async def __call__(self, request: Request, timeout: float) -> Answer:
        self.timeouts.append(timeout)
        self.clock.now += timeout
        raise TimeoutError


class FakeClock:
    """Monotonic seconds that only the store's pauses and the lost attempts move."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("call", [CALLS["keyed-record"], CALLS["check"]], ids=["keyed", "check"])
async def test_with_a_clock_no_attempt_has_a_timeout_of_zero_or_less_and_all_fit_the_budget(
    moto_store: Callable[..., DynamoDBStore], call: Call
) -> None:
    clock = FakeClock()
    store = moto_store(monotonic=clock, sleep=clock.sleep)
    lost = LostAfterTimeout(clock)
    store.wire.transport = lost
    with pytest.raises(StoreError):
        await call(store)
    await store.aclose()
    print(f"attempt timeouts {[round(t, 3) for t in lost.timeouts]}; ended at {clock.now:.3f} s")
    assert len(lost.timeouts) >= 3
    assert min(lost.timeouts) >= FLOOR_SECONDS
    assert max(lost.timeouts) <= ATTEMPT_TIMEOUT_SECONDS
    assert clock.now <= CALL_BUDGET_SECONDS


async def test_the_wait_for_credentials_is_inside_the_budget(
    moto_store: Callable[..., DynamoDBStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def never() -> Key | None:
        await asyncio.Event().wait()
        return None

    monkeypatch.setattr(dynamodb_store, "CALL_BUDGET_SECONDS", SHORT_BUDGET)
    store = moto_store(credentials=never)
    started = time.monotonic()
    with pytest.raises(StoreError) as failed:
        await store.record("AR1133")
    took = time.monotonic() - started
    await store.aclose()
    assert (failed.value.kind, failed.value.reason) == (
        StoreErrorKind.UNAVAILABLE,
        "dynamodb: credentials: none found within the call's budget",
    ), "nothing was sent: no outcome unknown"
    assert took < SHORT_BUDGET + 0.5


async def test_a_record_that_waited_for_a_pooled_connection_is_never_outcome_unknown(
    moto_store: Callable[..., DynamoDBStore],
    moto_url: str,
    aws: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The only connection is held by the first record for its whole attempt (2 s); the second,
    # on another route (one route's records wait in its queue, not for a connection), has a
    # budget of 1 s, all of it spent waiting for that connection.
    with delaying_proxy(moto_url, "UpdateItem", hold=3.0) as proxy:
        store = moto_store(endpoint_url=proxy.url, pool_size=1)
        try:
            first = asyncio.create_task(outcome_and_time(store, CALLS["plain-record"]))
            await asyncio.sleep(0.2)
            monkeypatch.setattr(dynamodb_store, "CALL_BUDGET_SECONDS", SHORT_BUDGET)
            started = time.monotonic()
            with pytest.raises(StoreError) as second:
                await store.record("LA0001")
            took = time.monotonic() - started
            held, _ = await first
        finally:
            await store.aclose()
    print(f"the held record: {held}; the one that waited: {second.value!r} in {took:.2f} s")
    assert held is StoreErrorKind.OUTCOME_UNKNOWN, "sent, and its answer came too late"
    assert (second.value.kind, second.value.reason) == (
        StoreErrorKind.UNAVAILABLE,
        "dynamodb: no free connection of 1 within the timeout",
    ), "never sent: a retry is safe"
    assert took < SHORT_BUDGET + 0.5, "the wait for a connection ends with the budget"
    stored = aws.get_item(TableName=TABLE, Key={"flight-route": {"S": "AR1133"}})["Item"]
    assert stored["record"]["N"] == "1"
    assert "Item" not in aws.get_item(TableName=TABLE, Key={"flight-route": {"S": "LA0001"}})


async def test_a_plain_record_whose_budget_ends_in_its_routes_queue_is_never_sent(
    moto_store: Callable[..., DynamoDBStore],
    moto_url: str,
    aws: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The route's write is held 1 s; a record queued behind it has a budget of 0.3 s.
    with delaying_proxy(moto_url, "UpdateItem", hold=1.0) as proxy:
        store = moto_store(endpoint_url=proxy.url)
        try:
            first = asyncio.create_task(store.record("AR1133"))
            await asyncio.sleep(0.1)
            monkeypatch.setattr(dynamodb_store, "CALL_BUDGET_SECONDS", 0.3)
            started = time.monotonic()
            with pytest.raises(StoreError) as late:
                await store.record("AR1133")
            took = time.monotonic() - started
            assert (await first).count == 1
        finally:
            await store.aclose()
    assert (late.value.kind, late.value.reason, late.value.table, late.value.operation) == (
        StoreErrorKind.UNAVAILABLE,
        "dynamodb: the record's budget ended before its write was sent",
        TABLE,
        "UpdateItem",
    ), "never sent: a retry is safe"
    assert took < 0.3 + 0.2, "at its own deadline, not at the end of the write before it"
    stored = aws.get_item(TableName=TABLE, Key={"flight-route": {"S": "AR1133"}})["Item"]
    assert stored["record"]["N"] == "1"


@pytest.fixture
def unconnectable_endpoint() -> Iterator[str]:
    """A port whose connections never complete: a listening socket with a backlog of 0 that
    never accepts, its queue already full, so that the kernel drops every further SYN."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(server.getsockname())
        try:
            yield f"http://127.0.0.1:{server.getsockname()[1]}"
        finally:
            for filler in fillers:
                filler.close()


async def test_a_record_whose_connection_never_completes_is_never_outcome_unknown(
    moto_store: Callable[..., DynamoDBStore],
    unconnectable_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The connection's own timeout ends each attempt before the attempt's total, so aiohttp
    # says "no connection" (never sent, retried) rather than a bare timeout (may have arrived).
    monkeypatch.setattr(dynamodb_store, "CALL_BUDGET_SECONDS", SHORT_BUDGET)
    store = moto_store(endpoint_url=unconnectable_endpoint)
    try:
        outcome, took = await outcome_and_time(store, CALLS["plain-record"])
    finally:
        await store.aclose()
    assert outcome is StoreErrorKind.UNAVAILABLE, "never sent: a retry is safe"
    assert took < SHORT_BUDGET + 0.5


async def test_an_attempt_with_no_time_left_after_its_waits_is_never_sent(
    moto_store: Callable[..., DynamoDBStore],
) -> None:
    store = moto_store()
    actions = Actions(store)
    request = Request(URL("http://127.0.0.1:1/"), {"X-Amz-Target": "x.UpdateItem"}, b"")
    try:
        with pytest.raises(Failed) as failed:
            await store.wire._send(request, 0.0)
    finally:
        await store.aclose()
    assert actions.sent == [], "with no time left, aiohttp would apply no timeout at all"
    assert (failed.value.kind, failed.value.reason, failed.value.maybe_applied) == (
        StoreErrorKind.UNAVAILABLE,
        "dynamodb: no time left to send after the wait for a connection",
        False,
    )


class UnprocessedLate:
    """Every BatchGetItem answered after 0.9 s on `clock`, with every key unprocessed."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.rounds = 0

    async def __call__(self, request: Request, timeout: float) -> Answer:
        self.rounds += 1
        assert timeout >= 0.9
        self.clock.now += 0.9
        keys = json.loads(request.body)["RequestItems"]
        body = json.dumps({"UnprocessedKeys": keys}).encode()
        return Answer(200, "application/x-amz-json-1.0", body)


async def test_unprocessed_keys_stop_when_the_budget_has_no_room_for_another_round(
    moto_store: Callable[..., DynamoDBStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # the top of each jitter range
    clock = FakeClock()
    store = moto_store(monotonic=clock, sleep=clock.sleep)
    rounds = UnprocessedLate(clock)
    store.wire.transport = rounds
    with pytest.raises(StoreError) as failed:
        await store.get_many(["AR1133"])
    await store.aclose()
    assert (failed.value.kind, failed.value.reason) == (
        StoreErrorKind.UNAVAILABLE,
        "dynamodb: batch keys stayed unprocessed",
    )
    # Rounds end at 0.9, 1.82, 2.76, 3.74 and 4.8 s: a pause of 0.32 s would leave no room.
    assert rounds.rounds == 5
    assert clock.now == pytest.approx(4.8)
    assert clock.now <= CALL_BUDGET_SECONDS


class Actions:
    """Records the DynamoDB action and payload of each request, then sends it on."""

    def __init__(self, store: DynamoDBStore) -> None:
        self.sent: list[str] = []
        self.payloads: list[dict[str, Any]] = []
        self._send = store.wire.transport
        store.wire.transport = self

    async def __call__(self, request: Request, timeout: float) -> Answer:
        self.sent.append(request.headers["X-Amz-Target"].rpartition(".")[2])
        self.payloads.append(json.loads(request.body))
        return await self._send(request, timeout)


async def test_a_ping_reads_both_tables_and_proves_the_writes_only_when_asked(
    moto_store: Callable[..., DynamoDBStore],
) -> None:
    store = moto_store()
    actions = Actions(store)
    try:
        await store.ping()
        reads = list(actions.sent)
        await store.ping(writes=True)
    finally:
        await store.aclose()
    assert reads == ["GetItem", "GetItem"]
    assert actions.sent[2:] == [
        "GetItem", "GetItem", "UpdateItem", "PutItem", "PutItem", "Query"
    ]  # fmt: skip
    probe = actions.payloads[4]
    assert (probe["UpdateExpression"], probe["ExpressionAttributeValues"]) == (
        "ADD #count :by",
        {":by": {"N": "1"}},
    ), "the very write a record makes, refused by its condition"


# A Route 53 health checker counts an HTTPS check as failed unless the endpoint answers within
# two seconds of connecting (Route 53 Developer Guide, "How Amazon Route 53 determines whether a
# health check is healthy"); /regionz answers from one ping.
ROUTE53_ANSWER_SECONDS = 2.0


async def test_a_ping_of_a_store_that_never_answers_fails_before_a_route53_checker_gives_up(
    moto_store: Callable[..., DynamoDBStore], silent_endpoint: str
) -> None:
    store = moto_store(endpoint_url=silent_endpoint)
    try:
        outcome, took = await outcome_and_time(store, lambda store: store.ping(writes=True))
    finally:
        await store.aclose()
    assert outcome is StoreErrorKind.UNAVAILABLE
    assert took < ROUTE53_ANSWER_SECONDS, f"{took:.2f} s"


# The condition grammar as DynamoDB's developer guide writes it ("Condition and filter
# expressions, operators, and functions"): keywords in upper case; function names, which it says
# are case-sensitive, in lower case. moto reads both spellings; AWS is only documented for these.
KEYWORDS = {"AND", "OR", "NOT", "BETWEEN", "IN"}
FUNCTIONS = {"attribute_exists", "attribute_not_exists", "attribute_type", "begins_with", "size"}


def conditions(payload: dict[str, Any]) -> list[str]:
    actions = [item for entry in payload.get("TransactItems", []) for item in entry.values()]
    return [p["ConditionExpression"] for p in (payload, *actions) if "ConditionExpression" in p]


async def test_every_condition_is_written_as_the_documented_grammar(
    moto_store: Callable[..., DynamoDBStore],
) -> None:
    clock = Clock()
    store = moto_store(clock=clock)
    actions = Actions(store)
    try:
        await store.ping(writes=True)
        await store.record("AR1133", "order-1")  # the route's first day, and the key's put
        await store.record("AR1133")  # the same day
        clock.now += 24 * 60 * 60
        await store.record("AR1133")  # the day closed, and the route moved to the next
    finally:
        await store.aclose()
    sent = [condition for payload in actions.payloads for condition in conditions(payload)]
    assert len(sent) == 8, sent  # three refused probes, the key, the days
    for condition in sent:
        for word in re.findall(r"[A-Za-z_]+", condition):
            if word.upper() in KEYWORDS:
                assert word in KEYWORDS, condition
            elif word.lower() in FUNCTIONS:
                assert word in FUNCTIONS, condition


def test_an_attempt_starts_with_at_least_the_floor_left_and_at_most_its_own_timeout() -> None:
    timeouts = {
        left: Budget(deadline=left, clock=lambda: 0.0).timeout()
        for left in (FLOOR_SECONDS / 2, FLOOR_SECONDS, 1.0, 3.0)
    }
    assert timeouts == {
        FLOOR_SECONDS / 2: None,
        FLOOR_SECONDS: FLOOR_SECONDS,
        1.0: 1.0,
        3.0: ATTEMPT_TIMEOUT_SECONDS,
    }


async def test_a_call_whose_budget_was_spent_before_it_sends_nothing() -> None:
    sent: list[str] = []

    async def attempt(action: str, payload: dict[str, Any], timeout: float) -> Any:
        sent.append(action)

    spent = Budget(deadline=FLOOR_SECONDS / 2, clock=lambda: 0.0)
    with pytest.raises(StoreError) as failed:
        await dynamodb_retry.call(attempt, "GetItem", TABLE, {}, budget=spent, repeatable=True)
    assert sent == []
    assert (failed.value.kind, failed.value.reason) == (
        StoreErrorKind.UNAVAILABLE,
        "dynamodb: the call's budget was spent before this request",
    )
    assert (failed.value.table, failed.value.operation) == (TABLE, "GetItem")


@pytest.mark.parametrize(
    ("repeatable", "kind"),
    [(True, StoreErrorKind.UNAVAILABLE), (False, StoreErrorKind.OUTCOME_UNKNOWN)],
)
async def test_a_pause_that_overslept_the_floor_ends_the_call_with_its_last_failure(
    repeatable: bool, kind: StoreErrorKind
) -> None:
    clock = FakeClock()

    async def oversleep(seconds: float) -> None:  # a loop late to wake, as under load
        clock.now = CALL_BUDGET_SECONDS - FLOOR_SECONDS / 2

    async def cut(action: str, payload: dict[str, Any], timeout: float) -> Any:
        raise Failed(StoreErrorKind.UNAVAILABLE, "dynamodb: cut", maybe_applied=True)

    budget = Budget(deadline=CALL_BUDGET_SECONDS, sleep=oversleep, clock=clock)
    with pytest.raises(StoreError) as failed:
        await dynamodb_retry.call(
            cut, "UpdateItem", TABLE, {}, budget=budget, repeatable=repeatable
        )
    assert (failed.value.kind, failed.value.reason) == (kind, "dynamodb: cut")
    assert (failed.value.table, failed.value.operation) == (TABLE, "UpdateItem")


@pytest.mark.parametrize("left", [FLOOR_SECONDS / 2, FLOOR_SECONDS, 2 * FLOOR_SECONDS])
async def test_a_pause_is_taken_exactly_when_an_attempt_can_start_after_it(left: float) -> None:
    clock = FakeClock()
    budget = Budget(deadline=left, sleep=clock.sleep, clock=clock)
    paused = await budget.pause(0.0)
    assert paused is (budget.timeout() is not None)


class NoUnprocessedKeys:
    """Answers a BatchGetItem with its items only: the API marks every response element
    optional, so `UnprocessedKeys` may be left out rather than sent empty."""

    def __init__(self, store: DynamoDBStore) -> None:
        store.wire.transport = self

    async def __call__(self, request: Request, timeout: float) -> Answer:
        (keys,) = json.loads(request.body)["RequestItems"][TABLE]["Keys"][:1]
        item = {**keys, COUNT_ATTR: {"N": "7"}}
        body = {"Responses": {TABLE: [item]}}
        return Answer(200, "application/x-amz-json-1.0", json.dumps(body).encode())


async def test_a_batch_answer_without_unprocessed_keys_is_complete(
    moto_store: Callable[..., DynamoDBStore],
) -> None:
    store = moto_store()
    NoUnprocessedKeys(store)
    try:
        counts = await store.get_many(["AR1133", "LA0001"])
    finally:
        await store.aclose()
    assert counts == {"AR1133": 7, "LA0001": 0}
