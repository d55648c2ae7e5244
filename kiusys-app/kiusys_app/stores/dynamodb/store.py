"""The DynamoDB store: atomic counters, and exactly-once records through transactions.

Records wait in a queue per route (plain and keyed apart), and each queue's one writer sends
all that are waiting as one write; the first record on a quiet route goes at once. Plain
records are one `UpdateItem ADD n`, and each is answered with the count before it plus its
place in the batch, so the answers stay distinct and increasing. Keyed records are one
`TransactWriteItems`: the counter's `ADD n` and one conditional `Put` per key (written only if
it is new or expired), so either all of them happen or none does. One write at a time per
route and process keeps a busy route's writes to one item fewer than its records (a partition
takes 1,000 write units a second), and keeps keyed records from cancelling each other.

Per-day counts live in the same item: its UTC day (`day`) and that day's count (`day-record`),
added to with the all-time count in the same write, on the condition that the item is still on
that day. The first write of a new day closes the previous one: it puts the previous day's count
in an item of its own (`AR1133#2026-11-30`, written only if that raises it), then moves the
route's item to the new day, on the condition that the previous day's count is still what it
put. The route's days therefore add up to its count at every moment, a plain record costs one
write unit (two on the first write of a day), and the route's item stays small. Each region's
days are its own, as its counter is (`regions`). An index on `airline` (set when an item is
first written) finds an airline's routes without a scan.

The wire (signing, sending, classifying an answer) is `wire`, what DynamoDB's errors mean is
`errors`, the retries and their budget are `retry`, and the per-route queues are `coalescer`.
aiodynamo's own client loop is not used: it retries a 500 and a dropped connection, which may
repeat an applied write.
"""

import asyncio
import contextlib
import itertools
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, timedelta
from typing import Any

from aiodynamo.credentials import Key

from kiusys_app.models import airline_of
from kiusys_app.stores.base import (
    CALL_BUDGET_SECONDS,
    IDEMPOTENCY_TTL_SECONDS,
    IdempotencyKeyMismatch,
    NullObserver,
    RecordResult,
    StoreError,
    StoreErrorKind,
    StoreObserver,
    Usage,
    day_of,
)
from kiusys_app.stores.dynamodb import retry
from kiusys_app.stores.dynamodb.coalescer import Coalescer, Waiting, answer, oldest
from kiusys_app.stores.dynamodb.credentials import ChainCredentials
from kiusys_app.stores.dynamodb.errors import Meaning, of_reason, of_reasons
from kiusys_app.stores.dynamodb.regions import SEPARATOR, CounterItems
from kiusys_app.stores.dynamodb.retry import Budget, backoff
from kiusys_app.stores.dynamodb.wire import POOL_SIZE, Cancelled, ConditionFailed, Wire

# The seed's data model: hash key `flight-route` (S) and the counter `record` (N).
ROUTE_ATTR = "flight-route"
COUNT_ATTR = "record"
# The route's item's day (S, YYYY-MM-DD, UTC) and that day's count (N); a closed day's item is
# the route's item's key, SEPARATOR and the day, with its count in COUNT_ATTR.
DAY_ATTR = "day"
DAY_COUNT_ATTR = "day-record"
# The route's airline code (S), and the index of the counters table keyed by it (keys only).
AIRLINE_ATTR = "airline"
AIRLINE_INDEX = "airline"
# The idempotency table: hash key `idempotency-key` (S), the route it was used for, the epoch
# second after which DynamoDB's TTL may delete it, and the id of the request that wrote it.
KEY_ATTR = "idempotency-key"
EXPIRES_ATTR = "expires-at"
WRITER_ATTR = "written-by"
# A key that is never written: readiness reads it, and tries writes of it that a condition
# always refuses, to prove each table answers to the service's rights.
PROBE_KEY = "-readyz-"
_NEVER = "attribute_exists(#key) AND attribute_not_exists(#key)"

# A cancelled transaction is settled and sent again when each reason is one of these, and at
# least one is not "None".
_RETRIED = frozenset({Meaning.NONE, Meaning.CONDITION_FAILED, Meaning.CONFLICT, Meaning.THROTTLED})


def _days(first: str, last: str) -> list[str]:
    """Every day from `first` to `last`, inclusive, as YYYY-MM-DD."""
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


