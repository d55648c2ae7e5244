"""Every suite talks to emulators only: fake AWS credentials, no shared AWS config. The moto
server is shared by the suites that need DynamoDB over HTTP (the service's and the client's)."""

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.aws import FAKE_CREDENTIALS, dynamodb, fresh_tables
from tests.support.processes import moto_server

os.environ.update(FAKE_CREDENTIALS)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
for _name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "KIUSYS_STORE"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """A single-threaded moto server, shared by the tests that need real HTTP."""
    with moto_server() as emulator:
        yield emulator.url


@pytest.fixture
def moto_tables(moto_url: str) -> Any:
    """Fresh tables on the moto server; returns a client for it."""
    return fresh_tables(dynamodb(moto_url))
