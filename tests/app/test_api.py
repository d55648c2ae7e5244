"""The HTTP contract, on both stores, through the app's real lifespan."""

import random
import string
from collections.abc import Callable
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from kiusys_app.models import ROUTE_RULE, normalize_route


def test_seed_walkthrough(client: TestClient) -> None:
    for expected in range(1, 6):
        response = client.post("/save-transaction/AR1133")
        assert response.status_code == 200
        assert response.json() == {"AR1133": expected}
    assert client.post("/get-transaction/AR1133").json() == {"AR1133": 5}
    assert client.get("/get-transaction/AR1133").json() == {"AR1133": 5}
    unknown = client.post("/get-transaction/LA0001")
    assert (unknown.status_code, unknown.json()) == (200, {"LA0001": 0})


def test_route_is_upper_cased(client: TestClient) -> None:
    assert client.post("/save-transaction/ar1133").json() == {"AR1133": 1}
    assert client.get("/v1/routes/Ar1133/transactions").json() == {
        "route": "AR1133",
        "transactions": 1,
    }


def test_v1_record_creates_and_check_reads(client: TestClient) -> None:
    created = client.post("/v1/routes/LA0001/transactions")
    assert (created.status_code, created.json()) == (201, {"route": "LA0001", "transactions": 1})
    checked = client.get("/v1/routes/LA0001/transactions")
    assert (checked.status_code, checked.json()) == (200, {"route": "LA0001", "transactions": 1})
    assert client.get("/v1/routes/G31234/transactions").json()["transactions"] == 0


def test_v1_replay_answers_200_with_the_replay_header(client: TestClient) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = client.post("/v1/routes/AR1133/transactions", headers=headers)
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    client.post("/v1/routes/AR1133/transactions")
    replay = client.post("/v1/routes/AR1133/transactions", headers=headers)
    assert (replay.status_code, replay.json()) == (200, {"route": "AR1133", "transactions": 2})
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_seed_record_accepts_a_key(client: TestClient) -> None:
    headers = {"Idempotency-Key": "order-42"}
    assert client.post("/save-transaction/AR1133", headers=headers).json() == {"AR1133": 1}
    replay = client.post("/save-transaction/ar1133", headers=headers)
    assert (replay.status_code, replay.json()) == (200, {"AR1133": 1})
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_key_reused_for_another_route_is_422_and_changes_nothing(
    client: TestClient, snapshot: Callable[[], object]
) -> None:
    client.post("/save-transaction/AR1133", headers={"Idempotency-Key": "order-42"})
    before = snapshot()
    response = client.post(
        "/v1/routes/LA0001/transactions", headers={"Idempotency-Key": "order-42"}
    )
    assert response.status_code == 422
    # The shape of FastAPI's own 422s, which the schema documents.
    assert response.json() == {
        "detail": [
            {
                "loc": ["header", "Idempotency-Key"],
                "msg": "this Idempotency-Key was already used for route AR1133",
                "type": "idempotency_key_reused",
            }
        ]
    }
    assert snapshot() == before


def test_batch_check(client: TestClient) -> None:
    client.post("/save-transaction/AR1133")
    response = client.get("/v1/transactions?route=AR1133&route=la0001&route=AR1133")
    assert (response.status_code, response.json()) == (200, {"AR1133": 1, "LA0001": 0})


@pytest.mark.parametrize(
    "query",
    ["", "route=AR1133&route=AR-1133", "&".join(f"route=AB{n:04d}" for n in range(101))],
    ids=["none", "one-bad", "over-100"],
)
def test_batch_check_refuses_bad_input(client: TestClient, query: str) -> None:
    assert client.get(f"/v1/transactions?{query}").status_code == 422


def test_a_batch_past_100_routes_is_refused_in_plain_words(client: TestClient) -> None:
    query = "&".join(f"route=AB{n:04d}" for n in range(101))
    (error,) = client.get(f"/v1/transactions?{query}").json()["detail"]
    assert error["msg"] == "a batch check reads 1 to 100 routes (repeat route=), not 101"


