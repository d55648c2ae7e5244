"""Per-day counts, on both stores: each record in the UTC day the store applied it, a route's
days always adding up to its count, across a midnight and a month end, on a test clock."""

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiodynamo.sign import Request

from kiusys_app.stores import CounterStore, day_of
from kiusys_app.stores.dynamodb import DynamoDBStore
from kiusys_app.stores.dynamodb.wire import Answer
from tests.app.conftest import Clock
from tests.support.aws import TABLE, dynamodb

pytestmark = pytest.mark.anyio


def at(moment: str) -> float:
    """An epoch second from an ISO time in UTC."""
    return datetime.fromisoformat(moment).replace(tzinfo=UTC).timestamp()


def test_a_day_is_the_utc_day_of_the_moment() -> None:
    assert day_of(at("2026-11-30T23:59:59.999")) == "2026-11-30"
    assert day_of(at("2026-12-01T00:00:00")) == "2026-12-01"


async def days_add_up(store: CounterStore, routes: list[str]) -> None:
    usage = await store.usage(routes, "2000-01-01", "2099-12-31")
    counts = await store.get_many(routes)
    assert {route: sum(days.values()) for route, days in usage.items()} == counts


async def test_each_record_counts_in_the_day_it_was_applied(
    store: CounterStore, clock: Clock
) -> None:
    clock.now = at("2026-11-29T12:00:00")
    await store.record("AR1133")
    clock.now = at("2026-11-30T23:59:59")
    await store.record("AR1133")
    await store.record("AR1133", "key-1")
    await store.record("LA0001")
    clock.now = at("2026-12-01T00:00:00")
    assert (await store.record("AR1133")).count == 4
    await store.record("AR1133", "key-2")
    clock.now = at("2026-12-03T08:00:00")
    await store.record("LA0001")
    usage = await store.usage(["AR1133", "LA0001", "G31234"], "2026-11-01", "2026-12-31")
    assert usage == {
        "AR1133": {"2026-11-29": 1, "2026-11-30": 2, "2026-12-01": 2},
        "LA0001": {"2026-11-30": 1, "2026-12-03": 1},
        "G31234": {},
    }
    await days_add_up(store, ["AR1133", "LA0001", "G31234"])


async def test_the_range_is_inclusive_and_only_counts_its_days(
    store: CounterStore, clock: Clock
) -> None:
    for day in ("2026-10-31", "2026-11-01", "2026-11-15", "2026-11-30", "2026-12-01"):
        clock.now = at(f"{day}T10:00:00")
        await store.record("AR1133")
    usage = await store.usage(["AR1133"], "2026-11-01", "2026-11-30")
    assert usage == {"AR1133": {"2026-11-01": 1, "2026-11-15": 1, "2026-11-30": 1}}
    assert await store.usage(["AR1133"], "2026-12-02", "2027-01-31") == {"AR1133": {}}
    assert await store.usage(["AR1133"], "2026-12-01", "2026-12-01") == {
        "AR1133": {"2026-12-01": 1}
    }


async def test_a_keyed_retry_after_midnight_counts_on_neither_day(
    store: CounterStore, clock: Clock
) -> None:
    clock.now = at("2026-11-30T23:59:58")
    await store.record("AR1133", "key-1")
    clock.now = at("2026-12-01T00:00:02")
    assert (await store.record("AR1133", "key-1")).replayed
    assert await store.usage(["AR1133"], "2026-11-30", "2026-12-01") == {
        "AR1133": {"2026-11-30": 1}
    }
    await days_add_up(store, ["AR1133"])


async def test_concurrent_records_across_midnight_add_up(store: CounterStore, clock: Clock) -> None:
    """300 records in flight when the clock passes midnight, and 300 more after it."""
    clock.now = at("2026-11-30T23:59:59")

    def wave(start: int) -> list[asyncio.Task[Any]]:
        return [
            asyncio.ensure_future(store.record("AR1133", f"key-{n}" if n % 3 == 0 else None))
            for n in range(start, start + 300)
        ]

    first = wave(0)
    while await store.get("AR1133") == 0:
        await asyncio.sleep(0.001)
    clock.now = at("2026-12-01T00:00:00")
    await asyncio.gather(*first, *wave(300))
    usage = (await store.usage(["AR1133"], "2026-11-30", "2026-12-01"))["AR1133"]
    assert sum(usage.values()) == 600 == await store.get("AR1133")
    assert usage["2026-11-30"] >= 1
    assert usage["2026-12-01"] >= 300


async def test_an_airlines_routes_are_its_own(store: CounterStore) -> None:
    for route in ("AR1133", "AR0001", "ARG123", "LA0001", "A11234"):
        await store.record(route)
    assert await store.routes_of("AR") == ["AR0001", "AR1133"]
    assert await store.routes_of("ARG") == ["ARG123"]
    assert await store.routes_of("A1") == ["A11234"]
    assert await store.routes_of("G3") == []


# DynamoDB's layout: the route's item holds its day, a closed day has an item of its own.


def items() -> dict[str, dict[str, Any]]:
    return {item["flight-route"]["S"]: item for item in dynamodb().scan(TableName=TABLE)["Items"]}


@pytest.fixture
def dated_store(moto_store: Any, clock: Clock) -> DynamoDBStore:
    store: DynamoDBStore = moto_store(clock=clock)
    return store


