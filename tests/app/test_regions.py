"""Two regions, active-active: the counter as a G-counter, one item per region
(`stores/dynamodb_regions`), against two moto regions and the test replicator, which settles
concurrent writes to one item by last writer wins, as global tables do.

The naive layout (both regions on the route's one item, the single-region store run in two
regions) is run the same way, to show what the G-counter prevents."""

import asyncio
import json
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest
from aiodynamo.sign import Request

from kiusys_app.stores import IdempotencyKeyMismatch, RecordResult, StoreError
from kiusys_app.stores.dynamodb.regions import CounterItems
from kiusys_app.stores.dynamodb.store import KEY_ATTR, ROUTE_ATTR, DynamoDBStore
from kiusys_app.stores.dynamodb.wire import Answer
from tests.support.aws import KEYS_TABLE, TABLE, dynamodb, fresh_tables
from tests.support.processes import app_server
from tests.support.replicator import Replicator

pytestmark = pytest.mark.anyio

HOME, OTHER = "us-east-1", "eu-west-1"
REGIONS = (HOME, OTHER)
ROUTE = "AR1133"
Stores = dict[str, DynamoDBStore]


def test_the_home_region_writes_the_routes_own_item_and_the_others_one_each() -> None:
    assert CounterItems(HOME).every(ROUTE) == ["AR1133"]
    assert CounterItems(HOME, (HOME,)).every(ROUTE) == ["AR1133"]
    assert CounterItems(HOME, REGIONS).every(ROUTE) == ["AR1133", "AR1133#eu-west-1"]
    elsewhere = CounterItems(OTHER, REGIONS)
    assert (elsewhere.own(ROUTE), elsewhere.others(ROUTE)) == ("AR1133#eu-west-1", ["AR1133"])


@pytest.fixture
def clients(aws: Any, moto_url: str) -> dict[str, Any]:
    """Both regions' tables, empty: a boto3 client for each region."""
    return {HOME: aws, OTHER: fresh_tables(dynamodb(moto_url, region=OTHER))}


@pytest.fixture
def replicator(clients: dict[str, Any], moto_url: str) -> Replicator:
    return Replicator(moto_url, REGIONS, {TABLE: ROUTE_ATTR, KEYS_TABLE: KEY_ATTR})


@pytest.fixture
async def stores_in(
    clients: dict[str, Any], moto_store: Callable[..., DynamoDBStore]
) -> AsyncIterator[Callable[[tuple[str, ...]], Stores]]:
    """A store in each region, counting across `regions` (none: the naive layout)."""
    opened: list[DynamoDBStore] = []

    def make(regions: tuple[str, ...]) -> Stores:
        stores = {region: moto_store(region=region, regions=regions) for region in REGIONS}
        opened.extend(stores.values())
        return stores

    yield make
    for store in opened:
        await store.aclose()


def counters(client: Any) -> dict[str, int]:
    items = client.scan(TableName=TABLE)["Items"]
    return {item[ROUTE_ATTR]["S"]: int(item["record"]["N"]) for item in items}


async def record_in_both(stores: Stores, home: int, other: int) -> None:
    await asyncio.gather(
        *(stores[HOME].record(ROUTE) for _ in range(home)),
        *(stores[OTHER].record(ROUTE) for _ in range(other)),
    )


def test_the_replicator_copies_each_write_once_and_keeps_one_of_two_concurrent_ones(
    clients: dict[str, Any], replicator: Replicator
) -> None:
    item = {ROUTE_ATTR: {"S": ROUTE}, "record": {"N": "1"}}
    clients[HOME].put_item(TableName=TABLE, Item=item)
    assert (replicator.replicate(), counters(clients[OTHER])) == (1, {ROUTE: 1})
    assert replicator.replicate() == 0  # nothing changed: nothing copied back
    for client in clients.values():  # the same item written in both regions before a pass
        client.update_item(
            TableName=TABLE,
            Key={ROUTE_ATTR: {"S": ROUTE}},
            UpdateExpression="ADD #count :one",
            ExpressionAttributeNames={"#count": "record"},
            ExpressionAttributeValues={":one": {"N": "1"}},
        )
    replicator.replicate()
    assert [counters(client) for client in clients.values()] == [{ROUTE: 2}, {ROUTE: 2}]
    assert replicator.lost == 1


