"""The DynamoDB store: atomic counters, and exactly-once records through transactions.

Records wait in a queue per route (plain and keyed apart), and each queue's one writer sends
all that are waiting as one write; the first record on a quiet route goes at once. Plain
records are one `UpdateItem ADD n`, and each is answered with the count before it plus its
place in the batch, so the answers stay distinct and increasing. Keyed records are one
`TransactWriteItems`: the counter's `ADD n` and one conditional `Put` per key (written only if
it is new or expired), so either all of them happen or none does. One write at a time per
route and process keeps a busy route's writes to one item fewer than its records (a partition
takes 1,000 write units a second), and keeps keyed records from cancelling each other.

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
from typing import Any

from aiodynamo.credentials import Key

from kiusys_app.stores.base import (
    CALL_BUDGET_SECONDS,
    IDEMPOTENCY_TTL_SECONDS,
    IdempotencyKeyMismatch,
    NullObserver,
    RecordResult,
    StoreError,
    StoreErrorKind,
    StoreObserver,
)
from kiusys_app.stores.dynamodb import retry
from kiusys_app.stores.dynamodb.coalescer import Coalescer, Waiting, answer, oldest
from kiusys_app.stores.dynamodb.credentials import ChainCredentials
from kiusys_app.stores.dynamodb.errors import Meaning, of_reason, of_reasons
from kiusys_app.stores.dynamodb.regions import CounterItems
from kiusys_app.stores.dynamodb.retry import Budget, backoff
from kiusys_app.stores.dynamodb.wire import POOL_SIZE, Cancelled, ConditionFailed, Wire

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

# A cancelled transaction is settled and sent again when each reason is one of these, and at
# least one is not "None".
_RETRIED = frozenset({Meaning.NONE, Meaning.CONDITION_FAILED, Meaning.CONFLICT, Meaning.THROTTLED})

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
        # `writes`, the two writes the service makes, of that key, with a condition that never
        # holds. DynamoDB authorizes a request before it evaluates its condition, so
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
        await self._refused_write(
            "PutItem",
            {
                **never,
                "TableName": self._keys_table,
                "Item": {KEY_ATTR: {"S": PROBE_KEY}},
                "ExpressionAttributeNames": {"#key": KEY_ATTR},
            },
            budget,
        )

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

    def _increment(self, route: str, by: int) -> dict[str, Any]:
        return {
            "TableName": self._table,
            "Key": {ROUTE_ATTR: {"S": route}},
            "UpdateExpression": "ADD #count :by",
            "ExpressionAttributeNames": {"#count": COUNT_ATTR},
            "ExpressionAttributeValues": {":by": {"N": str(by)}},
        }

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
        response = await self._call(
            "UpdateItem",
            {**self._increment(self._items.own(route), len(batch)), "ReturnValues": "UPDATED_NEW"},
            budget,
            repeatable=False,
        )
        before = int(response["Attributes"][COUNT_ATTR]["N"]) + sum(others.values()) - len(batch)
        for place, record in enumerate(batch, 1):
            answer(record, RecordResult(count=before + place))

    # Reads.

    async def _get(self, route: str, budget: Budget) -> int:
        items = self._items.every(route)
        if len(items) > 1:
            return sum((await self._counts(items, budget)).values())
        response = await self._call(
            "GetItem",
            {
                "TableName": self._table,
                "Key": {ROUTE_ATTR: {"S": route}},
                "ConsistentRead": True,
                "ProjectionExpression": "#count",
                "ExpressionAttributeNames": {"#count": COUNT_ATTR},
            },
            budget,
        )
        return int(response.get("Item", {}).get(COUNT_ATTR, {}).get("N", 0))

    async def _get_many(self, routes: Sequence[str], budget: Budget) -> dict[str, int]:
        items = {route: self._items.every(route) for route in routes}
        counts = await self._counts([item for each in items.values() for item in each], budget)
        return {route: sum(counts[item] for item in each) for route, each in items.items()}

    async def _counts(self, items: list[str], budget: Budget) -> dict[str, int]:
        """The counters of distinct `items` (0 where never written), 100 to a BatchGetItem;
        unprocessed ones are sent again, for MAX_ROUNDS rounds in all. No items, no call."""
        counts = dict.fromkeys(items, 0)
        pending = items
        rounds = 0
        while pending:
            batch, pending = pending[:MAX_KEYS_PER_BATCH_GET], pending[MAX_KEYS_PER_BATCH_GET:]
            response = await self._call(
                "BatchGetItem", {"RequestItems": self._read_of(batch)}, budget, table=self._table
            )
            for item in response.get("Responses", {}).get(self._table, []):
                counts[item[ROUTE_ATTR]["S"]] = int(item[COUNT_ATTR]["N"])
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
        return counts

    def _read_of(self, items: list[str]) -> dict[str, Any]:
        return {
            self._table: {
                "Keys": [{ROUTE_ATTR: {"S": item}} for item in items],
                "ConsistentRead": True,
                "ProjectionExpression": "#route, #count",
                "ExpressionAttributeNames": {"#route": ROUTE_ATTR, "#count": COUNT_ATTR},
            }
        }

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
        actions = [{"Update": self._increment(self._items.own(route), len(records))}, *puts]
        try:
            await self._call(
                "TransactWriteItems", {"TransactItems": actions}, budget, table=self._keys_table
            )
        except Cancelled as cancelled:
            return cancelled.reasons
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
