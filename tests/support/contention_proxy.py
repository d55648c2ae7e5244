"""A proxy in front of moto that applies DynamoDB's transaction conflict rules, which moto lacks.

A `TransactWriteItems` is in flight for `hold` seconds before moto applies it; meanwhile its
items are locked. A `PutItem`, `UpdateItem` or `DeleteItem` of a locked item is refused with
`TransactionConflictException`, and another transaction that touches one is cancelled with
`TransactionCanceledException`, whose `CancellationReasons` give `TransactionConflict` for each
locked item and `None` for the others. Reads pass (a non-transactional read sees the last
committed value). Neither refusal reaches moto, so nothing of it is applied.

Source: the DynamoDB API reference, `TransactionCanceledException` and `UpdateItem`'s errors
(`TransactionConflictException`: "Operation was rejected because there is an ongoing
transaction for the item"), and the developer guide's "Transaction conflict handling".
"""

import asyncio
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.aws import KEYS_TABLE, TABLE
from tests.support.proxy_server import Served, proxy_server

ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
SINGLE_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
# The key attribute of each table, to tell which item a write touches.
SERVICE_KEYS = {TABLE: "flight-route", KEYS_TABLE: "idempotency-key"}

Item = tuple[str, str]  # (table, the key's value as JSON)


@dataclass
class ContentionProxy:
    url: str
    # The refusals it answered, by DynamoDB error type.
    refused: Counter[str] = field(default_factory=Counter)
    # How many transactions moto applied through it.
    committed: int = 0


def item_of(keys: Mapping[str, str], spec: dict[str, Any]) -> Item:
    """The item that a write's or a transaction action's spec touches."""
    table = spec["TableName"]
    attributes = spec["Key"] if "Key" in spec else spec["Item"]
    return table, json.dumps(attributes[keys[table]], sort_keys=True)


def refusal(code: str, **extra: Any) -> web.Response:
    body = {"__type": ERROR_PREFIX + code, "message": code, **extra}
    return web.Response(
        status=400, body=json.dumps(body), content_type="application/x-amz-json-1.0"
    )


@contextmanager
def contention_proxy(
    target: str, hold: float = 0.01, keys: Mapping[str, str] = SERVICE_KEYS
) -> Iterator[ContentionProxy]:
    """A proxy to moto at `target` whose transactions are each in flight for `hold` seconds."""
    proxy = ContentionProxy("")
    locked: set[Item] = set()

    async def transact(
        request: web.Request, served: Served, body: bytes, payload: dict[str, Any]
    ) -> web.Response:
        items = [
            item_of(keys, spec) for action in payload["TransactItems"] for spec in action.values()
        ]
        if locked.intersection(items):
            proxy.refused["TransactionCanceledException"] += 1
            reasons = [{"Code": "TransactionConflict" if i in locked else "None"} for i in items]
            return refusal("TransactionCanceledException", CancellationReasons=reasons)
        locked.update(items)
        try:
            await asyncio.sleep(hold)
            answer = await served.forward(request, body)
        finally:
            locked.difference_update(items)
        proxy.committed += answer.status == 200
        return answer

    async def forward(request: web.Request, served: Served) -> web.Response:
        action = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        body = await request.read()
        payload = json.loads(body)
        if action == "TransactWriteItems":
            return await transact(request, served, body, payload)
        if action in SINGLE_WRITES and item_of(keys, payload) in locked:
            proxy.refused["TransactionConflictException"] += 1
            return refusal("TransactionConflictException")
        return await served.forward(request, body)

    with proxy_server(target, forward) as served:
        proxy.url = served.url
        yield proxy