async def test_a_new_day_closes_the_last_one_in_an_item_of_its_own(
    dated_store: DynamoDBStore, clock: Clock
) -> None:
    clock.now = at("2026-11-30T20:00:00")
    for _ in range(3):
        await dated_store.record("AR1133")
    clock.now = at("2026-12-01T01:00:00")
    await dated_store.record("AR1133")
    stored = items()
    assert set(stored) == {"AR1133", "AR1133#2026-11-30"}
    route = stored["AR1133"]
    assert (route["record"], route["day"], route["day-record"]) == (
        {"N": "4"},
        {"S": "2026-12-01"},
        {"N": "1"},
    )
    assert route["airline"] == {"S": "AR"}
    assert stored["AR1133#2026-11-30"] == {
        "flight-route": {"S": "AR1133#2026-11-30"},
        "record": {"N": "3"},
    }
    await dated_store.aclose()


async def test_another_process_behind_the_clock_counts_in_the_items_day(
    dated_store: DynamoDBStore, moto_store: Any
) -> None:
    behind = Clock()
    behind.now = at("2026-11-30T23:59:59")
    late: DynamoDBStore = moto_store(clock=behind)
    await late.record("AR1133")
    dated_store._clock = lambda: at("2026-12-01T00:00:01")  # type: ignore[method-assign]
    await dated_store.record("AR1133")
    await late.record("AR1133")  # the item is on Dec 1 now: it counts there
    await late.record("AR1133", "key-1")
    usage = await late.usage(["AR1133"], "2026-11-30", "2026-12-01")
    assert usage == {"AR1133": {"2026-11-30": 1, "2026-12-01": 3}}
    await late.aclose()
    await dated_store.aclose()


async def test_a_late_close_of_a_day_never_lowers_it(dated_store: DynamoDBStore) -> None:
    await dated_store._close_day("AR1133", "2026-11-30", 5, dated_store._budget(5))
    await dated_store._close_day("AR1133", "2026-11-30", 3, dated_store._budget(5))
    assert items()["AR1133#2026-11-30"]["record"] == {"N": "5"}
    await dated_store._close_day("AR1133", "2026-11-30", 7, dated_store._budget(5))
    assert items()["AR1133#2026-11-30"]["record"] == {"N": "7"}
    await dated_store.aclose()


async def test_a_record_that_lands_between_a_days_close_and_the_move_is_not_lost(
    dated_store: DynamoDBStore, moto_store: Any, clock: Clock
) -> None:
    """A process whose clock is still on the old day adds to it after another one put the
    day's count in its item and before it moves the route on: the move is refused, and the
    day closed again with that record in it."""
    clock.now = at("2026-11-30T23:00:00")
    await dated_store.record("AR1133")
    behind: DynamoDBStore = moto_store(clock=lambda: at("2026-11-30T23:59:59"))
    send = dated_store.wire.transport
    moves = 0

    async def late_record_before_the_move(request: Request, timeout: float) -> Answer:
        nonlocal moves
        if request.headers["X-Amz-Target"].endswith(".UpdateItem") and b":closed" in request.body:
            moves += 1
            if moves == 1:
                await behind.record("AR1133")
        return await send(request, timeout)

    dated_store.wire.transport = late_record_before_the_move
    clock.now = at("2026-12-01T00:00:01")
    await dated_store.record("AR1133")
    assert moves == 2, "the first move was refused"
    assert await dated_store.usage(["AR1133"], "2026-11-30", "2026-12-01") == {
        "AR1133": {"2026-11-30": 2, "2026-12-01": 1}
    }
    assert items()["AR1133#2026-11-30"]["record"] == {"N": "2"}
    await behind.aclose()
    await dated_store.aclose()


# What a record costs in write units: 1 per write of an item up to 1 KB, 2 per item of a
# transaction, and 1 more for the index entry that a route's first write makes.


def item_size(item: dict[str, dict[str, str]]) -> int:
    """An item's size as DynamoDB counts it: each attribute's name and value (a string's UTF-8
    bytes; a number about one byte per two digits, plus one)."""
    size = 0
    for name, value in item.items():
        ((kind, text),) = value.items()
        size += len(name.encode()) + (len(text.encode()) if kind == "S" else len(text) // 2 + 1)
    return size


class WriteUnits:
    """Adds up the write units of every write the store sends."""

    def __init__(self, store: DynamoDBStore) -> None:
        self.units = 0
        self._send = store.wire.transport
        store.wire.transport = self

    async def __call__(self, request: Request, timeout: float) -> Answer:
        action = request.headers["X-Amz-Target"].rpartition(".")[2]
        body = json.loads(request.body)
        if action in ("UpdateItem", "PutItem"):
            self.units += 1 + ("#airline" in body.get("UpdateExpression", ""))
        elif action == "TransactWriteItems":
            self.units += 2 * len(body["TransactItems"])
        return await self._send(request, timeout)


async def test_a_plain_record_costs_at_most_2_write_units_and_the_item_stays_small(
    dated_store: DynamoDBStore, clock: Clock
) -> None:
    meter = WriteUnits(dated_store)

    async def units_of(moment: str, key: str | None = None) -> int:
        clock.now = at(moment)
        before = meter.units
        await dated_store.record("AR1133", key)
        return meter.units - before

    assert await units_of("2026-11-30T10:00:00") == 2, "a new route: its write and its index entry"
    assert await units_of("2026-11-30T11:00:00") == 1, "the same day"
    assert await units_of("2026-12-01T00:00:00") == 2, "a new day: the last one closed"
    assert await units_of("2026-12-01T01:00:00", "key-1") == 4, "keyed: 2 items, 2 units each"
    assert await units_of("2026-12-02T00:00:00", "key-2") == 5, "keyed, and a day closed"
    sizes = [item_size(items()["AR1133"])]
    for day in range(3, 30):
        await units_of(f"2026-12-{day:02d}T12:00:00")
        sizes.append(item_size(items()["AR1133"]))
    assert max(sizes) < 100, sizes
    assert max(sizes) - min(sizes) <= 1, "a route's item grows with its count's digits alone"
    await dated_store.aclose()