def test_the_schema_declares_every_status_and_header_the_middlewares_add(
    client: TestClient,
) -> None:
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            assert {"408", "413", "414", "431"} <= answers.keys(), (method, path)
            for status, answer in answers.items():
                assert "X-Request-ID" in answer.get("headers", {}), (method, path, status)
    replay = "Idempotent-Replayed"
    assert replay in schema["paths"]["/v1/routes/{route}/transactions"]["post"]["responses"]["200"]["headers"]  # fmt: skip
    assert replay in schema["paths"]["/save-transaction/{flight_route}"]["post"]["responses"]["200"]["headers"]  # fmt: skip
    answered = client.post("/v1/routes/AR1133/transactions")
    assert "X-Request-ID" in answered.headers


def test_batch_check_takes_100_routes(client: TestClient) -> None:
    query = "&".join(f"route=AB{n:04d}" for n in range(100))
    response = client.get(f"/v1/transactions?{query}")
    assert response.status_code == 200
    assert len(response.json()) == 100


BAD_ROUTES = ["1133", "AR", "AR11334567", "AR-1133", "12345", "ÄR1133", "AR1133" * 50, "AR 1133"]
RECORD_PATHS = ["/save-transaction/{}", "/v1/routes/{}/transactions"]


@pytest.mark.parametrize("route", BAD_ROUTES)
@pytest.mark.parametrize("path", RECORD_PATHS)
def test_bad_route_is_422_with_the_rule_and_changes_nothing(
    client: TestClient, snapshot: Callable[[], object], route: str, path: str
) -> None:
    client.post("/save-transaction/AR1133")
    before = snapshot()
    response = client.post(path.format(quote(route, safe="")))
    assert response.status_code == 422
    assert ROUTE_RULE in str(response.json()["detail"])
    assert snapshot() == before


def test_empty_route_is_not_found(client: TestClient) -> None:
    assert client.post("/save-transaction/").status_code == 404


@pytest.mark.parametrize(
    "key",
    ["k" * 256, "tab\there", "bell\x07", "del\x7f", "é-accent", ""],
    ids=["256-chars", "tab", "control", "del", "non-ascii", "empty"],
)
def test_bad_idempotency_key_is_422_and_changes_nothing(
    client: TestClient, snapshot: Callable[[], object], key: str
) -> None:
    before = snapshot()
    response = client.post(
        "/save-transaction/AR1133", headers=[("Idempotency-Key", key.encode("latin-1"))]
    )
    assert response.status_code == 422
    assert snapshot() == before


def test_longest_printable_key_is_accepted(client: TestClient) -> None:
    key = string.printable[:95].strip() + "k" * 161
    assert len(key) == 255
    assert client.post("/save-transaction/AR1133", headers={"Idempotency-Key": key}).json() == {
        "AR1133": 1
    }


def test_random_strings_never_5xx_and_change_nothing(
    client: TestClient, snapshot: Callable[[], object]
) -> None:
    rng = random.Random(20261126)
    alphabet = string.printable + "ÄéЖ漢字🙂\u00a0"
    candidates = ["".join(rng.choices(alphabet, k=rng.randint(1, 40))) for _ in range(100)]
    before = snapshot()
    for text in candidates:
        try:
            normalize_route(text)
        except ValueError:
            pass
        else:
            pytest.fail(f"random input {text!r} is a valid route; pick another seed")
        for path in RECORD_PATHS:
            response = client.post(path.format(quote(text, safe="")))
            assert 400 <= response.status_code < 500, (text, response.status_code)
    assert snapshot() == before


def test_probes_answer(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok"}


def test_swagger_ui_is_served_at_root(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "swagger-ui" in response.text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/save-transaction/{flight_route}", "/v1/transactions", "/readyz"} <= set(paths)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/get-transaction/AR1133", "GET, HEAD, POST"),
        ("PUT", "/v1/routes/AR1133/transactions", "GET, HEAD, POST"),
        ("POST", "/v1/transactions", "GET, HEAD"),
        ("GET", "/save-transaction/AR1133", "POST"),
    ],
)
def test_a_wrong_method_lists_every_allowed_one(
    client: TestClient, method: str, path: str, allowed: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