async def test_each_region_counts_its_own_item_and_a_check_sums_them(
    stores_in: Callable[[tuple[str, ...]], Stores],
    clients: dict[str, Any],
    replicator: Replicator,
) -> None:
    stores = stores_in(REGIONS)
    await record_in_both(stores, home=2, other=3)
    assert counters(clients[HOME]) == {ROUTE: 2}  # before replication: each region's own
    assert await stores[OTHER].get(ROUTE) == 3
    replicator.replicate()
    assert counters(clients[HOME]) == counters(clients[OTHER]) == {ROUTE: 2, f"{ROUTE}#{OTHER}": 3}
    for store in stores.values():
        assert await store.get(ROUTE) == 5
        assert await store.get_many([ROUTE, "LA0001"]) == {ROUTE: 5, "LA0001": 0}
    # A record answers with its region's new count and the others' as replicated.
    assert await stores[OTHER].record(ROUTE) == RecordResult(count=6)
    assert replicator.lost == 0


async def test_the_naive_layout_loses_increments_that_the_g_counter_keeps(
    stores_in: Callable[[tuple[str, ...]], Stores], replicator: Replicator
) -> None:
    naive = stores_in(())  # each region on the route's one item
    await record_in_both(naive, home=2, other=3)
    replicator.replicate()
    assert [await store.get(ROUTE) for store in naive.values()] == [3, 3]  # 5 acknowledged
    assert replicator.lost == 1

    stores = stores_in(REGIONS)
    await record_in_both(stores, home=2, other=3)
    replicator.replicate()
    # The 3 left on the naive item, then the G-counter's 2 and 3.
    assert [await store.get(ROUTE) for store in stores.values()] == [3 + 5, 3 + 5]
    assert replicator.lost == 1


async def test_a_keyed_retry_in_the_other_region_counts_again_before_its_key_replicated_and_never_after(
    stores_in: Callable[[tuple[str, ...]], Stores], replicator: Replicator
) -> None:
    stores = stores_in(REGIONS)
    assert await stores[HOME].record(ROUTE, "sent-before") == RecordResult(count=1)
    # Within the replication lag the other region has seen neither the key nor the count: the
    # record is counted again there.
    assert await stores[OTHER].record(ROUTE, "sent-before") == RecordResult(count=1)
    assert await stores[HOME].record(ROUTE, "sent-after") == RecordResult(count=2)
    replicator.replicate()
    # After it, a retry in either region is a replay: "sent-before" counted twice, "sent-after"
    # once.
    for store in stores.values():
        for key in ("sent-before", "sent-after"):
            assert await store.record(ROUTE, key) == RecordResult(count=3, replayed=True)
        with pytest.raises(IdempotencyKeyMismatch):
            await store.record("LA0001", "sent-after")
    assert [await store.get(ROUTE) for store in stores.values()] == [3, 3]


async def test_a_check_of_100_routes_in_two_regions_reads_200_items_100_at_a_time(
    stores_in: Callable[[tuple[str, ...]], Stores], replicator: Replicator
) -> None:
    stores = stores_in(REGIONS)
    routes = [f"AR{number}" for number in range(100)]
    await asyncio.gather(stores[HOME].record(routes[0]), stores[OTHER].record(routes[99]))
    replicator.replicate()
    sizes: list[int] = []
    send = stores[HOME].wire.transport

    async def batch_sizes(request: Request, timeout: float) -> Answer:
        sizes.append(len(json.loads(request.body)["RequestItems"][TABLE]["Keys"]))
        return await send(request, timeout)

    stores[HOME].wire.transport = batch_sizes
    counts = await stores[HOME].get_many(routes)
    assert counts == {route: int(route in (routes[0], routes[99])) for route in routes}
    assert sizes == [100, 100]


async def test_a_plain_record_whose_read_of_the_other_regions_fails_writes_nothing(
    stores_in: Callable[[tuple[str, ...]], Stores], clients: dict[str, Any]
) -> None:
    store = stores_in(REGIONS)[OTHER]
    send = store.wire.transport

    async def no_reads(request: Request, timeout: float) -> Answer:
        if request.headers["X-Amz-Target"].endswith(".BatchGetItem"):
            body = {"__type": "com.amazonaws.dynamodb.v20120810#AccessDeniedException"}
            return Answer(400, "application/x-amz-json-1.0", json.dumps(body).encode())
        return await send(request, timeout)

    store.wire.transport = no_reads
    with pytest.raises(StoreError):
        await store.record(ROUTE)
    assert counters(clients[OTHER]) == {}


