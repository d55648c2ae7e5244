"""The record and check calls' hot path answers exactly as the FastAPI routes behind it would.

Each call is sent to the app, and to the same app with its hot routes taken out, each on a
fresh store; status, body and headers (but the request id) must match. Valid calls must not
reach FastAPI's parameter solving; every other call must.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kiusys_app.api import hot_path
from tests.support.app import sqlite_settings, started_app

RECORD_PATHS = ["/save-transaction/{}", "/v1/routes/{}/transactions"]
CHECKS = [
    ("GET", "/get-transaction/{}"),
    ("POST", "/get-transaction/{}"),
    ("GET", "/v1/routes/{}/transactions"),
]
BATCH_QUERIES = [
    "route=AR1133",
    "route=ar1133&route=AR1133&route=LA0001",
    "route=AR1133&other=1",
    "route=",
    "route=AR-1133",
    "",
    "other=AR1133",
    "&".join(["route=AR1133"] * 100),
    "&".join(["route=AR1133"] * 101),
    "route=AR1133&route",
]
ROUTES = ["AR1133", "ar1133", "G31234", "1133", "AR-1133", "ÄR1133", "AR11334567", "%20"]
KEYS: list[list[tuple[str, str]]] = [
    [],
    [("Idempotency-Key", "order-1")],
    [("Idempotency-Key", "x" * 255)],
    [("Idempotency-Key", "x" * 256)],
    [("Idempotency-Key", "")],
    [("Idempotency-Key", "tab\there")],
    [("Idempotency-Key", "one"), ("Idempotency-Key", "two")],
]


def without_hot_routes(app: FastAPI) -> FastAPI:
    app.router.routes[:] = [
        route
        for route in app.router.routes
        if not isinstance(getattr(route, "app", None), hot_path._HotRoute)
    ]
    return app


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    (tmp_path / "hot").mkdir()
    (tmp_path / "plain").mkdir()
    with (
        started_app(sqlite_settings(tmp_path / "hot")) as hot,
        started_app(sqlite_settings(tmp_path / "plain")) as plain,
    ):
        without_hot_routes(plain.app)  # type: ignore[arg-type]
        yield hot, plain


def answer(
    client: TestClient, path: str, headers: list[tuple[str, str]], method: str = "POST"
) -> Any:
    response = client.request(method, path, headers=headers)
    shown = {k: v for k, v in response.headers.items() if k not in {"x-request-id", "date"}}
    return response.status_code, response.content, shown


@pytest.mark.parametrize("path", RECORD_PATHS)
def test_every_record_call_is_answered_as_the_fastapi_route_answers_it(
    clients: tuple[TestClient, TestClient], path: str
) -> None:
    hot, plain = clients
    for route in ROUTES:
        for headers in KEYS:
            # Twice: a repeated key is a replay on both.
            for _ in range(2):
                url = path.format(route)
                assert answer(hot, url, headers) == answer(plain, url, headers), (url, headers)


def test_every_check_is_answered_as_the_fastapi_route_answers_it(
    clients: tuple[TestClient, TestClient],
) -> None:
    for client in clients:
        for _ in range(3):
            assert client.post("/save-transaction/AR1133").is_success
    for method, path in CHECKS:
        for route in ROUTES:
            url = path.format(route)
            assert answer(clients[0], url, [], method) == answer(clients[1], url, [], method), url
    for query in BATCH_QUERIES:
        url = f"/v1/transactions?{query}"
        assert answer(clients[0], url, [], "GET") == answer(clients[1], url, [], "GET"), url


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths that went through FastAPI's parameter solving."""
    calls: list[str] = []
    solve = fastapi.routing.solve_dependencies

    async def counted(*, request: Any, **rest: Any) -> Any:
        calls.append(request.url.path)
        return await solve(request=request, **rest)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counted)
    return calls


@pytest.mark.parametrize("path", RECORD_PATHS)
def test_valid_calls_skip_fastapis_parameter_solving_and_others_do_not(
    clients: tuple[TestClient, TestClient], solved: list[str], path: str
) -> None:
    hot, _ = clients
    assert hot.post(path.format("ar1133"), headers={"Idempotency-Key": "k"}).is_success
    assert hot.post(path.format("AR1133")).is_success
    assert solved == []
    assert hot.post(path.format("AR-1133")).status_code == 422
    assert hot.post(path.format("AR1133"), headers={"Idempotency-Key": ""}).status_code == 422
    assert solved == [path.format("AR-1133"), path.format("AR1133")]


def test_valid_checks_skip_fastapis_parameter_solving_and_others_do_not(
    clients: tuple[TestClient, TestClient], solved: list[str]
) -> None:
    hot, _ = clients
    for method, path in CHECKS:
        assert hot.request(method, path.format("ar1133")).is_success
    assert hot.get("/v1/transactions?route=AR1133&route=LA0001").is_success
    assert solved == []
    assert hot.get("/v1/routes/AR-1133/transactions").status_code == 422
    assert hot.get("/v1/transactions?route=AR-1133").status_code == 422
    assert solved == ["/v1/routes/AR-1133/transactions", "/v1/transactions"]


def test_the_schema_is_the_same_with_and_without_hot_routes(
    clients: tuple[TestClient, TestClient],
) -> None:
    hot, plain = clients
    assert hot.get("/openapi.json").json() == plain.get("/openapi.json").json()
    assert len(hot.app.router.routes) == len(plain.app.router.routes) + 6  # type: ignore[attr-defined]