# Readiness's budget: under the kubelet's probe timeout (2 s), so that a slow or throttling
# store answers the probe (ready) before the kubelet gives up on it (not ready).
PING_BUDGET_SECONDS = 1.0
# Rounds of unprocessed batch keys, within the budget (cancelled transactions: the budget only).
MAX_ROUNDS = 6
# One BatchGetItem reads at most 100 items.
MAX_KEYS_PER_BATCH_GET = 100
# One transaction holds at most 100 actions: the counter's, and one per key.
MAX_KEYS_PER_TRANSACTION = 99


class DynamoDBStore:
    def __init__(
        self,
        *,
        table_name: str,
        idempotency_table_name: str,
        region: str,
        endpoint_url: str,
        regions: Sequence[str] = (),
        credentials: Callable[[], Awaitable[Key | None]] | None = None,
        tls: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        observer: StoreObserver | None = None,
        pool_size: int = POOL_SIZE,
    ) -> None:
        self._table = table_name
        self._keys_table = idempotency_table_name
        self._items = CounterItems(region, tuple(regions))
        self.wire = Wire(
            region=region,
            endpoint_url=endpoint_url,
            credentials=credentials or ChainCredentials().key,
            tls=tls or ssl.create_default_context(),
            pool_size=pool_size,
        )
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._observer = observer or NullObserver()
        # The day each of this region's items was on at this process's last write of it: a write
        # on that day needs no read first. Emptied when the day changes.
        self._item_days: dict[str, str] = {}
        self._plain = Coalescer(self._add, max_batch=None, expired=self._add_outlived)
        self._keyed = Coalescer(
            self._commit, max_batch=MAX_KEYS_PER_TRANSACTION, expired=self._transaction_outlived
        )

    def _budget(self, seconds: float) -> Budget:
        return Budget(self._monotonic() + seconds, self._sleep, self._monotonic)

    async def record(self, route: str, idempotency_key: str | None = None) -> RecordResult:
        budget = self._budget(CALL_BUDGET_SECONDS)
        if idempotency_key is None:
            return await self._plain.submit(route, None, budget)
        return await self._keyed.submit(route, idempotency_key, budget)

    async def get(self, route: str) -> int:
        return await self._get(route, self._budget(CALL_BUDGET_SECONDS))

    async def get_many(self, routes: Sequence[str]) -> dict[str, int]:
        return await self._get_many(routes, self._budget(CALL_BUDGET_SECONDS))

    async def ping(self, writes: bool = False) -> None:
        # A read of a key that never exists in each table, with the service's own rights; with
        # `writes`, every other call the service makes, none changing anything: the writes, of
        # that key, with a condition that never holds, and a query of the airline index for
        # it. DynamoDB authorizes a request before it evaluates its condition, so
        # ConditionalCheckFailed proves the right, AccessDenied refuses it, and nothing is
        # written (a failed condition still costs a write unit).
        budget = self._budget(PING_BUDGET_SECONDS)
        probes = ((self._table, ROUTE_ATTR), (self._keys_table, KEY_ATTR))
        for table, key in probes:
            await self._call(
                "GetItem", {"TableName": table, "Key": {key: {"S": PROBE_KEY}}}, budget
            )
        if not writes:
            return
        never = {"ConditionExpression": _NEVER}
        await self._refused_write(
            "UpdateItem",
            {
                **never,
                **self._increment(PROBE_KEY, 1),
                "ExpressionAttributeNames": {"#key": ROUTE_ATTR, "#count": COUNT_ATTR},
            },
            budget,
        )
        for table, key in probes:  # a closed day's count, and a key
            await self._refused_write(
                "PutItem",
                {
                    **never,
                    "TableName": table,
                    "Item": {key: {"S": PROBE_KEY}},
                    "ExpressionAttributeNames": {"#key": key},
                },
                budget,
            )
        await self._call("Query", {**self._airline_query(PROBE_KEY), "Limit": 1}, budget)

    async def _refused_write(self, action: str, payload: dict[str, Any], budget: Budget) -> None:
        """A write whose condition never holds: repeatable, as it never applies. Its refusal
        proves the right (so would a success, from a stand-in that ignores conditions)."""
        with contextlib.suppress(ConditionFailed):
            await self._call(action, payload, budget)

    async def aclose(self) -> None:
        await self._plain.aclose()
        await self._keyed.aclose()
        await self.wire.aclose()

    async def _call(
        self,
        action: str,
        payload: dict[str, Any],
        budget: Budget,
        *,
        table: str | None = None,
        repeatable: bool = True,
    ) -> Any:
        """One call; `table`, for the operator's log, is the payload's own unless given."""
        return await retry.call(
            self.wire.attempt,
            action,
            table or payload["TableName"],
            payload,
            budget=budget,
            repeatable=repeatable,
        )

    # The counter's increment, of plain and keyed records alike.

    def _increment(self, item: str, by: int) -> dict[str, Any]:
        return {
            "TableName": self._table,
            "Key": {ROUTE_ATTR: {"S": item}},
            "UpdateExpression": "ADD #count :by",
            "ExpressionAttributeNames": {"#count": COUNT_ATTR},
            "ExpressionAttributeValues": {":by": {"N": str(by)}},
        }

    async def _dated_increment(
        self, route: str, by: int, budget: Budget
    ) -> tuple[dict[str, Any], str]:
        """The update that adds `by` to the route's own item and to its day, and that day: today
        (UTC), or the item's own when a process whose clock is ahead already moved it on. Its
        condition refuses it, and nothing is written, if the item's day changed since it was
        read."""
        item = self._items.own(route)
        today = day_of(self._clock())
        if self._item_days.get(item) == today:
            return self._add_to_day(item, today, by), today
        if today not in self._item_days.values():
            self._item_days.clear()  # every item was on an earlier day
        day, day_count = await self._day_of(item, budget)
        if day is not None and day >= today:
            return self._add_to_day(item, day, by), day
        update = self._increment(item, by)
        names = update["ExpressionAttributeNames"]
        values = update["ExpressionAttributeValues"]
        names |= {"#day": DAY_ATTR, "#day_count": DAY_COUNT_ATTR}
        values[":day"] = {"S": today}
        if day is None:
            # A new item, or one from before per-day counts: its first day, and its airline.
            update["UpdateExpression"] = (
                "SET #day = :day, #day_count = :by, #airline = :airline ADD #count :by"
            )
            update["ConditionExpression"] = "attribute_not_exists(#day)"
            names["#airline"] = AIRLINE_ATTR
            values[":airline"] = {"S": airline_of(route)}
            return update, today
        await self._close_day(item, day, day_count, budget)
        update["UpdateExpression"] = "SET #day = :day, #day_count = :by ADD #count :by"
        update["ConditionExpression"] = "#day = :closed AND #day_count = :closed_count"
        values |= {":closed": {"S": day}, ":closed_count": {"N": str(day_count)}}
        return update, today

    def _add_to_day(self, item: str, day: str, by: int) -> dict[str, Any]:
        update = self._increment(item, by)
        update["UpdateExpression"] = "ADD #count :by, #day_count :by"
        update["ConditionExpression"] = "#day = :day"
        update["ExpressionAttributeNames"] |= {"#day": DAY_ATTR, "#day_count": DAY_COUNT_ATTR}
        update["ExpressionAttributeValues"][":day"] = {"S": day}
        return update

    async def _day_of(self, item: str, budget: Budget) -> tuple[str | None, int]:
        """The day an item is on and that day's count (None: it has no day yet)."""
        found = await self._read_item(item, (DAY_ATTR, DAY_COUNT_ATTR), budget)
        if DAY_ATTR not in found:
            return None, 0
        return found[DAY_ATTR]["S"], int(found[DAY_COUNT_ATTR]["N"])

    async def _close_day(self, item: str, day: str, count: int, budget: Budget) -> None:
        """Put a day's count in the day's own item, unless it already holds as much: the put
        is repeatable, and a late one from a process that read less never lowers it."""
        with contextlib.suppress(ConditionFailed):
            await self._call(
                "PutItem",
                {
                    "TableName": self._table,
                    "Item": {
                        ROUTE_ATTR: {"S": f"{item}{SEPARATOR}{day}"},
                        COUNT_ATTR: {"N": str(count)},
                    },
                    "ConditionExpression": "attribute_not_exists(#count) OR #count < :count",
                    "ExpressionAttributeNames": {"#count": COUNT_ATTR},
                    "ExpressionAttributeValues": {":count": {"N": str(count)}},
                },
                budget,
            )

    def _day_moved(self, route: str) -> None:
        """A dated write found its item on another day: read the item again next time."""
        self._item_days.pop(self._items.own(route), None)

    # Plain records: a queue per route, one `ADD n` at a time.

    def _add_outlived(self) -> StoreError:
        return StoreError(
            StoreErrorKind.UNAVAILABLE,
            "dynamodb: the record's budget ended before its write was sent",
            table=self._table,
            operation="UpdateItem",
        )

    async def _add(self, route: str, batch: list[Waiting]) -> None:
        """One `ADD n` for the batch; what it raises is each record's outcome (an ambiguous
        write, never resent, is "outcome unknown")."""
        budget = oldest(batch)
        # The other regions' items first: a failed read leaves nothing written.
        others = await self._counts(self._items.others(route), budget)
        for _ in range(MAX_ROUNDS):
            update, day = await self._dated_increment(route, len(batch), budget)
            try:
                response = await self._call(
                    "UpdateItem",
                    {**update, "ReturnValues": "UPDATED_NEW"},
                    budget,
                    repeatable=False,
                )
            except ConditionFailed:  # nothing was written
                self._day_moved(route)
                continue
            self._item_days[self._items.own(route)] = day
            break
        else:
            raise self._day_kept_moving("UpdateItem")
        before = int(response["Attributes"][COUNT_ATTR]["N"]) + sum(others.values()) - len(batch)
        for place, record in enumerate(batch, 1):
            answer(record, RecordResult(count=before + place))

    # Reads.

    async def _get(self, route: str, budget: Budget) -> int:
        items = self._items.every(route)
        if len(items) > 1:
            return sum((await self._counts(items, budget)).values())
        found = await self._read_item(route, (COUNT_ATTR,), budget)
        return int(found.get(COUNT_ATTR, {}).get("N", 0))

    async def _read_item(
        self, item: str, attributes: Sequence[str], budget: Budget
    ) -> dict[str, Any]:
        """These attributes of an item, read strongly consistent (the ones it has)."""
        names = {f"#a{i}": attribute for i, attribute in enumerate(attributes)}
        response = await self._call(
            "GetItem",
            {
                "TableName": self._table,
                "Key": {ROUTE_ATTR: {"S": item}},
                "ConsistentRead": True,
                "ProjectionExpression": ", ".join(names),
                "ExpressionAttributeNames": names,
            },
            budget,
        )
        found: dict[str, Any] = response.get("Item", {})
        return found

    async def _get_many(self, routes: Sequence[str], budget: Budget) -> dict[str, int]:
        items = {route: self._items.every(route) for route in routes}
        counts = await self._counts([item for each in items.values() for item in each], budget)
        return {route: sum(counts[item] for item in each) for route, each in items.items()}

    async def _counts(self, items: list[str], budget: Budget) -> dict[str, int]:
        """The counters of distinct `items` (0 where never written)."""
        found = await self._items_of(items, (COUNT_ATTR,), budget)
        return {item: int(found.get(item, {}).get(COUNT_ATTR, {}).get("N", 0)) for item in items}

    async def _items_of(
        self, keys: list[str], attributes: Sequence[str], budget: Budget
    ) -> dict[str, dict[str, Any]]:
        """The `attributes` of the items of distinct `keys` that exist, by key, 100 to a
        BatchGetItem; unprocessed ones are sent again, for MAX_ROUNDS rounds in all. No keys, no
        call."""
        found: dict[str, dict[str, Any]] = {}
        pending = keys
        rounds = 0
        while pending:
            batch, pending = pending[:MAX_KEYS_PER_BATCH_GET], pending[MAX_KEYS_PER_BATCH_GET:]
            response = await self._call(
                "BatchGetItem",
                {"RequestItems": self._read_of(batch, attributes)},
                budget,
                table=self._table,
            )
            for item in response.get("Responses", {}).get(self._table, []):
                found[item[ROUTE_ATTR]["S"]] = item
            unprocessed = response.get("UnprocessedKeys", {}).get(self._table, {}).get("Keys")
            if not unprocessed:
                continue
            rounds += 1
            if rounds == MAX_ROUNDS or not await budget.pause(backoff(rounds - 1)):
                raise StoreError(
                    StoreErrorKind.UNAVAILABLE,
                    "dynamodb: batch keys stayed unprocessed",
                    table=self._table,
                    operation="BatchGetItem",
                )
            pending = [key[ROUTE_ATTR]["S"] for key in unprocessed] + pending
        return found

    def _read_of(self, keys: list[str], attributes: Sequence[str]) -> dict[str, Any]:
        names = {f"#a{n}": name for n, name in enumerate((ROUTE_ATTR, *attributes))}
        return {
            self._table: {
                "Keys": [{ROUTE_ATTR: {"S": key}} for key in keys],
                "ConsistentRead": True,
                "ProjectionExpression": ", ".join(names),
                "ExpressionAttributeNames": names,
            }
        }

    # Usage: the days of routes, and the routes of an airline.

    async def routes_of(self, airline: str) -> list[str]:
        budget = self._budget(CALL_BUDGET_SECONDS)
        query = self._airline_query(airline)
        routes: set[str] = set()
        while True:
            response = await self._call("Query", query, budget)
            # Every region's item of a route is indexed; closed days have no airline.
            routes.update(
                item[ROUTE_ATTR]["S"].partition(SEPARATOR)[0] for item in response["Items"]
            )
            if "LastEvaluatedKey" not in response:
                return sorted(routes)
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _airline_query(self, airline: str) -> dict[str, Any]:
        return {
            "TableName": self._table,
            "IndexName": AIRLINE_INDEX,
            "KeyConditionExpression": "#airline = :airline",
            "ExpressionAttributeNames": {"#airline": AIRLINE_ATTR},
            "ExpressionAttributeValues": {":airline": {"S": airline}},
        }

    async def usage(self, routes: Sequence[str], first: str, last: str) -> Usage:
        budget = self._budget(CALL_BUDGET_SECONDS)
        items = {route: self._items.every(route) for route in routes}
        every_item = [item for each in items.values() for item in each]
        current = {
            key: (item[DAY_ATTR]["S"], int(item[DAY_COUNT_ATTR]["N"]))
            for key, item in (
                await self._items_of(every_item, (DAY_ATTR, DAY_COUNT_ATTR), budget)
            ).items()
            if DAY_ATTR in item
        }
        days = _days(first, last)
        # An item's days before its current one are closed, each in an item of its own.
        closed = await self._counts(
            [
                f"{item}{SEPARATOR}{day}"
                for item, (on, _) in current.items()
                for day in days
                if day < on
            ],
            budget,
        )
        usage: Usage = {}
        for route, each in items.items():
            per_day = dict.fromkeys(days, 0)
            for item in each:
                if item not in current:
                    continue
                on, count = current[item]
                for day in days:
                    if day < on:
                        per_day[day] += closed[f"{item}{SEPARATOR}{day}"]
                    elif day == on:
                        per_day[day] += count
            usage[route] = {day: count for day, count in per_day.items() if count}
        return usage

    # Keyed records: a queue per route, one transaction at a time, answers after the commit.

    def _transaction_outlived(self) -> StoreError:
        return StoreError(
            StoreErrorKind.UNAVAILABLE,
            "dynamodb: the record's budget ended before its transaction was sent",
            table=self._keys_table,
            operation="TransactWriteItems",
        )

    async def _commit(self, route: str, batch: list[Waiting]) -> None:
        """Send `batch` as one transaction until every record in it has its answer."""
        budget = oldest(batch)
        answered: list[tuple[Waiting, bool]] = []  # each record, and whether it is a replay
        pending = batch
        try:
            for round_ in itertools.count(1):
                reasons = await self._transact(route, pending, budget)
                if reasons is None:
                    answered.extend((record, False) for record in pending)
                    return
                pending = await self._settle(route, pending, reasons, answered, budget)
                if not pending:
                    return
                if not await self._pause_after(reasons, round_, budget):
                    raise self._persisting(reasons)
        finally:
            if answered:
                await self._answer_with_count(route, answered, budget)

    async def _transact(
        self, route: str, records: list[Waiting], budget: Budget
    ) -> list[str] | None:
        """One transaction of `records`: None once committed, or why it was cancelled."""
        now = int(self._clock())
        puts = [
            {
                "Put": {
                    "TableName": self._keys_table,
                    "Item": {
                        KEY_ATTR: {"S": record.key},
                        ROUTE_ATTR: {"S": route},
                        EXPIRES_ATTR: {"N": str(now + IDEMPOTENCY_TTL_SECONDS)},
                        WRITER_ATTR: {"S": record.writer},
                    },
                    # TTL deletion lags by up to days: an expired key is overwritten, not honoured.
                    "ConditionExpression": "attribute_not_exists(#key) OR #expires <= :now",
                    "ExpressionAttributeNames": {"#key": KEY_ATTR, "#expires": EXPIRES_ATTR},
                    "ExpressionAttributeValues": {":now": {"N": str(now)}},
                }
            }
            for record in records
        ]
        update, day = await self._dated_increment(route, len(records), budget)
        try:
            await self._call(
                "TransactWriteItems",
                {"TransactItems": [{"Update": update}, *puts]},
                budget,
                table=self._keys_table,
            )
        except Cancelled as cancelled:
            if cancelled.reasons and of_reason(cancelled.reasons[0]) is Meaning.CONDITION_FAILED:
                self._day_moved(route)
            return cancelled.reasons
        self._item_days[self._items.own(route)] = day
        return None

    async def _settle(
        self,
        route: str,
        records: list[Waiting],
        reasons: list[str],
        answered: list[tuple[Waiting, bool]],
        budget: Budget,
    ) -> list[Waiting]:
        """After a cancellation: the records whose key was found written are answered (a
        replay, or this request's own earlier attempt); the rest are returned to send again."""
        meanings = of_reasons(reasons)
        known = _RETRIED.issuperset(meanings) and meanings != {Meaning.NONE}
        if len(reasons) != 1 + len(records) or not known:
            raise RuntimeError(f"transaction cancelled: {reasons}")
        written = [
            record
            for record, reason in zip(records, reasons[1:], strict=True)
            if of_reason(reason) is Meaning.CONDITION_FAILED
        ]
        replays = await asyncio.gather(*(self._replay(route, r, budget) for r in written))
        for record, replayed in zip(written, replays, strict=True):
            if isinstance(replayed, bool):
                answered.append((record, replayed))
            else:
                answer(record, replayed)
        return [record for record in records if record not in written]

    async def _replay(self, route: str, record: Waiting, budget: Budget) -> bool | Exception:
        """Whether a key found written is a replay (False: this request wrote it, though its
        answer was lost); a mismatch or a failed read is the record's own outcome."""
        try:
            response = await self._call(
                "GetItem",
                {
                    "TableName": self._keys_table,
                    "Key": {KEY_ATTR: {"S": record.key}},
                    "ConsistentRead": True,
                },
                budget,
            )
        except StoreError as error:
            return error
        item: dict[str, dict[str, str]] = response.get("Item", {})
        key_route = item.get(ROUTE_ATTR, {}).get("S", route)
        if key_route != route:
            return IdempotencyKeyMismatch(key_route)
        return item.get(WRITER_ATTR, {}).get("S") != record.writer

    async def _pause_after(self, reasons: list[str], round_: int, budget: Budget) -> bool:
        """Before sending again: a backoff after a conflict or throttling, none after replays."""
        meanings = of_reasons(reasons)
        if Meaning.CONFLICT in meanings:
            self._observer.conflict_retried()
        elif Meaning.THROTTLED not in meanings:
            return True
        return await budget.pause(backoff(round_ - 1))

    def _day_kept_moving(self, operation: str) -> StoreError:
        return StoreError(
            StoreErrorKind.UNAVAILABLE,
            "dynamodb: the route's day kept changing under its writes",
            table=self._table,
            operation=operation,
        )

    def _persisting(self, reasons: list[str]) -> StoreError:
        throttled = Meaning.THROTTLED in of_reasons(reasons)
        return StoreError(
            StoreErrorKind.THROTTLED if throttled else StoreErrorKind.UNAVAILABLE,
            f"dynamodb: transaction cancelled {reasons}"
            if throttled
            else "dynamodb: transaction conflicts persisted",
            table=self._table,
            operation="TransactWriteItems",
        )

    async def _answer_with_count(
        self, route: str, answered: list[tuple[Waiting, bool]], budget: Budget
    ) -> None:
        try:
            count = await self._get(route, budget)
        except Exception as error:  # applied, but unanswered: a keyed retry is safe; a bug, a 500
            for record, _ in answered:
                answer(record, error)
            return
        for record, replayed in answered:
            answer(record, RecordResult(count=count, replayed=replayed))
