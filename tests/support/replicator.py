"""Global tables' replication in the eventually consistent mode, for the tests: moto has no
replicas. Two moto regions stand for two replicas of one table.

A pass copies every item that changed in one region since the last pass to the other regions.
An item that changed in several regions since then keeps one region's write and the others are
lost, as DynamoDB settles concurrent writes to one item by last writer wins ("Global tables: how
it works"); here the region listed last is taken as the later writer. Deletes are not copied:
the service never deletes, and TTL deletion is not what these tests are about.
"""

import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import boto3

Item = dict[str, Any]


class Replicator:
    def __init__(self, endpoint_url: str, regions: Sequence[str], tables: dict[str, str]) -> None:
        """`tables`: each table's name and the name of its hash key (a string)."""
        self._clients = {
            region: boto3.client("dynamodb", region_name=region, endpoint_url=endpoint_url)
            for region in regions
        }
        self._tables = tables
        # What each region held after the last pass, per table: item name -> item.
        self._seen: dict[tuple[str, str], dict[str, Item]] = defaultdict(dict)
        # Writes that a concurrent write to the same item in another region overwrote.
        self.lost = 0

    def replicate(self) -> int:
        """One pass over every table; the number of items copied."""
        return sum(self._replicate(table, key) for table, key in self._tables.items())

    def _replicate(self, table: str, key: str) -> int:
        held = {region: self._scan(region, table, key) for region in self._clients}
        writes: dict[str, list[Item]] = defaultdict(list)
        for region, items in held.items():
            seen = self._seen[region, table]
            for name, item in items.items():
                if seen.get(name) != item:
                    writes[name].append(item)
        copied = 0
        for name, written in writes.items():
            winner = written[-1]
            self.lost += len(written) - 1
            for region, client in self._clients.items():
                if held[region].get(name) != winner:
                    client.put_item(TableName=table, Item=winner)
                    copied += 1
                self._seen[region, table][name] = winner
        return copied

    def _scan(self, region: str, table: str, key: str) -> dict[str, Item]:
        pages = self._clients[region].get_paginator("scan").paginate(TableName=table)
        return {item[key]["S"]: item for page in pages for item in page["Items"]}

    @contextmanager
    def running(self, interval: float = 0.05, last_pass: bool = True) -> Iterator["Replicator"]:
        """Passes every `interval` seconds on a thread until the block ends, then, with
        `last_pass`, a last one (without: replication stops as in an outage)."""
        stopped = threading.Event()

        def loop() -> None:
            while not stopped.wait(interval):
                self.replicate()

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stopped.set()
            thread.join()
            if last_pass:
                self.replicate()
