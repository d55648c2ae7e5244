"""schemathesis against the app's own OpenAPI schema, with API keys on: no 5xx, and every
response as the schema says (status codes, headers, bodies, content types)."""

import itertools
import tempfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import settings

from kiusys_app.api.paths import USAGE
from kiusys_app.main import create_app
from tests.support.app import sqlite_settings

API_KEY = "fuzz-key-0123456789abcdef"
EXAMPLES_PER_OPERATION = 100

# The app is built at import, as schemathesis reads its schema then; its database is a
# throwaway file that the module fixture removes.
_database_dir = tempfile.TemporaryDirectory(prefix="kiusys-fuzz-")
app = create_app(sqlite_settings(Path(_database_dir.name), api_keys=API_KEY))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.auth()
class BearerKey:
    """Sends a valid key; schemathesis's own auth checks then try missing and wrong ones."""

    def get(self, case: schemathesis.Case, context: object) -> str:
        return API_KEY

    def set(self, case: schemathesis.Case, data: str, context: object) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.hook
def map_headers(
    context: schemathesis.HookContext, headers: dict[str, str] | None
) -> dict[str, str] | None:
    """Give every generated Idempotency-Key a unique prefix. A key reused on another route is a
    422 by design (the contract suite covers it), which schemathesis would read as valid data
    being refused."""
    if headers and "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = f"{next(_unique)}-{headers['Idempotency-Key']}"[:255]
    return headers


_unique = itertools.count()


def within_usage_rules(query: dict[str, Any]) -> None:
    """Make a usage call's query meet the rules its schema cannot state, each tested on its own
    (tests/app/test_usage_api.py): an airline or routes, not both and not neither, and from no
    later than to, at most 366 days apart. Otherwise schemathesis reads their 422s as valid data
    being refused. (Its hooks do not reach the cases made from the schema's examples.)"""
    if "airline" in query:
        query.pop("route", None)
    elif "route" not in query:
        query["airline"] = "AR"
    try:
        first, last = sorted(date.fromisoformat(query[name]) for name in ("from", "to"))
    except (KeyError, TypeError, ValueError):
        return  # a bad date: the schema's own rule
    query["from"], query["to"] = (
        first.isoformat(),
        min(last, first + timedelta(days=365)).isoformat(),
    )


@pytest.fixture(scope="module", autouse=True)
def running_app() -> Iterator[None]:
    """The lifespan runs once, with keys set, on the throwaway SQLite file."""
    with _database_dir, TestClient(app):
        yield


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
)
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    if case.operation.path == USAGE and isinstance(case.query, dict):
        within_usage_rules(case.query)
    case.call_and_validate()


def test_schema_covers_every_public_operation() -> None:
    operations = {
        (result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations()
    }
    assert operations >= {
        ("POST", "/save-transaction/{flight_route}"),
        ("GET", "/get-transaction/{flight_route}"),
        ("POST", "/get-transaction/{flight_route}"),
        ("POST", "/v1/routes/{route}/transactions"),
        ("GET", "/v1/routes/{route}/transactions"),
        ("GET", "/v1/transactions"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/regionz"),
    }
