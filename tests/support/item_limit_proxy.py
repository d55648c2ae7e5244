"""A proxy in front of moto that throttles writes to one item beyond a partition's write rate,
which moto never does.

One item lives in one partition, and one partition serves at most 1,000 write units a second;
past that, DynamoDB refuses the write with `ProvisionedThroughputExceededException` (its
throttling reason `TableWriteKeyRangeThroughputExceeded`, in on-demand mode too), and a
transaction with one of its actions so refused is cancelled, reason `ThrottlingError` for
that action. Each item here has a bucket of `writes_per_second` write units that refills at
that rate: a single write takes 1 unit (these items are far under 1 KB), a transaction 2 per
action. A refused request takes none and never reaches moto, so nothing of it is applied.
Reads pass.

Sources: "Best practices for designing and using partition keys effectively" (1,000 write
units per partition), "Amazon DynamoDB Transactions: How it works" (two units per item), the
API reference's ThrottlingReason (KeyRangeThroughputExceeded) and TransactionCanceledException.
"""

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.contention_proxy import (
    SERVICE_KEYS,
    SINGLE_WRITES,
    Item,
    item_of,
    refusal,
)
from tests.support.proxy_server import Served, proxy_server

PARTITION_WRITE_UNITS = 1000
_THROTTLED = "ProvisionedThroughputExceededException"
_REASON = "TableWriteKeyRangeThroughputExceeded"


@dataclass
class ItemLimitProxy:
    url: str
    # Requests refused, by DynamoDB error type, and write units let through, by table.
    refused: Counter[str] = field(default_factory=Counter)
    units: Counter[str] = field(default_factory=Counter)


class Buckets:
    """A bucket of `rate` write units per item, full at first, refilled at `rate` a second."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._clock = clock
        self._level: dict[Item, tuple[float, float]] = {}  # units left, and when

    def _left(self, item: Item, now: float) -> float:
        units, then = self._level.get(item, (self._rate, now))
        return min(self._rate, units + (now - then) * self._rate)

    def take(self, items: Mapping[Item, int]) -> list[Item]:
        """Take each item's units, or none of them: the items short of their units."""
        now = self._clock()
        short = [item for item, units in items.items() if self._left(item, now) < units]
        if not short:
            for item, units in items.items():
                self._level[item] = (self._left(item, now) - units, now)
        return short


@contextmanager
def item_limit_proxy(
    target: str,
    writes_per_second: float = PARTITION_WRITE_UNITS,
    keys: Mapping[str, str] = SERVICE_KEYS,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[ItemLimitProxy]:
    """A proxy to moto at `target` that gives each item `writes_per_second` write units."""
    proxy = ItemLimitProxy("")
    buckets = Buckets(writes_per_second, clock)

    def throttled(payload: dict[str, Any], items: list[Item], short: list[Item]) -> web.Response:
        if "TransactItems" not in payload:
            proxy.refused[_THROTTLED] += 1
            return refusal(_THROTTLED, ThrottlingReasons=[{"reason": _REASON}])
        proxy.refused["TransactionCanceledException"] += 1
        reasons = [{"Code": "ThrottlingError" if item in short else "None"} for item in items]
        return refusal("TransactionCanceledException", CancellationReasons=reasons)

    async def forward(request: web.Request, served: Served) -> web.Response:
        action = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        body = await request.read()
        if action != "TransactWriteItems" and action not in SINGLE_WRITES:
            return await served.forward(request, body)
        payload = json.loads(body)
        if action == "TransactWriteItems":
            specs = [spec for each in payload["TransactItems"] for spec in each.values()]
            units = 2
        else:
            specs, units = [payload], 1
        items = [item_of(keys, spec) for spec in specs]
        short = buckets.take(dict.fromkeys(items, units))
        if short:
            return throttled(payload, items, short)
        for table, _ in items:
            proxy.units[table] += units
        return await served.forward(request, body)

    with proxy_server(target, forward) as served:
        proxy.url = served.url
        yield proxy
