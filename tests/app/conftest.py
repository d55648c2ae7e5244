"""Fixtures that give each test a fresh store, or the app on a fresh store."""

import io
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kiusys_app.config import Settings
from kiusys_app.logs import JsonFormatter
from kiusys_app.stores import CounterStore
from kiusys_app.stores.dynamodb import DynamoDBStore
from kiusys_app.stores.sqlite import SQLiteStore
from tests.support.app import sqlite_settings, started_app
from tests.support.aws import KEYS_TABLE, REGION, TABLE, dynamodb, scan_all

STORES = ["sqlite", "dynamodb"]


class Clock:
    """A clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def aws(moto_tables: Any, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Fresh tables on the moto server, which `AWS_ENDPOINT_URL` points the app and boto3 at;
    returns a boto3 client for it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    return moto_tables


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=STORES)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[CounterStore]:
    opened: CounterStore
    if request.param == "sqlite":
        opened = SQLiteStore(tmp_path / "counts.sqlite3", clock=clock)
    else:
        opened = request.getfixturevalue("moto_store")(clock=clock)
    yield opened
    await opened.aclose()


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """The app, lifespan included, on a fresh store of each kind."""
    if store_kind == "dynamodb":
        request.getfixturevalue("aws")
    with started_app(sqlite_settings(tmp_path, store=store_kind)) as test_client:
        yield test_client


@pytest.fixture
def snapshot(client: TestClient, store_kind: str, tmp_path: Path) -> Callable[[], object]:
    """Everything the store holds, to prove that a request changed nothing."""
    if store_kind == "dynamodb":
        return lambda: scan_all(dynamodb())

    def rows() -> object:
        with closing(sqlite3.connect(tmp_path / "counts.sqlite3")) as conn:
            return (
                conn.execute("SELECT * FROM counters ORDER BY route").fetchall(),
                conn.execute("SELECT * FROM idempotency_keys ORDER BY key").fetchall(),
            )

    return rows


@pytest.fixture
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An environment where botocore's chain finds nothing unless the test adds a source."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


@pytest.fixture
def moto_store(aws: Any, moto_url: str) -> Callable[..., DynamoDBStore]:
    """Makes stores on the moto server (each test closes its own)."""

    def make(**options: Any) -> DynamoDBStore:
        settings = {"region": REGION, "endpoint_url": moto_url, **options}
        return DynamoDBStore(table_name=TABLE, idempotency_table_name=KEYS_TABLE, **settings)

    return make


@pytest.fixture
def moto_client(moto_tables: Any, moto_url: str) -> Iterator[TestClient]:
    """The app on DynamoDB served by the moto server."""
    with started_app(Settings(store="dynamodb", aws_endpoint_url=moto_url)) as test_client:
        yield test_client


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything the service logs during the test, as the JSON lines it writes."""
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("kiusys_app")
    logger.addHandler(handler)
    yield output
    logger.removeHandler(handler)