# Two service processes, one per region, on one moto server's two regions, the replicator
# running beside them.

ROUTES = ("AR1133", "LA0001")
CLIENTS_PER_REGION = 8
RECORDS_PER_CLIENT = 30


def service_env(moto_url: str, region: str, regions: tuple[str, ...]) -> dict[str, str]:
    env = {"KIUSYS_STORE": "dynamodb", "AWS_ENDPOINT_URL": moto_url, "AWS_REGION": region}
    return {**env, "KIUSYS_REGIONS": ",".join(regions)} if regions else env


def send(urls: list[str], records: int = RECORDS_PER_CLIENT) -> Counter[str]:
    """CLIENTS_PER_REGION clients per URL, all at once, each sending `records` plain records
    over ROUTES in turn; the records acknowledged, per route."""
    acknowledged: Counter[str] = Counter()
    lock = threading.Lock()
    starts = threading.Barrier(CLIENTS_PER_REGION * len(urls))

    def client(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30.0) as http:
            starts.wait()
            for index in range(records):
                route = ROUTES[index % len(ROUTES)]
                if http.post(f"/v1/routes/{route}/transactions").status_code == 201:
                    with lock:
                        acknowledged[route] += 1

    threads = [
        threading.Thread(target=client, args=(url,))
        for url in urls
        for _ in range(CLIENTS_PER_REGION)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return acknowledged


def checks(urls: list[str]) -> list[dict[str, int]]:
    """Each region's check of ROUTES."""
    query = "&".join(f"route={route}" for route in ROUTES)
    return [httpx.get(f"{url}/v1/transactions?{query}").json() for url in urls]


@contextmanager
def services(moto_url: str, regions: tuple[str, ...]) -> Iterator[list[str]]:
    """The service in HOME and in OTHER, counting across `regions`; their URLs."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(app_server(service_env(moto_url, region, regions)))
            for region in REGIONS
        ]


@pytest.mark.slow
@pytest.mark.parametrize("regions", [REGIONS, ()], ids=["g-counter", "naive"])
def test_concurrent_records_in_both_regions_are_all_counted_in_each_after_replication(
    clients: dict[str, Any], replicator: Replicator, moto_url: str, regions: tuple[str, ...]
) -> None:
    with services(moto_url, regions) as urls:
        with replicator.running():
            acknowledged = send(urls)
        sent = CLIENTS_PER_REGION * RECORDS_PER_CLIENT * len(REGIONS)
        assert sum(acknowledged.values()) == sent
        counted = checks(urls)
    print(f"acknowledged={dict(acknowledged)} counted={counted} lost={replicator.lost}")
    if regions:
        assert counted == [dict(acknowledged)] * len(REGIONS)
        assert replicator.lost == 0
    else:  # last writer wins drops the increments of one region or the other
        assert counted[0] == counted[1]
        assert all(counted[0][route] < acknowledged[route] for route in ROUTES)


@pytest.mark.slow
def test_one_region_down_the_other_counts_on_and_after_recovery_nothing_is_lost(
    clients: dict[str, Any], replicator: Replicator, moto_url: str
) -> None:
    with app_server(service_env(moto_url, HOME, REGIONS)) as home:
        with app_server(service_env(moto_url, OTHER, REGIONS)) as other:
            with replicator.running(last_pass=False):
                acknowledged = send([home, other])
            # The outage begins: replication stops, and what OTHER acknowledges now stays there.
            acknowledged += send([other], records=10)
        # OTHER is down: its clients fail over to HOME, which counts on.
        during = send([home, home], records=10)
        assert sum(during.values()) == 2 * CLIENTS_PER_REGION * 10
        acknowledged += during
        # HOME's check lacks OTHER's last records until OTHER is back.
        assert all(checks([home])[0][route] < acknowledged[route] for route in ROUTES)
        replicator.replicate()  # OTHER is back; so is the replication
        with app_server(service_env(moto_url, OTHER, REGIONS)) as other:
            assert checks([home, other]) == [dict(acknowledged)] * 2
    assert replicator.lost == 0
