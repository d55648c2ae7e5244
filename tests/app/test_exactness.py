"""Exactly-once under real concurrency: 3 workers of `kiusys-app`, 40 clients x 20 records each
(800), plain and keyed; 50 clients sending one key at once; and, through the contention layer
(DynamoDB's transaction conflicts, which moto lacks), a busy route and a hot keyed route."""

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.contention_proxy import contention_proxy
from tests.support.processes import app_server

pytestmark = pytest.mark.slow

CLIENTS = 40
RECORDS_PER_CLIENT = 20
WORKERS = 3


def hammer(
    base_url: str,
    paths: list[str],
    headers: Mapping[str, str] | None = None,
    *,
    keyed: Callable[[int], bool] = lambda index: False,
    clients: int = CLIENTS,
) -> Counter[int]:
    """Each of `clients` threads posts every path in `paths`, all starting at once; a post for
    whose index in `paths` `keyed` is true has an Idempotency-Key of its own."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client() -> None:
        with httpx.Client(base_url=base_url, timeout=30.0) as http:
            barrier.wait()
            for index, path in enumerate(paths):
                sent = {"Idempotency-Key": uuid.uuid4().hex} if keyed(index) else headers
                try:
                    status = http.post(path, headers=sent).status_code
                except httpx.TransportError:
                    status = 0
                with lock:
                    statuses[status] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def assert_exact(base_url: str, *, keyed: bool = False) -> None:
    # Both record calls, interleaved, on one hot route.
    paths = ["/save-transaction/AR1133", "/v1/routes/ar1133/transactions"] * (
        RECORDS_PER_CLIENT // 2
    )
    statuses = hammer(base_url, paths, keyed=lambda index: keyed)
    acknowledged = statuses[200] + statuses[201]
    counted = httpx.get(f"{base_url}/get-transaction/AR1133").json()["AR1133"]
    sent = CLIENTS * RECORDS_PER_CLIENT
    print(f"sent={sent} acknowledged={acknowledged} counted={counted} statuses={dict(statuses)}")
    assert counted == acknowledged
    assert acknowledged == sent, f"every record should be acknowledged: {dict(statuses)}"


ONE_KEY_CLIENTS = 50


def assert_one_key_counts_once(base_url: str) -> None:
    path = ["/v1/routes/LA0001/transactions"]
    statuses = hammer(base_url, path, {"Idempotency-Key": "same"}, clients=ONE_KEY_CLIENTS)
    assert statuses == Counter({201: 1, 200: ONE_KEY_CLIENTS - 1})
    assert httpx.get(f"{base_url}/get-transaction/LA0001").json() == {"LA0001": 1}


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {"KIUSYS_STORE": "sqlite", "KIUSYS_SQLITE_PATH": str(tmp_path / "shared.sqlite3")}


@pytest.fixture
def sqlite_server(sqlite_env: dict[str, str]) -> Iterator[str]:
    with app_server(sqlite_env, workers=WORKERS) as url:
        yield url


@pytest.fixture
def dynamodb_server(moto_tables: Any, moto_url: str) -> Iterator[str]:
    env = {"KIUSYS_STORE": "dynamodb", "AWS_ENDPOINT_URL": moto_url}
    with app_server(env, workers=WORKERS) as url:
        yield url


def test_sqlite_counts_exactly(sqlite_server: str) -> None:
    assert_exact(sqlite_server)


def test_dynamodb_counts_exactly(dynamodb_server: str) -> None:
    assert_exact(dynamodb_server)


def test_dynamodb_counts_keyed_records_exactly(dynamodb_server: str) -> None:
    assert_exact(dynamodb_server, keyed=True)


def test_sqlite_one_key_counts_once(sqlite_server: str) -> None:
    assert_one_key_counts_once(sqlite_server)


def test_dynamodb_one_key_counts_once(dynamodb_server: str) -> None:
    assert_one_key_counts_once(dynamodb_server)


def test_sqlite_counts_survive_a_restart(sqlite_env: dict[str, str]) -> None:
    with app_server(sqlite_env) as url:
        for _ in range(3):
            httpx.post(f"{url}/save-transaction/AR1133").raise_for_status()
    with app_server(sqlite_env) as url:
        assert httpx.get(f"{url}/get-transaction/AR1133").json() == {"AR1133": 3}
        assert httpx.post(f"{url}/save-transaction/AR1133").json() == {"AR1133": 4}


@pytest.fixture
def contended_server(moto_tables: Any, moto_url: str) -> Iterator[str]:
    """3 workers on moto behind the contention layer: each transaction in flight for 10 ms."""
    with contention_proxy(moto_url, hold=0.01) as proxy:
        env = {"KIUSYS_STORE": "dynamodb", "AWS_ENDPOINT_URL": proxy.url}
        with app_server(env, workers=WORKERS) as url:
            yield url
        print(f"the contention layer refused {dict(proxy.refused)}")


def test_a_busy_route_with_plain_and_keyed_records_answers_no_5xx_and_counts_each(
    contended_server: str,
) -> None:
    # Every second record keyed: 200 plain and 200 keyed records on one route.
    paths = ["/v1/routes/AR1133/transactions"] * 10
    statuses = hammer(contended_server, paths, keyed=lambda index: index % 2 == 1)
    counted = httpx.get(f"{contended_server}/get-transaction/AR1133").json()["AR1133"]
    print(f"busy route: statuses {dict(statuses)}, counted {counted}")
    assert statuses == Counter({201: CLIENTS * len(paths)})
    assert counted == CLIENTS * len(paths)


HOT_CLIENTS = 50
HOT_RECORDS = 400


def test_a_hot_keyed_route_answers_every_record_and_counts_each_once(
    contended_server: str,
) -> None:
    paths = ["/v1/routes/LA0001/transactions"] * (HOT_RECORDS // HOT_CLIENTS)
    statuses = hammer(contended_server, paths, keyed=lambda index: True, clients=HOT_CLIENTS)
    counted = httpx.get(f"{contended_server}/get-transaction/LA0001").json()["LA0001"]
    print(f"hot keyed route: statuses {dict(statuses)}, counted {counted}")
    assert statuses == Counter({201: HOT_RECORDS})
    assert counted == HOT_RECORDS
