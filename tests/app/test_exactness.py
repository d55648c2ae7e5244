"""Exactly-once under real concurrency: 3 workers of `kiusys-app`, 40 clients x 20 records each
(800), plain and keyed; and 50 clients sending one key at once."""

import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

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
    keyed: bool = False,
    clients: int = CLIENTS,
) -> Counter[int]:
    """Each of `clients` threads posts every path in `paths`, all starting at once; `keyed`
    gives each post an Idempotency-Key of its own."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client() -> None:
        with httpx.Client(base_url=base_url, timeout=30.0) as http:
            barrier.wait()
            for path in paths:
                sent = {"Idempotency-Key": uuid.uuid4().hex} if keyed else headers
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
    statuses = hammer(base_url, paths, keyed=keyed)
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
